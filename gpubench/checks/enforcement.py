"""Is a limit enforced? The memory and compute checks, each a driver probe process (driver.py)
under the proxy, judged against the configured limit:

  memory   every allocation path (memory_probe.py) in steps until refused; each path judged
           against the configured limit (memory_paths.py), the check as its worst path.
  compute  launch throughput through cuLaunchKernel AND cuLaunchKernelEx (and GEMM through
           CuPy on a GPU) with the limit against the same workload unlimited; the achieved
           fraction against the configured one, within a stated tolerance. A path that is not
           slowed (an unhooked entry point) is caught.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from results.check_verdicts import ENFORCED, NOT_APPLICABLE, NOT_ENFORCED
from results.format import fmt_size

from .memory_paths import judge_memory_path, memory_observed, memory_verdict
from .memory_probe import CUBLAS_PATH, MEMORY_PATHS
from .proxy import Limits, Proxy
from .settings import Settings

MEMORY_SLACK_STEPS = 1            # memory: ceiling may pass the limit by under one step


def run_probe(proxy: Proxy | None, args: list[str], settings: Settings,
              timeout: float = 300) -> dict:
    """One probe process, under the proxy (or bare when proxy is None)."""
    env = proxy.process_env() if proxy is not None else dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])   # the checkout: gpubench importable
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    cmd = [settings.python or sys.executable, "-m", "gpubench.checks", "--probe", *args,
           "--libcuda", settings.libcuda, "--device", str(settings.device)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=root)
    except subprocess.TimeoutExpired:
        return {"error": f"probe {args[0]} timed out after {timeout:g} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"error": f"probe {args[0]} gave no result: {tail}"}
    try:
        return json.loads(lines[-1])
    except ValueError:
        return {"error": f"probe {args[0]} printed an unreadable line: {lines[-1][:80]}"}


def check_memory(proxy: Proxy, settings: Settings, gpu: bool = False) -> dict:
    """Every allocation path (memory_probe.MEMORY_PATHS, and on a GPU the cuBLAS workspace),
    each in its own probe process under the proxy, judged by memory_paths."""
    limit = proxy.limits.mem_bytes
    out: dict[str, Any] = {"check": "memory", "proxy": proxy.name, "configured_bytes": limit}
    if limit is None:
        return {**out, "verdict": NOT_APPLICABLE,
                "reasons": ["no memory limit is configured for this proxy"]}
    step = max(1 << 20, min(settings.mem_step, limit // 8 or 1 << 20))
    stop_at = limit + (MEMORY_SLACK_STEPS + 2) * step   # enough to see it pass the limit
    args = ["memory", "--step", str(step), "--stop-at", str(stop_at)]
    paths = []
    for path in MEMORY_PATHS:
        res = run_probe(proxy, [*args, "--path", path], settings)
        if "error" in res and not paths:   # no driver, or no probe: every path would say so
            return {**out, "verdict": NOT_APPLICABLE, "reasons": [res["error"]]}
        paths.append(judge_memory_path({**res, "path": path}, limit))
    if gpu:
        bare = run_probe(None, [*args, "--path", CUBLAS_PATH], settings)
        full = run_probe(proxy, [*args, "--path", CUBLAS_PATH, "--fill"], settings)
        paths.append(judge_memory_path({**full, "path": CUBLAS_PATH}, limit, bare))
    verdict, reasons = memory_verdict(paths)
    out.update({"step": step, "paths": paths, "observed": memory_observed(paths)})
    first = paths[0]["probe"]
    if isinstance(first.get("meminfo_total"), int) and first["meminfo_total"] <= limit:
        reasons.append(f"cuMemGetInfo reports a total of {fmt_size(first['meminfo_total'])}")
    return {**out, "verdict": verdict, "reasons": reasons}


def check_compute(proxy: Proxy, settings: Settings, gpu: bool) -> dict:
    lim = proxy.limits
    out: dict[str, Any] = {"check": "compute", "proxy": proxy.name,
                           "configured_fraction": lim.compute_fraction,
                           "configured_launch_rate": lim.launch_rate,
                           "tolerance": settings.tolerance}
    if lim.compute_fraction is None and lim.launch_rate is None:
        return {**out, "verdict": NOT_APPLICABLE,
                "reasons": ["no compute limit (SM fraction or launch rate) is configured"]}
    paths = []
    secs = str(settings.seconds)
    for api, name in (("kernel", "cuLaunchKernel"), ("ex", "cuLaunchKernelEx")):
        bare = run_probe(None, ["launch", "--api", api, "--seconds", secs], settings)
        limited = run_probe(proxy, ["launch", "--api", api, "--seconds", secs], settings)
        paths.append(judge_path(name, bare, limited, "launches_per_s", lim, settings))
    if gpu:
        gargs = ["gemm", "--seconds", secs, "--gemm-n", str(settings.gemm_n)]
        bare, limited = run_probe(None, gargs, settings), run_probe(proxy, gargs, settings)
        row = judge_path("GEMM (CuPy)", bare, limited, "tflops", lim, settings)
        if lim.compute_fraction is None:   # a launch-rate cap sets no GEMM fraction
            row["judged"] = False
            row["note"] = "a launch-rate cap defines no GEMM throughput fraction: figures only"
        paths.append(row)
    out["paths"] = paths
    judged = [p for p in paths if p.get("judged", True)]
    errors = [p for p in judged if p.get("error")]
    if errors and len(errors) == len(judged):
        return {**out, "verdict": NOT_APPLICABLE, "reasons": [e["error"] for e in errors]}
    bad = [p for p in judged if not p.get("error") and not p["within"]]
    reasons = [p["summary"] for p in judged if not p.get("error")]
    reasons += [f"{p['path']}: {p['error']}" for p in errors]
    if bad:
        return {**out, "verdict": NOT_ENFORCED, "reasons": [p["summary"] for p in bad] +
                [r for r in reasons if r not in [p["summary"] for p in bad]]}
    return {**out, "verdict": ENFORCED, "reasons": reasons}


def judge_path(name: str, bare: dict, limited: dict, key: str, lim: Limits,
                 settings: Settings) -> dict:
    row: dict[str, Any] = {"path": name, "bare": bare, "limited": limited}
    if "error" in bare or "error" in limited:
        row["error"] = bare.get("error") or limited.get("error")
        return row
    b, c = bare.get(key), limited.get(key)
    if not b or c is None:
        row["error"] = f"no {key} measured"
        return row
    achieved = c / b
    if lim.compute_fraction is not None:
        expected = lim.compute_fraction
    else:   # a launch-rate cap: the expected fraction of the unlimited launch rate
        expected = min(1.0, lim.launch_rate / b) if key == "launches_per_s" else None
    row.update({"unlimited": b, "limited_value": c, "achieved_fraction": achieved,
                "expected_fraction": expected})
    if lim.compute_fraction is None and key == "launches_per_s" and \
            lim.launch_rate * (1 + settings.tolerance) >= b:
        row.update({"within": True, "judged": False,
                    "summary": f"{name}: the cap {lim.launch_rate:,.0f}/s is above the unlimited "
                               f"rate {b:,.0f}/s: nothing to enforce"})
        return row
    if expected is None:
        row["within"] = True
        row["summary"] = f"{name}: {achieved:.3f} of unlimited"
        return row
    # A limit is a ceiling: enforced when the limited side stays at or under it. Under it by
    # more than the tolerance is a cost worth reading, not a limit escaped. A rate cap is judged
    # in launches/s, so a busy machine (which only lowers the limited rate) cannot make an
    # enforcing proxy look like one that lets launches through.
    if lim.compute_fraction is None:
        over = c > lim.launch_rate * (1 + settings.tolerance)
        under = c < lim.launch_rate * (1 - settings.tolerance)
    else:
        slack = settings.tolerance * max(expected, 0.05) if expected < 0.2 else settings.tolerance
        over, under = achieved > expected + slack, achieved < expected - slack
    row["within"] = not over
    unit = "launches/s" if key == "launches_per_s" else "TFLOP/s"
    row["summary"] = (f"{name}: {c:,.0f} vs {b:,.0f} {unit} unlimited = {achieved:.3f}, "
                      f"configured {expected:.3f} (±{settings.tolerance:g}"
                      f"{' relative' if expected < 0.2 or lim.compute_fraction is None else ''})"
                      f"{' — OVER the limit' if over else ''}"
                      f"{' — held below the limit' if under else ''}")
    return row
