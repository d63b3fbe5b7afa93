"""Closing a fleet's launchers: concurrently, and a slow one cannot hold the rest."""
from __future__ import annotations

import asyncio
from typing import Iterable

from scenarios.base import Launcher


async def close_launchers(launchers: Iterable[Launcher], timeout_s: float = 10.0) -> None:
    """Close every launcher's connections concurrently; a slow one cannot hold the rest.

    A launcher whose close() has not finished after `timeout_s` (its sessions' cancel waits
    for grace periods on a hung host) gets its connections aborted."""
    launchers = list(launchers)

    async def one(launcher: Launcher) -> None:
        try:
            await launcher.close()
        except Exception:
            pass
    tasks = {asyncio.create_task(one(launcher)): launcher for launcher in launchers}
    if not tasks:
        return
    _, pending = await asyncio.wait(set(tasks), timeout=timeout_s)
    for task in pending:
        for slot in list(getattr(tasks[task], "conns", ()) or ()):
            conn = getattr(slot, "conn", slot)
            try:
                conn.abort()
            except Exception:
                pass
    if pending:
        await asyncio.wait(pending, timeout=2.0)
