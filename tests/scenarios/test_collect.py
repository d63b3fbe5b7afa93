"""collect(): one reading of a session into hello, results and how it ended."""
from __future__ import annotations

import asyncio

import pytest

from engine.vocabulary import CANCELLED, COMPLETED, FAILED
from scenarios.base import LaunchRequest
from scenarios.collect import Collected, collect
from scenarios.events import Hello, Result, Sample, SessionEnded
from scenarios.replay import ReplayLauncher, synthetic_stream


async def test_collect_reads_hello_results_and_the_end_and_passes_every_event_on():
    lines = synthetic_stream(backend="numpy-cpu", workloads=("roundtrip", "launch"), repeats=2)
    session = await ReplayLauncher(lines, speed=0).start(LaunchRequest())
    seen = []
    got = await collect(session, seen.append)
    assert isinstance(got.hello, Hello) and got.hello.backend == "numpy-cpu"
    assert [(r.workload, r.repeat) for r in got.results] == \
        [("roundtrip", 0), ("roundtrip", 1), ("launch", 0), ("launch", 1)]
    assert all(isinstance(r, Result) for r in got.results)
    assert (got.outcome, got.message, got.errors, got.warnings) == (COMPLETED, "", [], [])
    assert got.lines == lines and got.lines is not session.raw_lines
    assert isinstance(seen[0], Hello) and isinstance(seen[-1], SessionEnded)
    assert any(isinstance(e, Sample) for e in seen)
    assert sum(isinstance(e, Result) for e in seen) == 4


async def test_a_fatal_engine_error_is_recorded_and_fails_the_session():
    lines = synthetic_stream(backend="numpy-cpu", done_status="error")
    lines.insert(-1, lines[0].replace('"type":"hello"', '"type":"error"').split(',"engine_version"')[0]
                 + ',"code":"workload_failed","message":"boom","fatal":true}')
    got = await collect(await ReplayLauncher(lines, speed=0).start(LaunchRequest()))
    assert got.outcome == FAILED and "boom" in got.message
    assert [(e.code, e.fatal) for e in got.errors] == [("workload_failed", True)]


async def test_cancelling_the_reader_cancels_the_session_and_keeps_what_was_read():
    lines = synthetic_stream(backend="numpy-cpu", duration_s=30)
    session = await ReplayLauncher(lines, speed=1).start(LaunchRequest())
    got = Collected(session)
    task = asyncio.ensure_future(collect(session, into=got))
    while got.hello is None:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert session.ended is not None and session.ended.outcome == CANCELLED
    assert got.hello is not None and got.outcome == CANCELLED


async def test_a_consumers_error_ends_the_session_too():
    lines = synthetic_stream(backend="numpy-cpu", duration_s=30)
    session = await ReplayLauncher(lines, speed=1).start(LaunchRequest())

    def explode(event):
        raise RuntimeError("consumer bug")

    with pytest.raises(RuntimeError, match="consumer bug"):
        await collect(session, explode)
    assert session.ended is not None and session.ended.outcome == CANCELLED


def test_take_tells_the_last_event():
    got = Collected(session=None)
    assert got.outcome == CANCELLED and got.exit_code is None and got.details is None
    assert got.take(SessionEnded(COMPLETED, "", 0, {"x": 1})) is True
    assert (got.outcome, got.exit_code, got.details) == (COMPLETED, 0, {"x": 1})
