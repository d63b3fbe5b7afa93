"""How a delay is injected on one backend, and what it really cost.

The injected overhead ("truth") of an arm is what the delay really cost per op, over the
baseline p50 (slots: over each pair's off-slot p50, the median over the arm's pairs, the same
statistic as the measurement):
  - GPU (cupy): the interposer (LD_PRELOAD) busy-waits in the driver entry point and reports
    the time it really spent (delay_ns_total / calls); x calls per op. With `--base-wait`
    every delayed call first waits that long, on and off alike, and the truth is what
    on-slot calls spent beyond off-slot ones (see the CPU's base wait below: on an H100 the
    roundtrip showed 87-91 % of its delay, as if a wait let work after the synchronise drain).
  - CPU (numpy-cpu): the engine busy-waits GPUBENCH_CPU_DELAY_NS in each op and reports what
    the waits really cost (GPUBENCH_CPU_DELAY_REPORT, engine/cpu_delay.py: a wait ends up to
    one turn of its clock loop late, 5-8 % of a launch); 1 wait per op. Every session, the
    baseline's too, runs the wait (at 0 ns there), so the arms differ by the wait alone. With
    slots every call first waits CPU_BASE_WAIT_NS, on and off alike, and the truth is what
    on-slot calls spent beyond off-slot ones: a wait that ran long changes what follows it (a
    launch cost 50-90 ns more than its turns, a roundtrip's copies 10-20 ns less), so off-slot
    calls must wait long too, and then pay it alike.
"""
from __future__ import annotations

import math

from engine import cpu_delay
from gpubench import interposer

from .options import Arm, Options, SelftestError


class Mechanism:
    """How a delay is injected on one backend, and what it really cost: both the interposer
    (GPU) and the engine's wait (CPU) time their delays and write a report, in every session
    of every arm (delay 0 in the baseline), read back through the arm's `report_env`."""

    ENV_KEYS = {"sync": interposer.ENV_SYNC_DELAY, "launch": interposer.ENV_LAUNCH_DELAY,
                "h2d": interposer.ENV_H2D_DELAY, "copy": interposer.ENV_COPY_DELAY}

    def __init__(self, backend: str, opts: Options):
        self.backend = backend
        self.opts = opts
        self.preload: str | None = None
        if backend == "cupy":
            try:
                self.preload = str(interposer.library_path())
            except interposer.InterposerBuildError as exc:
                raise SelftestError(str(exc)) from None
        self.placement = opts.delay_on               # may fall back after calibration
        self.cpu_base_ns = 0                         # CPU slots: every call's wait first
        self.gpu_base_ns = opts.base_wait_ns         # GPU slots: the interposer's, likewise

    @property
    def gpu(self) -> bool:
        return self.backend == "cupy"

    def delay_on(self, workload: str) -> str:
        """Where the delay sits, for the summary: the interposer's category, or the CPU wait."""
        return self.category(workload) if self.gpu else cpu_delay.DELAY_ENV

    def category(self, workload: str) -> str:
        if self.placement == "copy" and workload == "launch":
            return "launch"
        return self.placement

    @property
    def report_env(self) -> str:
        return interposer.ENV_REPORT if self.gpu else cpu_delay.REPORT_ENV

    def env_for(self, workload: str, delay_ns: int, slot_ns: int = 0,
                seed: int | None = None) -> dict[str, str]:
        # the baseline runs the delay too (at 0): arms differ by the delay only
        if not self.gpu:
            env = {cpu_delay.DELAY_ENV: str(int(delay_ns))}
            slot_env, seed_env = cpu_delay.SLOT_ENV, cpu_delay.SEED_ENV
            if self.cpu_base_ns:
                env[cpu_delay.BASE_ENV] = str(int(self.cpu_base_ns))
        else:
            env = {self.ENV_KEYS[self.category(workload)]: str(int(delay_ns))}
            slot_env, seed_env = interposer.ENV_SLOT, interposer.ENV_SEED
            if self.gpu_base_ns and slot_ns:
                env[interposer.ENV_BASE_WAIT] = str(int(self.gpu_base_ns))
        if slot_ns:
            env[slot_env] = str(int(slot_ns))
            env[seed_env] = str(int(seed or 0))
        return env

    def arm(self, workload: str, name: str, level: float | None, delay_ns: int) -> Arm:
        return Arm(workload, name, level, int(delay_ns), self.env_for(workload, delay_ns),
                   self.preload, self.report_env)

    def calls_per_op(self, workload: str, reports: list[dict]) -> float:
        """Delayed calls per timed op: one sync or launch per op, or the copies per roundtrip."""
        if not self.gpu or workload == "launch":
            return 1.0
        cat = self.category(workload)
        if cat in ("launch", "sync", "h2d"):
            return 1.0
        launches = sum(report_category(r, "launch")["calls"] for r in reports)
        delayed = sum(_delayed_calls(r, cat) for r in reports)
        return delayed / launches if launches else math.nan

    def spent_per_call_ns(self, workload: str, reports: list[dict], delay_ns: int) -> float:
        """What one delayed call really cost, as the delay itself measured it: the interposer
        (GPU) or the engine's wait (CPU, its waits that no interruption ended late)."""
        if not self.gpu:
            return cpu_spent_per_call_ns(reports, delay_ns)
        cat = self.category(workload)
        calls = sum(_delayed_calls(r, cat) for r in reports)
        spent = sum(_delayed_ns(r, cat) for r in reports)
        on = spent / calls if calls else float(delay_ns)
        # with a base wait, off-slot calls waited too: the delay cost what on-calls spent
        # beyond them
        off_calls = sum(_off_waited(r, cat, "off_waited_calls") for r in reports)
        off_ns = sum(_off_waited(r, cat, "off_wait_ns_total") for r in reports)
        return on - (off_ns / off_calls if off_calls else 0.0)


def cpu_spent_per_call_ns(reports: list[dict], delay_ns: int) -> float:
    """What a delayed call of these sessions' engine waits (GPUBENCH_CPU_DELAY_REPORT) cost
    beyond an off-slot one: ns spent per timed on-slot call less ns per timed off-slot call
    (their base wait; none without slots); the configured delay if no report timed one
    (never the case in a completed session)."""
    def per_call(spent_key: str, timed_key: str) -> float | None:
        timed = sum(int(r.get(timed_key) or 0) for r in reports)
        return sum(int(r.get(spent_key) or 0) for r in reports) / timed if timed else None
    on = per_call("spent_ns_total", "timed_calls")
    off = per_call("off_spent_ns_total", "off_timed_calls")
    return float(delay_ns) if on is None else on - (off or 0.0)


def sync_calls_per_op(workload: str, reports: list[dict]) -> float:
    """Synchronise calls per op, from a roundtrip session (one kernel launch per op):
    normally 1; 2 if the runtime's cudaStreamSynchronize made two wrapped calls."""
    if workload != "roundtrip":
        return 1.0
    launches = sum(report_category(r, "launch")["calls"] for r in reports)
    syncs = sum(report_category(r, "sync")["calls"] for r in reports)
    ratio = syncs / launches if launches else 1.0
    return float(round(ratio)) if 0.8 <= ratio <= 3.2 else 1.0


def report_category(report: dict, name: str) -> dict:
    """One category of an interposer report (zeros where it saw none)."""
    return (report.get("categories") or {}).get(name) or {"calls": 0, "delay_ns_total": 0,
                                                           "delayed_calls": 0}


def _cats_for(cat: str) -> tuple[str, ...]:
    return ("h2d", "d2h", "d2d", "copy") if cat == "copy" else (cat,)


def _delayed_calls(report: dict, cat: str) -> int:
    """Calls that really were delayed (with a slot schedule, those in on-slots)."""
    return sum(report_category(report, c).get("delayed_calls", report_category(report, c)["calls"])
               for c in _cats_for(cat))


def _delayed_ns(report: dict, cat: str) -> int:
    return sum(report_category(report, c)["delay_ns_total"] for c in _cats_for(cat))


def _off_waited(report: dict, cat: str, key: str) -> int:
    """Off-slot calls that waited the base (`off_waited_calls`), or their ns in all."""
    return sum(int(report_category(report, c).get(key) or 0) for c in _cats_for(cat))


def sum_counts(reports: list[dict]) -> dict[str, int]:
    """The interposer's call counts, summed over sessions (entry points it saw called)."""
    out: dict[str, int] = {}
    for r in reports:
        for k, v in (r.get("counts") or {}).items():
            if v:
                out[k] = out.get(k, 0) + int(v)
    return out
