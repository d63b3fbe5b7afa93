"""Two engines take turns on one GPU: a paired A/B comparison that the machine's drift cannot bias.

An engine's speed wanders between states that last from a fraction of a second to a whole
run (the roundtrip p50 of one process can move between ~15, ~17.5 and ~21.5 us on an H200),
so separate runs of arm A and arm B differ by several per cent whatever the arms are. Here
both arms' engines run at once and take turns: SIGSTOP one, SIGCONT the other, `slot_s` each,
in pairs of windows whose order is random. A window's figure is the median of its engine's
own `sample` lines that lie wholly inside it (the sample spanning a stop is dropped); each
pair gives B / A; the result is the median pair ratio. This cancels drift in time, but not a
process's own speed state, which an engine keeps for its lifetime: within one process pair
the ratio holds within about 3 % while process pairs differ by up to 25 %. The CI therefore
resamples process pairs, then pairs within them (results.inference.cluster_median_ci): more
process pairs, not longer ones, narrow it. Both engines must run on this machine: the pids
come from their `hello` lines.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from dataclasses import dataclass, field

from results.inference import cluster_median_ci
from results.stats import median


@dataclass
class Engine:
    """One arm's running engine: its pid and its samples (gpubench.selftest.sample_record)."""
    name: str
    session: object
    pid: int | None = None
    t0_ns: int | None = None          # engine start, upper bound (selftest.engine_start_bound)
    hello: dict = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)

    def on_event(self, event) -> None:
        from gpubench.selftest.samples import engine_start_bound, sample_record
        from scenarios.events import Hello, Sample
        self.t0_ns = engine_start_bound(event, self.t0_ns)
        if isinstance(event, Hello):
            self.pid = (event.host or {}).get("pid")
            self.hello = event.data
        elif isinstance(event, Sample):
            smp = sample_record(event)
            if smp is not None:
                self.samples.append(smp)

    def window_medians(self, t1: int, t2: int) -> tuple[float, float] | None:
        """(median ops/s, median p50) of the samples wholly inside [t1, t2], or None."""
        from gpubench.selftest.samples import sample_span_ns
        inside = []
        for smp in self.samples:
            start, end = sample_span_ns(smp, self.t0_ns)
            if start >= t1 and end <= t2:
                inside.append(smp)
        if not inside:
            return None
        return (median(x["ops_per_s"] for x in inside),
                median(x["p50"] for x in inside))


class AlternationError(Exception):
    """The alternating run could not be made; one line for the user."""


def _signal(engine: Engine, sig: int) -> None:
    try:
        os.kill(engine.pid, sig)
    except ProcessLookupError:
        raise AlternationError(f"{engine.name}: engine pid {engine.pid} is gone (it must run "
                               "on this machine)") from None


async def _started(engine: Engine, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while engine.pid is None or not engine.samples:
        if engine.session.ended is not None:
            e = engine.session.ended
            raise AlternationError(f"{engine.name}: the engine ended before measuring: "
                                   f"{e.outcome}: {e.message}")
        if time.monotonic() > deadline:
            raise AlternationError(f"{engine.name}: no sample within {timeout_s:g} s")
        await asyncio.sleep(0.02)
    try:   # never signal a stranger: the pid must be an engine on this machine
        cmdline = open(f"/proc/{engine.pid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        cmdline = []
    if b"engine" not in cmdline:
        raise AlternationError(f"{engine.name}: pid {engine.pid} from its hello is not an engine "
                               "process on this machine (both arms must run here)")


async def alternate(arm_a, arm_b, *, pairs: int, slot_s: float, rng: random.Random,
                    start_timeout_s: float = 180.0) -> dict:
    """One process pair: start both engines, let them take turns for `pairs` window pairs,
    stop them, and return the per-pair ratios B / A of ops/s and of per-op p50."""
    engines = []
    for name, launcher, request in (arm_a, arm_b):
        session = await launcher.start(request)
        engine = Engine(name, session)
        session.add_listener(engine.on_event, queue_events=False)
        for event in session.drain_nowait():   # whatever came before the listener
            engine.on_event(event)
        engines.append(engine)
    a, b = engines
    windows: list[tuple[int, Engine, int, int]] = []
    try:
        for e in engines:
            await _started(e, start_timeout_s)
        for e in engines:
            _signal(e, signal.SIGSTOP)
        await asyncio.sleep(0.05)
        for p in range(pairs):
            for e in ((a, b) if rng.random() < 0.5 else (b, a)):
                _signal(e, signal.SIGCONT)
                t1 = time.monotonic_ns()
                await asyncio.sleep(slot_s)
                _signal(e, signal.SIGSTOP)
                windows.append((p, e, t1, time.monotonic_ns()))
    finally:
        for e in engines:
            if e.pid is not None:
                try:
                    os.kill(e.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            await e.session.cancel()
        for e in engines:
            await e.session.wait_ended()
    by_pair: dict[int, dict[str, tuple[float, float]]] = {}
    for p, e, t1, t2 in windows:
        got = e.window_medians(t1, t2)
        if got is not None:
            by_pair.setdefault(p, {})[e.name] = got
    ops_ratios, p50_ratios = [], []
    for figures in by_pair.values():
        if len(figures) == 2:
            (ra, la), (rb, lb) = figures[a.name], figures[b.name]
            ops_ratios.append(rb / ra)
            p50_ratios.append(lb / la)
    return {"pairs_scheduled": pairs, "pairs_complete": len(ops_ratios),
            "ops_ratios": ops_ratios, "p50_ratios": p50_ratios,
            "sample_ops_median": {e.name: median(x["ops_per_s"] for x in e.samples)
                                  for e in engines},
            "hello": {e.name: e.hello for e in engines}}


def summarise(runs: list[dict], seed: int = 1, n_boot: int = 4000) -> dict:
    """Median pair ratio of ops/s and of p50 over all process pairs, with 95 % CIs that
    treat process pairs as the unit, and each process pair's own median."""
    out = {}
    for key in ("ops_ratios", "p50_ratios"):
        groups = [r[key] for r in runs if r[key]]
        ratio, lo, hi = cluster_median_ci(groups, seed=seed, n_boot=n_boot)
        out[key.replace("_ratios", "")] = {
            "ratio": ratio, "ci95": [lo, hi], "pairs": sum(len(g) for g in groups),
            "process_pairs": len(groups),
            "per_process_pair": [median(g) for g in groups]}
    return out
