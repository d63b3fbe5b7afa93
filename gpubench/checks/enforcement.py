"""Is a limit enforced? The driver probe process (driver.py) under the proxy (run_probe, which
the compute check of compute.py uses too), and the memory check:

  memory   every allocation path (memory_probe.py) in steps until refused; each path judged
           against the configured limit (memory_paths.py), the check as its worst path.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from results.check_verdicts import NOT_APPLICABLE
from results.format import fmt_size

from .memory_paths import judge_memory_path, memory_observed, memory_verdict
from .memory_probe import CUBLAS_PATH, MEMORY_PATHS
from .proxy import Proxy
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
