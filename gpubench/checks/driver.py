"""The driver probe: runs in its own process, under the proxy, and prints one JSON line.

The memory and compute probes talk to the driver directly through ctypes, the way an
application would: libcuda is dlopened and every entry point is looked up with dlsym, so a
proxy that wraps dlsym sees them, and one that does not is caught; the memory probe's
allocation paths are memory_probe.py. The same probe runs in CI against a fake libcuda
(`--libcuda PATH`). Started as `python -m gpubench.checks --probe ...`.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import time

from .memory_probe import CUBLAS_PATH, MEMORY_PATHS, probe_cublas, probe_memory_path
from .settings import CheckError

# A kernel that does nothing, as PTX: the driver JIT-compiles it for any GPU.
EMPTY_PTX = b""".version 7.0
.target sm_52
.address_size 64
.visible .entry gpubench_empty()
{
    ret;
}
"""


class CUlaunchConfig(ctypes.Structure):
    _fields_ = [("gridDimX", ctypes.c_uint), ("gridDimY", ctypes.c_uint),
                ("gridDimZ", ctypes.c_uint), ("blockDimX", ctypes.c_uint),
                ("blockDimY", ctypes.c_uint), ("blockDimZ", ctypes.c_uint),
                ("sharedMemBytes", ctypes.c_uint), ("hStream", ctypes.c_void_p),
                ("attrs", ctypes.c_void_p), ("numAttrs", ctypes.c_uint)]


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

    def empty_kernel(self) -> ctypes.c_void_p:
        mod, fn = ctypes.c_void_p(), ctypes.c_void_p()
        self._check(self.lib.cuModuleLoadData(ctypes.byref(mod), ctypes.c_char_p(EMPTY_PTX)),
                    "cuModuleLoadData")
        self._check(self.lib.cuModuleGetFunction(ctypes.byref(fn), mod, b"gpubench_empty"),
                    "cuModuleGetFunction")
        return fn


def probe_launch(drv: Driver, api: str, seconds: float, batch: int = 100) -> dict:
    """Empty-kernel launches per second through cuLaunchKernel or cuLaunchKernelEx."""
    f = drv.empty_kernel()
    if api == "ex":
        try:
            launch_ex = drv.lib.cuLaunchKernelEx
        except AttributeError:
            return {"probe": "launch", "api": api, "error": "driver has no cuLaunchKernelEx"}
        cfg = CUlaunchConfig(1, 1, 1, 1, 1, 1, 0, None, None, 0)
        cfg_ref = ctypes.byref(cfg)

        def launch():
            return launch_ex(cfg_ref, f, None, None)
    else:
        launch_k = drv.lib.cuLaunchKernel
        launch_k.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3

        def launch():
            return launch_k(f, 1, 1, 1, 1, 1, 1, 0, None, None, None)
    for _ in range(min(batch, 50)):         # warm-up (module load, first launch)
        launch()
    drv.sync()
    n, rc = 0, 0
    pc = time.perf_counter
    t0 = pc()
    end = t0 + seconds
    while True:
        for _ in range(batch):
            rc |= launch()
        n += batch
        drv.sync()
        t = pc()
        if t >= end:
            break
    elapsed = t - t0
    return {"probe": "launch", "api": api, "launches": n, "seconds": elapsed,
            "launches_per_s": n / elapsed if elapsed > 0 else None, "rc": rc}


def probe_gemm(seconds: float, n: int) -> dict:
    try:
        import cupy as cp   # optional: the GEMM probe runs only where CuPy is
    except Exception as exc:
        return {"probe": "gemm", "error": f"CuPy not importable: {exc}"}
    a = cp.random.random((n, n), dtype=cp.float32).astype(cp.float16)
    b = cp.random.random((n, n), dtype=cp.float32).astype(cp.float16)
    c = cp.empty((n, n), dtype=cp.float16)
    for _ in range(3):
        cp.matmul(a, b, out=c)
    cp.cuda.Stream.null.synchronize()
    ops = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        cp.matmul(a, b, out=c)
        ops += 1
        if ops % 8 == 0:
            cp.cuda.Stream.null.synchronize()
    cp.cuda.Stream.null.synchronize()
    elapsed = time.perf_counter() - t0
    return {"probe": "gemm", "n": n, "ops": ops, "seconds": elapsed,
            "tflops": 2.0 * n ** 3 * ops / elapsed / 1e12, "ops_per_s": ops / elapsed}


def probe_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m gpubench.checks --probe")
    p.add_argument("--probe", required=True, choices=("memory", "launch", "gemm"))
    p.add_argument("--libcuda", default="libcuda.so.1")
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--step", type=int, default=256 << 20)
    p.add_argument("--stop-at", type=int, default=1 << 34)
    p.add_argument("--path", default="cuMemAlloc_v2", choices=(*MEMORY_PATHS, CUBLAS_PATH),
                   help="memory: the allocation path to probe")
    p.add_argument("--fill", action="store_true",
                   help="memory, cuBLAS workspace: fill the memory before the GEMM")
    p.add_argument("--api", default="kernel", choices=("kernel", "ex"))
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--gemm-n", type=int, default=4096)
    a = p.parse_args(argv)
    try:
        if a.probe == "gemm":
            out = probe_gemm(a.seconds, a.gemm_n)
        elif a.probe == "memory" and a.path == CUBLAS_PATH:
            out = probe_cublas(a.step, a.stop_at, a.fill)
        else:
            drv = Driver(a.libcuda, a.device)
            if a.probe == "memory":
                free, total = drv.meminfo()   # as the proxy shows it: its limit, if it says so
                out = {**probe_memory_path(drv.lib, a.path, a.device, a.step, a.stop_at,
                                           drv.sync),
                       "meminfo_total": total, "meminfo_free": free}
            else:
                out = probe_launch(drv, a.api, a.seconds)
    except CheckError as exc:
        out = {"probe": a.probe, "error": str(exc)}
    print(json.dumps(out), flush=True)
    return 0 if "error" not in out else 1
