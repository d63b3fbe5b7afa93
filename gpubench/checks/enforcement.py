"""Is a limit enforced? The driver probe process (driver.py) under the proxy (run_probe, which
the compute check of compute.py uses too), and the memory check:

  memory   allocate in steps (cuMemAlloc_v2) until refused; the observed ceiling against the
           configured limit. NOT ENFORCED when allocation passes it.
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
    return json.loads(lines[-1])


def check_memory(proxy: Proxy, settings: Settings) -> dict:
    limit = proxy.limits.mem_bytes
    out: dict[str, Any] = {"check": "memory", "proxy": proxy.name, "configured_bytes": limit}
    if limit is None:
        return {**out, "verdict": NOT_APPLICABLE,
                "reasons": ["no memory limit is configured for this proxy"]}
    step = max(1 << 20, min(settings.mem_step, limit // 8 or 1 << 20))
    stop_at = limit + (MEMORY_SLACK_STEPS + 2) * step   # enough to see it pass the limit
    res = run_probe(proxy, ["memory", "--step", str(step), "--stop-at", str(stop_at)], settings)
    out["probe"] = res
    if "error" in res:
        return {**out, "verdict": NOT_APPLICABLE, "reasons": [res["error"]]}
    got = res["allocated"]
    out["observed_ceiling_bytes"] = got if res["refused"] else None
    out["ceiling_ratio"] = got / limit
    if got > limit:
        verdict, why = NOT_ENFORCED, (f"allocated {fmt_size(got)} in {fmt_size(step)} steps, past the "
                                      f"configured {fmt_size(limit)}" +
                                      ("" if res["refused"] else " without one refusal"))
    elif res["refused"]:
        verdict, why = ENFORCED, (f"refused (CUDA error {res['rc']}) at {fmt_size(got)} of the "
                                  f"configured {fmt_size(limit)} (step {fmt_size(step)})")
    else:
        verdict, why = NOT_APPLICABLE, "the probe stopped before reaching the limit"
    reasons = [why]
    if res.get("meminfo_total") and res["meminfo_total"] <= limit:
        reasons.append(f"cuMemGetInfo reports a total of {fmt_size(res['meminfo_total'])}")
    return {**out, "verdict": verdict, "reasons": reasons}
