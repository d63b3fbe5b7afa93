"""Overhead statistics: medians, seeded bootstrap CIs, Mann-Whitney U, verdicts.

For each metric of each workload variant that both runs measured:

    overhead % = (base - cand) / base * 100    throughput-like (ops/s, GB/s, TFLOP/s)
    overhead % = (cand - base) / base * 100    latency-like (mean, p99 µs)

computed from the *medians* of the trials (one trial = one `result` line). The
95 % CI comes from a percentile bootstrap that resamples both sides independently
(seeded, so a report is reproducible; the bootstrap medians are drawn exactly in
O(B) from order statistics, see `_median_order_indices`). The verdict against the
scenario's target:

    PASS          the whole CI is under the target
    FAIL          the whole CI is over the target
    INCONCLUSIVE  the CI straddles it; `more_trials` estimates how many more trials per
                  side would decide, assuming the CI's half-width shrinks as 1/sqrt(n)

Like criterion, a `change` word says whether the CI excludes zero (slower / faster /
no change). Like google/benchmark's compare.py, a Mann-Whitney U p-value is given
and fewer than 10 trials per side draws a warning. Like hyperfine, outliers are
flagged by MAD (modified z-score > 3.5), never silently dropped: medians already
resist them.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .comparable import NOT_COMPARABLE, SideValues, planned_variants, side_values
from .schema import INVALID, NotComparable

PASS, FAIL, INCONCLUSIVE, NO_TARGET = "PASS", "FAIL", "INCONCLUSIVE", "NO TARGET"
# NOT COMPARABLE and INVALID (results/comparable.py) rank above every level --fail-on takes:
# a metric that could not be judged always fails the gate.
VERDICT_RANK = {PASS: 0, NO_TARGET: 0, INCONCLUSIVE: 1, FAIL: 2, NOT_COMPARABLE: 3, INVALID: 4}
MIN_TRIALS = 10
OUTLIER_Z = 3.5
N_BOOT = 4000
CONFIDENCE = 0.95
MAX_MORE_TRIALS = 100_000


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    get: Callable[[dict], Any]


def _lat(name: str) -> Callable[[dict], Any]:
    return lambda t: (t.get("latency_us") or {}).get(name)


METRICS: tuple[Metric, ...] = (
    Metric("ops_per_s", "throughput", "ops/s", True, lambda t: t.get("ops_per_s")),
    Metric("gbps", "bandwidth", "GB/s", True, lambda t: t.get("gbps")),
    Metric("tflops", "compute", "TFLOP/s", True, lambda t: t.get("tflops")),
    Metric("lat_mean", "mean latency", "µs", False, _lat("mean")),
    Metric("lat_p99", "p99 latency", "µs", False, _lat("p99")),
)
METRIC_KEYS = tuple(m.key for m in METRICS)


# ---- basic statistics ----------------------------------------------------------------------

def overhead_pct(base: float, cand: float, higher_is_better: bool) -> float:
    if higher_is_better:
        return (base - cand) / base * 100.0
    return (cand - base) / base * 100.0


def _median_order_indices(n: int, rng: np.random.Generator, n_boot: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the *sorted* sample of the two middle order statistics of `n_boot`
    bootstrap resamples (equal for odd n); the median is the mean of the two values.

    Resampling n values with replacement from the sorted sample x is drawing n
    uniforms U and taking x[floor(n U)]; floor(n U) is monotone, so the k-th order
    statistic of the resample is x[floor(n U_(k))], and U_(k) ~ Beta(k, n - k + 1).
    For even n the next order statistic is U_(k+1) = U_(k) + (1 - U_(k)) Beta(1, n - k),
    and Beta(1, b) = 1 - V**(1/b). Same distribution as resampling and taking np.median
    (checked against the brute-force bootstrap in tests/results/test_stats.py), in
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


def median(values: Sequence[float]) -> float:
    """Median of a short 1-D sample (np.median's overhead dominates at these sizes)."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return math.nan
    mid = n // 2
    return float(xs[mid]) if n % 2 else (float(xs[mid - 1]) + float(xs[mid])) / 2.0


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


def mad_outliers(values: Sequence[float], threshold: float = OUTLIER_Z) -> list[int]:
    """Indices whose modified z-score |x - median| / (1.4826 MAD) exceeds `threshold`."""
    a = np.asarray(values, dtype=float)
    if a.size < 3:
        return []
    med = median(a.tolist())
    mad = median(np.abs(a - med).tolist()) * 1.4826
    if mad == 0:
        return [int(i) for i in np.nonzero(a != med)[0]] if (a != med).sum() < a.size / 2 else []
    return [int(i) for i in np.nonzero(np.abs(a - med) / mad > threshold)[0]]


def cv_pct(values: Sequence[float]) -> float | None:
    vals = [float(v) for v in values]
    n = len(vals)
    if n < 2:
        return None
    mean = math.fsum(vals) / n
    if mean == 0:
        return None
    var = math.fsum((v - mean) ** 2 for v in vals) / (n - 1)
    return math.sqrt(var) / abs(mean) * 100.0


def verdict_for(lo: float, hi: float, target: float | None) -> str:
    if target is None:
        return NO_TARGET
    if not (math.isfinite(lo) and math.isfinite(hi)):
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


# ---- run-level -----------------------------------------------------------------------------

COMPARABLE_FACTS = (("device", "GPU model"), ("driver", "driver"), ("cuda", "CUDA version"),
                    ("engine_version", "engine version"), ("backend", "backend"))


def cuda_version_text(value: Any) -> Any:
    """NVML/CUDA report versions as 13000 = 13.0, 12040 = 12.4."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1000:
        return f"{value // 1000}.{(value % 1000) // 10}"
    return value


def run_identity(doc: dict) -> dict[str, Any]:
    hello = doc.get("hello") or {}
    device = hello.get("device") or {}
    cuda = cuda_version_text(device.get("cuda_driver") or device.get("cuda_runtime"))
    return {"device": device.get("name"), "driver": device.get("driver"), "cuda": cuda,
            "mig": device.get("mig_instance") if hello else None,
            "engine_version": hello.get("engine_version") or (doc.get("tool") or {}).get(
                "engine_version"),
            "backend": doc.get("backend") or hello.get("backend")}


def comparability(base: dict, cand: dict, device: bool = True) -> list[str]:
    """Differences that make two runs incomparable, e.g. 'driver 580.159 vs 575.57', or
    'MIG instance vs full GPU'. Facts unknown on either side (imported legacy runs) are not
    differences. `device=False` leaves the GPU model and MIG checks to per-GPU pairing."""
    a, b = run_identity(base), run_identity(cand)
    out = []
    if device and a["mig"] is not None and b["mig"] is not None and \
            bool(a["mig"]) != bool(b["mig"]):
        out.append(f"{_mig_word(a['mig'])} vs {_mig_word(b['mig'])}")
    for key, label in COMPARABLE_FACTS:
        if key == "device" and not device:
            continue
        if a[key] is not None and b[key] is not None and a[key] != b[key]:
            out.append(f"{label} {a[key]} vs {b[key]}")
    return out


Trials = dict[tuple[str, str], list[dict]]


def _trials(doc: dict, include_invalid: bool) -> tuple[Trials, Trials, int]:
    """(every trial, the trials statistics may use, how many invalid ones were excluded),
    per (workload, variant). An INVALID run gives none to use unless include_invalid."""
    every: Trials = {}
    used: Trials = {}
    excluded = 0
    whole_run_invalid = (doc.get("validity") or {}).get("status") == INVALID
    for wl in doc.get("workloads") or []:
        key = (wl["workload"], wl.get("variant") or "")
        trials = list(wl.get("trials") or [])
        kept = [t for t in trials if include_invalid or t.get("valid", True) is not False]
        excluded += len(trials) - len(kept)
        every[key] = trials
        used[key] = kept if include_invalid or not whole_run_invalid else []
    return every, used, excluded


@dataclass
class MetricComparison:
    workload: str
    variant: str
    metric: str
    label: str
    unit: str
    higher_is_better: bool
    n_base: int
    n_cand: int
    base_median: float | None     # None where a side has no usable value (results/comparable)
    cand_median: float | None
    overhead_pct: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    target_pct: float | None
    verdict: str
    change: str
    more_trials: int | None
    base_cv_pct: float | None
    cand_cv_pct: float | None
    base_outliers: int
    cand_outliers: int
    warnings: list[str] = field(default_factory=list)
    gpu: str = ""          # per-GPU comparisons: "0", "1", ... or "all" (the aggregate); else ""


@dataclass
class Comparison:
    base_id: str
    cand_id: str
    base_scenario: str
    cand_scenario: str
    target_pct: float | None
    rows: list[MetricComparison]
    warnings: list[str]
    forced: list[str]              # incomparabilities overridden by --force (stamped)
    include_invalid: bool
    seed: int
    base_validity: str | None = None
    cand_validity: str | None = None
    # isolation-check verdicts shown beside the overhead ones (results.checks.check_rows):
    # the runs' own and the newest check run of the candidate's scenario; set by the caller
    checks: list[dict] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """The worst verdict over all metrics (INVALID > NOT COMPARABLE > FAIL > INCONCLUSIVE >
        PASS); NOT COMPARABLE when no metric could be compared at all."""
        if not self.rows:
            return NOT_COMPARABLE
        judged = [r.verdict for r in self.rows if r.verdict != NO_TARGET]
        if not judged:
            return NO_TARGET
        return max(judged, key=lambda v: VERDICT_RANK[v])

    def to_dict(self) -> dict:
        d = {k: v for k, v in vars(self).items() if k != "rows"}
        d["rows"] = [dict(vars(r), warnings=list(r.warnings)) for r in self.rows]
        d["warnings"], d["forced"] = list(self.warnings), list(self.forced)
        d["checks"] = [dict(c) for c in self.checks]
        d["verdict"] = self.verdict
        return d


def _mig_word(mig: Any) -> str:
    return "MIG instance" if mig else "full GPU"


def gpu_pairs(base: dict, cand: dict) -> tuple[list[tuple[int, dict, dict]], list[str], list[str]]:
    """Like-with-like GPU pairs of two runs, by index: ([(index, base tag, cand tag)],
    problems (different models, MIG instance vs full GPU), GPUs only one run measured)."""
    from .document import doc_gpus
    bg, cg = doc_gpus(base), doc_gpus(cand)
    pairs, problems = [], []
    for index in bg:
        if index not in cg:
            continue
        b, c = bg[index], cg[index]
        if bool(b.get("mig_instance")) != bool(c.get("mig_instance")):
            problems.append(f"GPU {index}: {_mig_word(b.get('mig_instance'))} vs "
                            f"{_mig_word(c.get('mig_instance'))}")
        elif b.get("name") and c.get("name") and b.get("name") != c.get("name"):
            problems.append(f"GPU {index} model {b.get('name')} vs {c.get('name')}")
        pairs.append((index, b, c))
    unpaired = [f"GPU {i} (baseline only)" for i in bg if i not in cg] + \
               [f"GPU {i} (candidate only)" for i in cg if i not in bg]
    return pairs, problems, unpaired


def compare_runs(base: dict, cand: dict, *, target_pct: float | None = None,
                 include_invalid: bool = False, force: bool = False, seed: int = 0,
                 metrics: Sequence[str] | None = None, n_boot: int = N_BOOT) -> Comparison:
    """Compare two result documents metric by metric. Raises NotComparable (one line)
    when the runs come from different GPU models, drivers, CUDA or engine versions, or
    one ran on a MIG instance and the other on a full GPU, unless `force`, which records
    the differences in `Comparison.forced`.

    Per-GPU runs (trials tagged with their GPU) are compared GPU by GPU, paired by index
    and model (rows carry `gpu`), plus the all-GPU aggregate (`gpu` "all": summed
    throughput of concurrent GPUs, median latency across GPUs) when both runs measured the
    same GPUs the same way."""
    from .document import aggregate_workloads, gpu_workloads, is_per_gpu
    if is_per_gpu(base) or is_per_gpu(cand):
        pairs, pair_problems, unpaired = gpu_pairs(base, cand)
        problems = [p for p in comparability(base, cand, device=False)] + pair_problems
        if problems and not force:
            raise NotComparable(f"not comparable: {'; '.join(problems)} "
                                f"(runs {base['id']} and {cand['id']}; --force compares anyway)")
        if not pairs:
            raise NotComparable(f"not comparable: no GPU measured by both runs "
                                f"(runs {base['id']} and {cand['id']})")
        views = [(str(i), {**base, "workloads": gpu_workloads(base, i)},
                  {**cand, "workloads": gpu_workloads(cand, i)}) for i, _, _ in pairs]
        if (is_per_gpu(base) and is_per_gpu(cand) and not unpaired
                and base.get("gpu_mode") == cand.get("gpu_mode") and len(pairs) > 1):
            views.append(("all", {**base, "workloads": aggregate_workloads(base)},
                          {**cand, "workloads": aggregate_workloads(cand)}))
        merged: Comparison | None = None
        warnings: list[str] = []
        for label, b, c in views:
            comp = _compare(b, c, [], target_pct=target_pct, include_invalid=include_invalid,
                            seed=seed, metrics=metrics, n_boot=n_boot)
            for r in comp.rows:
                r.gpu = label
            warnings += [f"GPU {label}: {w}" if "measured by only one" in w or "no metric" in w
                         else w for w in comp.warnings]
            if merged is None:
                merged = comp
            else:
                merged.rows.extend(comp.rows)
        assert merged is not None
        if unpaired:
            warnings.append(f"GPUs measured by only one run (not compared): {', '.join(unpaired)}")
        if len(pairs) > 1 and not any(r.gpu == "all" for r in merged.rows) and not unpaired:
            warnings.append("no all-GPU aggregate: the runs used different GPU modes "
                            "(concurrent vs sequential)")
        merged.warnings = list(dict.fromkeys(warnings))
        merged.forced = problems
        return merged
    problems = comparability(base, cand)
    if problems and not force:
        raise NotComparable(f"not comparable: {'; '.join(problems)} "
                            f"(runs {base['id']} and {cand['id']}; --force compares anyway)")
    return _compare(base, cand, problems, target_pct=target_pct, include_invalid=include_invalid,
                    seed=seed, metrics=metrics, n_boot=n_boot)


def _compare(base: dict, cand: dict, problems: list[str], *, target_pct: float | None,
             include_invalid: bool, seed: int, metrics: Sequence[str] | None,
             n_boot: int) -> Comparison:
    if target_pct is None:
        target_pct = (cand.get("scenario") or {}).get("target_pct")
    warnings: list[str] = []
    for doc, side in ((base, "baseline"), (cand, "candidate")):
        status = (doc.get("validity") or {}).get("status")
        if status == INVALID:
            reasons = "; ".join((doc.get("validity") or {}).get("reasons") or [])
            if include_invalid:
                warnings.append(f"{side} run {doc['id']} is INVALID ({reasons}); included "
                                f"because of --include-invalid")
            else:
                warnings.append(f"{side} run {doc['id']} is INVALID ({reasons}): its trials are "
                                f"excluded (--include-invalid to use them)")
        if doc.get("complete") is False:
            warnings.append(f"{side} run {doc['id']} is incomplete (interrupted or failed sessions)")
        if doc.get("imported"):
            warnings.append(f"{side} run {doc['id']} is an imported legacy result "
                            f"(one figure per metric, no trials)")
    base_every, base_used, base_excl = _trials(base, include_invalid)
    cand_every, cand_used, cand_excl = _trials(cand, include_invalid)
    for excl, side in ((base_excl, "baseline"), (cand_excl, "candidate")):
        if excl:
            warnings.append(f"{excl} invalid {side} trials excluded (--include-invalid to use them)")
    wanted = [m for m in METRICS if metrics is None or m.key in metrics]
    rows: list[MetricComparison] = []
    few: set[str] = set()
    # A variant only one run measured is compared too when the other run planned it (and so
    # failed to measure it); one it never planned is a subset comparison, only warned about.
    planned_b, planned_c = planned_variants(base), planned_variants(cand)
    keys = [k for k in dict.fromkeys([*base_every, *cand_every])
            if (k in base_every or k in planned_b) and (k in cand_every or k in planned_c)]
    for key in keys:
        for metric in wanted:
            b = side_values(base_every.get(key, []), base_used.get(key, []), metric.get)
            c = side_values(cand_every.get(key, []), cand_used.get(key, []), metric.get)
            if not (b.reported or c.reported):
                continue
            notes = [n for n in (b.note("baseline"), c.note("candidate")) if n]
            unjudged = [p for p in (b.problem("baseline", metric.label),
                                    c.problem("candidate", metric.label)) if p]
            if unjudged:
                rows.append(_unjudged_metric(key, metric, b, c, unjudged, notes, target_pct))
                continue
            row = _compare_metric(key, metric, b.values, c.values, target_pct, seed, n_boot)
            row.warnings += notes
            rows.append(row)
            if min(len(b.values), len(c.values)) < MIN_TRIALS:
                few.add(f"{key[0]}/{key[1]}")
    missing = sorted(f"{w}/{v}" for (w, v) in set(base_every) ^ set(cand_every)
                     if (w, v) not in keys)
    if missing:
        warnings.append(f"measured by only one of the runs (not compared): {', '.join(missing)}")
    if bool(base.get("imported")) != bool(cand.get("imported")):
        warnings.append("one run is an imported legacy result: its figures (variant 'legacy') "
                        "were measured another way and compare only with other imported runs")
    if few:
        warnings.append(f"fewer than {MIN_TRIALS} trials per side for {', '.join(sorted(few))}: "
                        f"CIs are wide and p-values unreliable (10+ trials recommended)")
    if not rows:
        warnings.append("no metric was measured (validly) by both runs")
    return Comparison(base_id=base["id"], cand_id=cand["id"],
                      base_scenario=(base.get("scenario") or {}).get("name", ""),
                      cand_scenario=(cand.get("scenario") or {}).get("name", ""),
                      target_pct=target_pct, rows=rows, warnings=warnings,
                      forced=problems, include_invalid=include_invalid, seed=seed,
                      base_validity=(base.get("validity") or {}).get("status"),
                      cand_validity=(cand.get("validity") or {}).get("status"))


def _unjudged_metric(key: tuple[str, str], metric: Metric, b: SideValues, c: SideValues,
                     problems: list[tuple[str, str]], notes: list[str],
                     target: float | None) -> MetricComparison:
    """The row of a metric a side gives nothing to compare: INVALID or NOT COMPARABLE with
    the reasons, the medians of whichever side has values."""
    verdict = INVALID if any(v == INVALID for v, _ in problems) else NOT_COMPARABLE
    return MetricComparison(
        workload=key[0], variant=key[1], metric=metric.key, label=metric.label,
        unit=metric.unit, higher_is_better=metric.higher_is_better, n_base=len(b.values),
        n_cand=len(c.values), base_median=median(b.values) if b.values else None,
        cand_median=median(c.values) if c.values else None, overhead_pct=None, ci_low=None,
        ci_high=None, p_value=None, target_pct=target, verdict=verdict, change="unknown",
        more_trials=None, base_cv_pct=None, cand_cv_pct=None, base_outliers=0,
        cand_outliers=0, warnings=[reason for _, reason in problems] + notes)


def _compare_metric(key: tuple[str, str], metric: Metric, bv: list[float], cv: list[float],
                    target: float | None, seed: int, n_boot: int) -> MetricComparison:
    b, c = np.asarray(bv), np.asarray(cv)
    bm, cm = median(bv), median(cv)
    point = overhead_pct(bm, cm, metric.higher_is_better)
    row_warnings: list[str] = []
    if b.size >= 2 and c.size >= 2:
        lo, hi = bootstrap_overhead_ci(b, c, metric.higher_is_better, n_boot=n_boot, seed=seed)
        _, p = mann_whitney_u(b, c)
    else:
        lo = hi = math.nan
        p = math.nan
        row_warnings.append("one trial on a side: no confidence interval")
    verdict = verdict_for(lo, hi, target)
    more = more_trials_needed(lo, hi, min(b.size, c.size), target) \
        if verdict == INCONCLUSIVE else None
    ob, oc = mad_outliers(b), mad_outliers(c)
    if ob or oc:
        row_warnings.append(f"outliers by MAD: {len(ob)} baseline, {len(oc)} candidate")

    def fin(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return MetricComparison(
        workload=key[0], variant=key[1], metric=metric.key, label=metric.label,
        unit=metric.unit, higher_is_better=metric.higher_is_better, n_base=int(b.size),
        n_cand=int(c.size), base_median=bm, cand_median=cm, overhead_pct=point,
        ci_low=fin(lo), ci_high=fin(hi), p_value=fin(p), target_pct=target, verdict=verdict,
        change=change_word(lo, hi), more_trials=more, base_cv_pct=cv_pct(b),
        cand_cv_pct=cv_pct(c), base_outliers=len(ob), cand_outliers=len(oc),
        warnings=row_warnings)
