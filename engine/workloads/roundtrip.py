"""roundtrip: the seed-compatible headline op.

Pinned host buffer → device (cudaMemcpyAsync H2D), a tiny kernel over the bytes,
device → a second pinned host buffer (D2H), then synchronise the stream; timed
per op with perf_counter_ns, the four calls compiled into the timed loop.
ops/s of this loop is the figure the seed results called "Throughput".
On numpy-cpu: copy in, a small NumPy op (+ GPUBENCH_CPU_DELAY_NS), copy out.
"""
from __future__ import annotations

from ..backend import D2H, H2D
from ..measure import Prepared


def calls_for(b, host_in, host_out, dev, n: int) -> list:
    """The operation as plain calls: the engine inlines them, the overhead benchmark too."""
    return [b.copy_call(H2D, dev, host_in, n), b.touch_kernel_call(dev, n),
            b.copy_call(D2H, host_out, dev, n), *b.sync_calls()]


def prepare(b, variant, plan) -> Prepared:
    n = variant.params["size_bytes"]
    host_in = b.host_buffer(n, pinned=True)
    host_out = b.host_buffer(n, pinned=True)
    dev = b.device_buffer(n)
    params = {"cpu_delay_ns": b.delay_ns} if b.name == "numpy-cpu" else {}
    return Prepared(calls=calls_for(b, host_in, host_out, dev, n), bytes_per_op=2 * n,
                    keep=(host_in, host_out, dev), params=params)
