"""The statistics of one interference-matrix cell: a victim beside an aggressor.

    ratio_ci(alone, together, seed=1)   # median(together) / median(alone) with a 95 % CI
    alone_stability(before, after)      # did the victim alone keep its speed between processes?
    jain_index([0.9, 0.4])              # Jain's fairness over normalised throughputs

Inflation and throughput share are both a ratio of medians over windows (the engine's result
lines), with the CI of results/inference.py's bootstrap: its lower-is-better overhead % of
`together` against `alone` is (ratio - 1) x 100, so one resampling scheme serves every ratio
gpubench reports. How a cell reads (its text, its colour band) is results/matrix_table.py.
"""
from __future__ import annotations

import math
from typing import Sequence

from .inference import bootstrap_overhead_ci
from .stats import median


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values
            if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]


def ratio_ci(alone: Sequence[float | None], together: Sequence[float | None], *,
             seed: int = 0) -> dict | None:
    """{"ratio", "lo", "hi", "n_alone", "n_together"}: median(together) / median(alone) and
    its bootstrap CI (both sides resampled); None without a positive value on either side.
    With one value a side the CI is the ratio itself (nothing to resample)."""
    a, t = _finite(alone), _finite(together)
    if not a or not t:
        return None
    ratio = median(t) / median(a)
    lo_pct, hi_pct = bootstrap_overhead_ci(a, t, higher_is_better=False, seed=seed)
    lo = 1.0 + lo_pct / 100.0 if math.isfinite(lo_pct) else ratio
    hi = 1.0 + hi_pct / 100.0 if math.isfinite(hi_pct) else ratio
    # percentile CIs of a skewed ratio can miss the point estimate by a hair; a CI that does
    # not hold its own ratio would read as a contradiction
    return {"ratio": ratio, "lo": min(lo, ratio), "hi": max(hi, ratio),
            "n_alone": len(a), "n_together": len(t)}


def jain_index(values: Sequence[float | None]) -> float | None:
    """Jain's fairness index (sum x)^2 / (n sum x^2) of normalised throughputs: 1 when every
    side keeps the same fraction of its speed alone, 1/n when one side keeps it all; None
    when no side has a positive value."""
    xs = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)
          and v >= 0]
    if len(xs) != len(values) or not xs or not any(xs):
        return None
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))


def split_agreement(measured: Sequence[float], nvml: Sequence[float | None],
                    tolerance: float) -> dict | None:
    """Do NVML's per-process SM figures split the GPU as the measured shares do? Each side's
    fraction of the pair (its share over the sum of shares, its utilisation over the sum of
    utilisations) compared; agree when every side is within `tolerance`. None without a
    figure from NVML for every side."""
    util = [u for u in nvml if isinstance(u, (int, float)) and math.isfinite(u) and u >= 0]
    if len(util) != len(nvml) or not sum(util) or not sum(measured):
        return None
    m = [x / sum(measured) for x in measured]
    n = [u / sum(util) for u in util]
    worst = max(abs(a - b) for a, b in zip(m, n))
    return {"measured_split": m, "nvml_split": n, "max_difference": worst,
            "tolerance": tolerance, "agree": worst <= tolerance}


# How far the victim alone may move between its run before the pairs and its run after them
# before its cells say so: beyond this (with a CI that excludes no change), the spread between
# processes is as large as the inflation a cell could show.
ALONE_MOVE_LIMIT = 0.10


def alone_stability(before: Sequence[float | None], after: Sequence[float | None], *,
                    limit: float = ALONE_MOVE_LIMIT, seed: int = 0) -> dict | None:
    """The victim's p50 alone after the pairs over before them, {"ratio", "lo", "hi",
    "stable"}: unstable when it moved more than `limit` and its CI excludes 1. The windows of
    one process agree with each other more than two processes do (a host-bound step ran 3.2 ms
    in one process and 5.4 ms in another on an H100), so a cell's CI alone cannot show it."""
    r = ratio_ci(before, after, seed=seed)
    if r is None:
        return None
    moved = abs(r["ratio"] - 1.0) > limit and (r["lo"] > 1.0 or r["hi"] < 1.0)
    return {**r, "limit": limit, "stable": not moved}
