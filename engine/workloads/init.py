"""init: process start → CUDA context ready → first kernel done, N processes at once.

For each N in --init-procs (variants n1, n8, n32), each repeat starts N children
`python -m engine --init-child` back to back, as close to the same instant as
Popen allows. Each child reports, on the system-wide monotonic clock, when its
`__main__` began, when its CUDA context was ready (numpy imported, for the CPU)
and when its first kernel had finished. One op is one child; its latency is
spawn → first kernel done, measured from the parent's timestamp just before
that child's Popen. The window and CV rules do not apply (a batch of process
starts is not a steady-state loop); phase medians go into `params`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..measure import Prepared

CHILD_TIMEOUT_S = 180.0
ENGINE_PARENT = str(Path(__file__).resolve().parent.parent.parent)


def _spawn(backend_name: str, ordinal: int | None, env: dict) -> tuple[int, subprocess.Popen]:
    cmd = [sys.executable, "-m", "engine", "--init-child", "--backend", backend_name]
    if ordinal is not None:
        cmd += ["--device", str(ordinal)]
    t = time.monotonic_ns()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env, cwd=ENGINE_PARENT)
    return t, proc


def _batch(runner, backend, n: int) -> tuple[list[dict], list[str], int, int]:
    """Start n children at once; (records, failures, first spawn ns, last done ns)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ENGINE_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    procs = [_spawn(backend.name, backend.ordinal, env) for _ in range(n)]
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while any(p.poll() is None for _, p in procs):
        if runner.stop or time.monotonic() > deadline:
            for _, p in procs:
                if p.poll() is None:
                    p.kill()
            break
        time.sleep(0.002)
    records, failures = [], []
    for t_spawn, p in procs:
        out, err = p.communicate()
        try:
            rec = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            rec = {"error": (err.decode(errors="replace").strip().splitlines() or
                             [f"exit code {p.returncode}"])[-1]}
        if "error" in rec or "t_first_ns" not in rec:
            failures.append(rec.get("error", "no output"))
            continue
        rec["t_spawn_ns"] = t_spawn
        records.append(rec)
    first = procs[0][0] if procs else 0
    last = max((r["t_first_ns"] for r in records), default=first)
    return records, failures, first, last


def run(runner, backend, variant) -> bool:
    """Warm-up (one child, unrecorded), then one batch per repeat. False if all failed."""
    n = int(variant.params["n"])
    plan, emit = runner.plan, runner.emitter.emit
    if plan.warmup > 0 and not runner.stop:
        _batch(runner, backend, 1)  # fills the kernel cache and the page cache
    ok = True
    for repeat in range(plan.repeats):
        if runner.stop:
            break
        records, failures, first, last = _batch(runner, backend, n)
        if failures and not records and not runner.stop:
            emit("error", code="workload_failed", fatal=False,
                 message=f"init {variant.name}: every child failed: {failures[0]}")
            ok = False
            continue
        lat = np.array([r["t_first_ns"] - r["t_spawn_ns"] for r in records], dtype=np.int64)
        phase = {
            "spawn_to_main_ms_p50": _p50_ms([r["t_main_ns"] - r["t_spawn_ns"] for r in records]),
            "spawn_to_ready_ms_p50": _p50_ms([r["t_ready_ns"] - r["t_spawn_ns"] for r in records]),
            "ready_to_first_kernel_ms_p50": _p50_ms([r["t_first_ns"] - r["t_ready_ns"] for r in records]),
            "processes": n, "failed": len(failures),
        }
        prep = Prepared(op=lambda: None, timing="monotonic_ns across processes", params=phase)
        if records:
            emit("sample", workload="init", variant=variant.name, repeat=repeat,
                 interval_ops=len(records), ops_per_s=len(records) / max((last - first) * 1e-9, 1e-9),
                 latency_us=_stats(lat))
        runner.emit_result(variant, repeat, lat, prep, first, last,
                           interrupted=bool(runner.stop), check_window=False,
                           extra_reasons=[f"{len(failures)} of {n} children failed"] if failures else None)
    return ok


def _p50_ms(values: list[int]) -> float | None:
    return round(float(np.median(values)) / 1e6, 3) if values else None


def _stats(lat: np.ndarray) -> dict:
    from ..timing import latency_stats
    return latency_stats(lat)
