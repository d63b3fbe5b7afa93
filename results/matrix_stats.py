"""The statistics of one interference-matrix cell: a victim beside an aggressor.

    ratio_ci(alone, together, seed=1)   # median(together) / median(alone) with a 95 % CI
    jain_index([0.9, 0.4])              # Jain's fairness over normalised throughputs
    inflation_band(1.3)                 # "yellow": the colour class of a p99 inflation

Inflation and throughput share are both a ratio of medians over windows (the engine's result
lines), with the CI of results/inference.py's bootstrap: its lower-is-better overhead % of
`together` against `alone` is (ratio - 1) x 100, so one resampling scheme serves every ratio
gpubench reports. The band thresholds (green below 1.1, yellow below 1.5, red from there) are
shared by the CLI's matrix and the TUI's grid so that both name a cell alike.
"""
from __future__ import annotations

import math
from typing import Sequence

from .inference import bootstrap_overhead_ci
from .stats import median

GREEN_BELOW, YELLOW_BELOW = 1.1, 1.5
BANDS = ("green", "yellow", "red")


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


def inflation_band(ratio: float | None) -> str | None:
    """green < 1.1 <= yellow < 1.5 <= red; None for a cell without a figure."""
    if ratio is None or not math.isfinite(ratio):
        return None
    return BANDS[0] if ratio < GREEN_BELOW else BANDS[1] if ratio < YELLOW_BELOW else BANDS[2]


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


def cell_text(inflation: dict | None, what: str = "p99") -> str:
    """'p99 ×1.66 [1.40, 1.90]', or 'p99 —' for a cell without a figure."""
    if not inflation:
        return f"{what} —"
    return (f"{what} ×{inflation['ratio']:.2f} "
            f"[{inflation['lo']:.2f}, {inflation['hi']:.2f}]")
