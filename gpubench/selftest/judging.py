"""The self-test's judging: an arm's measured overhead and CI against the injected one, the
verdicts against each target (results/stats.py's PASS/FAIL/INCONCLUSIVE), and one rule, the
same on every backend, that makes each arm PASSED, FAILED or NOT RESOLVED:

- FAILED: its error CI (family-wise: Bonferroni over every judged arm) excludes 0 by more than
  a tenth of the tolerance, or a verdict is on the wrong side of the truth by more than the
  tolerance (PASS against a target the truth exceeds, FAIL against one it is under). The
  instrument is wrong. A bias that its CI proves but that stays within a tenth of the tolerance
  is said in the arm's why, not failed: more trials make every real effect significant, down to
  a few ns an op, and a self-test that adds trials until it resolves would then fail on effects
  far below what it claims to resolve.
- PASSED: |error| <= tolerance and the error CI's half-width <= tolerance: it resolves what it
  claims.
- NOT RESOLVED: neither. Accurate as far as its CI can tell, too noisy to prove +-tolerance;
  more trials narrow the CI as 1/sqrt(trials).

The error is measured minus injected. Where each slot pair has its own truth (the slots
design: the delay's cost over that pair's off-slot p50), it is taken pair by pair, so a level
that differs between sessions or drifts within one moves the measurement and the truth together
and leaves the error's CI; the measured overhead keeps its own CI, which the verdicts against
the targets read, as a comparison would. Elsewhere the error CI is the measured CI less the
truth.

An A/A arm is an arm whose truth is 0. The designs run the sessions; this module only reads
numbers."""
from __future__ import annotations

import math
import zlib

from engine.cpu_delay import slot_on
from results.stats import (FAIL, INCONCLUSIVE, MAX_MORE_TRIALS, PASS, change_word, cv_pct,
                           median, more_trials_needed, overhead_pct, verdict_for)

PASSED, FAILED, NOT_RESOLVED = "PASSED", "FAILED", "NOT RESOLVED"
NEGLIGIBLE_FRACTION = 0.1     # of the tolerance: a proven bias below it is said, not failed


def wrong_side(got: str, injected: float, target: float, tol: float) -> bool:
    """A decisive verdict the truth contradicts by more than the tolerance. (INCONCLUSIVE
    never is: where a CI that holds the truth is too wide to decide, the arm is NOT RESOLVED,
    and where it excludes the truth the arm has failed already.)"""
    return (got == PASS and injected > target + tol) or (got == FAIL and injected < target - tol)


def arm_state(injected: float, error: float, elo: float, ehi: float, tol: float,
              wrong: list[str]) -> tuple[str, str]:
    """(state, why) of one arm by the module's rule from its error and the error's CI [elo,
    ehi]; `wrong` names its wrong-side verdicts."""
    finite = math.isfinite(elo) and math.isfinite(ehi)
    failures = list(wrong)
    floor = tol * NEGLIGIBLE_FRACTION
    if finite and (elo > floor or ehi < -floor):
        failures.insert(0, f"error CI [{elo:+.2f}, {ehi:+.2f}] pp excludes 0 by more than "
                           f"{floor:.2g} pp: the measurement misses the injected {injected:.2f} %")
    if failures:
        return FAILED, "; ".join(failures)
    if not finite:
        return NOT_RESOLVED, "no CI (fewer than two values)"
    half = (ehi - elo) / 2
    bias = f"; a bias of {error:+.2f} pp (its CI [{elo:+.2f}, {ehi:+.2f}] excludes 0, within " \
           f"±{floor:.2g} pp, a tenth of the tolerance)" if not elo <= 0 <= ehi else ""
    noisy = []
    if half > tol:
        noisy.append(f"error CI half-width {half:.2f} pp > ±{tol:g} pp")
    if abs(error) > tol:
        noisy.append(f"error {error:+.2f} pp beyond ±{tol:g} pp, inside a CI that holds 0")
    if noisy:
        return NOT_RESOLVED, "; ".join(noisy) + bias
    return PASSED, (f"error {error:+.2f} pp and its CI's half-width {half:.2f} pp within "
                    f"±{tol:g} pp{bias}")


def _judged(measured: float, lo: float, hi: float, p: float, n: int, *, injected_pct: float,
            targets: tuple[float, ...], tol: float,
            error_ci: tuple[float, float, float] | None = None) -> dict:
    """An arm's row: its verdicts against each target (from the measured CI [lo, hi]) and its
    state (arm_state, from `error_ci`: error, low, high; by default the measured CI less the
    truth)."""
    error, elo, ehi = error_ci or (measured - injected_pct, lo - injected_pct,
                                   hi - injected_pct)
    finite = math.isfinite(lo) and math.isfinite(hi)
    efinite = math.isfinite(elo) and math.isfinite(ehi)
    half = (ehi - elo) / 2 if efinite else math.inf
    verdicts, wrong = {}, []
    for t in targets:
        got = verdict_for(lo, hi, t)
        bad = wrong_side(got, injected_pct, t, tol)
        if bad:
            wrong.append(f"{got} against {t:g} % with {injected_pct:.2f} % injected")
        verdicts[f"{t:g}"] = {"verdict": got, "ok": not bad,
                              "more_trials": more_trials_needed(lo, hi, n, t)
                              if got == INCONCLUSIVE else None}
    state, why = arm_state(injected_pct, error, elo, ehi, tol, wrong)
    return {"injected_pct": injected_pct, "measured_pct": measured,
            "ci_low": lo if finite else None, "ci_high": hi if finite else None,
            "error_pp": error, "error_ci_low": elo if efinite else None,
            "error_ci_high": ehi if efinite else None,
            "ci_half_width": half if efinite else None,
            "tolerance_pp": tol, "within_tolerance": abs(error) <= tol,
            "resolved": half <= tol, "ci_contains_injected": efinite and elo <= 0 <= ehi,
            "p_value": p if math.isfinite(p) else None, "change": change_word(lo, hi),
            "verdicts": verdicts, "verdicts_ok": not wrong, "state": state, "why": why}


def overall(rows: list[dict], trials: int, tol: float) -> dict:
    """The self-test's state from its arms' (FAILED over NOT RESOLVED over PASSED; no arm at
    all is a failure) and, when NOT RESOLVED, about how many trials per arm would resolve it:
    a CI's half-width shrinks as 1/sqrt(trials), so the widest (or the largest error, where a
    lopsided CI held one beyond the tolerance) must come down to the tolerance."""
    states = [r["state"] for r in rows]
    state = FAILED if FAILED in states or not rows else \
        NOT_RESOLVED if NOT_RESOLVED in states else PASSED
    unresolved = [r for r in rows if r["state"] == NOT_RESOLVED and r["ci_half_width"] is not None]
    widest = max((r["ci_half_width"] for r in unresolved), default=None)
    suggested = None
    if state == NOT_RESOLVED and unresolved:
        scale = max(max(r["ci_half_width"], abs(r["error_pp"])) for r in unresolved) / tol
        suggested = min(MAX_MORE_TRIALS, max(trials + 1, math.ceil(trials * scale ** 2)))
    return {"state": state, "ok": state == PASSED,
            "arms": {s: states.count(s) for s in (PASSED, NOT_RESOLVED, FAILED)},
            "max_unresolved_ci_half_width_pp": widest, "trials_to_resolve": suggested}


def too_wide(rows: list[dict], tol: float) -> list[str]:
    """The judged arms whose CI is wider than ±tol, or has none: what more trials narrow."""
    return [f"{r['workload']}/{r['arm']}" for r in rows if r["primary"]
            and (r["ci_half_width"] is None or r["ci_half_width"] > tol)]


def judge_arm(base_vals: list[float], cand_vals: list[float], *, injected_pct: float,
              targets: tuple[float, ...], tol: float, seed: int, key: str,
              n_boot: int, higher_is_better: bool = False, confidence: float = 0.95) -> dict:
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
                  injected_pct=injected_pct, targets=targets, tol=tol)
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
        # every draw at once: sessions drawn, then as many pairs from each drawn session as it
        # has, in a table padded to the longest session with NaN that the median skips
        sizes = np.array([g.size for g in groups])
        table = np.full((len(groups), sizes.max()), np.nan)
        for j, g in enumerate(groups):
            table[j, :g.size] = g
        picks = rng.integers(0, len(groups), (n_boot, len(groups)))
        drawn_sizes = sizes[picks][..., None]
        within = (rng.random((n_boot, len(groups), table.shape[1])) * drawn_sizes).astype(int)
        drawn = np.where(np.arange(table.shape[1]) < drawn_sizes,
                         table[picks[..., None], within], np.nan)
        meds = pct(np.nanmedian(drawn.reshape(n_boot, -1), axis=1))
    else:
        draws = np.concatenate([g[rng.integers(0, g.size, (n_boot, g.size))] for g in groups],
                               axis=1)
        meds = pct(np.median(draws, axis=1))
    alpha = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(meds, [alpha, 100 - alpha])
    return pct(float(np.median(pooled))), float(lo), float(hi)


def family_confidence(arms: int, family: float = 0.95) -> float:
    """Each arm's CI confidence for `family` over all of them (Bonferroni). An arm fails when
    its CI misses its truth: with eight 95 % CIs a tool with no bias at all would fail one run
    in three."""
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
                targets: tuple[float, ...], tol: float, seed: int, key: str,
                n_boot: int, higher_is_better: bool = False, resample_sessions: bool = False,
                confidence: float = 0.95,
                truths_by_session: list[list[float]] | None = None) -> dict:
    """One arm of the slots design: on/off pair ratios pooled over its sessions (and, with
    `resample_sessions`, sessions resampled too in the CI: pairs_overhead_ci). With
    `truths_by_session` (each pair's injected %, latency only), the error is judged pair by
    pair: the median and CI of each pair's measured % less its truth."""
    pooled = [r for rs in ratios_by_session for r in rs]
    boot = dict(seed=(seed ^ zlib.crc32(key.encode())) & 0x7FFFFFFF, n_boot=n_boot,
                confidence=confidence, resample_sessions=resample_sessions)
    measured, lo, hi = pairs_overhead_ci(ratios_by_session, higher_is_better, **boot)
    error_ci = None
    if truths_by_session is not None:
        # a ratio less its truth: pairs_overhead_ci's (ratio - 1) x 100 is then the error in pp
        less_truth = [[r - t / 100 for r, t in zip(rs, ts)]
                      for rs, ts in zip(ratios_by_session, truths_by_session)]
        error_ci = pairs_overhead_ci(less_truth, False, **boot)
    row = _judged(measured, lo, hi, sign_test_p(pooled), len(pooled),
                  injected_pct=injected_pct, targets=targets, tol=tol, error_ci=error_ci)
    row.update({"n_base": len(pooled), "n_cand": len(pooled), "pairs": len(pooled),
                "pairs_per_session": [len(r) for r in ratios_by_session]})
    return row
