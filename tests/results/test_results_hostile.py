"""Hostile result files (tests/hostile/results/): each one is skipped with one line naming the
file and its first problem, in `list`, `show`, `compare` and `report`, and never hides the
good run beside it."""
from __future__ import annotations

import pytest

from results.document import archive_lines
from tests.hostile import case_id, cases
from tests.results.hostile import plant
from tests.support.synth import make_doc
from tests.support.cli_env import run, use_config

CONFIG = """
[store]
data_dir = "data"
[scenarios.bare-metal]
launcher = "local"
[scenarios.k8s-pod]
launcher = "local"
baseline = "bare-metal"
target = "k8s"
"""
CASES = cases("results", "*.json")


@pytest.fixture
def store(tmp_path, monkeypatch):
    store = use_config(tmp_path, monkeypatch, CONFIG)
    for seed, name in enumerate(("bare-metal", "k8s-pod")):
        doc, recs = make_doc(seed, scenario=name, sessions=3)
        store.save(doc, archive_lines(recs))
    return store



def ours(err: str) -> list[str]:
    """The lines gpubench wrote on stderr (dependencies may add their own)."""
    return [ln for ln in err.splitlines() if ln.startswith("gpubench: ")]


def test_the_corpus_has_its_cases():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_hostile_document_is_one_line_and_hides_nothing(store, capsys, case):
    good = [r["id"] for r in store.list_runs().runs]
    plant(store.dir, case)
    stem = case.name

    code, out, err = run(capsys, "list")
    assert code == 0
    assert sorted(ln.split("\t")[0] for ln in out.splitlines()[1:]) == sorted(good)
    [line] = ours(err)
    assert line.startswith(f"gpubench: warning: skipped {case.path.name}: ")
    assert all(e in line for e in case.expect), line

    code, out, err = run(capsys, "show", stem)
    [line] = ours(err)
    assert code == 2 and out == "" and case.path.name in line
    assert all(e in line for e in case.expect), line
    assert "unexpected error" not in line

    code, out, err = run(capsys, "compare", good[0], stem)
    [line] = ours(err)
    assert code == 2 and case.path.name in line and all(e in line for e in case.expect), line

    code, out, err = run(capsys, "compare", good[0], good[1], "--format", "csv")
    assert code in (0, 1) and good[1] in out          # the other runs still compare
    code, _, err = run(capsys, "report", "--out", "-")
    assert code == 0 and any(case.path.name in ln for ln in ours(err))


def test_every_hostile_document_at_once_leaves_the_good_runs_listed(store, capsys):
    good = sorted(r["id"] for r in store.list_runs().runs)
    for case in CASES:
        plant(store.dir, case)
    listing = store.list_runs()
    assert sorted(r["id"] for r in listing.runs) == good
    assert len(listing.warnings) == len(CASES)
    for case in CASES:
        [line] = [w for w in listing.warnings if w.startswith(f"skipped {case.path.name}: ")]
        assert all(e in line for e in case.expect), line
        assert "\n" not in line
