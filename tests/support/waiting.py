"""Waiting in an async test for something another process or task makes true."""
from __future__ import annotations

import asyncio
import time
from typing import Callable


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """True once `predicate()` holds, polled every 0.05 s; False after `timeout_s`."""
    until = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > until:
            return False
        await asyncio.sleep(0.05)
    return True
