"""The driver probe: runs in its own process, under the proxy, and prints one JSON line.

The memory and compute probes talk to the driver directly through ctypes, the way an
application would: libcuda is dlopened and every entry point is looked up with dlsym, so a
proxy that wraps dlsym sees them, and one that does not is caught. The same probe runs in CI
against a fake libcuda (`--libcuda PATH`). Started as `python -m gpubench.checks --probe ...`.
The compute probe's load (`--probe launch`) is compute_load.py.
"""
from __future__ import annotations

import argparse
import ctypes
import json

from .compute_load import add_load_args, probe_load
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
        self.alloc = self.lib.cuMemAlloc_v2
        self.alloc.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
        self.free = self.lib.cuMemFree_v2
        self.free.argtypes = [ctypes.c_uint64]
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


def probe_memory(drv: Driver, step: int, stop_at: int) -> dict:
    """Allocate `step` bytes at a time until refused or `stop_at` bytes are held."""
    ptrs: list[int] = []
    total, rc = 0, 0
    free_before, total_reported = drv.meminfo()
    try:
        while total + step <= stop_at:
            p = ctypes.c_uint64()
            rc = drv.alloc(ctypes.byref(p), step)
            if rc != 0:
                break
            ptrs.append(p.value)
            total += step
    finally:
        for p in ptrs:
            drv.free(p)
    return {"probe": "memory", "allocated": total, "allocations": len(ptrs), "refused": rc != 0,
            "rc": rc, "step": step, "stop_at": stop_at, "meminfo_total": total_reported,
            "meminfo_free": free_before}


def probe_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m gpubench.checks --probe")
    p.add_argument("--probe", required=True, choices=("memory", "launch"))
    p.add_argument("--libcuda", default="libcuda.so.1")
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--step", type=int, default=256 << 20)
    p.add_argument("--stop-at", type=int, default=1 << 34)
    add_load_args(p)
    a = p.parse_args(argv)
    try:
        drv = Driver(a.libcuda, a.device)
        out = probe_memory(drv, a.step, a.stop_at) if a.probe == "memory" else probe_load(drv, a)
    except CheckError as exc:
        out = {"probe": a.probe, "error": str(exc)}
    print(json.dumps(out), flush=True)
    return 0 if "error" not in out else 1
