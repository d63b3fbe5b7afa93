"""h2d, d2h, d2d: copy bandwidth and per-copy latency.

Each timed call is one cudaMemcpyAsync bracketed by a pair of CUDA events and
followed by an event synchronise: `gbps` is bytes / event-timed device time
(10^9 bytes per second, bytes copied counted once), `gbps_wall` is bytes / wall
time, and latency_us is the host-side time per copy. On numpy-cpu the copies are
np.copyto between host arrays and the timer is the wall clock.
"""
from __future__ import annotations

from ..backend import D2D, D2H, H2D
from ..measure import Prepared


def prepare(b, variant, plan) -> Prepared:
    n = variant.params["size_bytes"]
    sync = b.sync_op()
    if variant.workload == "d2d":
        src, dst = b.device_buffer(n), b.device_buffer(n)
        copy = b.copy_op(D2D, dst, src, n)
    else:
        host = b.host_buffer(n, pinned=variant.params.get("memory") == "pinned")
        dev = b.device_buffer(n)
        if variant.workload == "h2d":
            src, dst = host, dev
            copy = b.copy_op(H2D, dev, host, n)
        else:
            src, dst = dev, host
            copy = b.copy_op(D2H, host, dev, n)
    timer = b.timer()
    return Prepared(timer.wrap(copy, sync), bytes_per_op=n, timer=timer, keep=(src, dst),
                    timing="perf_counter_ns per copy; gbps from cuda events"
                    if b.name == "cupy" else "perf_counter_ns")
