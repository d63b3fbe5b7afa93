"""GPUBENCH_CPU_DELAY_NS: the numpy-cpu engine's model of an interposer's per-call cost, timed.

The delay is a busy-wait inside each roundtrip and launch op. A loop of clock reads cannot
wait exactly N ns: it stops at the first read at or past the deadline, up to one turn of the
loop late (40-100 ns of CPython here, several % of a 1.6 us launch), and how late depends on N.
So, like the interposer on the GPU, the wait times itself, and GPUBENCH_CPU_DELAY_REPORT=<path>
has the engine write at exit what it really cost:

    {"delay_ns": N, "base_ns": B, "slot_ns": S, "seed": X, "calls": ...,
     "delayed_calls": ..., "timed_calls": ..., "spent_ns_total": ...,
     "off_calls": ..., "off_timed_calls": ..., "off_spent_ns_total": ...}

A call's spent time runs from the clock read just before the loop to the read that ends it: the
loop's turns and nothing else (all the bookkeeping is done before that read, as calls that do
not wait pay it too). An interruption during the wait is absorbed by it (the loop runs to its
deadline whatever happened), except at its very end: a wait that ended more than LATE_NS past
its deadline is counted but not timed, as the per-op p50 never sees those ops either.

GPUBENCH_CPU_DELAY_SLOT_NS / _SEED toggle the delay on and off in time slots of CLOCK_MONOTONIC
(the wait's clock), in pairs, one on and one off in the order `slot_on` picks: the same schedule
as the interposer's GPUBENCH_INTERPOSE_DELAY_SLOT_NS/SEED (delay_on in its delay.inc.c), so the
self-test's slots design runs on the CPU too. On-slot calls are the `delayed_calls`, off-slot
ones the `off_calls`; without slots every call is delayed.

GPUBENCH_CPU_DELAY_BASE_NS makes every call wait that long first, on or off. A wait that ran
long changes what follows it: measured here, an on-slot launch cost 50-90 ns more than the turns
it spent (the loop's mispredicted exit, predictors cooled meanwhile) when off-slot calls did not
wait, and with a 2 us base an on-slot roundtrip still cost 10-20 ns less (its copies' write-backs
drained meanwhile). With both waiting long enough, that is paid on and off alike, and what a
delayed call costs beyond an off one is its spent time minus the off calls'.

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
BASE_ENV = "GPUBENCH_CPU_DELAY_BASE_NS"
LATE_NS = 1_000   # ten turns of the loop: a wait that ended later than this was interrupted

_MASK = (1 << 64) - 1


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def slot_on(k: int, seed: int) -> bool:
    """Slots come in pairs (2p, 2p+1), one on and one off; splitmix64(p ^ seed) picks
    which comes first (delay_on in the interposer's delay.inc.c)."""
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
                 base_ns: int = 0, clock=time.monotonic_ns):
        self.ns, self.report_path = ns, report_path
        self.slot_ns, self.seed, self.base_ns = slot_ns, seed, base_ns
        self._clock = clock
        # delayed (on) calls, timed ones, ns they spent; the same for off-slot calls
        self._tally = [0, 0, 0, 0, 0, 0]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "CpuDelay | None":
        """The wait asked for by the environment, or None (no delay and no report: the ops
        stay bare)."""
        env = os.environ if env is None else env
        ns, report = _env_int(env, DELAY_ENV), env.get(REPORT_ENV) or None
        if not (ns > 0 or report):
            return None
        return cls(ns, report, _env_int(env, SLOT_ENV), _env_int(env, SEED_ENV),
                   _env_int(env, BASE_ENV))

    def wait(self) -> Callable[[], None]:
        """One call's wait. On and off calls take the same path (no branch on the state), so
        they differ by the turns of the loop alone."""
        ns, slot_ns, seed, base = self.ns, self.slot_ns, self.seed, self.base_ns
        tally, clock, late = self._tally, self._clock, LATE_NS
        if not slot_ns:
            wait_ns = base + ns

            def wait() -> None:
                t = t0 = clock()
                while t - t0 < wait_ns:
                    t = clock()
                tally[0] += 1
                if t - t0 - wait_ns < late:
                    tally[1] += 1
                    tally[2] += t - t0
            return wait
        state = [-1, 0, 0, 3]                # current slot, its wait (ns), 1 if on, tally index

        def wait_in_slots() -> None:
            k = clock() // slot_ns
            if k != state[0]:                # once per slot: the schedule costs ~1 us
                on = slot_on(k, seed)
                state[0], state[1], state[3] = k, base + ns * on, 3 * (not on)
            wait_ns, i = state[1], state[3]
            t = t0 = clock()
            while t - t0 < wait_ns:
                t = clock()
            tally[i] += 1
            if t - t0 - wait_ns < late:
                tally[i + 1] += 1
                tally[i + 2] += t - t0
        return wait_in_slots

    def summary(self) -> dict:
        on, on_timed, on_spent, off, off_timed, off_spent = self._tally
        return {"delay_ns": self.ns, "base_ns": self.base_ns, "slot_ns": self.slot_ns,
                "seed": self.seed, "calls": on + off, "delayed_calls": on,
                "timed_calls": on_timed, "spent_ns_total": on_spent, "off_calls": off,
                "off_timed_calls": off_timed, "off_spent_ns_total": off_spent}

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
