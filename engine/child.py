"""The hidden `--init-child` mode of the init workload (kept free of heavy imports).

Prints one JSON line on stdout with monotonic-clock timestamps: t_main_ns (our
__main__ began), t_ready_ns (CUDA context ready; numpy imported on the CPU) and
t_first_ns (first kernel done), or an `error`.
"""
from __future__ import annotations

import json
import time


def child_main(argv: list[str], t_main_ns: int) -> int:
    """The hidden child mode: one JSON line on stdout, nothing else."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends us on interrupt
    backend, device = "numpy-cpu", 0
    for i, a in enumerate(argv):
        if a == "--backend" and i + 1 < len(argv):
            backend = argv[i + 1]
        if a == "--device" and i + 1 < len(argv) and argv[i + 1].isdigit():
            device = int(argv[i + 1])
    out: dict = {"t_main_ns": t_main_ns, "backend": backend}
    try:
        if backend == "cupy":
            import cupy
            cupy.cuda.runtime.setDevice(device)
            cupy.cuda.runtime.free(0)  # forces the primary context
            out["t_ready_ns"] = time.monotonic_ns()
            from .backend import KERNEL_SOURCE
            k = cupy.RawModule(code=KERNEL_SOURCE).get_function("gpubench_empty")
            k((1,), (1,), ())
            cupy.cuda.runtime.deviceSynchronize()
        else:
            import numpy
            out["t_ready_ns"] = time.monotonic_ns()
            a = numpy.ones(16)
            float((a + a).sum())
        out["t_first_ns"] = time.monotonic_ns()
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(out), flush=True)
        return 1
    print(json.dumps(out), flush=True)
    return 0
