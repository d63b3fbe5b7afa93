"""roundtrip: the seed-compatible headline op.

Pinned host buffer → device (H2D), a tiny kernel over the bytes, device → a second
pinned host buffer (D2H), then synchronise the stream; timed per op with
perf_counter_ns. ops/s of this loop is the figure the seed results called
"Throughput". On numpy-cpu: copy in, a small NumPy op, copy out.
"""
from __future__ import annotations

from ..backend import D2H, H2D
from ..runner import Prepared


def prepare(b, variant, plan) -> Prepared:
    n = variant.params["size_bytes"]
    host_in = b.host_buffer(n, pinned=True)
    host_out = b.host_buffer(n, pinned=True)
    dev = b.device_buffer(n)
    h2d = b.copy_op(H2D, dev, host_in, n)
    kernel = b.touch_kernel_op(dev, n)
    d2h = b.copy_op(D2H, host_out, dev, n)
    sync = b.sync_op()

    def op():
        h2d()
        kernel()
        d2h()
        sync()
    return Prepared(op, bytes_per_op=2 * n, keep=(host_in, host_out, dev),
                    params={"cpu_delay_ns": getattr(b, "delay_ns", None)} if b.name == "numpy-cpu" else {})
