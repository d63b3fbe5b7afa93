"""The self-test's judging: an arm's measured overhead and CI against the injected one, and the
verdicts against each target (results/stats.py's PASS/FAIL/INCONCLUSIVE) that a correct
measurement must give. The designs run the sessions; this module only reads numbers."""
from __future__ import annotations

import math
import zlib

from engine.cpu_delay import slot_on
from results.stats import (FAIL, INCONCLUSIVE, PASS, change_word, cv_pct, median,
                           more_trials_needed, overhead_pct, verdict_for)

def expected_verdict(injected: float, target: float, tol: float, half_width: float = 0.0) -> str:
    """The verdict a correct measurement must give: PASS/FAIL when the truth is farther
    from the target than the tolerance plus the CI half-width, else INCONCLUSIVE (any
    verdict but the wrong-side one is then fair)."""
    if injected < target - tol - half_width:
        return PASS
    if injected > target + tol + half_width:
        return FAIL
    return INCONCLUSIVE


def verdict_ok(got: str, injected: float, target: float, tol: float, half_width: float,
               aa: bool, shared_machine: bool = False) -> bool:
    """A decisive verdict on the wrong side is wrong; so is INCONCLUSIVE where the CI was
    narrow enough to decide, except on a shared machine (the CPU self-test), where others'
    load sets the CI's width and INCONCLUSIVE is what a CI that holds the target says."""
    if aa:                           # no difference: PASS or INCONCLUSIVE, never FAIL
        return got != FAIL
    if got == PASS and injected > target + tol:      # decisive and wrong
        return False
    if got == FAIL and injected < target - tol:
        return False
    if shared_machine and got == INCONCLUSIVE:
        return True
    expected = expected_verdict(injected, target, tol, half_width)
    return expected not in (PASS, FAIL) or got == expected


def _judged(measured: float, lo: float, hi: float, p: float, n: int, *, injected_pct: float,
            targets: tuple[float, ...], tol: float, aa: bool, shared_machine: bool = False) -> dict:
    """Verdicts against each target and whether the estimate is acceptable: within the
    tolerance of the truth, every verdict right, and a CI that holds the truth (A/A: never FAIL).
    `shared_machine` (the CPU self-test): others' load widens the CI, so the error is judged
    against the CI's half-width where that is the larger and INCONCLUSIVE is no failure; the
    CI must still hold the truth."""
    finite = math.isfinite(lo) and math.isfinite(hi)
    half = (hi - lo) / 2 if finite else math.inf
    verdicts = {}
    all_ok = True
    for t in targets:
        got = verdict_for(lo, hi, t)
        exp = "PASS" if aa else expected_verdict(injected_pct, t, tol, half)
        ok = verdict_ok(got, injected_pct, t, tol, half, aa, shared_machine)
        all_ok &= ok
        verdicts[f"{t:g}"] = {"verdict": got, "expected": exp, "ok": ok,
                              "more_trials": more_trials_needed(lo, hi, n, t)
                              if got == "INCONCLUSIVE" else None}
    error = measured - injected_pct
    limit = max(tol, half) if shared_machine and finite else tol
    within = abs(error) <= limit
    contains = finite and lo <= injected_pct <= hi
    return {"injected_pct": injected_pct, "measured_pct": measured,
            "ci_low": lo if finite else None, "ci_high": hi if finite else None,
            "ci_half_width": half if finite else None,
            "error_pp": error, "tolerance_pp": limit, "within_tolerance": within,
            "ci_contains_injected": contains,
            "p_value": p if math.isfinite(p) else None, "change": change_word(lo, hi),
            "verdicts": verdicts, "verdicts_ok": all_ok,
            # A/A: within tolerance of 0 and never FAIL (a 95 % CI may miss 0 by chance)
            "ok": within and all_ok and (contains or aa)}


def judge_arm(base_vals: list[float], cand_vals: list[float], *, injected_pct: float,
              targets: tuple[float, ...], tol: float, aa: bool, seed: int, key: str,
              n_boot: int, higher_is_better: bool = False, shared_machine: bool = False,
              confidence: float = 0.95) -> dict:
    """One arm against a baseline of separate sessions (the sessions design)."""
    from results.inference import bootstrap_overhead_ci, mann_whitney_u  # NumPy: lazy, as below
    bm, cm = median(base_vals), median(cand_vals)
    measured = overhead_pct(bm, cm, higher_is_better)
    if len(base_vals) >= 2 and len(cand_vals) >= 2:
        # a reproducible seed per row (the row's key folded into the run's seed)
        lo, hi = bootstrap_overhead_ci(base_vals, cand_vals, higher_is_better,
                                       seed=(seed ^ zlib.crc32(key.encode())) & 0x7FFFFFFF,
                                       n_boot=n_boot, confidence=confidence)
        _, p = mann_whitney_u(base_vals, cand_vals)
    else:
        lo = hi = p = math.nan
    row = _judged(measured, lo, hi, p, min(len(base_vals), len(cand_vals)),
                  injected_pct=injected_pct, targets=targets, tol=tol, aa=aa,
                  shared_machine=shared_machine)
    row.update({"n_base": len(base_vals), "n_cand": len(cand_vals),
                "base_median": bm, "cand_median": cm,
                "base_cv_pct": cv_pct(base_vals), "cand_cv_pct": cv_pct(cand_vals)})
    return row


def slot_pairs(classified: list[tuple[dict, int]], seed: int,
               field_name: str) -> list[tuple[float, float]]:
    """(on, off) of each slot pair that has samples in both its slots: the median
    `field_name` of the on-slot's samples and of the off-slot's."""
    by_slot: dict[int, list[float]] = {}
    for smp, k in classified:
        by_slot.setdefault(k, []).append(float(smp[field_name]))
    out = []
    for pair in sorted({k >> 1 for k in by_slot}):
        a, b = by_slot.get(2 * pair), by_slot.get(2 * pair + 1)
        if a and b:
            on, off = (a, b) if slot_on(2 * pair, seed) else (b, a)
            out.append((median(on), median(off)))
    return out


def pair_ratios(classified: list[tuple[dict, int]], seed: int, field_name: str) -> list[float]:
    """On ÷ off of each slot pair (slot_pairs). Neighbouring slots share the process and
    nearly the same moment, so its level and its drift cancel pair by pair."""
    return [on / off for on, off in slot_pairs(classified, seed, field_name)]


def pairs_overhead_ci(ratios_by_session: list[list[float]], higher_is_better: bool, *,
                      seed: int, n_boot: int, confidence: float = 0.95,
                      resample_sessions: bool = False) -> tuple[float, float, float]:
    """(overhead %, CI low, CI high) from the median pair ratio. The CI resamples pairs
    within each session (a stratified bootstrap): every session keeps its weight, and a
    pair, not a 0.05 s sample, is the unit, because samples of one slot are correlated.
    `resample_sessions`: the sessions too, then pairs within each drawn one (a two-stage
    bootstrap), where others' load on the machine comes in bursts of seconds that shift the
    pairs of one session together."""
    import numpy as np   # lazy: NumPy only once something is judged
    groups = [np.asarray(r, dtype=float) for r in ratios_by_session if len(r)]
    pooled = np.concatenate(groups) if groups else np.empty(0)

    def pct(ratio):
        return (1.0 - ratio) * 100.0 if higher_is_better else (ratio - 1.0) * 100.0
    if pooled.size < 2:
        return (pct(float(np.median(pooled))) if pooled.size else math.nan), math.nan, math.nan
    rng = np.random.default_rng(seed)
    if resample_sessions and len(groups) > 1:
        meds = pct(np.array([np.median(np.concatenate(
            [groups[j][rng.integers(0, groups[j].size, groups[j].size)]
             for j in rng.integers(0, len(groups), len(groups))])) for _ in range(n_boot)]))
    else:
        draws = np.concatenate([g[rng.integers(0, g.size, (n_boot, g.size))] for g in groups],
                               axis=1)
        meds = pct(np.median(draws, axis=1))
    alpha = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(meds, [alpha, 100 - alpha])
    return pct(float(np.median(pooled))), float(lo), float(hi)


def family_confidence(arms: int, family: float = 0.95) -> float:
    """Each arm's CI confidence for `family` over all of them (Bonferroni). The self-test
    passes only when every injected arm's CI holds its truth: with six 95 % CIs a tool with no
    bias at all would fail one run in four."""
    return 1 - (1 - family) / max(1, arms)


def sign_test_p(ratios: list[float]) -> float:
    """Two-sided sign test of the pair ratios against 1 (exact binomial)."""
    up = sum(r > 1 for r in ratios)
    n = up + sum(r < 1 for r in ratios)
    if n == 0:
        return math.nan
    k = min(up, n - up)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def judge_pairs(ratios_by_session: list[list[float]], *, injected_pct: float,
                targets: tuple[float, ...], tol: float, aa: bool, seed: int, key: str,
                n_boot: int, higher_is_better: bool = False, shared_machine: bool = False,
                confidence: float = 0.95) -> dict:
    """One arm of the slots design: on/off pair ratios pooled over its sessions (and, on a
    shared machine, sessions resampled too in the CI)."""
    pooled = [r for rs in ratios_by_session for r in rs]
    measured, lo, hi = pairs_overhead_ci(
        ratios_by_session, higher_is_better,
        seed=(seed ^ zlib.crc32(key.encode())) & 0x7FFFFFFF, n_boot=n_boot,
        confidence=confidence, resample_sessions=shared_machine)
    row = _judged(measured, lo, hi, sign_test_p(pooled), len(pooled),
                  injected_pct=injected_pct, targets=targets, tol=tol, aa=aa,
                  shared_machine=shared_machine)
    row.update({"n_base": len(pooled), "n_cand": len(pooled), "pairs": len(pooled),
                "pairs_per_session": [len(r) for r in ratios_by_session]})
    return row
