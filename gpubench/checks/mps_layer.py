"""A scenario's MPS layer around its checks: the probes of `gpubench check --scenario X` run as
clients of a private MPS control daemon when X has an `[mps]` table, as its engines do.

The daemon is the launcher's own (scenarios/mps.py through LocalLauncher), started before the
first probe and stopped after the last, whatever happens in between; the checks themselves
are synchronous (threads and subprocesses), so they run in a worker thread of that one loop.
Without this the probes would run beside the GPU, not under MPS, and a limit would be judged
on processes that never had it.
"""
from __future__ import annotations

import asyncio
from typing import Callable, TypeVar

from scenarios.base import LaunchError
from scenarios.local import LocalLauncher
from scenarios.mps import MpsLayer

from .settings import CheckError

T = TypeVar("T")


def run_under_mps(layer: MpsLayer, work: Callable[[dict[str, str]], T]) -> tuple[T, list[str]]:
    """`work(client_env)` while a private daemon runs: its result and what stopping the daemon
    had to say; CheckError (one line) when the daemon cannot start."""
    async def main() -> tuple[T, list[str]]:
        launcher = LocalLauncher(mps=layer)
        try:
            try:
                env = await launcher.mps.client_env()
            except LaunchError as exc:
                raise CheckError(str(exc)) from None
            result = await asyncio.to_thread(work, env)
        finally:
            await launcher.close()
        return result, launcher.close_notes()
    return asyncio.run(main())
