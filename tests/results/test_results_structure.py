"""The structural check of stored documents (results/structure.py) against every reader.

Every field of real documents (a plan's run, a per-GPU run, a legacy import, a check run)
is replaced in turn by values of the wrong type (text, lists, objects, booleans, null, NaN,
an integer no float holds) or removed. Each mutant is either refused by check_document
with one line, or every reader (list summary, show, compare and its exports, report,
legacy text and CSV exports, check rows, the TUI's summary and host facts) handles it without an
exception. A reader that starts using a new field without the check knowing its type
fails here."""
from __future__ import annotations

import contextlib
import io
import json
import types

import pytest

from gpubench.cli import show as cli_show
from results import check_verdicts, comparison, legacy, report
from results.document import SessionRecord, build_document, summary_of
from results.per_gpu import aggregate_workloads, doc_gpus, gpu_workloads
from results.schema import DocumentError, ResultError, check_document
from scenarios.replay import synthetic_stream
from tests.checks.fixed_checks import fixed_check_document, fixed_init_check_document
from tests.support.synth import make_doc
from tui.data import _summary
from tui.screens.hosts import _hello_summary

DELETE = object()
WRONG = (DELETE, "x", [], {"a": "x"}, True, None, float("nan"), 10 ** 400)


def per_gpu_doc() -> dict:
    recs = [SessionRecord(synthetic_stream(workloads=("roundtrip",), repeats=1, duration_s=0.5,
                                           seed=g), trial=0, gpu_mode="concurrent",
                          gpu={"index": g, "uuid": f"GPU-{g}", "name": "H100",
                               "mig_instance": False},
                          details={"startup": {"to_running_s": 1.0}, "node": "n1"})
            for g in (0, 1)]
    return build_document(recs, {"name": "multi", "launcher": "k8s", "target_pct": 5.0})


def base_documents() -> dict[str, dict]:
    plan, _ = make_doc(1, sessions=2, repeats=1, workloads=("roundtrip", "h2d"),
                       throttle=("hw_slowdown",), invalid_every=2)
    imported = legacy.import_legacy("Throughput: 6,977 ops/sec\nAverage Latency: 0.14 ms\n"
                                    "p99 Latency: 0.198 ms\nH2D: 12.1 GB/s\n",
                                    {"name": "bare-metal"}, source="seed.txt")
    return {"plan": plan, "per-gpu": per_gpu_doc(), "legacy": imported,
            "check": fixed_check_document("bare-metal-proxy"),
            "init-check": fixed_init_check_document("bare-metal-proxy")}


def field_paths(obj, prefix=()):
    """Every field and the first two items of every list."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield prefix + (key,)
            yield from field_paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj[:2]):
            yield prefix + (i,)
            yield from field_paths(value, prefix + (i,))


def mutated(doc: dict, path: tuple, value) -> dict:
    out = json.loads(json.dumps(doc))        # a deep copy, several times faster
    parent = out
    for p in path[:-1]:
        parent = parent[p]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def show(doc: dict) -> None:
    fake = types.SimpleNamespace(load=lambda ref: doc, resolve=lambda ref: ref)
    real = cli_show.open_store
    cli_show.open_store = lambda args, config: fake
    try:
        with contextlib.redirect_stdout(io.StringIO()):   # (--json prints any JSON as is)
            cli_show.cmd_show(types.SimpleNamespace(run="x", json=False), None)
    finally:
        cli_show.open_store = real


def read_everything(doc: dict, good: dict) -> None:
    """What the CLI, the report and the TUI do with a stored document."""
    summary = summary_of(doc)
    _summary(summary)
    _hello_summary(doc.get("hello"))
    aggregate_workloads(doc)
    for index in doc_gpus(doc):
        gpu_workloads(doc, index)
    for base, cand in ((good, doc), (doc, good)):
        try:
            comp = comparison.compare_runs(base, cand, target_pct=5.0, n_boot=50)
        except ResultError:
            continue
        comp.checks = check_verdicts.comparison_checks(base, cand, doc)
        for fmt in (report.to_markdown, report.to_tsv, report.to_csv, report.to_json):
            fmt([comp])
    try:
        legacy.export_text(doc)
    except ResultError:
        pass
    legacy.export_csv(doc)
    check_verdicts.check_table(check_verdicts.check_rows(doc, "candidate"))
    scenario = (doc.get("scenario") or {}).get("name") or "x"
    report.comparison_report(
        [report.ReportScenario(scenario, "t", None, None)], {scenario: doc},
        lambda b, c, sc: comparison.compare_runs(b, c, n_boot=50), generated="now",
        tool_version="1", checks={scenario: doc})
    show(doc)


BASES = base_documents()


@pytest.mark.parametrize("name", list(BASES))
def test_the_real_documents_pass_the_check(name):
    check_document(json.loads(json.dumps(BASES[name])))


@pytest.mark.parametrize("name", list(BASES))
def test_every_wrong_type_is_refused_in_one_line_or_read_without_error(name):
    good = BASES[name]
    refused = accepted = 0
    failures = []
    for path in field_paths(good):
        for value in WRONG:
            doc = mutated(good, path, value)
            try:
                check_document(doc, "run x")
            except DocumentError as exc:
                assert "\n" not in str(exc) and str(exc).startswith("run x: ")
                refused += 1
                continue
            accepted += 1
            try:
                read_everything(doc, good)
            except Exception as exc:   # a reader fails on a document the check let through
                failures.append(f"{'.'.join(map(str, path))} = {value!r:.20}: "
                                f"{type(exc).__name__}: {exc}")
    assert not failures, f"{len(failures)} mutants break a reader:\n" + "\n".join(failures[:20])
    assert refused > 100 and accepted > 100      # both sides of the check were exercised
