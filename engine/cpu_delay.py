"""GPUBENCH_CPU_DELAY_NS: the numpy-cpu engine's model of an interposer's per-call cost, timed.

The delay is a busy-wait inside each roundtrip and launch op. A loop of clock reads cannot
wait exactly N ns: it stops at the first read at or past the deadline, up to one turn of the
loop late (60-100 ns of CPython here: 5-8 % of a 1.2 us launch), and how late depends on N.
So, like the interposer on the GPU, the wait times itself, and GPUBENCH_CPU_DELAY_REPORT=<path>
has the engine write at exit what it really cost:

    {"delay_ns": N, "calls": ..., "timed_calls": ..., "spent_ns_total": ...}

A call's spent time runs from the clock read that starts the wait to the read that ends it:
exactly what a call with this delay spends beyond the same call with delay 0 (both make the
first read, the compare and the bookkeeping). An interruption during the wait is absorbed by
it (the loop runs to its deadline whatever happened), except at its very end: a wait that
ended more than LATE_NS past its deadline is counted in `calls` but not timed, as the per-op
p50 that the self-test compares never sees those ops either.

Asking for a report installs the wait even at delay 0, so a baseline session runs the same code
as the delayed ones and the arms differ by the loop alone (the GPU self-test likewise preloads
the interposer, delay 0, in its baseline).
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable, Mapping

DELAY_ENV = "GPUBENCH_CPU_DELAY_NS"
REPORT_ENV = "GPUBENCH_CPU_DELAY_REPORT"
LATE_NS = 1_000   # ten turns of the loop: a wait that ended later than this was interrupted


def delay_ns_from_env(env: Mapping[str, str]) -> int:
    raw = env.get(DELAY_ENV, "").strip()
    if not raw:
        return 0
    try:
        return max(0, int(float(raw)))
    except ValueError:
        print(f"gpubench engine: ignoring {DELAY_ENV}={raw!r} (not a number)", file=sys.stderr)
        return 0


class CpuDelay:
    """The per-call wait and its tally; `wait()` gives the function the ops call."""

    def __init__(self, ns: int, report_path: str | None = None, clock=time.perf_counter_ns):
        self.ns = ns
        self.report_path = report_path
        self._clock = clock
        self._tally = [0, 0, 0]      # calls, timed calls, ns spent by the timed calls

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "CpuDelay | None":
        """The wait asked for by the environment, or None (no delay and no report: the ops
        stay bare)."""
        env = os.environ if env is None else env
        ns, report = delay_ns_from_env(env), env.get(REPORT_ENV) or None
        return cls(ns, report) if ns > 0 or report else None

    def wait(self) -> Callable[[], None]:
        ns, tally, clock, late = self.ns, self._tally, self._clock, LATE_NS

        def wait() -> None:
            t0 = t = clock()
            end = t0 + ns
            while t < end:
                t = clock()
            tally[0] += 1
            if t - end < late:
                tally[1] += 1
                tally[2] += t - t0
        return wait

    def summary(self) -> dict:
        calls, timed, spent = self._tally
        return {"delay_ns": self.ns, "calls": calls, "timed_calls": timed,
                "spent_ns_total": spent}

    def write_report(self) -> None:
        """Write the summary to the report path (at exit); a failure is one line on stderr."""
        if not self.report_path:
            return
        try:
            with open(self.report_path, "w") as fh:
                json.dump(self.summary(), fh)
        except OSError as exc:
            print(f"gpubench engine: cannot write {REPORT_ENV}={self.report_path}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
