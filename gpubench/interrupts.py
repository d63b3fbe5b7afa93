"""How a running plan is stopped from outside: signals and a terminal that goes away.

SIGINT (Ctrl-C), SIGTERM and SIGHUP (a closed terminal or ssh connection) all stop a plan
the same way: the trial in flight ends with its partial result, and what was measured is
saved, marked incomplete. A closed terminal also makes every later write to it fail (EIO);
`drop_output` points stdout and stderr at /dev/null so the save and the exit still happen.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import sys
from typing import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Call `stop` on any of STOP_SIGNALS while the block runs (inside the event loop)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, stop)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # no signals here (not the main thread, or not POSIX)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def drop_output() -> None:
    """stdout and stderr went away (SIGHUP, a closed window, a closed pipe) and writes fail
    with EIO or EPIPE: point both at /dev/null so the rest of the run, its save and the
    interpreter's last flush write nowhere instead of raising."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in (sys.stdout, sys.stderr):
            try:
                os.dup2(devnull, stream.fileno())
            except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
                pass  # not a real file (tests capture output): nothing to redirect
    finally:
        os.close(devnull)
