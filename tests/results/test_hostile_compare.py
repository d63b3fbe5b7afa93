"""Hostile candidate documents (tests/hostile/compare/, one case a file) through the CLI:
`gpubench compare --fail-on ...` must show the metric's row as INVALID or NOT COMPARABLE
with its reason and fail the gate, and comparison.md (`gpubench report`) must show the row.

Each file: `# expect: <text>` lines (every one must appear in the throughput row), other
`# ` comment lines, then the stored document itself, written into the store as it is."""
from __future__ import annotations

import json

import pytest

from gpubench import cli
from tests.hostile import case_id, cases
from tests.support.synth import trial_doc
from tests.support.cli_env import use_config

CASES = cases("compare", "*.json")
CONFIG = """
[store]
data_dir = "data"
[scenarios.bare-metal]
title = "1. Baseline (Bare Metal)"
launcher = "local"
[scenarios.k8s-pod]
title = "2. Kubernetes Pod"
launcher = "local"
target = "k8s"
baseline = "bare-metal"
"""
THROUGHPUT_ROW = "throughput (ops/s)"


@pytest.fixture
def store_with(tmp_path, monkeypatch):
    store = use_config(tmp_path, monkeypatch, CONFIG)
    base = trial_doc([77400.0 + 10 * i for i in range(10)], scenario="bare-metal")
    store.save(base)

    def add(text: str) -> tuple[str, str]:
        cand_id = json.loads(text)["id"]
        (tmp_path / "data" / f"{cand_id}.json").write_text(text)
        return base["id"], cand_id
    return add


def _row(text: str, marker: str) -> str:
    rows = [ln for ln in text.splitlines() if THROUGHPUT_ROW in ln and marker in ln]
    assert len(rows) == 1, text
    return rows[0]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_hostile_candidate_fails_the_gate_with_the_row(case, store_with, capsys):
    expect = case.expect
    base_id, cand_id = store_with(case.body)
    for gate in ("FAIL", "INCONCLUSIVE"):
        code = cli.main(["compare", base_id, cand_id, "--fail-on", gate])
        out, err = capsys.readouterr()
        assert code == 1, (gate, out, err)
        row = _row(out, "launch\tsync")
        for e in expect:
            assert e in row, (e, row)
        assert f"{cand_id}: {expect[0]}" in err   # the gate's line names the verdict
    assert cli.main(["report", "--out", "-"]) == 0
    out, _ = capsys.readouterr()
    row = _row(out, "| launch | sync |")
    for e in expect:
        assert e in row, (e, row)


def test_the_corpus_is_there():
    assert len(CASES) >= 5
