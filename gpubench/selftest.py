"""`gpubench selftest`: prove the tool resolves a known, injected overhead.

Plan
  1. Calibrate: per workload, engine sessions without delay (the baseline p50 per-op
     latency) and with a calibration delay (the slope: time added per op over the time
     the delay reported spending).
  2. Size the delays: delay = level % x baseline p50 (per call on the timed path).
  3. Verify: blocks of sessions, each block holding every arm once (baseline, A/A twin,
     each injected level, per workload) in a seeded random order; so drift hits every arm
     alike.
  4. Judge each arm against the baseline with results/stats.py (median of trials,
     seeded bootstrap CI, Mann-Whitney p, PASS/FAIL/INCONCLUSIVE against each target).

Two designs, because the H100 taught us that separate processes differ: the p50 of
launch+sync moved 5-15 % from one engine process to the next (and a roundtrip's p50
jumped between ~17 and ~22 us even within one), far more than a 1 % delay.

  slots (the default): every arm is a set of engine sessions whose delay toggles on and
    off in 0.25 s time slots that come in pairs, one on and one off in seeded random
    order (the interposer's GPUBENCH_INTERPOSE_DELAY_SLOT_NS/SEED on the GPU, the engine's
    GPUBENCH_CPU_DELAY_SLOT_NS/SEED on the CPU: the same schedule).
    The engine's own `sample` lines (every 0.05 s) are sorted into slots by their time
    stamps; each pair gives one ratio, the on-slot's median p50 over the off-slot's, so
    the process's level and its drift cancel pair by pair. The arm's overhead is the
    median pair ratio; its CI resamples pairs within sessions (stratified bootstrap):
    the pair, not the sample, is the unit, because samples of one slot and slots of one
    stretch of time are correlated (the H100 run that treated 0.1 s samples as
    independent put an A/A at +0.82 % with a CI excluding 0). The delay sits AFTER the
    stream synchronise returns (GPUBENCH_INTERPOSE_SYNC_DELAY_NS), when nothing is in
    flight, so it adds fully to each op; a delay before the H2D copy or the launch was
    partly absorbed by the roundtrip's own waits on the H100.
  sessions (--design sessions): one fixed delay per process, so arms are separate
    sessions (baseline, A/A twin, levels) in seeded random order within blocks, one value
    per session. On a shared 2-core machine the load moves a session's p50 by tens of %
    from one session to the next, so the CPU self-test uses slots too.

The injected overhead ("truth") of an arm is what the delay really cost per op, over
the baseline p50 (slots: over each pair's off-slot p50, the median over the arm's pairs,
the same statistic as the measurement):
  - GPU (cupy): the interposer (LD_PRELOAD) busy-waits in the driver entry point and
    reports the time it really spent (delay_ns_total / calls); x calls per op.
  - CPU (numpy-cpu): the engine busy-waits GPUBENCH_CPU_DELAY_NS in each op and reports
    what the waits really cost (GPUBENCH_CPU_DELAY_REPORT, engine/cpu_delay.py: a wait ends
    up to one turn of its clock loop late, 5-8 % of a launch); 1 wait per op. Every session,
    the baseline's too, runs the wait (at 0 ns there), so the arms differ by the wait alone.
    With slots every call first waits CPU_BASE_WAIT_NS, on and off alike, and the truth is
    what on-slot calls spent beyond off-slot ones: a wait that ran long changes what follows
    it (a launch cost 50-90 ns more than its turns, a roundtrip's copies 10-20 ns less), so
    off-slot calls must wait long too, and then pay it alike.

The metric is the median (p50) of per-op latency of each engine session (median over
its repeats): a constant per-op delay shifts every per-op latency by the same amount,
and a session's p50 over tens of thousands of ops barely moves between sessions, while
ops/s (1/mean) carries the long tail and scheduler hiccups (GPU-FACTS: ops/s trial CV
3.8 %). ops/s overheads are reported beside it for comparison. One trial = one engine
session (a fresh process), not one repeat: repeats of one process are not independent.

Every arm is saved in the results store as a run (scenario `selftest-<workload>-<arm>`,
one group), each carrying the self-test summary under "selftest".
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engine.protocol import finite
from results.format import EMPTY
from results.stats import median

from .selftest_judging import family_confidence, judge_arm, judge_pairs, pair_ratios, slot_pairs

WORKLOAD_VARIANTS = {"roundtrip": None, "launch": "sync"}   # primary variant (None: the only one)
DEFAULT_LEVELS = (1.0, 5.0, 10.0)
# The CPU's sessions design compares separate processes, whose p50 a shared machine moves by
# tens of %: it checks the logic at coarse levels, within a wide tolerance.
CPU_SESSION_LEVELS = (50.0, 100.0, 200.0)
CPU_SESSION_TOLERANCE_PP = 15.0
CALIBRATION_PCT = 20.0
SLOT_DEFAULTS = {"trials": 4, "duration": 3.0, "warmup": 0.5, "repeats": 3,
                 "calibration_trials": 1, "sample_interval": 0.05}
# the CPU's ops are 10x as many per sample: 8 slot pairs per session, under 3 min in all
CPU_SLOT_DEFAULTS = {**SLOT_DEFAULTS, "duration": 2.0, "warmup": 0.3, "repeats": 2}
# the GPU's 0.5 pp with some room; on the CPU an arm's CI half-width counts where it is larger
# (others' load on a shared machine widened it to 2.4 pp in one run of a quiet 0.2 pp)
CPU_SLOT_TOLERANCE_PP = 1.0
# CPU slots: every call waits this long, on or off, before the delay (engine/cpu_delay.py): long
# enough that what a long wait changes has settled in off-slot calls too. With none, an on-slot
# launch cost 50-90 ns more than its turns (its loop's exit, cooled predictors); with 2 us, an
# on-slot roundtrip still cost 10-20 ns less (its 64 KiB copies' write-backs drain meanwhile):
# both beyond the CIs of a quiet machine (+-0.2 pp)
CPU_BASE_WAIT_NS = 10_000
SESSION_DEFAULTS = {"trials": 10, "duration": 0.5, "warmup": 0.2, "repeats": 2,
                    "calibration_trials": 3, "sample_interval": 0.1}
DELAY_PLACEMENTS = ("sync", "launch", "h2d", "copy")


class SelftestError(Exception):
    """The self-test could not run; one line for the user."""


@dataclass
class Options:
    backend: str = "auto"                    # auto | cupy | numpy-cpu
    workloads: tuple[str, ...] = ("roundtrip", "launch")
    levels: tuple[float, ...] | None = None  # None: 1,5,10 (50,100,200: CPU sessions design)
    design: str = "auto"                     # auto (slots) | slots | sessions
    trials: int | None = None                # sessions per arm (slots 4, sessions 10)
    calibration_trials: int | None = None    # (slots 1, sessions 3)
    duration: float | None = None            # per window (slots 3.0, CPU 2.0, sessions 0.5)
    warmup: float | None = None              # (slots 0.5, CPU 0.3, sessions 0.2)
    repeats: int | None = None               # (slots 3, CPU 2, sessions 2)
    slot_s: float = 0.25
    sample_interval: float | None = None     # (slots 0.05, sessions 0.1)
    seed: int = 0
    tolerance_pp: float | None = None        # None: 0.5 on GPU, wider on the CPU
    roundtrip_size: str = "64KiB"
    delay_on: str = "sync"                   # GPU: sync (after it returns) | launch | copy
    python: str | None = None
    save: bool = True
    data_dir: Path | None = None
    n_boot: int = 4000


@dataclass
class Arm:
    workload: str
    name: str                 # baseline | aa | L1 | L5 | ...
    level: float | None       # nominal injected %, None for baseline/aa
    delay_ns: int = 0
    env: dict[str, str] = field(default_factory=dict)
    preload: str | None = None
    report_env: str | None = None   # the variable that names the delay report file, if any

    @property
    def key(self) -> str:
        return f"{self.workload}/{self.name}"


@dataclass
class SessionData:
    arm: Arm
    trial: int
    outcome: str
    message: str
    lines: list[str]
    p50: dict[str, float]            # variant -> median over repeats of latency p50 (us)
    ops: dict[str, float]            # variant -> median ops/s
    report: dict | None
    backend: str | None
    mapped: list[str]
    elapsed_s: float
    samples: list[dict] = field(default_factory=list)   # sample lines (variant, t, secs, p50, ops)
    t0_ns: int | None = None          # engine start on CLOCK_MONOTONIC (upper bound)
    seed: int | None = None


# ---------------------------------------------------------------------------------------------
# sessions through the scenarios layer


def engine_args(opts: Options, backend: str, workload: str) -> list[str]:
    args = ["--sample-interval", f"{opts.sample_interval:g}", "--backend", backend,
            "--workloads", workload, "--duration", f"{opts.duration:g}",
            "--warmup", f"{opts.warmup:g}", "--repeats", str(opts.repeats),
            "--telemetry-interval", "0", "--roundtrip-size", opts.roundtrip_size,
            "--min-window", f"{min(0.5, opts.duration * 0.8):g}", "--seed", str(opts.seed),
            # the p50 shrugs off the tail that the CV rule guards ops/s against
            "--cv-limit", "1000000"]
    if workload == "launch":
        args += ["--launch-modes", WORKLOAD_VARIANTS["launch"]]
    return args


def engine_start_bound(event, bound: int | None) -> int | None:
    """The engine's start on CLOCK_MONOTONIC, bounded from above by this event: its `t` is
    seconds since that start and it arrives later, so arrival - t is never early; the
    smallest bound over a session's events is the estimate."""
    data = getattr(event, "data", None)
    if not (isinstance(data, dict) and isinstance(data.get("t"), (int, float))):
        return bound
    this = time.monotonic_ns() - int(data["t"] * 1e9)
    return this if bound is None else min(bound, this)


def sample_record(event) -> dict | None:
    """A `sample` event as {variant, t, secs, p50, ops_per_s}, or None without a p50/rate."""
    lat = event.latency_us or {}
    ops, rate = event.data.get("interval_ops"), event.ops_per_s
    if isinstance(lat.get("p50"), (int, float)) and lat["p50"] > 0 and ops and rate:
        return {"variant": event.variant, "t": event.t, "secs": ops / rate,
                "p50": float(lat["p50"]), "ops_per_s": float(rate)}
    return None


SAMPLE_BEFORE_NS = 10_000_000   # arrival delay and the statistics before a line is written
SAMPLE_AFTER_NS = 2_000_000


def sample_span_ns(smp: dict, t0_ns: int) -> tuple[int, int]:
    """Where a sample's interval may lie on CLOCK_MONOTONIC, margins included: it ended at
    most at t0 + t (t0 is an upper bound) and began `secs` earlier."""
    end = t0_ns + int(smp["t"] * 1e9)
    return end - int(smp["secs"] * 1e9) - SAMPLE_BEFORE_NS, end + SAMPLE_AFTER_NS


async def run_session(arm: Arm, trial: int, args: list[str], report_path: Path | None,
                      python: str | None = None) -> SessionData:
    from scenarios.base import LaunchRequest
    from scenarios.events import Hello, Result, Sample, SessionEnded
    from scenarios.local import LocalLauncher

    env = dict(arm.env)
    if report_path is not None and arm.report_env:
        env[arm.report_env] = str(report_path)
    t0 = time.monotonic()
    session = await LocalLauncher(python).start(LaunchRequest(
        engine_args=tuple(args), env=env, preload=arm.preload, label=f"selftest {arm.key}"))
    p50s: dict[str, list[float]] = {}
    opss: dict[str, list[float]] = {}
    samples: list[dict] = []
    backend, mapped, ended = None, [], None
    t0_ns: int | None = None
    try:
        async for ev in session.events():
            t0_ns = engine_start_bound(ev, t0_ns)
            if isinstance(ev, Sample):
                smp = sample_record(ev)
                if smp is not None:
                    samples.append(smp)
            elif isinstance(ev, Hello):
                backend = ev.backend
                mapped = list(((ev.host or {}).get("preload") or {}).get("mapped") or [])
            elif isinstance(ev, Result):
                lat = ev.latency_us or {}
                if ev.valid and isinstance(lat.get("p50"), (int, float)) and lat["p50"] > 0:
                    p50s.setdefault(ev.variant, []).append(float(lat["p50"]))
                    opss.setdefault(ev.variant, []).append(float(ev.ops_per_s))
            elif isinstance(ev, SessionEnded):
                ended = ev
    except asyncio.CancelledError:      # stopped (the TUI's `x`, Ctrl-C): end the engine too
        await asyncio.shield(session.cancel())
        raise
    report = None
    if report_path is not None and report_path.is_file():
        try:
            report = json.loads(report_path.read_text())
        except (OSError, ValueError):
            report = None
    message = ended.message if ended else ""
    if ended and ended.outcome != "completed" and session.stderr_tail:
        message = f"{message} [{session.stderr_tail[-1]}]"
    return SessionData(arm=arm, trial=trial, outcome=ended.outcome if ended else "failed",
                       message=message, lines=list(session.raw_lines),
                       p50={v: median(x) for v, x in p50s.items()},
                       ops={v: median(x) for v, x in opss.items()}, report=report,
                       backend=backend, mapped=mapped, elapsed_s=time.monotonic() - t0,
                       samples=samples, t0_ns=t0_ns,
                       seed=_schedule_seed(env))


def _schedule_seed(env: dict[str, str]) -> int | None:
    """The seed of the session's slot schedule (interposer or CPU wait), None without one."""
    for name in ("GPUBENCH_INTERPOSE_DELAY_SEED", "GPUBENCH_CPU_DELAY_SEED"):
        if env.get(name):
            return int(env[name])
    return None


# ---------------------------------------------------------------------------------------------
# backend and delay mechanics


def detect_backend(python: str | None = None) -> str:
    code = ("import cupy,sys\n"
            "sys.exit(0 if cupy.cuda.runtime.getDeviceCount() > 0 else 1)")
    from scenarios.local import PACKAGES_DIR
    try:  # not from the current folder: a `cupy/` there would be imported and run
        proc = subprocess.run([python or sys.executable, "-c", code], capture_output=True,
                              timeout=120, cwd=PACKAGES_DIR)
    except (OSError, subprocess.TimeoutExpired):
        return "numpy-cpu"
    return "cupy" if proc.returncode == 0 else "numpy-cpu"


class Mechanism:
    """How a delay is injected on one backend, and what it really cost: both the interposer
    (GPU) and the engine's wait (CPU) time their delays and write a report, in every session
    of every arm (delay 0 in the baseline), read back through the arm's `report_env`."""

    ENV_KEYS = {"sync": "GPUBENCH_INTERPOSE_SYNC_DELAY_NS",
                "launch": "GPUBENCH_INTERPOSE_LAUNCH_DELAY_NS",
                "h2d": "GPUBENCH_INTERPOSE_H2D_DELAY_NS",
                "copy": "GPUBENCH_INTERPOSE_COPY_DELAY_NS"}

    def __init__(self, backend: str, opts: Options):
        self.backend = backend
        self.opts = opts
        self.preload: str | None = None
        if backend == "cupy":
            from gpubench import interposer
            try:
                self.preload = str(interposer.library_path())
            except interposer.InterposerBuildError as exc:
                raise SelftestError(str(exc)) from None
        self.placement = opts.delay_on               # may fall back after calibration
        self.cpu_base_ns = 0                         # CPU slots: every call's wait first

    @property
    def gpu(self) -> bool:
        return self.backend == "cupy"

    def delay_on(self, workload: str) -> str:
        """Where the delay sits, for the summary: the interposer's category, or the CPU wait."""
        return self.category(workload) if self.gpu else "GPUBENCH_CPU_DELAY_NS"

    def category(self, workload: str) -> str:
        if self.placement == "copy" and workload == "launch":
            return "launch"
        return self.placement

    @property
    def report_env(self) -> str:
        return "GPUBENCH_INTERPOSE_REPORT" if self.gpu else "GPUBENCH_CPU_DELAY_REPORT"

    def env_for(self, workload: str, delay_ns: int, slot_ns: int = 0,
                seed: int | None = None) -> dict[str, str]:
        # the baseline runs the delay too (at 0): arms differ by the delay only
        if not self.gpu:
            env, prefix = {"GPUBENCH_CPU_DELAY_NS": str(int(delay_ns))}, "GPUBENCH_CPU_DELAY"
            if self.cpu_base_ns:
                env["GPUBENCH_CPU_DELAY_BASE_NS"] = str(int(self.cpu_base_ns))
        else:
            env = {self.ENV_KEYS[self.category(workload)]: str(int(delay_ns))}
            prefix = "GPUBENCH_INTERPOSE_DELAY"
        if slot_ns:
            env[f"{prefix}_SLOT_NS"] = str(int(slot_ns))
            env[f"{prefix}_SEED"] = str(int(seed or 0))
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
        launches = sum(_cat(r, "launch")["calls"] for r in reports)
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
        return spent / calls if calls else float(delay_ns)


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


def _sync_calls_per_op(workload: str, reports: list[dict]) -> float:
    """Synchronise calls per op, from a roundtrip session (one kernel launch per op):
    normally 1; 2 if the runtime's cudaStreamSynchronize made two wrapped calls."""
    if workload != "roundtrip":
        return 1.0
    launches = sum(_cat(r, "launch")["calls"] for r in reports)
    syncs = sum(_cat(r, "sync")["calls"] for r in reports)
    ratio = syncs / launches if launches else 1.0
    return float(round(ratio)) if 0.8 <= ratio <= 3.2 else 1.0


def _cat(report: dict, name: str) -> dict:
    return (report.get("categories") or {}).get(name) or {"calls": 0, "delay_ns_total": 0,
                                                           "delayed_calls": 0}


def _cats_for(cat: str) -> tuple[str, ...]:
    return ("h2d", "d2h", "d2d", "copy") if cat == "copy" else (cat,)


def _delayed_calls(report: dict, cat: str) -> int:
    """Calls that really were delayed (with a slot schedule, those in on-slots)."""
    return sum(_cat(report, c).get("delayed_calls", _cat(report, c)["calls"])
               for c in _cats_for(cat))


def _delayed_ns(report: dict, cat: str) -> int:
    return sum(_cat(report, c)["delay_ns_total"] for c in _cats_for(cat))


# ---------------------------------------------------------------------------------------------
# the slot schedule: slot_on (engine/cpu_delay.py, imported above) is interpose.c's delay_on


def classify_samples(samples: list[dict], t0_ns: int, slot_ns: int) -> list[tuple[dict, int]]:
    """(sample, slot index) for each sample wholly inside one slot (sample_span_ns): those
    that may straddle a slot boundary are dropped."""
    out = []
    for smp in samples:
        start, end = sample_span_ns(smp, t0_ns)
        if start // slot_ns == end // slot_ns:
            out.append((smp, start // slot_ns))
    return out


# ---------------------------------------------------------------------------------------------
# the run


class Selftest:
    def __init__(self, opts: Options, progress: Callable[[str], None] | None = None):
        self.opts = opts
        self.progress = progress or (lambda m: print(m, file=sys.stderr, flush=True))
        self.sessions: list[SessionData] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="gpubench-selftest-"))
        self._n = 0

    async def _session(self, arm: Arm, trial: int, backend: str) -> SessionData:
        self._n += 1
        report = self.tmp / f"r{self._n}.json" if arm.report_env else None
        args = engine_args(self.opts, backend, arm.workload)
        data = await run_session(arm, trial, args, report, self.opts.python)
        if data.outcome != "completed":
            raise SelftestError(f"engine session {arm.key} failed: {data.outcome}: {data.message}")
        if not data.p50:
            raise SelftestError(f"engine session {arm.key} produced no valid result")
        if backend == "cupy" and data.backend != "cupy":
            raise SelftestError(f"asked for the GPU but the engine ran on {data.backend}")
        if arm.preload and not any(os.path.realpath(m) == os.path.realpath(arm.preload)
                                   for m in data.mapped):
            raise SelftestError(f"the interposer {arm.preload} is not mapped in the engine "
                                f"(hello host.preload.mapped: {data.mapped})")
        if arm.preload and (data.report is None or not data.report.get("counts")):
            raise SelftestError("the interposer wrote no report: it caught no CUDA call")
        if not arm.preload and arm.report_env and not (data.report or {}).get("calls"):
            raise SelftestError(f"engine session {arm.key} wrote no delay report "
                                f"({arm.report_env}): is the engine older than this gpubench?")
        self.sessions.append(data)
        return data

    async def run(self) -> dict:
        opts = self.opts
        t_start = time.monotonic()
        backend = opts.backend
        if backend == "auto":
            backend = detect_backend(opts.python)
            self.progress(f"selftest: backend {backend}")
        mech = Mechanism(backend, opts)
        design = "slots" if opts.design == "auto" else opts.design
        if design == "slots" and not mech.gpu:
            mech.cpu_base_ns = CPU_BASE_WAIT_NS
        for w in opts.workloads:
            if w not in WORKLOAD_VARIANTS:
                raise SelftestError(f"selftest workloads are roundtrip and launch, not {w!r}")
        defaults = SESSION_DEFAULTS if design == "sessions" else \
            SLOT_DEFAULTS if mech.gpu else CPU_SLOT_DEFAULTS
        cpu_sessions = design == "sessions" and not mech.gpu
        if opts.levels is None:
            opts.levels = CPU_SESSION_LEVELS if cpu_sessions else DEFAULT_LEVELS
        for name, value in defaults.items():
            if getattr(opts, name) is None:
                setattr(opts, name, value)
        self.ci_confidence = 0.95 if mech.gpu else \
            family_confidence(len(opts.levels) * len(opts.workloads))
        # GPU: the issue's ±0.5 pp
        tol = opts.tolerance_pp if opts.tolerance_pp is not None else \
            0.5 if mech.gpu else CPU_SESSION_TOLERANCE_PP if cpu_sessions else CPU_SLOT_TOLERANCE_PP
        if design == "slots":
            rows, arms, by_arm, order, calibration, skipped = await self._run_slots(
                mech, backend, tol, t_start)
        else:
            rows, arms, by_arm, order, calibration, skipped = await self._run_sessions(
                mech, backend, tol, t_start)
        elapsed = time.monotonic() - t_start
        primary_rows = [r for r in rows if r["primary"]]
        resolution = {}
        for w in opts.workloads:
            aa = next((r for r in primary_rows if r["workload"] == w and r["arm"] == "aa"), None)
            resolved = [r["injected_pct"] for r in primary_rows
                        if r["workload"] == w and r["arm"] != "aa" and r["ci_low"] is not None
                        and r["ci_low"] > 0]
            resolution[w] = {
                "aa_ci_half_width_pp": aa["ci_half_width"] if aa else None,
                "smallest_injected_resolved_pct": min(resolved) if resolved else None,
                "median_ci_half_width_pp": median([r["ci_half_width"] for r in primary_rows
                                                    if r["workload"] == w
                                                    and r["ci_half_width"] is not None]),
            }
        device = next((json.loads(ln).get("device") for s in self.sessions for ln in s.lines
                       if '"type":"hello"' in ln), None)
        metric = (f"median over slot pairs of on-slot p50 / off-slot p50 (engine samples every "
                  f"{opts.sample_interval:g} s, delay toggled in {opts.slot_s:g} s slots within "
                  "each process)" if design == "slots" else
                  "median over repeats of per-op latency p50, one value per engine session")
        summary = {
            "ok": all(r["ok"] for r in primary_rows) and bool(primary_rows),
            "backend": backend, "device": _device_brief(device), "design": design,
            "metric": metric,
            "tolerance_pp": tol, "targets_pct": list(opts.levels), "levels_pct": list(opts.levels),
            "ci_confidence_pct": round(self.ci_confidence * 100, 2),
            "trials_per_arm": opts.trials, "sessions": len(self.sessions),
            "elapsed_s": round(elapsed, 1),
            "plan": {"duration_s": opts.duration, "warmup_s": opts.warmup, "repeats": opts.repeats,
                     "calibration_trials": opts.calibration_trials, "seed": opts.seed,
                     "roundtrip_size": opts.roundtrip_size, "slot_s": opts.slot_s,
                     "sample_interval_s": opts.sample_interval,
                     "delay_on": {w: mech.delay_on(w) for w in opts.workloads},
                     "mechanism": "interposer (LD_PRELOAD)" if mech.gpu else "engine busy-wait",
                     "interposer": mech.preload},
            "calibration": calibration, "skipped": skipped, "rows": rows,
            "resolution": resolution,
        }
        summary = finite(summary)
        if opts.save:
            summary["saved"] = self._save(summary, arms, by_arm, order)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return summary

    async def _blocks(self, arms: list[Arm], backend: str, t_start: float,
                      prepare: Callable[[Arm, int], Arm] | None = None):
        """Every arm once per block, blocks of seeded random order."""
        rng = random.Random(self.opts.seed)
        order: list[tuple[str, int]] = []
        by_arm: dict[str, list[SessionData]] = {a.key: [] for a in arms}
        for trial in range(self.opts.trials):
            block = list(arms)
            rng.shuffle(block)
            for arm in block:
                run_arm = prepare(arm, trial) if prepare else arm
                by_arm[arm.key].append(await self._session(run_arm, trial, backend))
                order.append((arm.key, trial))
            self.progress(f"selftest: block {trial + 1}/{self.opts.trials} done "
                          f"({time.monotonic() - t_start:.0f} s)")
        return by_arm, order

    # ---- design "slots": the delay toggles within each session -------------------------------
    async def _run_slots(self, mech: Mechanism, backend: str, tol: float, t_start: float):
        opts = self.opts
        slot_ns = int(opts.slot_s * 1e9)
        calibration: dict[str, dict] = {}
        primary: dict[str, str] = {}
        sync_per_op: dict[str, float] = {}
        # the roundtrip first: its syncs per launch tell how many sync calls an op makes
        workloads = sorted(opts.workloads, key=lambda w: w != "roundtrip")
        for w in workloads:
            runs = [await self._session(mech.arm(w, "calibration", None, 0), i, backend)
                    for i in range(max(1, opts.calibration_trials))]
            primary[w] = WORKLOAD_VARIANTS[w] or next(iter(runs[0].p50))
            reports = [r.report for r in runs if r.report]
            if mech.gpu and mech.placement == "sync" and \
                    not sum(_cat(r, "sync")["calls"] for r in reports):
                mech.placement = "launch"   # the runtime's synchronise was not seen: fall back
                self.progress("selftest: no cuStreamSynchronize/cuCtxSynchronize seen; "
                              "delaying the launch instead")
            base_p50 = median([r.p50[primary[w]] for r in runs])
            k = mech.calls_per_op(w, reports)
            if mech.gpu and mech.category(w) == "sync":
                k = sync_per_op.setdefault("k", _sync_calls_per_op(w, reports))
            calibration[w] = {"variant": primary[w], "baseline_p50_us": base_p50,
                              "calls_per_op": k, "delay_on": mech.delay_on(w),
                              "interposer_counts": _sum_counts(reports)}
            self.progress(f"selftest: calibrated {w}/{primary[w]}: p50 {base_p50:.3f} us; delay "
                          f"on {mech.delay_on(w)}")
        arms: list[Arm] = []
        for w in opts.workloads:
            cal = calibration[w]
            arms.append(mech.arm(w, "aa", 0.0, 0))
            for level in opts.levels:
                delay = level / 100 * cal["baseline_p50_us"] * 1000 / cal["calls_per_op"]
                arms.append(mech.arm(w, f"L{level:g}", level, int(round(delay))))
        seeds = random.Random(opts.seed + 1)

        def prepare(arm: Arm, trial: int) -> Arm:
            env = mech.env_for(arm.workload, arm.delay_ns, slot_ns, seeds.getrandbits(63))
            return dataclasses.replace(arm, env=env)
        by_arm, order = await self._blocks(arms, backend, t_start, prepare)
        rows = []
        for arm in arms:
            w = arm.workload
            runs = by_arm[arm.key]
            reports = [s.report for s in runs if s.report]
            k = calibration[w]["calls_per_op"]
            spent = mech.spent_per_call_ns(w, reports, arm.delay_ns) if arm.delay_ns else 0.0
            variant = primary[w]
            lat_pairs, ops_pairs, truths, dropped = [], [], [], 0
            for sess in runs:
                smp = [x for x in sess.samples if x["variant"] == variant]
                if sess.t0_ns is None or sess.seed is None or not smp:
                    continue
                cls = classify_samples(smp, sess.t0_ns, slot_ns)
                dropped += len(smp) - len(cls)
                pairs = slot_pairs(cls, sess.seed, "p50")
                if not pairs:
                    continue
                lat_pairs.append([on / off for on, off in pairs])
                ops_pairs.append(pair_ratios(cls, sess.seed, "ops_per_s"))
                # the truth of each pair: what the delay cost per op (as this session's
                # delay reported it) over that pair's off-slot p50. The measurement is the
                # median over the arm's pairs, so the truth is too: a mean over sessions
                # differs from it by several pp at 200 % when sessions' levels differ by 10 %
                sess_spent = mech.spent_per_call_ns(w, [sess.report], arm.delay_ns) \
                    if sess.report and arm.delay_ns else spent
                truths += [k * sess_spent / (off * 1000) * 100 for _, off in pairs]
            if sum(len(x) for x in lat_pairs) < 2:
                continue
            injected_pct = median(truths)
            key = f"selftest/{w}/{variant}/{arm.name}"
            common = dict(injected_pct=injected_pct, targets=tuple(opts.levels), tol=tol,
                          aa=arm.name == "aa", seed=opts.seed, n_boot=opts.n_boot,
                          # the CPU self-test runs where others load the machine
                          shared_machine=not mech.gpu, confidence=self.ci_confidence)
            row = judge_pairs(lat_pairs, key=key, **common)
            ops_row = judge_pairs(ops_pairs, key=key + "/ops", higher_is_better=True, **common)
            row.update({"workload": w, "variant": variant, "arm": arm.name,
                        "level": arm.level, "delay_ns": arm.delay_ns,
                        "delayed_calls_per_op": k, "spent_ns_per_call": spent,
                        "injected_ns_per_op": k * spent, "primary": True,
                        "samples_dropped": dropped, "sessions": len(runs),
                        "ops_per_s": {"measured_pct": ops_row["measured_pct"],
                                      "ci_low": ops_row["ci_low"],
                                      "ci_high": ops_row["ci_high"]},
                        "interposer_counts": _sum_counts(reports)})
            rows.append(row)
        return rows, arms, by_arm, order, calibration, []

    # ---- design "sessions": one delay per session ---------------------------------------------
    async def _run_sessions(self, mech: Mechanism, backend: str, tol: float, t_start: float):
        opts = self.opts
        primary: dict[str, str] = {}
        calibration: dict[str, dict] = {}
        for w in opts.workloads:
            base_arm = mech.arm(w, "calibration-base", None, 0)
            base_runs = [await self._session(base_arm, i, backend)
                         for i in range(opts.calibration_trials)]
            primary[w] = WORKLOAD_VARIANTS[w] or next(iter(base_runs[0].p50))
            base_p50 = median([s.p50[primary[w]] for s in base_runs])
            k = mech.calls_per_op(w, [s.report for s in base_runs if s.report])
            if not (k > 0):
                raise SelftestError(f"{w}: the interposer saw no delayed calls "
                                    f"(category {mech.category(w)}): is the path hooked?")
            cal_delay = CALIBRATION_PCT / 100 * base_p50 * 1000 / k
            cal_arm = mech.arm(w, "calibration-delay", None, int(cal_delay))
            cal_runs = [await self._session(cal_arm, i, backend)
                        for i in range(opts.calibration_trials)]
            cal_p50 = median([s.p50[primary[w]] for s in cal_runs])
            added_ns = (cal_p50 - base_p50) * 1000
            spent = mech.spent_per_call_ns(w, [s.report for s in cal_runs if s.report],
                                           int(cal_delay))
            slope = added_ns / (k * spent) if spent else math.nan
            calibration[w] = {"variant": primary[w], "baseline_p50_us": base_p50,
                              "calls_per_op": k, "calibration_delay_ns": int(cal_delay),
                              "calibration_p50_us": cal_p50, "added_ns_per_op": added_ns,
                              "spent_ns_per_call": spent, "slope": slope}
            self.progress(f"selftest: calibrated {w}/{primary[w]}: p50 {base_p50:.3f} us, "
                          f"{k:.2f} delayed call(s)/op, delay {cal_delay:.0f} ns (spent "
                          f"{spent:.0f} ns) added {added_ns:.0f} ns/op (slope {slope:.3f})")
        arms: list[Arm] = []
        skipped: list[dict] = []
        for w in opts.workloads:
            cal = calibration[w]
            arms.append(mech.arm(w, "baseline", None, 0))
            arms.append(mech.arm(w, "aa", 0.0, 0))
            for level in opts.levels:
                delay = level / 100 * cal["baseline_p50_us"] * 1000 / cal["calls_per_op"]
                if delay < 1:
                    skipped.append({"workload": w, "level": level,
                                    "reason": f"{level:g} % of {cal['baseline_p50_us'] * 1000:.0f}"
                                              " ns is less than 1 ns"})
                    continue
                arms.append(mech.arm(w, f"L{level:g}", level, int(round(delay))))
        by_arm, order = await self._blocks(arms, backend, t_start)
        targets = tuple(opts.levels)
        rows = []
        for w in opts.workloads:
            base_runs = by_arm[f"{w}/baseline"]
            for variant in [primary[w]]:
                base_vals = [s.p50[variant] for s in base_runs if variant in s.p50]
                base_ops = [s.ops[variant] for s in base_runs if variant in s.ops]
                if not base_vals:
                    continue
                base_med_us = median(base_vals)
                for arm in arms:
                    if arm.workload != w or arm.name == "baseline":
                        continue
                    runs = by_arm[arm.key]
                    reports = [s.report for s in runs if s.report]
                    k = mech.calls_per_op(w, reports) if arm.delay_ns else 0.0
                    spent = mech.spent_per_call_ns(w, reports, arm.delay_ns) if arm.delay_ns else 0.0
                    injected_pct = k * spent / (base_med_us * 1000) * 100
                    vals = [s.p50[variant] for s in runs if variant in s.p50]
                    ops = [s.ops[variant] for s in runs if variant in s.ops]
                    key = f"selftest/{w}/{variant}/{arm.name}"
                    row = judge_arm(base_vals, vals, injected_pct=injected_pct, targets=targets,
                                    tol=tol, aa=arm.name == "aa", seed=opts.seed, key=key,
                                    n_boot=opts.n_boot, shared_machine=not mech.gpu,
                                    confidence=self.ci_confidence)
                    ops_row = judge_arm(base_ops, ops, injected_pct=injected_pct, targets=targets,
                                        tol=tol, aa=arm.name == "aa", seed=opts.seed,
                                        key=key + "/ops", n_boot=opts.n_boot,
                                        higher_is_better=True)
                    row.update({"workload": w, "variant": variant, "arm": arm.name,
                                "level": arm.level, "delay_ns": arm.delay_ns,
                                "delayed_calls_per_op": k, "spent_ns_per_call": spent,
                                "injected_ns_per_op": k * spent,
                                "primary": variant == primary[w], "sessions": len(runs),
                                "ops_per_s": {"measured_pct": ops_row["measured_pct"],
                                              "ci_low": ops_row["ci_low"],
                                              "ci_high": ops_row["ci_high"],
                                              "base_cv_pct": ops_row["base_cv_pct"]}})
                    if mech.gpu and reports:
                        row["interposer_counts"] = _sum_counts(reports)
                    rows.append(row)
        return rows, arms, by_arm, order, calibration, skipped

    def _save(self, summary: dict, arms: list[Arm], by_arm: dict[str, list[SessionData]],
              order: list[tuple[str, int]]) -> list[str]:
        from results.document import SessionRecord, archive_lines, build_document
        from results.store import Store
        data_dir = self.opts.data_dir
        if data_dir is None:
            from scenarios.config import load_config
            data_dir = load_config().data_dir
        store = Store(data_dir)
        group = {"id": f"selftest-{secrets.token_hex(4)}", "seed": self.opts.seed,
                 "order": [list(o) for o in order], "scenarios": [f"selftest-{a.workload}-{a.name}"
                                                                   for a in arms]}
        ids = []
        for arm in arms:
            recs = [SessionRecord(lines=s.lines, outcome=s.outcome, message=s.message,
                                  trial=s.trial) for s in by_arm[arm.key]]
            name = f"selftest-{arm.workload}-{arm.name}"
            scenario = {"name": name, "title": f"self-test {arm.workload} {arm.name}",
                        "launcher": "local", "host": "local", "target": "none",
                        # slots: each arm's own off-slots are its baseline
                        "baseline": f"selftest-{arm.workload}-baseline"
                        if arm.name != "baseline" and f"{arm.workload}/baseline" in by_arm
                        else None,
                        "details": {"selftest_arm": arm.name, "level_pct": arm.level,
                                    "delay_ns": arm.delay_ns, "env": arm.env,
                                    "preload": arm.preload}}
            doc = build_document(recs, scenario, group=group, label="selftest",
                                 notes="gpubench selftest: injected-overhead arm")
            doc["selftest"] = summary
            store.save(doc, raw_lines=archive_lines(recs))
            ids.append(doc["id"])
        return ids


def _sum_counts(reports: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in reports:
        for k, v in (r.get("counts") or {}).items():
            if v:
                out[k] = out.get(k, 0) + int(v)
    return out


def _device_brief(device: dict | None) -> dict:
    if not device:
        return {}
    return {k: device.get(k) for k in ("name", "driver", "cuda_driver", "cuda_runtime", "backend")
            if device.get(k) is not None}


# ---------------------------------------------------------------------------------------------
# text output


def format_summary(s: dict) -> str:
    out = []
    dev = s.get("device") or {}
    out.append(f"gpubench selftest on {s['backend']} ({dev.get('name', '?')}, driver "
               f"{dev.get('driver', '-')}): {s['trials_per_arm']} trials per arm, "
               f"{s['sessions']} engine sessions, {s['elapsed_s']:.0f} s")
    out.append(f"metric: {s['metric']}; delay via {s['plan']['mechanism']}; "
               f"tolerance ±{s['tolerance_pp']:g} pp")
    out.append(f"design: {s.get('design')}")
    conf = s.get("ci_confidence_pct", 95.0)
    if conf != 95.0:
        out.append(f"CIs: {conf:g} % each, 95 % for all injected arms at once (Bonferroni)")
    hdr = (f"{'workload/variant':<24}{'arm':<6}{'n off/on':>10}{'injected':>9}{'measured':>10}"
           f"{f'{conf:g}% CI':>19}{'error':>8}  "
           f"{'verdicts vs ' + '/'.join(f'{t:g}%' for t in s['targets_pct']):<28}ok")
    out.append(hdr)
    for r in s["rows"]:
        ci = (f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]" if r["ci_low"] is not None else EMPTY)
        v = " ".join(f"{x['verdict'][:4]}{'' if x['ok'] else '!'}" for x in r["verdicts"].values())
        tag = "" if r["primary"] else " (info)"
        n = f"{r['n_base']}/{r['n_cand']}"
        out.append(f"{r['workload'] + '/' + r['variant']:<24}{r['arm']:<6}{n:>10}"
                   f"{r['injected_pct']:>8.2f}%{r['measured_pct']:>+9.2f}%{ci:>19}"
                   f"{r['error_pp']:>+7.2f}  {v:<28}{'yes' if r['ok'] else 'NO'}{tag}")
    for w, res in s["resolution"].items():
        hw = res["aa_ci_half_width_pp"]
        out.append(f"{w}: A/A CI half-width {hw:.2f} pp" if hw is not None else f"{w}: {EMPTY}")
        if res["smallest_injected_resolved_pct"] is not None:
            out[-1] += f"; smallest injected overhead resolved (CI excludes 0): " \
                       f"{res['smallest_injected_resolved_pct']:.2f} %"
    for sk in s.get("skipped") or []:
        out.append(f"skipped {sk['workload']} {sk['level']:g} %: {sk['reason']}")
    if not any(r["primary"] for r in s["rows"]):
        out.append("no injected arm could run: see 'skipped'")
    out.append("SELFTEST " + ("PASSED" if s["ok"] else "FAILED") +
               (f" — saved {len(s['saved'])} runs" if s.get("saved") else ""))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# CLI


def _floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of numbers: {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError("levels must be positive percentages")
    return vals


def register(subparsers) -> None:
    from scenarios import limits
    from scenarios.limits import cli_number
    p = subparsers.add_parser(
        "selftest", help="inject known overheads (1/5/10 %%) and prove they are measured",
        description="Measure a baseline, inject delays sized to 1, 5 and 10 %% overhead on the "
                    "roundtrip and launch workloads (interposer on the GPU, engine busy-wait on "
                    "the CPU), run interleaved trials and check every measured overhead "
                    "against the injected one.")
    p.add_argument("--backend", default="auto", choices=("auto", "cupy", "numpy-cpu"))
    p.add_argument("--workloads", default="roundtrip,launch")
    p.add_argument("--levels", type=_floats, default=None,
                   help="injected overheads and targets in %% (default 1,5,10; 50,100,200 for "
                        "the CPU's sessions design)")
    p.add_argument("--design", default="auto", choices=("auto", "slots", "sessions"),
                   help="slots (default): the delay toggles on and off within each engine "
                        "session; sessions: one delay per session")
    p.add_argument("--trials", type=cli_number(int, limits.TRIALS), default=None,
                   help="engine sessions per arm (default 4 slots, 10 sessions)")
    p.add_argument("--calibration-trials", type=int, default=None,
                   help="sessions per calibration point (default 1 slots, 3 sessions)")
    p.add_argument("--duration", type=cli_number(float, limits.DURATION_S), default=None,
                   help="seconds per window (default 3.0 slots, 2.0 slots on the CPU, "
                        "0.5 sessions)")
    p.add_argument("--warmup", type=cli_number(float, limits.WARMUP_S), default=None)
    p.add_argument("--repeats", type=cli_number(int, limits.REPEATS), default=None)
    p.add_argument("--slot", type=float, default=0.25,
                   help="slots: length of one on or off slot in s (default 0.25)")
    p.add_argument("--sample-interval", type=float, default=None,
                   help="engine sample interval in s (default 0.05 slots, 0.1 sessions)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance-pp", type=float, default=None,
                   help="allowed |measured - injected| (default 0.5 on the GPU, 1 on the CPU, "
                        "15 for the CPU's sessions design)")
    p.add_argument("--roundtrip-size", default="64KiB")
    p.add_argument("--delay-on", default="sync", choices=DELAY_PLACEMENTS,
                   help="GPU: the call that carries the delay (default sync: after the stream "
                        "synchronise returns)")
    p.add_argument("--json", dest="json_out", default=None, help="also write the summary here")
    p.add_argument("--no-save", action="store_true", help="do not save the arms in the store")
    p.set_defaults(func=main)


def options_from_args(args, config=None) -> Options:
    workloads = tuple(w.strip() for w in args.workloads.split(",") if w.strip())
    return Options(backend=args.backend, workloads=workloads,
                   levels=tuple(args.levels) if args.levels else None,
                   design=args.design,
                   trials=max(2, args.trials) if args.trials is not None else None,
                   calibration_trials=max(1, args.calibration_trials)
                   if args.calibration_trials is not None else None,
                   duration=args.duration, warmup=args.warmup,
                   repeats=max(1, args.repeats) if args.repeats is not None else None,
                   slot_s=args.slot, sample_interval=args.sample_interval,
                   seed=args.seed, tolerance_pp=args.tolerance_pp,
                   roundtrip_size=args.roundtrip_size, delay_on=args.delay_on,
                   save=not args.no_save,
                   data_dir=getattr(config, "data_dir", None) if config is not None else None)


def main(args, config=None) -> int:
    try:
        opts = options_from_args(args, config)
        summary = asyncio.run(Selftest(opts).run())
    except SelftestError as exc:
        print(f"gpubench selftest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpubench selftest: interrupted", file=sys.stderr)
        return 130
    print(format_summary(summary))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=1, default=str))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":  # python -m gpubench.selftest ...
    _p = argparse.ArgumentParser(prog="python -m gpubench.selftest")
    register(_p.add_subparsers(dest="cmd"))
    _a = _p.parse_args(["selftest", *sys.argv[1:]])
    sys.exit(_a.func(_a, None))
