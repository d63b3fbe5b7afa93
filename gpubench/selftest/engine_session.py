"""One engine session of an arm through the scenarios layer (LocalLauncher), read into the
figures the self-test judges: per-variant p50 and ops/s, the samples, the delay's report."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scenarios.base import LaunchRequest
from scenarios.events import Hello, Result, Sample, SessionEnded
from scenarios.local import PACKAGES_DIR, LocalLauncher

from .judging import _median
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


async def run_session(arm: Arm, trial: int, args: list[str], report_path: Path | None,
                      python: str | None = None) -> SessionData:
    env = dict(arm.env)
    if report_path is not None and arm.report_env:
        env[arm.report_env] = str(report_path)
    t0 = time.monotonic()
    session = await LocalLauncher(python).start(LaunchRequest(
        engine_args=tuple(args), env=env, preload=arm.preload, label=f"selftest {arm.key}"))
    p50s: dict[str, list[float]] = {}
    opss: dict[str, list[float]] = {}
    samples: list[dict] = []
    backend, device, mapped, ended = None, None, [], None
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
                device = ev.data.get("device")
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
                       p50={v: _median(x) for v, x in p50s.items()},
                       ops={v: _median(x) for v, x in opss.items()}, report=report,
                       backend=backend, mapped=mapped, elapsed_s=time.monotonic() - t0,
                       samples=samples, t0_ns=t0_ns, seed=_schedule_seed(env), device=device)


def _schedule_seed(env: dict[str, str]) -> int | None:
    """The seed of the session's slot schedule (interposer or CPU wait), None without one."""
    for name in ("GPUBENCH_INTERPOSE_DELAY_SEED", "GPUBENCH_CPU_DELAY_SEED"):
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
