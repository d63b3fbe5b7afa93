"""One engine session of an arm through the scenarios layer (LocalLauncher), read into the
figures the self-test judges: per-variant p50 and ops/s, the samples, the delay's report."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine import cpu_delay
from engine.engine_args import EngineArgs
from engine.vocabulary import COMPLETED
from gpubench import interposer
from results.stats import median
from scenarios.base import LaunchRequest
from scenarios.collect import collect
from scenarios.events import Sample
from scenarios.local import PACKAGES_DIR, LocalLauncher

from .options import WORKLOAD_VARIANTS, Arm, Options
from .samples import engine_start_bound, sample_record


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
    device: dict | None = None        # the hello's device


def engine_args(opts: Options, backend: str, workload: str) -> EngineArgs:
    """One workload of an arm's engine session, as the options ask."""
    only_primary = {"launch_modes": (WORKLOAD_VARIANTS["launch"],)} if workload == "launch" else {}
    return EngineArgs(sample_interval=opts.sample_interval, backend=backend,
                      workloads=(workload,), duration=opts.duration, warmup=opts.warmup,
                      repeats=opts.repeats, telemetry_interval=0,
                      roundtrip_size=opts.roundtrip_size,
                      min_window=min(0.5, opts.duration * 0.8), seed=opts.seed,
                      # the delay slots move the median inside a window on purpose, and the
                      # self-test judges p50s, which a stall does not move
                      stall_limit=0, drift_limit=0, **only_primary)


async def run_session(arm: Arm, trial: int, args: EngineArgs, report_path: Path | None,
                      python: str | None = None) -> SessionData:
    env = dict(arm.env)
    if report_path is not None and arm.report_env:
        env[arm.report_env] = str(report_path)
    t0 = time.monotonic()
    session = await LocalLauncher(python).start(LaunchRequest(
        engine_args=tuple(args.to_argv()), env=env, preload=arm.preload,
        label=f"selftest {arm.key}"))
    samples: list[dict] = []
    t0_ns: int | None = None

    def on_event(ev) -> None:
        nonlocal t0_ns
        t0_ns = engine_start_bound(ev, t0_ns)
        if isinstance(ev, Sample):
            smp = sample_record(ev)
            if smp is not None:
                samples.append(smp)
    got = await collect(session, on_event)   # cancelled (the TUI's `x`, Ctrl-C): engine ended too
    p50s: dict[str, list[float]] = {}
    opss: dict[str, list[float]] = {}
    for res in got.results:
        lat = res.latency_us or {}
        if res.valid and isinstance(lat.get("p50"), (int, float)) and lat["p50"] > 0:
            p50s.setdefault(res.variant, []).append(float(lat["p50"]))
            opss.setdefault(res.variant, []).append(float(res.ops_per_s))
    hello = got.hello.data if got.hello else {}
    report = None
    if report_path is not None and report_path.is_file():
        try:
            report = json.loads(report_path.read_text())
        except (OSError, ValueError):
            report = None
    message = got.message
    if got.outcome != COMPLETED and got.stderr_tail:
        message = f"{message} [{got.stderr_tail[-1]}]"
    return SessionData(arm=arm, trial=trial, outcome=got.outcome, message=message,
                       lines=got.lines,
                       p50={v: median(x) for v, x in p50s.items()},
                       ops={v: median(x) for v, x in opss.items()}, report=report,
                       backend=hello.get("backend"),
                       mapped=list(((hello.get("host") or {}).get("preload") or {}).get("mapped")
                                   or []),
                       elapsed_s=time.monotonic() - t0, samples=samples, t0_ns=t0_ns,
                       seed=_schedule_seed(env), device=hello.get("device"))


def _schedule_seed(env: dict[str, str]) -> int | None:
    """The seed of the session's slot schedule (interposer or CPU wait), None without one."""
    for name in (interposer.ENV_SEED, cpu_delay.SEED_ENV):
        if env.get(name):
            return int(env[name])
    return None


def detect_backend(python: str | None = None) -> str:
    """cupy when that Python sees a GPU through CuPy, else numpy-cpu."""
    code = ("import cupy,sys\n"
            "sys.exit(0 if cupy.cuda.runtime.getDeviceCount() > 0 else 1)")
    try:  # not from the current folder: a `cupy/` there would be imported and run
        proc = subprocess.run([python or sys.executable, "-c", code], capture_output=True,
                              timeout=120, cwd=PACKAGES_DIR)
    except (OSError, subprocess.TimeoutExpired):
        return "numpy-cpu"
    return "cupy" if proc.returncode == 0 else "numpy-cpu"
