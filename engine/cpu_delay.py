"""GPUBENCH_CPU_DELAY_NS: the numpy-cpu engine's model of an interposer's per-call cost, timed.

The delay is a busy-wait inside each roundtrip and launch op. A loop of clock reads cannot
wait exactly N ns: it stops at the first read at or past the deadline, up to one turn of the
loop late (40-100 ns of CPython here, several % of a 1.6 us launch), and how late depends on N.
So, like the interposer on the GPU, the wait times itself, and GPUBENCH_CPU_DELAY_REPORT=<path>
has the engine write at exit what it really cost:

    {"delay_ns": N, "slot_ns": S, "seed": X, "calls": ..., "delayed_calls": ...,
     "timed_calls": ..., "spent_ns_total": ...}

A delayed call's spent time runs from the clock read just before the loop to the read that ends
it: the loop's turns and nothing else, which is exactly what the call costs beyond one whose loop
does not turn (both make that read, the loop's first compare and all the bookkeeping, which is
therefore done before that read: a slot decision or a deadline sum after it would be counted by
delayed calls alone, ~90 ns too much per launch here). An interruption during the wait is
absorbed by it (the loop runs to its deadline whatever happened), except at its very end: a wait
that ended more than LATE_NS past its deadline is counted in `delayed_calls` but not timed, as
the per-op p50 that the self-test compares never sees those ops either.

GPUBENCH_CPU_DELAY_SLOT_NS / _SEED toggle the delay on and off in time slots of CLOCK_MONOTONIC
(the wait's clock), in pairs, one on and one off in the order `slot_on` picks: the same
schedule as the interposer's GPUBENCH_INTERPOSE_DELAY_SLOT_NS/SEED (interpose.c's delay_on), so
the self-test's slots design runs on the CPU too.

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
SLOT_ENV = "GPUBENCH_CPU_DELAY_SLOT_NS"
SEED_ENV = "GPUBENCH_CPU_DELAY_SEED"
LATE_NS = 1_000   # ten turns of the loop: a wait that ended later than this was interrupted

_MASK = (1 << 64) - 1


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def slot_on(k: int, seed: int) -> bool:
    """Slots come in pairs (2p, 2p+1), one on and one off; splitmix64(p ^ seed) picks
    which comes first (interpose.c's delay_on)."""
    return (k & 1) == (splitmix64(((k >> 1) ^ seed) & _MASK) & 1)


def _env_int(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return 0
    try:   # int first: a 63-bit seed does not survive a float
        return max(0, int(raw))
    except ValueError:
        pass
    try:
        return max(0, int(float(raw)))
    except ValueError:
        print(f"gpubench engine: ignoring {name}={raw!r} (not a number)", file=sys.stderr)
        return 0


class CpuDelay:
    """The per-call wait and its tally; `wait()` gives the function the ops call."""

    def __init__(self, ns: int, report_path: str | None = None, slot_ns: int = 0, seed: int = 0,
                 clock=time.monotonic_ns):
        self.ns, self.report_path = ns, report_path
        self.slot_ns, self.seed = slot_ns, seed
        self._clock = clock
        self._tally = [0, 0, 0, 0]   # calls, delayed calls, timed delayed calls, ns they spent

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "CpuDelay | None":
        """The wait asked for by the environment, or None (no delay and no report: the ops
        stay bare)."""
        env = os.environ if env is None else env
        ns, report = _env_int(env, DELAY_ENV), env.get(REPORT_ENV) or None
        if not (ns > 0 or report):
            return None
        return cls(ns, report, _env_int(env, SLOT_ENV), _env_int(env, SEED_ENV))

    def wait(self) -> Callable[[], None]:
        """One call's wait. On and off calls take the same path (no branch on the state), so
        they differ by the turns of the loop alone."""
        ns, slot_ns, seed = self.ns, self.slot_ns, self.seed
        tally, clock, late = self._tally, self._clock, LATE_NS
        if not slot_ns:
            def wait() -> None:
                t = t0 = clock()
                while t - t0 < ns:
                    t = clock()
                tally[0] += 1
                tally[1] += 1
                if t - t0 - ns < late:
                    tally[2] += 1
                    tally[3] += t - t0
            return wait
        state = [-1, 0, 0]                   # current slot, its wait (ns), 1 if that is on

        def wait_in_slots() -> None:
            k = clock() // slot_ns
            if k != state[0]:                # once per slot: the schedule costs ~1 us
                on = int(slot_on(k, seed))
                state[0], state[1], state[2] = k, ns * on, on
            wait_ns, on = state[1], state[2]
            t = t0 = clock()
            while t - t0 < wait_ns:
                t = clock()
            tally[0] += 1
            tally[1] += on
            if t - t0 - wait_ns < late:
                tally[2] += on
                tally[3] += t - t0
        return wait_in_slots

    def summary(self) -> dict:
        calls, delayed, timed, spent = self._tally
        return {"delay_ns": self.ns, "slot_ns": self.slot_ns, "seed": self.seed, "calls": calls,
                "delayed_calls": delayed, "timed_calls": timed, "spent_ns_total": spent}

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
