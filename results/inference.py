"""Statistical inference with NumPy: seeded bootstrap CIs of medians, and Mann-Whitney U.

The 95 % CI of an overhead comes from a percentile bootstrap that resamples both sides
independently (seeded, so a report is reproducible; the bootstrap medians are drawn exactly
in O(B) from order statistics, see `_median_order_indices`). Like google/benchmark's
compare.py, a Mann-Whitney U p-value is given beside it. `median_ci` is the same bootstrap
for one sample (the fleet's per-host overheads); `cluster_median_ci` resamples groups, then
values within them, for samples whose groups are the independent unit.

The point statistics (median, MAD, verdicts) are results/stats.py, which needs no NumPy.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np

from .stats import median

N_BOOT = 4000
CONFIDENCE = 0.95


def _median_order_indices(n: int, rng: np.random.Generator, n_boot: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the *sorted* sample of the two middle order statistics of `n_boot`
    bootstrap resamples (equal for odd n); the median is the mean of the two values.

    Resampling n values with replacement from the sorted sample x is drawing n
    uniforms U and taking x[floor(n U)]; floor(n U) is monotone, so the k-th order
    statistic of the resample is x[floor(n U_(k))], and U_(k) ~ Beta(k, n - k + 1).
    For even n the next order statistic is U_(k+1) = U_(k) + (1 - U_(k)) Beta(1, n - k),
    and Beta(1, b) = 1 - V**(1/b). Same distribution as resampling and taking np.median
    (checked against the brute-force bootstrap in tests/results/test_results_stats.py), in
    O(n_boot) instead of O(n_boot x n).
    """
    m = n // 2
    if n % 2:
        u = rng.beta(m + 1, m + 1, size=n_boot)
        idx = np.minimum((u * n).astype(np.intp), n - 1)
        return idx, idx
    u1 = rng.beta(m, n - m + 1, size=n_boot)
    u2 = u1 + (1.0 - u1) * (1.0 - rng.random(n_boot) ** (1.0 / (n - m)))
    return (np.minimum((u1 * n).astype(np.intp), n - 1),
            np.minimum((u2 * n).astype(np.intp), n - 1))


def bootstrap_medians(values: Sequence[float], rng: np.random.Generator, n_boot: int
                      ) -> np.ndarray:
    """`n_boot` medians of bootstrap resamples of `values` (see _median_order_indices)."""
    xs = np.sort(np.asarray(values, dtype=float))
    lo, hi = _median_order_indices(xs.size, rng, n_boot)
    return (xs[lo] + xs[hi]) * 0.5


@functools.lru_cache(maxsize=256)
def _cached_indices(n: int, n_boot: int, seed: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The resampling draws depend only on n, the seed and the side (baseline 0,
    candidate 1), so every metric with the same number of trials shares them: a
    comparison of many metrics costs one draw per distinct n. Each metric's bootstrap
    distribution is still exactly its own; only the Monte Carlo noise is shared."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, n, side])
    lo, hi = _median_order_indices(n, rng, n_boot)
    lo.setflags(write=False)
    hi.setflags(write=False)
    return lo, hi


def _percentiles(x: np.ndarray, qs: Sequence[float]) -> list[float]:
    """Linear-interpolated percentiles like np.quantile's default, minus its overhead."""
    xs = np.sort(x)
    out = []
    for q in qs:
        pos = q * (xs.size - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, xs.size - 1)
        out.append(float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)))
    return out


def bootstrap_overhead_ci(base: Sequence[float], cand: Sequence[float], higher_is_better: bool,
                          *, n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
                          seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the overhead % of the medians; both sides resampled
    independently (each from its own seeded stream), reproducible for a given seed."""
    b = np.sort(np.asarray(base, dtype=float))
    c = np.sort(np.asarray(cand, dtype=float))
    if not b.size or not c.size:
        return math.nan, math.nan
    blo, bhi = _cached_indices(b.size, n_boot, int(seed), 0)
    clo, chi = _cached_indices(c.size, n_boot, int(seed), 1)
    mb = (b[blo] + b[bhi]) * 0.5
    mc = (c[clo] + c[chi]) * 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = (mb - mc) / mb * 100.0 if higher_is_better else (mc - mb) / mb * 100.0
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    lo, hi = _percentiles(boot, (alpha, 1.0 - alpha))
    return lo, hi


def median_ci(values: Sequence[float], *, n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
              seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the median of one sample, reproducible for a given seed
    (one value: the value itself, twice)."""
    if len(values) == 1:
        return float(values[0]), float(values[0])
    if not len(values):
        return math.nan, math.nan
    meds = bootstrap_medians(values, np.random.default_rng(int(seed) & 0xFFFFFFFF), n_boot)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = _percentiles(meds, (alpha, 1.0 - alpha))
    return lo, hi


def cluster_median_ci(groups: list[list[float]], *, seed: int, n_boot: int = N_BOOT
                      ) -> tuple[float, float, float]:
    """(median, CI low, CI high) of the pooled values, the CI from a two-stage bootstrap:
    groups resampled, then values within each. For samples whose groups, not values, are
    independent: benchmarks/alternating.py's process pairs each keep their own speed state
    for their lifetime, so the pair ratio within one held within about 3 % while process
    pairs ranged 0.99-1.26; resampling values alone would give a far too narrow CI."""
    gs = [np.asarray(g, dtype=float) for g in groups if len(g)]
    pooled = np.concatenate(gs) if gs else np.empty(0)
    if len(gs) < 2:
        return median(pooled.tolist()), math.nan, math.nan
    rng = np.random.default_rng(seed)
    meds = np.empty(n_boot)
    for i in range(n_boot):
        pick = rng.integers(0, len(gs), len(gs))
        meds[i] = np.median(np.concatenate([gs[j][rng.integers(0, gs[j].size, gs[j].size)]
                                            for j in pick]))
    lo, hi = np.percentile(meds, [2.5, 97.5])
    return median(pooled.tolist()), float(lo), float(hi)


def _ranks_and_ties(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (1-based, ties sharing the mean of their ranks) and the size of each
    group of equal values, from one sort."""
    a = np.asarray(values, dtype=float)
    sorter = np.argsort(a, kind="mergesort")
    inv = np.empty(sorter.size, dtype=np.intp)
    inv[sorter] = np.arange(sorter.size)
    s = a[sorter]
    obs = np.r_[True, s[1:] != s[:-1]]
    dense = obs.cumsum()[inv]
    count = np.r_[np.nonzero(obs)[0], obs.size]
    return 0.5 * (count[dense] + count[dense - 1] + 1), np.diff(count)


def _exact_u_pvalue(u: float, n1: int, n2: int) -> float:
    """Two-sided exact p for U without ties: counts of U over all C(n1+n2, n1) splits."""
    # f[j][u]: ways with i items of sample 1 among the smallest i+j values, DP over i.
    max_u = n1 * n2
    prev = [np.zeros(max_u + 1) for _ in range(n2 + 1)]
    for j in range(n2 + 1):
        prev[j][0] = 1.0
    for i in range(1, n1 + 1):
        cur = [np.zeros(max_u + 1) for _ in range(n2 + 1)]
        cur[0][0] = 1.0
        for j in range(1, n2 + 1):
            # largest value belongs to sample 1 (adds j to U) or to sample 2
            shifted = np.zeros(max_u + 1)
            shifted[j:] = prev[j][: max_u + 1 - j]
            cur[j] = shifted + cur[j - 1]
        prev = cur
    counts = prev[n2]
    total = counts.sum()
    k = min(u, max_u - u)
    p = 2.0 * counts[: int(math.floor(k)) + 1].sum() / total
    return float(min(1.0, p))


def mann_whitney_u(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(U of x, two-sided p). Exact for small samples without ties, else the normal
    approximation with tie and continuity corrections."""
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    n1, n2 = a.size, b.size
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan
    ranks, tie_counts = _ranks_and_ties(np.concatenate([a, b]))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    n = n1 + n2
    has_ties = bool((tie_counts > 1).any())
    if not has_ties and n1 <= 10 and n2 <= 10:
        return u1, _exact_u_pvalue(u1, n1, n2)
    mu = n1 * n2 / 2.0
    tie_term = float((tie_counts ** 3 - tie_counts).sum()) / (n * (n - 1)) if n > 1 else 0.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if var <= 0:
        return u1, 1.0
    z = (abs(u1 - mu) - 0.5) / math.sqrt(var)
    return u1, float(min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2.0))))
