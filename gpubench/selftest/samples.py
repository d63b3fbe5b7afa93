"""The engine's `sample` lines on CLOCK_MONOTONIC: when the engine started, where each sample's
interval lies, and which slot of the delay's schedule holds it. The schedule itself is
engine/cpu_delay.py's `slot_on`, the same function as interpose.c's `delay_on`."""
from __future__ import annotations

import time

SAMPLE_BEFORE_NS = 10_000_000   # arrival delay and the statistics before a line is written
SAMPLE_AFTER_NS = 2_000_000


def engine_start_bound(event, bound: int | None) -> int | None:
    """The engine's start on CLOCK_MONOTONIC, bounded from above by this event: its `t` is
    seconds since that start and it arrives later, so arrival - t is never early; the
    smallest bound over a session's events is the estimate."""
    data = getattr(event, "data", None)
    if not (isinstance(data, dict) and isinstance(data.get("t"), (int, float))):
        return bound
    this = time.monotonic_ns() - int(data["t"] * 1e9)
    return this if bound is None else min(bound, this)


def sample_record(event) -> dict | None:
    """A `sample` event as {variant, t, secs, p50, ops_per_s}, or None without a p50/rate."""
    lat = event.latency_us or {}
    ops, rate = event.data.get("interval_ops"), event.ops_per_s
    if isinstance(lat.get("p50"), (int, float)) and lat["p50"] > 0 and ops and rate:
        return {"variant": event.variant, "t": event.t, "secs": ops / rate,
                "p50": float(lat["p50"]), "ops_per_s": float(rate)}
    return None


def sample_span_ns(smp: dict, t0_ns: int) -> tuple[int, int]:
    """Where a sample's interval may lie on CLOCK_MONOTONIC, margins included: it ended at
    most at t0 + t (t0 is an upper bound) and began `secs` earlier."""
    end = t0_ns + int(smp["t"] * 1e9)
    return end - int(smp["secs"] * 1e9) - SAMPLE_BEFORE_NS, end + SAMPLE_AFTER_NS


def classify_samples(samples: list[dict], t0_ns: int, slot_ns: int) -> list[tuple[dict, int]]:
    """(sample, slot index) for each sample wholly inside one slot (sample_span_ns): those
    that may straddle a slot boundary are dropped."""
    out = []
    for smp in samples:
        start, end = sample_span_ns(smp, t0_ns)
        if start // slot_ns == end // slot_ns:
            out.append((smp, start // slot_ns))
    return out
