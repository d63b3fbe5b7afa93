"""The compute check: is a compute limit (an SM share, or a launch-rate cap) held over time?

Each row runs the same load twice through the driver probe (compute_load.py), unlimited and
under the proxy, and judges the limited series against the limit (results/share_series.py:
steady share, overshoot, settle time; a limit is a ceiling in its own unit):

  saturate cuLaunchKernel / cuLaunchKernelEx   unsynchronised, several streams on a GPU: an
                                               entry point the proxy does not hook is caught
  launch+sync                                  the loop a utilisation-driven throttle may miss
                                               (HAMi#2863): a limit only it escapes says so
  policy force                                 the saturating row again with
                                               GPU_CORE_UTILIZATION_POLICY=force (HAMi#737: a
                                               lone process went unlimited without it)
  tenant A / B                                 two processes at once with different limits:
                                               each against its own, and their ratio

On a GPU under an SM share the load is a spin kernel calibrated to `kernel_ms` in the first
unlimited run (the other runs reuse its work and grid); for a launch-rate cap, or without a GPU
(a fake driver), the empty kernel (`--kernel` chooses).
"""
from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gpubench import interposer
from results.check_verdicts import ENFORCED, NOT_APPLICABLE, NOT_ENFORCED
from results.share_series import judge_series, series_text, tenants_ratio

from .enforcement import run_probe
from .proxy import PERCENT_LIMIT_VARS, Limits, Proxy
from .settings import HAMI_CACHE, HAMI_POLICY, HAMI_SM_LIMIT, CheckError, Settings

API_NAMES = {"kernel": "cuLaunchKernel", "ex": "cuLaunchKernelEx"}
TENANT_START_S = 3.0              # tenants: time for both probes to load the driver first
PROBE_SLACK_S = 120.0             # a probe's start-up, driver load and calibration, at most


def parse_tenant_limits(text: str | None, lim: Limits) -> list[float] | None:
    """`--tenant-limits`: "auto" (a rate cap c: c and 3c; an SM share: 25 % and 75 %),
    "none", or two values in the limit's unit (launches/s; an SM share in % or as a fraction)."""
    if text is None or text.strip().lower() == "none":
        return None
    if text.strip().lower() == "auto":
        if lim.compute_fraction is None and lim.launch_rate is not None:
            return [lim.launch_rate, 3 * lim.launch_rate]
        return [0.25, 0.75]
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CheckError(f"--tenant-limits {text!r}: two numbers, 'auto' or 'none'") from None
    if len(vals) != 2 or min(vals) <= 0 or vals[0] == vals[1]:
        raise CheckError(f"--tenant-limits {text!r}: two different positive limits")
    if lim.compute_fraction is not None or lim.launch_rate is None:
        vals = [v / 100 if v > 1 else v for v in vals]
    return vals


def load_kernel(choice: str, lim: Limits, gpu: bool) -> str:
    """The kernel the loads launch: `auto` is the spin kernel on a GPU under an SM share (work
    that a share can cut) and the empty kernel for a pure launch-rate cap (launches are its
    unit: a cap above the spin kernel's few hundred a second would have nothing to hold)."""
    if choice == "auto":
        return "spin" if gpu and lim.compute_fraction is not None else "empty"
    if choice == "spin" and not gpu:
        raise CheckError("--kernel spin needs a GPU (the fake driver runs the empty kernel)")
    return choice


def _load_args(settings: Settings, load: str, api: str, kernel: str, fixed: list[str]) -> list:
    return ["launch", "--load", load, "--api", api, "--kernel", kernel,
            "--seconds", str(settings.seconds), "--interval", str(settings.interval),
            "--streams", str(settings.streams), "--kernel-ms", str(settings.kernel_ms), *fixed]


def with_env(proxy: Proxy, label: str, extra: dict[str, str], cache_dir: Path) -> Proxy:
    """The proxy with some variables changed; a HAMi-style proxy also gets a fresh private
    shared-region file `label`.cache in cache_dir (its limits live there, and a stale one keeps
    old limits)."""
    env = {**proxy.env, **extra}
    if HAMI_SM_LIMIT in env:
        env[HAMI_CACHE] = str(cache_dir / f"{label.replace(' ', '-')}.cache")
    return Proxy(proxy.name, proxy.preload, env, proxy.limits)


def tenant_env(proxy: Proxy, limit: float) -> tuple[dict[str, str], bool]:
    """The variables that give one tenant `limit`, and whether the proxy had any to change
    (a proxy with none runs both tenants with its own env: what it claims is what is judged)."""
    lim = proxy.limits
    if lim.compute_fraction is None and lim.launch_rate is not None:
        if interposer.ENV_LAUNCH_RATE in proxy.env:
            return {interposer.ENV_LAUNCH_RATE: f"{limit:g}"}, True
        return {}, False
    found = {v: f"{limit * 100:g}" for v in PERCENT_LIMIT_VARS if v in proxy.env}
    return found, bool(found)


def _probe(proxy: Proxy | None, args: list, settings: Settings, wait: float = 0.0) -> dict:
    """One load probe, given up on well after its own seconds: a proxy that blocks a launch
    for good must cost a row, not the whole check's time."""
    return run_probe(proxy, args, settings, timeout=settings.seconds + wait + PROBE_SLACK_S)


def _row(path: str, label: str, bare: dict, limited: dict, lim: Limits, settings: Settings,
         fraction: float | None = None, rate_cap: float | None = None, **extra) -> dict:
    """One load's row; `fraction`/`rate_cap` give a tenant its own limit (else the proxy's)."""
    if fraction is None and rate_cap is None:
        fraction, rate_cap = lim.compute_fraction, lim.launch_rate
    row: dict[str, Any] = {"path": path, "label": label, **extra,
                           "bare": _brief(bare), "limited": _brief(limited)}
    if "error" in bare or "error" in limited:
        row["error"] = bare.get("error") or limited.get("error")
    elif not bare.get("launches_per_s") or not limited.get("counts"):
        row["error"] = "no launches measured"
    elif limited.get("rc"):
        row["error"] = f"a launch failed with CUDA error {limited['rc']}"
    if row.get("error"):
        row["summary"] = f"{label}: {row['error']}"
        return row
    # the unlimited rate: the median interval, robust to one slow start
    unlimited = sorted(bare["counts"])[len(bare["counts"]) // 2] / bare["interval_s"]
    row.update(judge_series(limited["counts"], limited["interval_s"], unlimited or 1e-9,
                            fraction=fraction, rate_cap=rate_cap,
                            tolerance=settings.tolerance))
    row["summary"] = f"{label}: {series_text(row)}"
    return row


def _brief(probe: dict) -> dict:
    """A probe's answer without its series (the row keeps the judged one)."""
    return {k: v for k, v in probe.items() if k != "counts"}


def check_compute(proxy: Proxy, settings: Settings, gpu: bool) -> dict:
    lim = proxy.limits
    out: dict[str, Any] = {"check": "compute", "proxy": proxy.name,
                           "configured_fraction": lim.compute_fraction,
                           "configured_launch_rate": lim.launch_rate,
                           "tolerance": settings.tolerance, "interval_s": settings.interval,
                           "seconds": settings.seconds}
    if lim.compute_fraction is None and lim.launch_rate is None:
        return {**out, "verdict": NOT_APPLICABLE,
                "reasons": ["no compute limit (SM fraction or launch rate) is configured"]}
    tenants = parse_tenant_limits(settings.tenant_limits, lim)
    kernel = load_kernel(settings.kernel, lim, gpu)
    with tempfile.TemporaryDirectory(prefix="gpubench-compute-") as tmp:
        cache = Path(tmp)
        first = _probe(None, _load_args(settings, "saturate", "kernel", kernel, []), settings)
        fixed = (["--iters", str(first["iters"]), "--blocks", str(first["blocks"])]
                 if kernel == "spin" and first.get("iters") else [])
        out["load"] = {k: first.get(k) for k in ("kernel", "iters", "blocks", "threads",
                                                 "streams", "depth")}

        def pair(load: str, api: str, under: Proxy, bare: dict | None = None):
            args = _load_args(settings, load, api, kernel, fixed)
            return bare or _probe(None, args, settings), _probe(under, args, settings)

        rows = []
        for api in ("kernel", "ex"):
            under = with_env(proxy, f"saturate-{api}", {}, cache)
            bare, limited = pair("saturate", api, under, first if api == "kernel" else None)
            rows.append(_row(f"saturate {API_NAMES[api]}", API_NAMES[api], bare, limited, lim,
                             settings, load="saturate"))
        bare, limited = pair("sync", "kernel", with_env(proxy, "sync", {}, cache))
        rows.append(_row("launch+sync cuLaunchKernel", "launch+sync", bare, limited, lim,
                         settings, load="sync"))
        if HAMI_SM_LIMIT in proxy.env and proxy.env.get(HAMI_POLICY, "").lower() != "force":
            forced = with_env(proxy, "force", {HAMI_POLICY: "force"}, cache)
            _, limited = pair("saturate", "kernel", forced, first)
            rows.append(_row("saturate cuLaunchKernel, policy force", "policy force", first,
                             limited, lim, settings, load="saturate", policy="force"))
        if tenants:
            t_rows, out["tenants"] = _two_tenants(proxy, tenants, settings, kernel, fixed,
                                                  first, cache)
            rows += t_rows
    out["paths"] = rows
    judged = _verdict(rows)
    judged["reasons"] += _tenant_notes(out.get("tenants"), settings.interval)
    return {**out, **judged}


def _tenant_notes(info: dict | None, interval: float) -> list[str]:
    """The two tenants' ratio, and what makes it weaker evidence, as reasons."""
    if not info:
        return []
    notes = []
    if info.get("ratio") is not None:
        notes.append(f"tenants B/A steady ratio {info['ratio']:.2f}, configured "
                     f"{info['configured_ratio']:.2f}"
                     + ("" if info["ratio_within"] else " (off by more than the tolerance)"))
    if not info.get("env_has_limit"):
        notes.append("tenants: the proxy's env carries no per-process limit variable, so both "
                     "ran with its env as is")
    for name, late in zip("AB", info.get("late_s") or []):
        if late and late > interval:
            notes.append(f"tenant {name} started {late:.2f} s late: the two overlapped less")
    return notes


def _two_tenants(proxy: Proxy, limits: list[float], settings: Settings, kernel: str,
                 fixed: list[str], bare: dict, cache: Path) -> tuple[list[dict], dict]:
    """Two limited probes started together, each with its own limit."""
    start = f"{time.time() + TENANT_START_S:.3f}"
    args = _load_args(settings, "saturate", "kernel", kernel, fixed) + ["--start-at", start]
    unders, changed = [], True
    for name, limit in zip("AB", limits):
        extra, changed = tenant_env(proxy, limit)
        unders.append(with_env(proxy, f"tenant-{name}", extra, cache))
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda p: _probe(p, args, settings, TENANT_START_S), unders))
    is_rate = proxy.limits.compute_fraction is None and proxy.limits.launch_rate is not None
    rows = []
    for name, limit, limited in zip("AB", limits, got):
        shown = f"{limit:,.0f}/s" if is_rate else f"{limit:.2f}"
        rows.append(_row(f"tenant {name} of 2 (limit {shown})", f"tenant {name}", bare, limited,
                         proxy.limits, settings, load="saturate", tenant=name,
                         **({"rate_cap": limit} if is_rate else {"fraction": limit})))
    info = {"limits": limits, "env_has_limit": changed,
            "late_s": [g.get("late_s") for g in got], **tenants_ratio(rows, limits,
                                                                     settings.tolerance)}
    return rows, info


def _verdict(rows: list[dict]) -> dict:
    judged = [r for r in rows if r.get("judged", True)]
    errors = [r for r in judged if r.get("error")]
    if not judged or len(errors) == len(judged):
        return {"verdict": NOT_APPLICABLE, "reasons": [r["summary"] for r in errors or rows]}
    over = [r for r in judged if not r.get("error") and not r["within"]]
    rest = [r["summary"] for r in rows if r not in over]
    if not over:
        return {"verdict": ENFORCED, "reasons": rest}
    head = []
    if all(r.get("load") == "sync" for r in over):
        head = ["only the launch-then-synchronise loop escapes the limit"]
    elif all(r.get("policy") is None and r.get("tenant") is None for r in over) and any(
            r.get("policy") == "force" and r.get("within") for r in judged):
        head = [f"held only with {HAMI_POLICY}=force"]
    return {"verdict": NOT_ENFORCED, "reasons": head + [r["summary"] for r in over] + rest}
