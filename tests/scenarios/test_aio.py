"""scenarios/aio.py: the fleet's event loop (uvloop when installed, asyncio on request) and
within(), a timeout without an extra task."""
from __future__ import annotations

import asyncio

import pytest

from scenarios import aio


def test_run_uses_uvloop_unless_asked_for_asyncio(monkeypatch):
    pytest.importorskip("uvloop")

    async def loop_type():
        return type(asyncio.get_running_loop()).__module__.split(".")[0]
    monkeypatch.delenv("GPUBENCH_LOOP", raising=False)
    assert aio.loop_name() == "uvloop" and aio.run(loop_type()) == "uvloop"
    monkeypatch.setenv("GPUBENCH_LOOP", "asyncio")
    assert aio.loop_name() == "asyncio" and aio.run(loop_type()) == "asyncio"


def test_within_returns_or_times_out_and_cancels_the_work():
    cancelled = []

    async def slow():
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        assert await aio.within(asyncio.sleep(0, result=7), 1) == 7
        with pytest.raises(asyncio.TimeoutError):
            await aio.within(slow(), 0.05)
        assert cancelled == [True]
        assert await aio.within(asyncio.sleep(0, result="no limit"), None) == "no limit"
    aio.run(main())
