"""The self-test on a real GPU through the CLI, short: its one judging rule gives a state, the
exit code that state maps to, and a last line that says it. Skipped without a GPU (the `gpu`
marker); `make test-gpu` runs it."""
from __future__ import annotations

import json
import math

import pytest

from gpubench.selftest import judging as sj
from tests.support.cli_env import BARE_METAL_CONFIG, use_config
from tests.support.cli_env import run as run_cli

pytestmark = pytest.mark.gpu


def test_a_short_gpu_selftest_never_fails_an_accurate_instrument(tmp_path, monkeypatch, capsys):
    """2 trials of 1 s on launch/sync at 5 %: too short to resolve ±0.5 pp for sure, so PASSED
    or NOT RESOLVED (exit 0 or 3), never FAILED: the CIs are Bonferroni-adjusted, so an
    unbiased instrument fails at most one run in twenty."""
    use_config(tmp_path, monkeypatch, BARE_METAL_CONFIG)
    out = tmp_path / "summary.json"
    code, stdout, _ = run_cli(capsys, "selftest", "--backend", "cupy", "--workloads", "launch",
                              "--levels", "5", "--trials", "2", "--duration", "1.0",
                              "--no-save", "--json", str(out))
    s = json.loads(out.read_text())
    assert code == {sj.PASSED: 0, sj.FAILED: 1, sj.NOT_RESOLVED: 3}[s["state"]]
    assert s["ci_family"]["arms"] == 2 and s["ci_confidence_pct"] == pytest.approx(97.5)
    assert s["state"] != sj.FAILED, [(r["arm"], r["why"]) for r in s["rows"]]
    last = stdout.splitlines()[-1]
    if s["state"] == sj.NOT_RESOLVED:
        n = s["trials_to_resolve"]
        assert n > 2 and last.endswith(f"about {n} trials would resolve it (--trials {n})")
        worst = max(max(r["ci_half_width"], abs(r["error_pp"])) for r in s["rows"]
                    if r["state"] == sj.NOT_RESOLVED)
        assert n == math.ceil(2 * (worst / 0.5) ** 2)
    else:
        assert last == "SELFTEST PASSED at ±0.5 pp: all 2 arms"
