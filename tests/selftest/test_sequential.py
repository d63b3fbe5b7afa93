"""The self-test's trial count: `trials` blocks at least, then one more at a time while an
arm's CI is wider than the tolerance, up to `max_trials`; `--trials` alone fixes the count.
The stop looks at widths only, so the CIs keep their coverage."""
from __future__ import annotations

import random

from gpubench.selftest import experiment
from gpubench.selftest import judging as sj
from tests.selftest.test_selftest import _cli, _fake_session_factory


def _widths_only_stop(rng: random.Random, run: int, tol: float, first: int, most: int):
    """One simulated CPU arm of truth 0: sessions of 8 pair ratios, each session off by its
    own burst of load (sd 1 %), noise 1.5 % a pair; judged as the self-test judges the CPU's
    arms (sessions resampled) after `first` sessions and after each further one, stopped by
    width alone: (CI low, CI high, sessions used)."""
    sessions: list[list[float]] = []
    while True:
        burst = rng.gauss(0, 0.01)
        sessions.append([1 + burst + rng.gauss(0, 0.015) for _ in range(8)])
        if len(sessions) < first:
            continue
        _, lo, hi = sj.pairs_overhead_ci(sessions, False, seed=run, n_boot=300,
                                         confidence=0.95, resample_sessions=True)
        if (hi - lo) / 2 <= tol or len(sessions) == most:
            return lo, hi, len(sessions)


def test_a_stop_by_width_alone_keeps_the_cis_coverage():
    """120 A/A arms, each run until its 95 % CI is within ±1 pp (4 to 10 sessions): the CI
    misses the truth about as often as a fixed count's would (the bootstrap over few sessions
    runs a little narrow; at most 15 % here), and the stop really varied the count."""
    rng = random.Random(3)
    runs = [_widths_only_stop(rng, run, 1.0, 4, 10) for run in range(120)]
    misses = sum(not lo <= 0.0 <= hi for lo, hi, _ in runs)
    assert misses <= 18, misses
    used = {n for _, _, n in runs}
    assert min(used) == 4 and max(used) > 5, used


def test_unresolved_after_the_first_blocks_runs_more_until_resolved(monkeypatch, interposer_lib,
                                                                     tmp_path, capsys):
    """A GPU-like machine a little noisier than 4 blocks resolve at ±0.5 pp: the defaults run
    more blocks, one at a time, and stop when every CI is within it; the same sessions with
    `--trials 4` alone run exactly 4 and are NOT RESOLVED."""
    monkeypatch.setenv("GPUBENCH_CACHE_DIR", str(interposer_lib.parent))
    factory = lambda: _fake_session_factory(0.10, 0.006, 1, drift=0.004)  # noqa: E731
    monkeypatch.setattr(experiment, "run_session", factory())
    code, lines, _, s = _cli(tmp_path, monkeypatch, capsys, "--backend", "cupy")
    assert code == 0 and s["state"] == sj.PASSED
    assert 4 < s["trials_per_arm"] <= 8 and s["sessions"] == 2 + 8 * s["trials_per_arm"]
    assert s["trials_rule"] == {"min": 4, "max": 8, "stopped": "every CI within ±0.5 pp"}
    assert all(r["ci_half_width"] <= 0.5 for r in s["rows"])
    assert ("trials: 4 at least, then one more while a CI was wider than ±0.5 pp, up to 8; "
            "stopped: every CI within ±0.5 pp") in lines
    monkeypatch.setattr(experiment, "run_session", factory())
    code, lines, _, s = _cli(tmp_path, monkeypatch, capsys, "--backend", "cupy", "--trials", "4")
    assert code == 3 and s["state"] == sj.NOT_RESOLVED and s["trials_per_arm"] == 4
    assert s["trials_rule"] == {"min": 4, "max": 4, "stopped": "the 4 trials asked for"}
    assert not any(ln.startswith("trials: ") for ln in lines)


def test_still_unresolved_at_the_most_trials_says_so(monkeypatch, interposer_lib, tmp_path,
                                                     capsys):
    monkeypatch.setenv("GPUBENCH_CACHE_DIR", str(interposer_lib.parent))
    monkeypatch.setattr(experiment, "run_session",
                        _fake_session_factory(0.10, 0.03, 1, drift=0.01))
    progress: list[str] = []
    monkeypatch.setattr(experiment.Selftest, "__init__", _with_progress(progress))
    code, lines, _, s = _cli(tmp_path, monkeypatch, capsys, "--backend", "cupy",
                             "--workloads", "launch", "--trials", "3", "--max-trials", "5")
    assert code == 3 and s["state"] == sj.NOT_RESOLVED and s["trials_per_arm"] == 5
    assert s["trials_rule"] == {"min": 3, "max": 5,
                                "stopped": "at the most trials, 5 (--max-trials)"}
    more = [m for m in progress if m.endswith("one more block")]
    assert len(more) == 2 and more[0].startswith("selftest: block 3/3 done") and \
        "CI(s) wider than ±0.5 pp (launch/" in more[0]
    assert progress[-1].startswith("selftest: block 5/5 done")
    assert lines[-1].startswith("SELFTEST NOT RESOLVED at ±0.5 pp")


def _with_progress(sink: list[str]):
    init = experiment.Selftest.__init__

    def patched(self, opts, progress=None):
        init(self, opts, progress=sink.append)
    return patched


def test_sessions_at_different_levels_move_truth_and_measurement_together(monkeypatch,
                                                                          tmp_path, capsys):
    """CPU sessions ±10 % apart: at 10 % injected each session's truth differs by up to 1 pp,
    so the measured overhead's CI (sessions resampled) is wider than ±1 pp. Pair by pair the
    measurement and its truth move together: the error's CI is narrow and the arm passes."""
    monkeypatch.setattr(experiment, "run_session",
                        _fake_session_factory(0.10, 0.002, 2, drift=0.002, cpu_turn_ns=70))
    code, lines, _, s = _cli(tmp_path, monkeypatch, capsys, "--backend", "numpy-cpu",
                             "--workloads", "launch", "--levels", "10", "--trials", "4",
                             # the GPU's longer slots: fewer pairs, a measured CI wider than 1 pp
                             "--slot", "0.25", "--sample-interval", "0.05")
    l10 = next(r for r in s["rows"] if r["arm"] == "L10")
    assert (l10["ci_high"] - l10["ci_low"]) / 2 > 1.0, l10
    assert l10["ci_half_width"] < 0.5 * (l10["ci_high"] - l10["ci_low"]) / 2, l10
    assert l10["state"] == sj.PASSED and code == 0, l10["why"]
    assert lines[-1] == "SELFTEST PASSED at ±1 pp: all 2 arms"
