"""The statistics every part of gpubench shares: medians, robust z / MAD, CV, overhead, verdicts.

Pure Python, no NumPy: the stored document, the dashboard and `show` take their medians
from here without loading NumPy (the app starts without it). The resampling that needs
NumPy (bootstrap CIs, Mann-Whitney U) is results/inference.py; comparing two runs metric by
metric is results/comparison.py; the fleet's outliers and overhead are results/fleet_analysis.py.

    overhead % = (base - cand) / base * 100    throughput-like (ops/s, GB/s, TFLOP/s)
    overhead % = (cand - base) / base * 100    latency-like (mean, p99 µs)

The verdict of an overhead CI against the scenario's target:

    PASS          the whole CI is under the target
    FAIL          the whole CI is over the target
    INCONCLUSIVE  the CI straddles it, or there is no CI; `more_trials_needed` estimates how
                  many more trials per side would decide, assuming the CI's half-width shrinks
                  as 1/sqrt(n)

Like criterion, a `change` word says whether the CI excludes zero (slower / faster /
no change). Like hyperfine, outliers are flagged by MAD (modified z-score > 3.5), never
silently dropped: medians already resist them.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from .comparable import NOT_COMPARABLE
from .schema import INVALID

PASS, FAIL, INCONCLUSIVE, NO_TARGET = "PASS", "FAIL", "INCONCLUSIVE", "NO TARGET"
# NOT COMPARABLE and INVALID (results/comparable.py) rank above every level --fail-on takes:
# a metric that could not be judged always fails the gate.
VERDICT_RANK = {PASS: 0, NO_TARGET: 0, INCONCLUSIVE: 1, FAIL: 2, NOT_COMPARABLE: 3, INVALID: 4}
MIN_TRIALS = 10
OUTLIER_Z = 3.5
MAD_SCALE = 1.4826          # 1.4826 MAD estimates the standard deviation of normal data
MAX_MORE_TRIALS = 100_000


def finite_number(value: Any) -> float | None:
    """`value` as a float when it is a finite number (never a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:   # an integer beyond any float (Python's json reads any size)
        return None
    return number if math.isfinite(number) else None


def median(values: Iterable[float]) -> float:
    """Median of a short 1-D sample (NaN when empty; np.median's overhead dominates at
    these sizes)."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return math.nan
    mid = n // 2
    return float(xs[mid]) if n % 2 else (float(xs[mid - 1]) + float(xs[mid])) / 2.0


def finite_median(values: Iterable[Any]) -> float | None:
    """Median of the finite numbers among `values` (None, text, bools, NaN and infinities are
    skipped); None when there are none."""
    xs = [x for x in map(finite_number, values) if x is not None]
    return median(xs) if xs else None


def robust_z(values: Sequence[float], floor_rel: float = 0.0
             ) -> tuple[float, float, list[float]]:
    """(median, MAD, z-scores) with z = (x - median) / (1.4826 MAD). The scale is never below
    `floor_rel` of |median| (nor 1e-12), so identical values give z 0, not a division by 0."""
    med = median(values)
    mad = median([abs(v - med) for v in values])
    scale = max(MAD_SCALE * mad, floor_rel * abs(med), 1e-12)
    return med, mad, [(v - med) / scale for v in values]


def mad_outliers(values: Sequence[float], threshold: float = OUTLIER_Z) -> list[int]:
    """Indices whose modified z-score |x - median| / (1.4826 MAD) exceeds `threshold`; with a
    MAD of 0 (most values equal), the values that differ from the median."""
    xs = [float(v) for v in values]
    if len(xs) < 3:
        return []
    med, mad, zs = robust_z(xs)
    if mad == 0:
        off = [i for i, x in enumerate(xs) if x != med]
        return off if len(off) < len(xs) / 2 else []
    return [i for i, z in enumerate(zs) if abs(z) > threshold]


def cv_pct(values: Sequence[float]) -> float | None:
    """Coefficient of variation in percent (sample standard deviation over |mean|)."""
    vals = [float(v) for v in values]
    n = len(vals)
    if n < 2:
        return None
    mean = math.fsum(vals) / n
    if mean == 0:
        return None
    var = math.fsum((v - mean) ** 2 for v in vals) / (n - 1)
    return math.sqrt(var) / abs(mean) * 100.0


def overhead_pct(base: float, cand: float, higher_is_better: bool) -> float:
    """What the candidate costs against the baseline, in percent: positive is slower."""
    if higher_is_better:
        return (base - cand) / base * 100.0
    return (cand - base) / base * 100.0


def verdict_for(lo: float | None, hi: float | None, target: float | None) -> str:
    """PASS / FAIL / INCONCLUSIVE of an overhead CI against the target (NO TARGET without
    one); a CI that is missing or not finite decides nothing."""
    if target is None:
        return NO_TARGET
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return INCONCLUSIVE
    if hi < target:
        return PASS
    if lo > target:
        return FAIL
    return INCONCLUSIVE


def more_trials_needed(lo: float, hi: float, n: int, target: float | None) -> int | None:
    """Rough extra trials per side for the CI to clear the target: the half-width
    scales as 1/sqrt(n), the centre is assumed to stay put. None when undecidable
    (centre on the target, or no CI)."""
    if target is None or not (math.isfinite(lo) and math.isfinite(hi)) or n < 2:
        return None
    half = (hi - lo) / 2.0
    dist = abs((hi + lo) / 2.0 - target)
    if dist <= 1e-12:
        return None
    needed = math.ceil(n * (half / dist) ** 2 * 1.1)  # 10 % margin
    return max(1, min(needed - n, MAX_MORE_TRIALS))


def change_word(lo: float, hi: float) -> str:
    """criterion-style: does the CI exclude zero, and which way?"""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "unknown"
    if lo > 0:
        return "slower"
    if hi < 0:
        return "faster"
    return "no change"
