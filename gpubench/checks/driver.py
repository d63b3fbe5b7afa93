"""The driver probe: runs in its own process, under the proxy, and prints one JSON line.

The memory and compute probes talk to the driver directly through ctypes, the way an
application would: libcuda is dlopened and every entry point is looked up with dlsym, so a
proxy that wraps dlsym sees them, and one that does not is caught; the memory probe's
allocation paths are memory_probe.py. The same probe runs in CI against a fake libcuda
(`--libcuda PATH`). Started as `python -m gpubench.checks --probe ...`.
The compute probe's load (`--probe launch`) is compute_load.py.
"""
from __future__ import annotations

import argparse
import ctypes
import json

from .compute_load import add_load_args, probe_load
from .memory_probe import CUBLAS_PATH, MEMORY_PATHS, probe_cublas, probe_memory_path
from .settings import CheckError

class Driver:
    """The few driver calls the probes need, looked up by name like an application does."""

    def __init__(self, path: str = "libcuda.so.1", device: int = 0):
        try:
            self.lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
        except OSError as exc:
            raise CheckError(f"cannot load the CUDA driver {path}: {exc}") from None
        self._check(self.lib.cuInit(0), "cuInit")
        dev = ctypes.c_int()
        self._check(self.lib.cuDeviceGet(ctypes.byref(dev), device), "cuDeviceGet")
        ctx = ctypes.c_void_p()
        self._check(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev),
                    "cuDevicePrimaryCtxRetain")
        self._check(self.lib.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        self.sync = self.lib.cuCtxSynchronize

    @staticmethod
    def _check(rc: int, what: str) -> None:
        if rc != 0:
            raise CheckError(f"{what} failed with CUDA error {rc}")

    def meminfo(self) -> tuple[int, int]:
        fr, tot = ctypes.c_size_t(), ctypes.c_size_t()
        fn = self.lib.cuMemGetInfo_v2
        fn.argtypes = [ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)]
        self._check(fn(ctypes.byref(fr), ctypes.byref(tot)), "cuMemGetInfo_v2")
        return fr.value, tot.value




def probe_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m gpubench.checks --probe")
    p.add_argument("--probe", required=True, choices=("memory", "launch"))
    p.add_argument("--libcuda", default="libcuda.so.1")
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--step", type=int, default=256 << 20)
    p.add_argument("--stop-at", type=int, default=1 << 34)
    p.add_argument("--path", default="cuMemAlloc_v2", choices=(*MEMORY_PATHS, CUBLAS_PATH),
                   help="memory: the allocation path to probe")
    p.add_argument("--fill", action="store_true",
                   help="memory, cuBLAS workspace: fill the memory before the GEMM")
    add_load_args(p)
    a = p.parse_args(argv)
    try:
        if a.probe == "memory" and a.path == CUBLAS_PATH:
            out = probe_cublas(a.step, a.stop_at, a.fill)
        else:
            drv = Driver(a.libcuda, a.device)
            if a.probe == "memory":
                free, total = drv.meminfo()   # as the proxy shows it: its limit, if it says so
                out = {**probe_memory_path(drv.lib, a.path, a.device, a.step, a.stop_at,
                                           drv.sync),
                       "meminfo_total": total, "meminfo_free": free}
            else:
                out = probe_load(drv, a)
    except CheckError as exc:
        out = {"probe": a.probe, "error": str(exc)}
    print(json.dumps(out), flush=True)
    return 0 if "error" not in out else 1
