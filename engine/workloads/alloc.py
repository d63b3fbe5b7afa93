"""alloc: device malloc + free latency, straight through cudaMalloc/cudaFree.

CuPy's memory pool is bypassed (cupy.cuda.runtime.malloc/free). On numpy-cpu:
np.empty plus touching every page, then release.
"""
from __future__ import annotations

from ..runner import Prepared


def prepare(b, variant, plan) -> Prepared:
    n = variant.params["size_bytes"]
    return Prepared(b.malloc_free_op(n), timing="perf_counter_ns (malloc + free)")
