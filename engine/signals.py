"""SIGINT/SIGTERM: set a flag that the loops read at interval boundaries.

The handler never raises on the first signal, so a CUDA call in flight is never
torn apart; the loop finishes its current op, emits the partial result marked
interrupted, and the engine ends with `done` status interrupted, exit 128+signal
(130 for SIGINT, 143 for SIGTERM). A second signal of either kind while the
first is being honoured raises KeyboardInterrupt (the user insists).
"""
from __future__ import annotations

import signal

from .runner import StopFlag

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def install(stop: StopFlag) -> None:
    def handler(signum, frame):
        if stop.signum:
            raise KeyboardInterrupt
        stop.signum = signum

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def exit_code(stop: StopFlag) -> int:
    return EXIT_CODES.get(stop.signum, 128 + int(stop.signum))
