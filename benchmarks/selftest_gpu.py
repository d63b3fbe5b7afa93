"""GPU evidence for the interposer: does it catch CuPy's launches and copies, and does a
delay of D ns add D ns per op?

    python benchmarks/selftest_gpu.py [--out DIR] [--n 20000]

Re-executes itself under LD_PRELOAD=<interposer>. In that child it builds the engine's
own CuPy operations (engine.backend.CupyBackend: the same closures the engine times),
runs each N times and compares the interposer's per-function call counts with N; then
sweeps the delay at run time (gpubench_interpose_set_delay_ns) and fits the added
per-op p50 latency against D. Also launches through cuLaunchKernelEx with ctypes (the
probe of `gpubench check`). Writes gpu_interposer.json (and prints it).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parent(args) -> int:
    from gpubench import interposer
    lib = interposer.library_path()
    env = dict(os.environ, LD_PRELOAD=str(lib), GPUBENCH_INTERPOSE_CHILD="1",
               PYTHONPATH=str(ROOT))
    return subprocess.call([sys.executable, __file__, *sys.argv[1:]], env=env)


def p50_ns(op, n: int) -> float:
    import numpy as np
    pc = time.perf_counter_ns
    lat = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = pc()
        op()
        lat[i] = pc() - t0
    return float(np.median(lat))


def child(args) -> int:
    import cupy
    import numpy as np
    from engine.backend import D2H, H2D, CupyBackend
    g = ctypes.CDLL(None)
    calls = g.gpubench_interpose_calls
    calls.restype = ctypes.c_ulonglong
    calls.argtypes = [ctypes.c_char_p]
    set_delay = g.gpubench_interpose_set_delay_ns
    set_delay.argtypes = [ctypes.c_char_p, ctypes.c_longlong]
    kinds = ["cuLaunchKernel", "cuLaunchKernelEx", "cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2",
             "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2", "cuMemcpyAsync", "cuMemcpy",
             "cuMemcpyDtoDAsync_v2", "cuMemAlloc_v2", "cuMemFree_v2", "cuMemAllocAsync",
             "cuMemFreeAsync", "cuStreamSynchronize", "cuCtxSynchronize", "cuEventSynchronize",
             "cuGetProcAddress_v2", "cuGetProcAddress"]

    def snap():
        return {k: calls(k.encode()) for k in kinds}

    def delta(a, b):
        return {k: b[k] - a[k] for k in kinds if b[k] != a[k]}

    b = CupyBackend(cupy, 0)
    n = args.n
    size = 64 * 1024
    host_in, host_out = b.host_buffer(size, True), b.host_buffer(size, True)
    dev = b.device_buffer(size)
    h2d, d2h = b.copy_op(H2D, dev, host_in, size), b.copy_op(D2H, host_out, dev, size)
    touch, sync = b.touch_kernel_op(dev, size), b.sync_op()
    fn, (a0, a1, a2) = b.empty_kernel_call()

    def launch_sync():
        fn(a0, a1, a2)
        sync()

    def roundtrip():
        h2d()
        touch()
        d2h()
        sync()
    malloc_free = b.malloc_free_op(1 << 20)
    small = cupy.arange(16, dtype=cupy.float32)

    def cupy_get():          # CuPy's own D2H (ndarray.get)
        small.get()

    def cupy_set():          # CuPy's own H2D (cupy.asarray of a numpy array)
        cupy.asarray(np.ones(16, dtype=np.float32))
    out: dict = {"n": n, "device": cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
                 "driver_version": cupy.cuda.runtime.driverGetVersion(),
                 "runtime_version": cupy.cuda.runtime.runtimeGetVersion(),
                 "cupy": cupy.__version__, "counts": {}}
    for name, op, reps in (("launch_sync", launch_sync, n), ("roundtrip", roundtrip, n),
                           ("h2d_pinned_64KiB", lambda: (h2d(), sync()), n),
                           ("d2h_pinned_64KiB", lambda: (d2h(), sync()), n),
                           ("malloc_free_1MiB", malloc_free, 1000),
                           ("cupy_ndarray_get", cupy_get, 1000),
                           ("cupy_asarray", cupy_set, 1000)):
        op()
        sync()
        s0 = snap()
        for _ in range(reps):
            op()
        sync()
        out["counts"][name] = {"ops": reps, "calls": delta(s0, snap())}
        print(name, out["counts"][name], flush=True)
    # cuLaunchKernelEx and cuLaunchKernel through ctypes (the check probe)
    from gpubench.checks.compute_load import load_args, probe_load
    from gpubench.checks.driver import Driver
    drv = Driver("libcuda.so.1", 0)
    for api in ("kernel", "ex"):
        s0 = snap()
        res = probe_load(drv, load_args(["--api", api, "--seconds", "0.3"]))
        out["counts"][f"ctypes_{api}"] = {"ops": res.get("launches"), "calls": delta(s0, snap()),
                                          "launches_per_s": res.get("launches_per_s"),
                                          "rc": res.get("rc")}
        print(f"ctypes_{api}", out["counts"][f"ctypes_{api}"], flush=True)

    # delay sweep: added p50 per op vs D, interleaved rounds
    sweeps = {"launch_sync/sync": (launch_sync, "sync", 1),
              "roundtrip/sync": (roundtrip, "sync", 1),
              "launch_sync/launch": (launch_sync, "launch", 1),
              "roundtrip/launch": (roundtrip, "launch", 1),
              "roundtrip/h2d": (roundtrip, "h2d", 1),
              "roundtrip/copy": (roundtrip, "copy", 2)}
    delays = [0, 100, 250, 500, 1000, 2000, 5000]
    m = args.sweep_n
    res: dict = {}
    for key, (op, cat, k) in sweeps.items():
        per_d = {d: [] for d in delays}
        for rnd in range(3):
            for d in (delays if rnd % 2 == 0 else delays[::-1]):
                set_delay(b"all", 0)
                set_delay(cat.encode(), d)
                for _ in range(200):
                    op()
                per_d[d].append(p50_ns(op, m))
        set_delay(b"all", 0)
        base = float(np.median(per_d[0]))
        pts = [(d, float(np.median(per_d[d])) - base) for d in delays]
        xs = np.array([d * k for d, _ in pts], dtype=float)
        ys = np.array([a for _, a in pts])
        slope, icpt = np.polyfit(xs, ys, 1)
        res[key] = {"category": cat, "delayed_calls_per_op": k, "base_p50_ns": base,
                    "added_ns": {str(d): a for d, a in pts}, "slope": float(slope),
                    "intercept_ns": float(icpt)}
        print(key, json.dumps(res[key]), flush=True)
    out["sweep"] = res
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "gpu_interposer.json").write_text(json.dumps(out, indent=1))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--sweep-n", type=int, default=5000)
    args = ap.parse_args()
    return child(args) if os.environ.get("GPUBENCH_INTERPOSE_CHILD") else parent(args)


if __name__ == "__main__":
    sys.exit(main())
