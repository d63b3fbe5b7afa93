"""The compute probe's load, run inside the probe process under the proxy: kernels launched for
a set time and their completions counted per interval, so that the check can follow the
achieved rate over time rather than one average.

  saturate  unsynchronised. With the spin kernel (a GPU): `streams` streams, each kept `depth`
            kernels deep, so the GPU never idles and a throttle that reacts to utilisation sees
            a busy GPU; a kernel counts at the GPU time of its completion event. With the
            empty kernel (a fake driver, or a launch-rate cap): launches back to back, each
            counted as it returns.
  sync      launch one kernel, synchronise the context, repeat: the loop that a throttle
            driven by utilisation may never catch (HAMi#2863), judged on its own row.

The spin kernel does a fixed amount of arithmetic per thread on a grid of several blocks per
SM, calibrated in the unlimited run to last about `kernel_ms`: a limit that takes SMs away
(MPS) or holds launches back (a proxy) shows as fewer kernels per second. Every entry point is
looked up by name in the driver, as an application does (see driver.py).
"""
from __future__ import annotations

import argparse
import ctypes
import time

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
# A dependent FMA chain per thread, `iters` long; every thread stores its result so the loop
# cannot be dropped. The grid is several waves deep (BLOCKS_PER_SM x THREADS is four times what
# an SM holds at once), so its time scales with the SMs it gets: one wave would fit on half the
# SMs (MPS at 50 %) and take no longer there. Many blocks also drain a proxy that budgets
# blocks rather than time (HAMi counts each launch's grid against its token bucket) as quickly
# as a real workload's large grids do; on an H100 a grid of 8 blocks per SM took 13 s to empty
# HAMi's bucket, longer than a check runs.
SPIN_PTX = b""".version 7.0
.target sm_52
.address_size 64
.visible .entry gpubench_spin(.param .u64 p_out, .param .u32 p_iters)
{
    .reg .pred %p;
    .reg .b32 %i, %n, %t;
    .reg .f32 %a;
    .reg .b64 %ptr;
    ld.param.u32 %n, [p_iters];
    ld.param.u64 %ptr, [p_out];
    cvta.to.global.u64 %ptr, %ptr;
    mov.u32 %t, %tid.x;
    cvt.rn.f32.u32 %a, %t;
    mov.u32 %i, 0;
SPIN:
    fma.rn.f32 %a, %a, 0f3F7FFF58, 0f3F800000;
    add.u32 %i, %i, 1;
    setp.lt.u32 %p, %i, %n;
    @%p bra SPIN;
    st.global.f32 [%ptr], %a;
    ret;
}
"""
BLOCKS_PER_SM, THREADS = 64, 128
MAX_ITERS = 1 << 30
CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16
CU_STREAM_NON_BLOCKING, CU_EVENT_DEFAULT = 1, 0


class CUlaunchConfig(ctypes.Structure):
    _fields_ = [("gridDimX", ctypes.c_uint), ("gridDimY", ctypes.c_uint),
                ("gridDimZ", ctypes.c_uint), ("blockDimX", ctypes.c_uint),
                ("blockDimY", ctypes.c_uint), ("blockDimZ", ctypes.c_uint),
                ("sharedMemBytes", ctypes.c_uint), ("hStream", ctypes.c_void_p),
                ("attrs", ctypes.c_void_p), ("numAttrs", ctypes.c_uint)]


def add_load_args(p) -> None:
    p.add_argument("--load", default="saturate", choices=("saturate", "sync"))
    p.add_argument("--kernel", default="empty", choices=("empty", "spin"))
    p.add_argument("--api", default="kernel", choices=("kernel", "ex"))
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--interval", type=float, default=0.25)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--kernel-ms", type=float, default=2.0)
    p.add_argument("--iters", type=int, default=None, help="spin: fixed work (else calibrate)")
    p.add_argument("--blocks", type=int, default=None, help="spin: grid (else 8 per SM)")
    p.add_argument("--start-at", type=float, default=None,
                   help="wall-clock time (epoch s) to start the load: tenants start together")


def load_args(argv: list[str]) -> argparse.Namespace:
    """A load's settings from probe arguments, defaults for the rest (for in-process use)."""
    p = argparse.ArgumentParser(prog="compute load")
    add_load_args(p)
    return p.parse_args(argv)


class _Kernel:
    """One loaded kernel and how to launch it on a stream through the chosen entry point."""

    def __init__(self, drv, kind: str, api: str, blocks: int, iters: int):
        lib = drv.lib
        self.drv, self.blocks, self.threads = drv, (blocks if kind == "spin" else 1), \
            (THREADS if kind == "spin" else 1)
        mod, fn = ctypes.c_void_p(), ctypes.c_void_p()
        ptx, name = (SPIN_PTX, b"gpubench_spin") if kind == "spin" else \
            (EMPTY_PTX, b"gpubench_empty")
        drv._check(lib.cuModuleLoadData(ctypes.byref(mod), ctypes.c_char_p(ptx)),
                   "cuModuleLoadData")
        drv._check(lib.cuModuleGetFunction(ctypes.byref(fn), mod, name), "cuModuleGetFunction")
        self.fn = fn
        self.params = None
        if kind == "spin":
            self.out = ctypes.c_uint64()
            alloc = lib.cuMemAlloc_v2
            alloc.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
            drv._check(alloc(ctypes.byref(self.out), 64), "cuMemAlloc_v2")
            self.iters = ctypes.c_uint32(iters)
            self.params = (ctypes.c_void_p * 2)(ctypes.addressof(self.out),
                                                ctypes.addressof(self.iters))
        if api == "ex":
            try:
                self._ex = lib.cuLaunchKernelEx
            except AttributeError:
                raise CheckError("driver has no cuLaunchKernelEx") from None
            self._ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_void_p]
            self._cfgs: dict = {}
            self.launch = self._launch_ex
        else:
            self._k = lib.cuLaunchKernel
            self._k.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
            self.launch = self._launch_kernel

    def set_iters(self, iters: int) -> None:
        self.iters.value = iters

    def _launch_kernel(self, stream=None) -> int:
        return self._k(self.fn, self.blocks, 1, 1, self.threads, 1, 1, 0, stream, self.params,
                       None)

    def _launch_ex(self, stream=None) -> int:
        key = stream.value if stream is not None else None   # a c_void_p is not hashable
        cfg = self._cfgs.get(key)
        if cfg is None:
            cfg = self._cfgs[key] = CUlaunchConfig(self.blocks, 1, 1, self.threads, 1, 1, 0,
                                                   stream, None, 0)
        return self._ex(ctypes.byref(cfg), self.fn, self.params, None)


def _first_symbol(lib, *names: str):
    """The first of these entry points the driver has (CUDA 13's headers name the _v2), or
    None."""
    for name in names:
        try:
            return getattr(lib, name)
        except AttributeError:
            continue
    return None


def _sm_count(drv) -> int:
    n, dev = ctypes.c_int(), ctypes.c_int()
    drv._check(drv.lib.cuCtxGetDevice(ctypes.byref(dev)), "cuCtxGetDevice")
    drv._check(drv.lib.cuDeviceGetAttribute(ctypes.byref(n),
                                            CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev),
               "cuDeviceGetAttribute")
    return n.value


def _calibrate(drv, k: _Kernel, target_s: float) -> int:
    """Iterations for one spin kernel to last about target_s, unlimited."""
    iters = 1024
    while True:
        k.set_iters(iters)
        k.launch(None)
        drv.sync()
        t0 = time.perf_counter()
        drv._check(k.launch(None), "launch")
        drv._check(drv.sync(), "cuCtxSynchronize")
        took = time.perf_counter() - t0
        if took >= target_s / 4 or iters >= MAX_ITERS:
            break
        iters *= 4
    return max(1, min(MAX_ITERS, int(iters * target_s / max(took, 1e-9))))


def _streams_and_events(drv, n_streams: int, depth: int) -> tuple[list, list]:
    lib = drv.lib
    streams, events = [], []
    for _ in range(n_streams):
        s = ctypes.c_void_p()
        drv._check(lib.cuStreamCreate(ctypes.byref(s), CU_STREAM_NON_BLOCKING), "cuStreamCreate")
        streams.append(s)
    for _ in range(n_streams * depth + 1):          # the last one marks the start
        e = ctypes.c_void_p()
        drv._check(lib.cuEventCreate(ctypes.byref(e), CU_EVENT_DEFAULT), "cuEventCreate")
        events.append(e)
    return streams, events


class _Intervals:
    """Completions counted per interval from t0 (perf_counter seconds)."""

    def __init__(self, seconds: float, interval: float):
        self.interval = interval
        self.counts = [0] * max(1, int(round(seconds / interval)))
        self.t0 = time.perf_counter()
        self.end = self.t0 + len(self.counts) * interval

    def note(self, t: float) -> None:
        i = int((t - self.t0) / self.interval)
        if 0 <= i < len(self.counts):
            self.counts[i] += 1


# The empty and sync loops count each kernel when its call returned (its own clock read):
# launches are sequential, so an interval holds at most the grants a rate cap makes in it + 2.
def _run_sync(drv, k: _Kernel, iv: _Intervals) -> int:
    rc, t, pc = 0, iv.t0, time.perf_counter
    while t < iv.end:
        rc |= k.launch(None)
        rc |= drv.sync()
        t = pc()
        iv.note(t)
    return rc


def _run_empty(k: _Kernel, iv: _Intervals) -> int:
    rc, t, pc = 0, iv.t0, time.perf_counter
    while t < iv.end:
        rc |= k.launch(None)
        t = pc()
        iv.note(t)
    return rc


def _run_streams(drv, k: _Kernel, iv: _Intervals, streams: list, events: list) -> int:
    """Every stream kept `depth` kernels deep. A kernel counts at the GPU's own time of its
    completion event (elapsed from a start event), not when the host got round to seeing it:
    a proxy that blocks inside the launch call would otherwise bunch completions into later
    intervals."""
    lib = drv.lib
    record, wait = lib.cuEventRecord, lib.cuEventSynchronize
    elapsed = _first_symbol(lib, "cuEventElapsedTime_v2", "cuEventElapsedTime")
    start, events = events[-1], events[:-1]
    rc = record(start, streams[0])
    ms = ctypes.c_float()
    i, in_flight, t, pc = 0, len(events), iv.t0, time.perf_counter
    while t < iv.end:
        if i >= in_flight:
            finished = events[i % in_flight]
            rc |= wait(finished)
            t = pc()
            gpu_rc = elapsed(ctypes.byref(ms), start, finished) if elapsed else 1
            iv.note(iv.t0 + ms.value / 1000.0 if gpu_rc == 0 else t)
        s = streams[i % len(streams)]
        rc |= k.launch(s)
        rc |= record(events[i % in_flight], s)
        i += 1
    return rc


def probe_load(drv, a) -> dict:
    """Run the load `a` asks for (see add_load_args); per-interval completion counts."""
    spin = a.kernel == "spin"
    blocks = a.blocks or (_sm_count(drv) * BLOCKS_PER_SM if spin else 1)
    k = _Kernel(drv, a.kernel, a.api, blocks, a.iters or 1)
    iters = (a.iters or _calibrate(drv, k, a.kernel_ms / 1000.0)) if spin else None
    if spin:
        k.set_iters(iters)
    on_streams = spin and a.load == "saturate"
    streams, events = (_streams_and_events(drv, a.streams, a.depth) if on_streams
                       else ([None], []))
    for s in streams:                     # warm-up: module load, first launch on each stream
        k.launch(s)
    drv.sync()
    late = 0.0
    if a.start_at is not None:            # tenants: start together
        late = time.time() - a.start_at
        if late < 0:
            time.sleep(-late)
    started_at = time.time()
    iv = _Intervals(a.seconds, a.interval)
    if a.load == "sync":
        rc = _run_sync(drv, k, iv)
    elif on_streams:
        rc = _run_streams(drv, k, iv, streams, events)
    else:
        rc = _run_empty(k, iv)
    drv.sync()
    seconds = len(iv.counts) * a.interval
    counted = sum(iv.counts)
    return {"probe": "launch", "load": a.load, "kernel": a.kernel, "api": a.api,
            "interval_s": a.interval, "counts": iv.counts, "launches": counted,
            "seconds": seconds, "launches_per_s": counted / seconds, "rc": rc, "iters": iters,
            "blocks": blocks, "threads": k.threads, "streams": len(streams),
            "depth": a.depth if on_streams else 1, "started_at": started_at,
            "late_s": round(max(late, 0.0), 3)}
