"""SIGINT/SIGTERM: set a flag that the loops read at interval boundaries.

The handler never raises on the first signal, so a CUDA call in flight is never
torn apart; the loop finishes its current op, emits the partial result marked
interrupted, and the engine ends with `done` status interrupted, exit 128+signal
(130 for SIGINT, 143 for SIGTERM). A second signal of either kind while the
first is being honoured raises KeyboardInterrupt (the user insists).
"""
from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the engine's first import (die_with_parent) must not pull in numpy
    from .measure import StopFlag

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
PARENT_PID_ENV = "GPUBENCH_PARENT_PID"
PR_SET_PDEATHSIG = 1     # <linux/prctl.h>


def die_with_parent(environ=os.environ) -> None:
    """SIGTERM when the process that started us dies, even by kill -9 (Linux), so no engine
    runs on after the CLI is gone. The local launcher names itself in GPUBENCH_PARENT_PID; the
    variable is dropped here so the engine's own children (init workload) do not inherit it.

    Linux ties the signal to the thread that forked us: launchers start engines from their
    event loop's thread, which outlives its sessions."""
    text = environ.pop(PARENT_PID_ENV, None)
    if not text or not sys.platform.startswith("linux"):
        return
    try:
        parent = int(text)
        import ctypes
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0):
            return
    except (ValueError, OSError, AttributeError, ImportError):  # no prctl here: nothing to do
        return
    # The parent may have died before prctl: we were re-parented and no signal will come.
    # (A parent that is alive but not ours is a wrapper that did not exec: nothing to do.)
    if os.getppid() != parent and not _alive(parent):
        os.kill(os.getpid(), signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def install(stop: StopFlag) -> None:
    def handler(signum, frame):
        if stop.signum:
            raise KeyboardInterrupt
        stop.signum = signum

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def exit_code(stop: StopFlag) -> int:
    return EXIT_CODES.get(stop.signum, 128 + int(stop.signum))
