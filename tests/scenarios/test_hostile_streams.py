"""Hostile engine streams (tests/hostile/streams/, one case a file) through the real path:
a plan run by gpubench.runner whose local "engine" is a tiny script printing the file, the
live parser and session judge, then the saved document. None may end VALID, and the
document must say why.

Each file: `# expect: <text>` lines (each must appear in the saved document's reasons),
other `# ` comment lines (`# exit: N` sets the fake engine's exit code, 0 by default),
then the stream exactly as the engine's stdout would carry it."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from scenarios.config import parse_config
from gpubench.runner import PlanOptions, PlanRunner
from results.store import Store
from scenarios.base import LaunchRequest
from scenarios.events import COMPLETED, INCOMPLETE, Done, Hello, Result, StreamWarning
from scenarios.local import LocalLauncher
from scenarios.replay import ReplayLauncher, synthetic_stream
from scenarios.stream import StreamParser
from tests.hostile import case_id, cases

CASES = cases("streams", "*.jsonl")
FAKE_ENGINE = """#!{python}
import os, sys
with open(os.environ["GPUBENCH_TEST_STREAM"], encoding="utf-8") as fh:
    sys.stdout.write(fh.read())
sys.stdout.flush()
sys.exit(int(os.environ["GPUBENCH_TEST_EXIT"]))
"""


async def run_fake_engine(tmp_path: Path, monkeypatch, stream: str, exit_code: int) -> dict:
    """One plan of one trial whose engine prints `stream` and exits `exit_code`; the saved
    document, read back from the store."""
    script = tmp_path / "fake-engine"
    script.write_text(FAKE_ENGINE.format(python=sys.executable))
    script.chmod(0o755)
    (tmp_path / "stream.jsonl").write_text(stream, encoding="utf-8")
    monkeypatch.setenv("GPUBENCH_TEST_STREAM", str(tmp_path / "stream.jsonl"))
    monkeypatch.setenv("GPUBENCH_TEST_EXIT", str(exit_code))
    cfg = parse_config({"store": {"data_dir": str(tmp_path / "data")},
                        "scenarios": {"x": {"launcher": "local", "title": "X"}}},
                       "test.toml", tmp_path)
    store = Store(cfg.data_dir)
    runner = PlanRunner(cfg, [cfg.scenarios["x"]], PlanOptions(trials=1, seed=1), store,
                        launcher_factory=lambda s, c: LocalLauncher(python=str(script)))
    result = await runner.run()
    assert len(result.run_ids) == 1, result.save_errors
    return store.load(result.run_ids[0])


def said(doc: dict) -> str:
    """Everything the document says about why it is not VALID, as one text."""
    trials = [t for wl in doc["workloads"] for t in wl["trials"]]
    return json.dumps([doc["validity"], [t["validity_reasons"] for t in trials],
                       [(s["outcome"], s["message"], s.get("stream_problems"))
                        for s in doc["sessions"]], doc["stream_warnings"]], ensure_ascii=False)


@pytest.mark.parametrize("case", CASES, ids=case_id)
async def test_hostile_stream_is_never_saved_valid(case, tmp_path, monkeypatch):
    expect = case.expect
    exit_code = int(case.header.get("exit", "0"))
    doc = await run_fake_engine(tmp_path, monkeypatch, case.body, exit_code)
    assert doc["validity"]["status"] == "INVALID", said(doc)
    assert not any(t["valid"] for wl in doc["workloads"] for t in wl["trials"]), said(doc)
    text = said(doc)
    for e in expect:
        assert e in text, (e, text)


async def test_the_same_path_saves_an_honest_stream_valid(tmp_path, monkeypatch):
    """The harness can say VALID: a consistent stream through it is saved VALID."""
    stream = "\n".join(synthetic_stream(workloads=("roundtrip", "launch", "h2d"))) + "\n"
    doc = await run_fake_engine(tmp_path, monkeypatch, stream, 0)
    assert doc["validity"]["status"] == "VALID", said(doc)
    assert doc["sessions"][0]["outcome"] == COMPLETED
    assert all(t["valid"] for wl in doc["workloads"] for t in wl["trials"])


async def _replay(lines: list[str], archive: bool):
    session = await ReplayLauncher(lines, speed=0.0, archive=archive).start(LaunchRequest())
    return await session.wait()


async def test_a_saved_archive_replays_session_after_session_a_live_stream_does_not():
    """A store archive holds sessions one after another (each from its own hello): replayed
    as an archive it is one honest stream; read as one engine's stream it contradicts itself."""
    archive = synthetic_stream(hostname="a") + synthetic_stream(hostname="b")
    assert (await _replay(archive, archive=True)).outcome == COMPLETED
    live = await _replay(archive, archive=False)
    assert live.outcome == INCOMPLETE and "hello after done" in live.message


def test_the_corpus_is_there():
    assert len(CASES) >= 10


def _parse(name: str) -> tuple[StreamParser, list]:
    [case] = cases("streams", f"{name}.jsonl")
    stream = case.body
    parser = StreamParser()
    return parser, [parser.feed(line) for line in stream.splitlines()]


def test_live_results_carry_the_reason_as_they_arrive():
    """A view (the TUI, the self-test) reading events sees the impossible result as invalid."""
    _, events = _parse("negative-ops-per-s")
    result = next(e for e in events if isinstance(e, Result))
    assert result.valid is False
    assert "ops_per_s -77400 is not finite and positive" in result.validity_reasons


def test_a_second_hello_or_a_line_after_done_never_replaces_the_first():
    parser, events = _parse("second-hello-other-device")
    assert sum(isinstance(e, Hello) for e in events) == 1
    assert parser.hello.device["name"] == "NVIDIA H100 80GB HBM3"
    assert any(isinstance(e, StreamWarning) and "second hello for another device" in e.message
               for e in events)
    parser, events = _parse("two-dones")
    assert sum(isinstance(e, Done) for e in events) == 1 and parser.done is events[2]
