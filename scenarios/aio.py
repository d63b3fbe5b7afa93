"""asyncio helpers for the app side (never imported by the engine).

`run(coro)`: asyncio.run on uvloop where it is installed (a dependency on Linux and macOS):
at fleet scale its C event loop and transports take ~9 % less CPU per streamed sample and
~7 % less per SSH connect than asyncio's own, for ~4 KB more per held connection
(benchmarks/fleet_scale.py, paired runs). `GPUBENCH_LOOP=asyncio` keeps asyncio's loop.

`within(awaitable, seconds)`: asyncio.wait_for without its extra task where Python has
asyncio.timeout (3.11+). A fleet awaits five of these per host start; on 3.11 each wait_for
wraps its coroutine in a task of its own (3.12 no longer does).
"""
from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Awaitable, Coroutine, TypeVar

T = TypeVar("T")


def loop_name() -> str:
    """The event loop run() uses: "uvloop" or "asyncio"."""
    if os.environ.get("GPUBENCH_LOOP", "").lower() == "asyncio":
        return "asyncio"
    import importlib.util
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(coro), on uvloop when loop_name() says so."""
    if loop_name() == "uvloop":
        import uvloop
        return uvloop.run(coro)
    return asyncio.run(coro)


if sys.version_info >= (3, 11):
    async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
        """`await awaitable`, or asyncio.TimeoutError after `seconds` (None: no limit)."""
        async with asyncio.timeout(seconds):
            return await awaitable
else:  # pragma: no cover - exercised on Python < 3.11 only
    async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
        """`await awaitable`, or asyncio.TimeoutError after `seconds` (None: no limit)."""
        return await asyncio.wait_for(awaitable, seconds)
