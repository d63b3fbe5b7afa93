"""How many trials of each metric count (results/trial_counts.py): the document's validity
block carries them, and a VALID run whose headline has too few for a CI says so."""
from __future__ import annotations

from results.document import SessionRecord, build_document, summary_of
from results.report import comparison_table
from results.comparison import compare_runs
from results.schema import check_document
from results.trial_counts import doc_counts, status_line, status_short
from tests.support.synth import done, hello, result

SCEN = {"name": "bare-metal", "title": "Bare metal", "launcher": "local"}


def run_doc(roundtrip_valid: int, roundtrip_trials: int = 3, launch_trials: int = 3) -> dict:
    """One session: `roundtrip_trials` round trips of which `roundtrip_valid` are valid, and
    valid launches."""
    lines, t = [hello()], 0.1
    for r in range(roundtrip_trials):
        bad = [] if r < roundtrip_valid else ["stall: one call took 150.0 ms, 13% of the window"]
        lines.append(result(t, "roundtrip", "pinned-64KiB", r, 18600.0, 51.0, 144.0, reasons=bad))
        t += 1
    for r in range(launch_trials):
        lines.append(result(t, "launch", "sync", r, 77400.0, 11.6, 22.7))
        t += 1
    lines.append(done(t))
    return check_document(build_document([SessionRecord(lines)], SCEN))


def test_the_validity_block_counts_the_trials_of_each_metric():
    doc = run_doc(roundtrip_valid=2)
    val = doc["validity"]
    assert val["status"] == "VALID"
    assert val["metrics"] == [
        {"workload": "roundtrip", "variant": "pinned-64KiB", "counted": 2, "trials": 3},
        {"workload": "launch", "variant": "sync", "counted": 3, "trials": 3}]
    assert val["headline"] == {"workload": "roundtrip", "variant": "pinned-64KiB",
                               "counted": 2, "trials": 3}
    assert status_line(val["status"], val["headline"]) == "VALID (2/3 roundtrip results count)"
    assert summary_of(doc)["counted"]["counted"] == 2


def test_a_valid_run_whose_headline_cannot_give_a_ci_is_not_plain_valid():
    doc = run_doc(roundtrip_valid=1)
    val = doc["validity"]
    assert val["status"] == "VALID"                     # nothing threatens the run as a whole
    assert status_short(val["status"], val["headline"]) == "FEW RESULTS 1/3"
    assert status_line(val["status"], val["headline"]) == \
        "FEW RESULTS (1/3 roundtrip results count; too few for a CI)"
    assert any(n.startswith("FEW RESULTS (1/3 roundtrip") for n in val["notes"])
    summary = summary_of(doc)
    assert status_short(summary["validity"], summary["counted"]) == "FEW RESULTS 1/3"


def test_counts_of_an_older_document_are_worked_out_from_its_trials():
    doc = run_doc(roundtrip_valid=0)
    for key in ("metrics", "headline"):
        del doc["validity"][key]
    assert doc_counts(doc)["headline"]["counted"] == 0
    assert doc_counts(doc)["metrics"][1]["counted"] == 3


def test_a_comparison_row_says_how_many_trials_count_on_each_side():
    comp = compare_runs(run_doc(roundtrip_valid=1), run_doc(roundtrip_valid=3))
    rows = {(r[0], r[2]): r[3] for r in comparison_table(comp)}
    assert rows[("roundtrip", "throughput (ops/s)")] == "1/3 · 3/3"
    assert rows[("launch", "throughput (ops/s)")] == "3/3 · 3/3"
