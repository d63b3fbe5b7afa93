"""gemm: one n×n×n matrix product per op (fp32 or fp16), TFLOP/s from device time.

2·n³ floating-point operations per product; device time from CUDA events.
"""
from __future__ import annotations

from ..measure import Prepared


def prepare(b, variant, plan) -> Prepared:
    n = int(variant.params["n"])
    fn, keep = b.gemm_setup(n, variant.params["dtype"])
    timer = b.timer()
    return Prepared(timer.wrap(fn, b.sync_op()), flops_per_op=2.0 * n ** 3, timer=timer,
                    keep=keep, timing="perf_counter_ns per product; tflops from cuda events"
                    if b.name == "cupy" else "perf_counter_ns")
