"""Per-operation latency recording and the statistics of a window.

The hot loop writes one int64 (nanoseconds) per operation into a preallocated
NumPy array through a memoryview (a plain indexed store, ~20 ns); nothing is
allocated per operation. Statistics are computed only at sample boundaries and
at the end of a window.
"""
from __future__ import annotations

import math

import numpy as np

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
CHUNK_OPS = 1 << 20  # 8 MiB of int64 per chunk; a new chunk only when one fills up


class LatencyRecorder:
    """Preallocated per-op nanosecond latencies, in chunks of CHUNK_OPS.

    Use: `mv, cap = rec.view()`; in the loop `mv[i] = clock(); i += 1`; at a
    boundary `rec.to_latencies(first, i, t_before)` turns the timestamps into
    per-op ns in place; when `i == cap` (the store raises IndexError) call
    `mv, cap = rec.next_chunk(i)` (rare). `rec.close(i)` at the end.
    """

    def __init__(self, chunk_ops: int = CHUNK_OPS):
        self._chunk_ops = chunk_ops
        self._full: list[np.ndarray] = []
        self._first = np.zeros(chunk_ops, dtype=np.int64)
        self._first.fill(0)  # fault the pages in now, not inside a measured window
        self._current = self._first
        self._used = 0

    def reset(self) -> "LatencyRecorder":
        """Reuse the (already touched) first chunk for the next window."""
        self._full = []
        self._current = self._first
        self._used = 0
        return self

    def view(self) -> tuple[memoryview, int]:
        return memoryview(self._current), self._chunk_ops

    def next_chunk(self, used: int) -> tuple[memoryview, int]:
        self._full.append(self._current[:used])
        self._current = np.empty(self._chunk_ops, dtype=np.int64)
        return memoryview(self._current), self._chunk_ops

    def close(self, used: int) -> None:
        self._used = used

    def to_latencies(self, start: int, stop: int, t_before: int) -> int:
        """Turn end timestamps [start, stop) of the current chunk into per-op ns, in place.

        `t_before` is when the first of those ops began. Returns the last end
        timestamp (where a following op would begin), t_before if the range is empty.
        """
        seg = self._current[start:stop]
        if seg.size == 0:
            return t_before
        last = int(seg[-1])
        seg[1:] = np.diff(seg)
        seg[0] -= t_before
        return last

    def current_slice(self, start: int, stop: int) -> np.ndarray:
        """Latencies of the current chunk between two indices (a view, no copy)."""
        return self._current[start:stop]

    def all(self) -> np.ndarray:
        parts = self._full + [self._current[: self._used]]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def latency_stats(ns: np.ndarray, scale: float = 1.0, full: bool = False) -> dict:
    """Latency summary in µs. `scale` divides each value (ops per timed call).

    `full` adds stdev and cv (stdev/mean), as `result` lines carry them.
    Empty input gives nulls, never NaN.
    """
    keys = ["mean", "min", "max"] + [k for k, _ in PERCENTILES]
    if full:
        keys += ["stdev", "cv"]
    if ns.size == 0:
        return {k: None for k in keys}
    us = ns.astype(np.float64) / (1000.0 * scale)
    pct = np.percentile(us, [p for _, p in PERCENTILES])
    out = {"mean": float(us.mean()), "min": float(us.min()), "max": float(us.max())}
    for (key, _), value in zip(PERCENTILES, pct):
        out[key] = float(value)
    if full:
        stdev = float(us.std(ddof=1)) if us.size > 1 else 0.0
        out["stdev"] = stdev
        out["cv"] = stdev / out["mean"] if out["mean"] > 0 else None
    return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)
            for k, v in out.items()}


STEP_HISTOGRAM_BINS = 16


def step_histogram(ns: np.ndarray, bins: int = STEP_HISTOGRAM_BINS) -> dict:
    """The window's step latencies as a histogram: `bins` bins spaced evenly on a log scale
    from its fastest to its slowest step (a tail reads on a log scale; percentiles alone hide
    whether it is one slow step or a second mode). `edges_us` has one more entry than `counts`;
    a window whose steps all took the same time is one bin."""
    if ns.size == 0:
        return {"edges_us": [], "counts": []}
    us = ns.astype(np.float64) / 1000.0
    low, high = max(float(us.min()), 1e-3), float(us.max())
    if high <= low:
        return {"edges_us": [round(low, 4), round(high, 4)], "counts": [int(us.size)]}
    edges = np.geomspace(low, high, bins + 1)
    counts, _ = np.histogram(np.clip(us, low, high), edges)
    return {"edges_us": [round(float(e), 4) for e in edges], "counts": counts.tolist()}
