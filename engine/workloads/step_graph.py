"""A decode step replayed as a CUDA graph, offered only where the graph is shown to do the work.

Serving stacks capture a decode step once and replay it. CuPy 14.2 raises
NotImplementedError for a cuBLAS call during stream capture, and a graph captured around the
low-level gemmEx replayed eight 64×4096×4096 GEMMs in 0.3 µs: it did no work (GPU-FACTS). So
a captured graph is measured only after two checks on this device, and otherwise the variant
is a `not_applicable` error that says why (never a figure):
- time: one replay must take at least GRAPH_FLOOR_SHARE of the time the step's FLOPs need at
  the GEMM rate measured here just before (a decode step is memory-bound and far slower);
- output: the replay, into an output zeroed first, must give the eager step's checksum.
"""
from __future__ import annotations

from ..backend import CudaTimer
from ..measure import NotApplicable, Prepared

GRAPH_FLOOR_SHARE = 0.5      # headroom: the rate is measured on one GEMM shape
CHECKSUM_REL_TOL = 1e-3      # the same kernels on the same data; fp16 sums in another order
RATE_GEMM_N = 4096           # the GEMM whose rate sets the floor (about 0.2 ms in fp16 on an H100)


def gemm_tflops(b, dtype: str, stream) -> float:
    """The best of five n³ products on this device, in TFLOP/s (CUDA events)."""
    cp = b.cp
    with stream:
        fn, keep = b.gemm_setup(RATE_GEMM_N, dtype)
        fn()
        start, end = cp.cuda.Event(), cp.cuda.Event()
        best = float("inf")
        for _ in range(5):
            start.record(stream)
            fn()
            end.record(stream)
            end.synchronize()
            best = min(best, cp.cuda.get_elapsed_time(start, end) * 1e-3)
    del keep
    return 2.0 * RATE_GEMM_N ** 3 / best / 1e12


def capture(b, step, stream, what: str):
    """The step captured on `stream` as a graph; NotApplicable when this CuPy cannot."""
    cp = b.cp
    with stream:
        step()                # cuBLAS handle, memory-pool blocks and kernels made before
        stream.synchronize()
        stream.begin_capture()
        try:
            step()
        except Exception as exc:
            try:
                stream.end_capture()
            except Exception:     # an invalidated capture raises again here: the first says why
                pass
            raise NotApplicable(f"{what}: unsupported on CuPy {cp.__version__}: capturing the "
                                f"step raised {type(exc).__name__}: {exc}") from None
        return stream.end_capture()


def check_graph(b, step, graph, stream, flops: float, dtype: str) -> dict:
    """Replay once against the eager step: the figures of both checks and whether they pass."""
    cp = b.cp
    with stream:
        step()
        stream.synchronize()
        eager = step.checksum()
        step.out.fill(0)
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record(stream)
        graph.launch(stream)
        end.record(stream)
        end.synchronize()
        replay_s = cp.cuda.get_elapsed_time(start, end) * 1e-3
        replayed = step.checksum()
    return judge_replay(replay_s, flops, gemm_tflops(b, dtype, stream), eager, replayed)


def judge_replay(replay_s: float, flops: float, rate_tflops: float, eager: float,
                 replayed: float) -> dict:
    """Did one replay do the step's work? Its time against the floor the FLOPs set at the
    measured GEMM rate, and its output checksum against the eager step's."""
    floor_s = GRAPH_FLOOR_SHARE * flops / (rate_tflops * 1e12)
    same = eager > 0 and abs(replayed - eager) <= CHECKSUM_REL_TOL * eager
    return {"replay_us": round(replay_s * 1e6, 3), "floor_us": round(floor_s * 1e6, 3),
            "gemm_tflops": round(rate_tflops, 3), "checksum": replayed, "eager_checksum": eager,
            "did_work": replay_s >= floor_s and same}


def graph_prepared(b, step, variant) -> Prepared:
    """The graph variant ready to time, or NotApplicable with the failed check's figures."""
    what = f"{variant.workload} {variant.name}"
    flops = variant.params["flops_per_step"]
    stream = b.cp.cuda.Stream(non_blocking=True)
    graph = capture(b, step, stream, what)
    check = check_graph(b, step, graph, stream, flops, variant.params["dtype"])
    if not check["did_work"]:
        raise NotApplicable(
            f"{what}: unsupported on CuPy {b.cp.__version__}: the captured graph did not do "
            f"the step's work (one replay {check['replay_us']} µs, floor {check['floor_us']} µs "
            f"from {flops:.4g} FLOP at {check['gemm_tflops']} TFLOP/s; output checksum "
            f"{check['checksum']:.6g}, eager {check['eager_checksum']:.6g})")
    timer = CudaTimer(b.cp, stream, per_op=True)
    launch = graph.launch
    return Prepared(timer.wrap(lambda: launch(stream), stream.synchronize), flops_per_op=flops,
                    tokens_per_op=step.tokens, timer=timer, keep=(step, graph, stream),
                    params={"graph_check": check},
                    timing="perf_counter_ns per graph replay; tflops from cuda events")
