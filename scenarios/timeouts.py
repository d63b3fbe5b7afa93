"""`within(awaitable, seconds)`: asyncio.wait_for without its extra task where Python has
asyncio.timeout (3.11+). A fleet awaits five of these per host start; on 3.11 each wait_for
wraps its coroutine in a task of its own (3.12 no longer does)."""
from __future__ import annotations

import asyncio
import sys
from typing import Awaitable, TypeVar

T = TypeVar("T")

if sys.version_info >= (3, 11):
    async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
        """`await awaitable`, or asyncio.TimeoutError after `seconds` (None: no limit)."""
        async with asyncio.timeout(seconds):
            return await awaitable
else:  # pragma: no cover - exercised on Python < 3.11 only
    async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
        """`await awaitable`, or asyncio.TimeoutError after `seconds` (None: no limit)."""
        return await asyncio.wait_for(awaitable, seconds)
