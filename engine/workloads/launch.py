"""launch: empty-kernel launch cost.

`sync`: one launch + stream synchronise per op (the round-trip latency of a launch).
`async`: ASYNC_BATCH launches then one synchronise per timed call; ops are launches,
so ops/s is launches/s and latency is the batch time divided by the batch size.
On numpy-cpu the "kernel" is a trivial NumPy call (plus GPUBENCH_CPU_DELAY_NS).
The kernel object is called directly from the loop, as a bare loop would.
"""
from __future__ import annotations

from ..runner import Prepared


def prepare(b, variant, plan) -> Prepared:
    fn, args = b.empty_kernel_call()
    sync = b.sync_op()
    per_sync = int(variant.params.get("launches_per_sync", 1))
    extra = {"cpu_delay_ns": b.delay_ns} if b.name == "numpy-cpu" else {}
    batch = range(per_sync)
    if len(args) == 3:
        a0, a1, a2 = args

        def op_sync():
            fn(a0, a1, a2)
            sync()

        def op_async():
            for _ in batch:
                fn(a0, a1, a2)
            sync()
    else:
        def op_sync():
            fn()
            sync()

        def op_async():
            for _ in batch:
                fn()
            sync()
    if per_sync == 1:
        return Prepared(op_sync, params=extra)
    return Prepared(op_async, ops_per_call=per_sync, params=extra)
