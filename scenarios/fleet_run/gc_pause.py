"""The cyclic garbage collector held back while a large fleet connects and runs.

While the hosts connect, no automatic full (generation 2) collection: each walks every object of
the hosts connected so far (up to ~200 ms at 2,000 hosts, five of them during one connect-all)
with the event loop stopped. Young collections go on. Once every host runs, one full collection
frees what the handshakes left, then the objects alive (connections, sessions, hellos: ~1.5 M at
2,000 hosts) are moved out of the collector's reach (gc.freeze) until the run ends: otherwise
each full collection walks them all, 250-350 ms with the event loop stopped, a few times a
minute (delivery p99 ~70 ms, ~10 % of the CPU).
"""
from __future__ import annotations

import gc

FREEZE_GC_HOSTS = 256                # fleets this large hold the collector back
CONNECT_GC_THRESHOLD2 = 1_000_000    # the generation-2 threshold while hosts connect


class GcPause:
    def __init__(self) -> None:
        self._threshold: tuple[int, int, int] | None = None    # held while connecting
        self._frozen = False

    def hold(self) -> None:
        """No automatic full collection from now on (the hosts connect)."""
        if self._threshold is None:
            self._threshold = gc.get_threshold()
            gc.set_threshold(self._threshold[0], self._threshold[1],
                             max(self._threshold[2], CONNECT_GC_THRESHOLD2))

    def settle(self) -> None:
        """Every host runs: collect once, freeze what is alive, restore the threshold."""
        if not self._frozen and self._threshold is not None:
            # Collect first: the handshakes' garbage cycles would otherwise be frozen with the
            # live objects and never freed; collected, their memory is reused (by the archived
            # stream lines) instead of growing the process.
            gc.collect()
            gc.freeze()
            self._frozen = True
        self._restore()

    def end(self) -> None:
        """The run is over: the collector as it was."""
        self._restore()
        if self._frozen:
            gc.unfreeze()
            self._frozen = False

    def _restore(self) -> None:
        if self._threshold is not None:
            gc.set_threshold(*self._threshold)
            self._threshold = None
