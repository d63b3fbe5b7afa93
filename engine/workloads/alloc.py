"""alloc: device malloc + free latency, straight through cudaMalloc/cudaFree.

CuPy's memory pool is bypassed (cupy.cuda.runtime.malloc/free). The figure depends on
what else is allocated: the driver sub-allocates small allocations from larger chunks,
so with nothing else live each malloc maps a fresh chunk and each free unmaps it
(~67 us for 1 MiB on an H200), while with another allocation live in the chunk the pair
is a sub-allocation (~3 us). Two variants pin the state down: `1MiB` (nothing of ours
held; run before gemm, whose cuBLAS workspace stays allocated) and `1MiB-held` (a
second 1 MiB cudaMalloc held through the loop). On numpy-cpu: np.empty plus touching
every page, then release.
"""
from __future__ import annotations

from ..measure import Prepared


def prepare(b, variant, plan) -> Prepared:
    n = variant.params["size_bytes"]
    held = variant.params.get("held_bytes")
    keep = (b.held_allocation(held),) if held else ()
    return Prepared(b.malloc_free_op(n), timing="perf_counter_ns (malloc + free)", keep=keep)
