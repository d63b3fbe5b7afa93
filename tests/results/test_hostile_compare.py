"""Hostile candidate documents (tests/hostile/compare/, one case a file) through the CLI:
`gpubench compare --fail-on ...` must show the metric's row as INVALID or NOT COMPARABLE
with its reason and fail the gate, and comparison.md (`gpubench report`) must show the row.

Each file: `# expect: <text>` lines (every one must appear in the throughput row), other
`# ` comment lines, then the stored document itself, written into the store as it is."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpubench import cli
from results.store import Store
from tests.results.synth import trial_doc

CASES = sorted((Path(__file__).resolve().parents[1] / "hostile" / "compare").glob("*.json"))
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


def read_case(path: Path) -> tuple[list[str], str]:
    lines = path.read_text().splitlines(keepends=True)
    expect = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("# expect:")]
    body = lines
    while body and body[0].startswith("#"):
        body = body[1:]
    assert expect, f"{path.name} has no '# expect:' line"
    return expect, "".join(body)


@pytest.fixture
def store_with(tmp_path, monkeypatch):
    (tmp_path / "config.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPUBENCH_CONFIG", str(tmp_path / "config.toml"))
    store = Store(tmp_path / "data")
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


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_hostile_candidate_fails_the_gate_with_the_row(case, store_with, capsys):
    expect, text = read_case(case)
    base_id, cand_id = store_with(text)
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
