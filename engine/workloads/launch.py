"""launch: empty-kernel launch cost.

`sync`: one launch + stream synchronise per op (the round-trip latency of a launch);
the two calls are compiled into the timed loop.
`async`: ASYNC_BATCH launches then one synchronise per timed call; ops are launches,
so ops/s is launches/s and latency is the batch time divided by the batch size.
On numpy-cpu the "kernel" is a trivial NumPy call (plus GPUBENCH_CPU_DELAY_NS).
"""
from __future__ import annotations

from ..inline import make_bare
from ..measure import Prepared


def prepare(b, variant, plan) -> Prepared:
    launch = b.empty_kernel_call()
    per_sync = int(variant.params.get("launches_per_sync", 1))
    params = {"cpu_delay_ns": b.delay_ns} if b.name == "numpy-cpu" else {}
    if per_sync == 1:
        return Prepared(calls=[launch, *b.sync_calls()], params=params)
    launches = make_bare([launch])  # per_sync launches, no instrumentation
    return Prepared(calls=[(launches, (per_sync,)), *b.sync_calls()], ops_per_call=per_sync,
                    params=params)
