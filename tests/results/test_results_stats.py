"""The statistics (results/stats.py, results/inference.py, results/comparison.py) on synthetic
data with a known truth."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from results.comparable import NOT_COMPARABLE, side_values
from results.schema import NotComparable
from results.comparison import compare_runs
from results.inference import bootstrap_medians, bootstrap_overhead_ci, mann_whitney_u
from results.stats import (FAIL, INCONCLUSIVE, NO_TARGET, PASS, cv_pct, mad_outliers,
                           more_trials_needed, verdict_for)
from tests.support.synth import make_doc, trial_doc

CV = 0.04            # per-trial noise, GPU-FACTS.md "Noise" (3.8 % measured)
SHIFT = 0.03         # a 3 % throughput overhead
N_SHIFT = 300        # trials per side at which the 3 % shift resolves against 1 % and 5 %


def noisy(rng, n, scale=1.0, level=77400.0):
    return level * scale * np.exp(rng.normal(0.0, CV, n))


# ---- Mann-Whitney U -------------------------------------------------------------------------

def brute_force_p(x, y):
    """Two-sided exact p by enumerating every split of the pooled sample."""
    pooled = np.concatenate([x, y])
    n1 = len(x)
    u_obs, _ = mann_whitney_u(x, y)
    mu = n1 * len(y) / 2
    extreme = total = 0
    for idx in itertools.combinations(range(len(pooled)), n1):
        a = pooled[list(idx)]
        b = np.delete(pooled, list(idx))
        u = sum((ai > bj) + 0.5 * (ai == bj) for ai in a for bj in b)
        total += 1
        extreme += abs(u - mu) >= abs(u_obs - mu) - 1e-9
    return extreme / total


@pytest.mark.parametrize("seed", range(4))
def test_mann_whitney_exact_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(0, 1, 5), rng.normal(0.8, 1, 6)
    u, p = mann_whitney_u(x, y)
    assert u == sum((a > b) for a in x for b in y)
    assert p == pytest.approx(brute_force_p(x, y), abs=1e-12)


def test_mann_whitney_normal_approximation_close_to_exact_and_handles_ties():
    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 1, 10), rng.normal(2.5, 1, 10)
    _, p_exact = mann_whitney_u(x, y)
    _, p_approx = mann_whitney_u(np.r_[x, x[:1]], np.r_[y, y[:1]])  # ties force the approx
    assert 0 < p_exact < 0.05 and 0 < p_approx < 0.05
    _, p_same = mann_whitney_u([1.0] * 12, [1.0] * 12)  # all tied: no evidence of a difference
    assert p_same == 1.0


# ---- bootstrap --------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 10, 31])
def test_fast_bootstrap_medians_match_brute_force_resampling(n):
    x = noisy(np.random.default_rng(n), n)
    fast = bootstrap_medians(x, np.random.default_rng(1), 100_000)
    rng = np.random.default_rng(2)
    brute = np.median(x[rng.integers(0, n, size=(100_000, n))], axis=1)
    q = [0.025, 0.25, 0.5, 0.75, 0.975]
    spread = x.max() - x.min() if n > 1 else 1.0
    assert np.allclose(np.quantile(fast, q), np.quantile(brute, q), atol=0.02 * spread)
    assert abs(fast.mean() - brute.mean()) < 0.01 * spread


def test_bootstrap_is_seeded_and_reproducible():
    rng = np.random.default_rng(0)
    a, b = noisy(rng, 30), noisy(rng, 30)
    assert bootstrap_overhead_ci(a, b, True, seed=3) == \
        bootstrap_overhead_ci(a, b, True, seed=3)
    assert bootstrap_overhead_ci(a, b, True, seed=3) != \
        bootstrap_overhead_ci(a, b, True, seed=4)


def test_three_percent_shift_ci_contains_truth_and_verdicts_for_1_and_5_percent():
    """With CV 4 % per trial, N_SHIFT trials per side: the CI holds 3 % and the verdict is
    FAIL against a 1 % target and PASS against 5 %, in at least 95 % of 40 seeded datasets
    (at 30 trials per side the CI is about ±2.5 %: INCONCLUSIVE is then the honest answer)."""
    truth = SHIFT * 100
    covered = fail_1 = pass_5 = 0
    datasets = 40
    for seed in range(datasets):
        rng = np.random.default_rng(1000 + seed)
        base, cand = noisy(rng, N_SHIFT), noisy(rng, N_SHIFT, 1 - SHIFT)
        lo, hi = bootstrap_overhead_ci(base, cand, True, seed=seed)
        covered += lo <= truth <= hi
        fail_1 += verdict_for(lo, hi, 1.0) == FAIL
        pass_5 += verdict_for(lo, hi, 5.0) == PASS
    assert covered >= 0.9 * datasets
    assert fail_1 >= 0.95 * datasets and pass_5 >= 0.95 * datasets


def test_three_percent_shift_through_documents_and_compare_runs():
    rng = np.random.default_rng(42)
    base = trial_doc(noisy(rng, N_SHIFT), scenario="bare-metal")
    cand = trial_doc(noisy(rng, N_SHIFT, 1 - SHIFT), scenario="k8s-pod", target_pct=1.0)
    comp = compare_runs(base, cand, metrics=["ops_per_s"])
    (row,) = comp.rows
    assert row.ci_low <= SHIFT * 100 <= row.ci_high
    assert row.verdict == FAIL and comp.verdict == FAIL and row.change == "slower"
    assert compare_runs(base, cand, metrics=["ops_per_s"], target_pct=5.0).verdict == PASS
    assert row.p_value < 0.001


def test_latency_overhead_has_the_candidate_minus_baseline_sign():
    rng = np.random.default_rng(7)
    base = trial_doc(noisy(rng, 200), scenario="a")
    cand = trial_doc(noisy(rng, 200, 1 - SHIFT), scenario="b")
    comp = compare_runs(base, cand, metrics=["lat_mean"], target_pct=10.0)
    (row,) = comp.rows
    # latency = 1/throughput in the fixture: 1/0.97 - 1 = +3.09 %
    assert row.ci_low <= (1 / (1 - SHIFT) - 1) * 100 <= row.ci_high
    assert row.overhead_pct > 0 and row.verdict == PASS


def test_a_a_false_difference_rate_at_most_5_percent_of_200_repeats():
    """Identical distributions, 30 trials per side (10 trials x 3 repeats, the config
    default): the CI excludes 0 in at most 5 % of 200 seeded repeats; Mann-Whitney too."""
    ci_false = mw_false = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        a, b = noisy(rng, 30), noisy(rng, 30)
        lo, hi = bootstrap_overhead_ci(a, b, True, seed=seed)
        ci_false += lo > 0 or hi < 0
        mw_false += mann_whitney_u(a, b)[1] < 0.05
    assert ci_false <= 10, ci_false
    assert mw_false <= 10, mw_false


# ---- verdicts, trials needed, outliers --------------------------------------------------------

def test_verdict_rules():
    assert verdict_for(0.1, 0.9, 1.0) == PASS
    assert verdict_for(1.1, 3.0, 1.0) == FAIL
    assert verdict_for(0.5, 1.5, 1.0) == INCONCLUSIVE
    assert verdict_for(math.nan, math.nan, 1.0) == INCONCLUSIVE


def test_more_trials_estimate_follows_one_over_sqrt_n():
    # CI [0, 4] around 2 with n=10, target 5: half-width 2 must shrink below distance 3
    more = more_trials_needed(0.0, 4.0, 10, 5.0)
    assert 10 + more == math.ceil(10 * (2 / 3) ** 2 * 1.1) or more == 1
    more_far = more_trials_needed(-4.0, 8.0, 10, 5.0)  # centre 2, half 6 -> n*(6/3)^2*1.1 = 44
    assert more_far == math.ceil(10 * 4 * 1.1) - 10
    assert more_trials_needed(0.0, 2.0, 10, 1.0) is None  # centre on the target


def test_simulated_more_trials_do_decide():
    """The INCONCLUSIVE estimate is roughly right: with that many more trials the verdict
    is decided in most seeded repeats."""
    decided = 0
    for seed in range(20):
        rng = np.random.default_rng(500 + seed)
        base, cand = noisy(rng, 30), noisy(rng, 30, 1 - SHIFT)
        lo, hi = bootstrap_overhead_ci(base, cand, True, seed=seed)
        if verdict_for(lo, hi, 1.0) != INCONCLUSIVE:
            decided += 1
            continue
        n = 30 + more_trials_needed(lo, hi, 30, 1.0)
        rng2 = np.random.default_rng(900 + seed)
        base2 = np.r_[base, noisy(rng2, n - 30)]
        cand2 = np.r_[cand, noisy(rng2, n - 30, 1 - SHIFT)]
        lo2, hi2 = bootstrap_overhead_ci(base2, cand2, True, seed=seed)
        decided += verdict_for(lo2, hi2, 1.0) != INCONCLUSIVE
    assert decided >= 12


def test_mad_outliers_and_cv():
    values = [100.0, 101, 99, 100.5, 99.5, 100.2, 160.0]
    assert mad_outliers(values) == [6]
    assert mad_outliers([100.0] * 10) == []
    rng = np.random.default_rng(0)
    assert cv_pct(noisy(rng, 2000)) == pytest.approx(CV * 100, rel=0.1)


# ---- run-level rules ---------------------------------------------------------------------------

def test_different_driver_is_refused_unless_forced():
    base, _ = make_doc(1, sessions=2)
    cand, _ = make_doc(2, sessions=2, driver="575.57")
    with pytest.raises(NotComparable, match=r"^not comparable: driver 580\.159\.04 vs 575\.57"):
        compare_runs(base, cand)
    comp = compare_runs(base, cand, force=True)
    assert comp.forced == ["driver 580.159.04 vs 575.57"] and comp.rows


@pytest.mark.parametrize("kw, word", [({"device": "NVIDIA A100-SXM4-80GB"}, "GPU model"),
                                      ({"cuda": 12040}, "CUDA version"),
                                      ({"engine_version": "0.2.0"}, "engine version"),
                                      ({"backend": "numpy-cpu"}, "backend")])
def test_other_incomparable_facts(kw, word):
    base, _ = make_doc(1, sessions=2)
    if "backend" in kw:
        cand = dict(base, id="other", backend="numpy-cpu")
    else:
        cand, _ = make_doc(2, sessions=2, **kw)
    with pytest.raises(NotComparable, match=word):
        compare_runs(base, cand)


def test_invalid_trials_excluded_unless_asked_and_few_trials_warned():
    base, _ = make_doc(1, sessions=3, invalid_every=2)
    cand, _ = make_doc(2, sessions=3)
    comp = compare_runs(base, cand, metrics=["ops_per_s"])
    row = next(r for r in comp.rows if r.workload == "roundtrip")
    all_base = sum(len(w["trials"]) for w in base["workloads"] if w["workload"] == "roundtrip")
    assert row.n_base < all_base
    assert any("invalid baseline results excluded" in w for w in comp.warnings)
    assert any("fewer than 10 results" in w for w in comp.warnings)
    comp2 = compare_runs(base, cand, metrics=["ops_per_s"], include_invalid=True)
    assert next(r for r in comp2.rows if r.workload == "roundtrip").n_base == all_base


def test_invalid_run_is_excluded_unless_include_invalid():
    base, _ = make_doc(1, sessions=4)
    cand, _ = make_doc(2, sessions=4, layer_reasons=["proxy library not mapped"])
    assert cand["validity"]["status"] == "INVALID"
    comp = compare_runs(base, cand)
    assert any("INVALID" in w for w in comp.warnings)
    # every metric stays a row, NOT COMPARABLE with the count, never dropped
    assert comp.rows and {r.verdict for r in comp.rows} == {NOT_COMPARABLE}
    n = len(cand["workloads"][0]["trials"])
    assert all(f"candidate: 0 valid of {n} results" in r.warnings for r in comp.rows)
    assert comp.verdict == NOT_COMPARABLE
    assert {r.verdict for r in compare_runs(base, cand, include_invalid=True).rows} \
        == {NO_TARGET}


def test_imported_seed_figure_pairs_with_the_measured_round_trip_of_its_size():
    """The seed's Throughput is the round trip: with its size it meets the measured
    roundtrip variant of that size; without one, or for the bandwidths (no size, no memory
    kind), each figure is a NOT COMPARABLE row with the reason, never an empty table."""
    from results.legacy import import_legacy
    seed = "Throughput: 6,977 ops/sec\nMemory Bandwidth: 4.31 GB/s (H2D), 4.53 GB/s (D2H)\n"
    cand, _ = make_doc(2, sessions=2, workloads=("roundtrip", "h2d"))
    sized = import_legacy(seed, {"name": "bare-metal"}, roundtrip_size=(65536, "64KiB"))
    comp = compare_runs(sized, cand)
    rows = {(r.workload, r.variant, r.metric): r for r in comp.rows}
    paired = rows[("roundtrip", "pinned-64KiB", "ops_per_s")]
    assert paired.base_median == 6977.0 and paired.verdict == NO_TARGET
    assert rows[("h2d", "legacy", "gbps")].verdict == NOT_COMPARABLE
    assert "baseline (imported): the seed's h2d bandwidth names no copy size or memory kind" \
        in rows[("h2d", "legacy", "gbps")].warnings[0]
    assert comp.verdict == NOT_COMPARABLE
    unsized = compare_runs(import_legacy(seed, {"name": "bare-metal"}), cand)
    rt = next(r for r in unsized.rows if r.workload == "roundtrip" and r.metric == "ops_per_s")
    assert rt.variant == "legacy" and rt.verdict == NOT_COMPARABLE
    assert "gives no round-trip size" in rt.warnings[0]
    other = compare_runs(import_legacy(seed, {"name": "b"}, roundtrip_size=(1 << 20, "1MiB")),
                         cand)
    assert any("moved 1MiB per copy; the other run measured pinned-64KiB" in w
               for r in other.rows for w in r.warnings)
    cpu = dict(cand, backend="numpy-cpu")
    assert {r.verdict for r in compare_runs(sized, cpu).rows} == {NOT_COMPARABLE}
    # two imported runs compare as they are
    assert {r.variant for r in compare_runs(sized, sized).rows} == {"legacy"}


def test_unusable_values_of_included_invalid_trials_are_counted_not_hidden():
    """--include-invalid: an invalid trial whose figure cannot be used (the engine's empty
    interrupted result: 0 ops/s) is left out of the statistics with a visible count."""
    base = trial_doc([77400.0 + i for i in range(10)], scenario="a")
    cand = trial_doc([77000.0 + i for i in range(10)], scenario="b")
    for t in cand["workloads"][0]["trials"][:2]:
        t.update(ops_per_s=0.0, valid=False, validity_reasons=["interrupted"])
    row = next(r for r in compare_runs(base, cand, include_invalid=True).rows
               if r.metric == "ops_per_s")
    assert row.n_cand == 8 and row.verdict == NO_TARGET
    assert "candidate: 2 invalid results without a usable value left out" in row.warnings


def test_a_side_whose_results_never_carry_the_metric_says_so():
    """A seed figure imported as a round trip has ops/s and no GB/s: its bandwidth row is NOT
    COMPARABLE because no result of it reports a bandwidth, not because results were invalid."""
    seed = [{"valid": True, "ops_per_s": 1000.0}]
    side = side_values(seed, seed, lambda t: t.get("gbps"))
    assert side.problem("baseline", "bandwidth") == (
        NOT_COMPARABLE, "baseline: none of its 1 results reports a bandwidth")
    invalid = [{"valid": False, "gbps": 3.0}]
    assert side_values(invalid, [], lambda t: t.get("gbps")).problem("candidate", "bandwidth") \
        == (NOT_COMPARABLE, "candidate: 0 valid of 1 results")
