"""Two runs compared metric by metric: medians, overhead, bootstrap CI, p-value, verdict.

For each metric of each workload variant that both runs measured, the overhead of the
candidate's median against the baseline's (results/stats.py), its 95 % bootstrap CI and a
Mann-Whitney p-value (results/inference.py), and the verdict against the scenario's target.
Fewer than 10 results (result lines) per side draws a warning, as in google/benchmark's
compare.py; MAD outliers are counted, never dropped. Runs of different GPU models, drivers, CUDA or engine
versions, or a MIG instance against a full GPU, are not compared unless forced; per-GPU
runs are compared GPU by GPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .comparable import NOT_COMPARABLE, SideValues, planned_variants, side_values, usable
from .labels import doc_backend, pair_mark
from .legacy_pairs import Unpaired, pair_legacy
from .per_gpu import aggregate_workloads, doc_gpus, gpu_workloads, is_per_gpu
from .rates import OPS, rate_noun, trial_rate
from .inference import N_BOOT, bootstrap_overhead_ci, mann_whitney_u
from .schema import INVALID, NotComparable
from .stats import (INCONCLUSIVE, MIN_TRIALS, NO_TARGET, VERDICT_RANK, change_word, cv_pct,
                    mad_outliers, median, more_trials_needed, overhead_pct, verdict_for)


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


def metric_for(metric: Metric, workload: str) -> Metric:
    """The metric as this workload is read: a decode/prefill variant's throughput is tokens/s
    (results.rates decides), so its row is `tokens_per_s`, compared on tokens. A result of it
    without tokens/s is not reported, never compared in another unit."""
    noun = rate_noun(workload)
    if metric.key != "ops_per_s" or noun == OPS:
        return metric

    def tokens(t: dict) -> Any:
        rate = trial_rate(workload, t)
        return rate.value if rate.noun == noun else None
    return Metric(f"{noun}_per_s", metric.label, f"{noun}/s", True, tokens)


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
    base_trials: int = 0   # every trial of the variant on each side; n_base/n_cand of them count
    cand_trials: int = 0


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
    # isolation-check verdicts shown beside the overhead ones (results.check_verdicts.check_rows):
    # the runs' own and the newest check run of the candidate's scenario; set by the caller
    checks: list[dict] = field(default_factory=list)
    base_backend: str | None = None    # what made each side's figures (results/labels.py)
    cand_backend: str | None = None

    @property
    def backends(self) -> str:
        """Which backend made the figures, one mark; MIXED when the sides differ."""
        return pair_mark(self.base_backend, self.cand_backend)

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
        d["backends"] = self.backends
        return d


def _mig_word(mig: Any) -> str:
    return "MIG instance" if mig else "full GPU"


def gpu_pairs(base: dict, cand: dict) -> tuple[list[tuple[int, dict, dict]], list[str], list[str]]:
    """Like-with-like GPU pairs of two runs, by index: ([(index, base tag, cand tag)],
    problems (different models, MIG instance vs full GPU), GPUs only one run measured)."""
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
                warnings.append(f"{side} run {doc['id']} is INVALID ({reasons}): its results "
                                f"are excluded (--include-invalid to use them)")
        if doc.get("complete") is False:
            warnings.append(f"{side} run {doc['id']} is incomplete (interrupted or failed sessions)")
        if doc.get("imported"):
            warnings.append(f"{side} run {doc['id']} is an imported legacy result "
                            f"(one figure per metric, no engine trials)")
    base, cand, unpaired = pair_legacy(base, cand)
    base_every, base_used, base_excl = _trials(base, include_invalid)
    cand_every, cand_used, cand_excl = _trials(cand, include_invalid)
    for excl, side in ((base_excl, "baseline"), (cand_excl, "candidate")):
        if excl:
            warnings.append(f"{excl} invalid {side} results excluded (--include-invalid to use "
                            f"them)")
    wanted = [m for m in METRICS if metrics is None or m.key in metrics]
    rows = [_unpaired_metric(u, metric, base_every if u.side == "baseline" else cand_every,
                             target_pct)
            for u in unpaired for metric in (metric_for(m, u.key[0]) for m in wanted)
            if any(metric.get(t) is not None for t in
                   (base_every if u.side == "baseline" else cand_every)[u.key])]
    few: set[str] = set()
    # A variant only one run measured is compared too when the other run planned it (and so
    # failed to measure it); one it never planned is a subset comparison, only warned about.
    planned_b, planned_c = planned_variants(base), planned_variants(cand)
    keys = [k for k in dict.fromkeys([*base_every, *cand_every])
            if (k in base_every or k in planned_b) and (k in cand_every or k in planned_c)]
    for key in keys:
        for metric in (metric_for(m, key[0]) for m in wanted):
            b = side_values(base_every.get(key, []), base_used.get(key, []), metric.get)
            c = side_values(cand_every.get(key, []), cand_used.get(key, []), metric.get)
            if not (b.reported or c.reported):
                continue
            notes = [n for n in (b.note("baseline"), c.note("candidate")) if n]
            unjudged = [p for p in (b.problem("baseline", metric.label),
                                    c.problem("candidate", metric.label)) if p]
            if unjudged:
                row = _unjudged_metric(key, metric, b, c, unjudged, notes, target_pct)
            else:
                row = _compare_metric(key, metric, b.values, c.values, target_pct, seed, n_boot)
                row.warnings += notes
            row.base_trials, row.cand_trials = b.trials, c.trials
            rows.append(row)
            if unjudged:
                continue
            if min(len(b.values), len(c.values)) < MIN_TRIALS:
                few.add(f"{key[0]}/{key[1]}")
    told = {u.key for u in unpaired}
    missing = sorted(f"{w}/{v}" for (w, v) in set(base_every) ^ set(cand_every)
                     if (w, v) not in keys and (w, v) not in told)
    if missing:
        warnings.append(f"measured by only one of the runs (not compared): {', '.join(missing)}")
    if bool(base.get("imported")) != bool(cand.get("imported")):
        warnings.append("one run is an imported seed result: only its round trip compares, "
                        "with the measured round trip of the same size (its memory kind and "
                        "timing method are the seed's)")
    if few:
        warnings.append(f"fewer than {MIN_TRIALS} results per side for {', '.join(sorted(few))}: "
                        f"CIs are wide and p-values unreliable (10+ results recommended: more "
                        f"trials or repeats)")
    if not rows:
        warnings.append("no metric was measured (validly) by both runs")
    return Comparison(base_id=base["id"], cand_id=cand["id"],
                      base_scenario=(base.get("scenario") or {}).get("name", ""),
                      cand_scenario=(cand.get("scenario") or {}).get("name", ""),
                      target_pct=target_pct, rows=rows, warnings=warnings,
                      forced=problems, include_invalid=include_invalid, seed=seed,
                      base_validity=(base.get("validity") or {}).get("status"),
                      cand_validity=(cand.get("validity") or {}).get("status"),
                      base_backend=doc_backend(base), cand_backend=doc_backend(cand))


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


def _unpaired_metric(u: Unpaired, metric: Metric, every: Trials,
                     target: float | None) -> MetricComparison:
    """The NOT COMPARABLE row of an imported figure the measured run has no match for."""
    values = [float(v) for t in every[u.key] if usable(v := metric.get(t))]
    side = SideValues(values, len(every[u.key]), 0, 0, True)
    none = SideValues([], 0, 0, 0, False)
    b, c = (side, none) if u.side == "baseline" else (none, side)
    return _unjudged_metric(u.key, metric, b, c, [(NOT_COMPARABLE, u.reason)], [], target)


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
        row_warnings.append("one result on a side: no confidence interval")
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
