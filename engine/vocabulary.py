"""Words every layer shares with the engine: the workloads, the backends, how a session ended.

Defined here because the engine stands alone (it ships to GPU hosts without the rest of
gpubench) while scenarios/, results/, gpubench/ and tui/ all speak these words: they import
them from here instead of spelling them again.
"""
from __future__ import annotations

from .protocol import BACKENDS

WORKLOADS = ("roundtrip", "launch", "h2d", "d2h", "d2d", "gemm", "alloc", "init", "p2p",
             "decode", "prefill")

# How an engine session ended (scenarios.events.SessionEnded.outcome, stored in documents).
COMPLETED = "completed"      # the engine said done/ok
FAILED = "failed"            # the launch failed or the engine ended with a fatal error
INCOMPLETE = "incomplete"    # the stream stopped early (connection dropped, pod evicted, ...)
CANCELLED = "cancelled"      # the session was cancelled (or never read to its end)
OUTCOMES = (COMPLETED, FAILED, INCOMPLETE, CANCELLED)

# What `--backend` accepts: "auto" picks cupy when a GPU is usable, else numpy-cpu.
BACKEND_CHOICES = ("auto", *BACKENDS)
