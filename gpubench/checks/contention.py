"""The checks that run the engine through the scenarios layer (LocalLauncher + LaunchRequest):

  interference  K engine instances on one GPU: each one's throughput and p99 alone and
                together, and a fairness ratio (min/max throughput together).
  init          the engine's `init` workload (N processes started at once, N = 1, 8, 32):
                time to first kernel p50/p99 bare against under the proxy.
"""
from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.engine_args import EngineArgs
from engine.vocabulary import COMPLETED
from results.check_verdicts import MEASURED, NOT_APPLICABLE
from results.stats import finite_median
from scenarios.base import LaunchRequest
from scenarios.collect import collect
from scenarios.local import LocalLauncher

from .compute import with_env
from .proxy import Proxy
from .settings import Settings


def engine_args(settings: Settings, workloads: str, **extra) -> EngineArgs:
    return EngineArgs(backend=settings.backend, workloads=workloads, duration=settings.duration,
                      warmup=0.2, repeats=settings.repeats, telemetry_interval=0,
                      min_window=min(0.5, settings.duration * 0.8),
                      # a neighbour moves the median inside a window on purpose here
                      stall_limit=0, drift_limit=0, **extra)


async def read_together(launcher, requests: list[LaunchRequest]) -> list[tuple[Any, float]]:
    """Start the sessions together on `launcher` and read each to its end: per session what
    collect() gathered and the engine's t=0 on our monotonic clock (from its quickest line),
    which puts each result line's window on the caller's clock."""
    sessions = [await launcher.start(r) for r in requests]

    async def drain(session) -> tuple[Any, float]:
        offset = [float("inf")]

        def stamp(event) -> None:
            t = (getattr(event, "data", None) or {}).get("t")
            if isinstance(t, (int, float)):
                offset[0] = min(offset[0], time.monotonic() - t)

        return await collect(session, on_event=stamp), offset[0]
    return list(await asyncio.gather(*(drain(s) for s in sessions)))


def session_facts(got) -> dict:
    """How one collected session went, as the checks store it beside their figures."""
    return {"hello": got.hello.data if got.hello else None, "outcome": got.outcome,
            "message": got.message, "lines": got.lines, "stderr": got.stderr_tail}


async def _run_engines(requests: list[LaunchRequest], python: str | None) -> list[dict]:
    """Start the sessions together; per session its results by variant and raw lines."""
    out = []
    for got, _ in await read_together(LocalLauncher(python), requests):
        res: dict[str, list[dict]] = {}
        for ev in got.results:
            res.setdefault(f"{ev.workload}/{ev.variant}", []).append(ev.data)
        out.append({"results": res, **session_facts(got)})
    return out


def _summ(results: list[dict]) -> dict:
    key = "tflops" if any(r.get("tflops") for r in results) else "ops_per_s"
    return {"metric": key, "value": finite_median([r.get(key) for r in results]),
            "ops_per_s": finite_median([r.get("ops_per_s") for r in results]),
            "p50_us": finite_median([(r.get("latency_us") or {}).get("p50") for r in results]),
            "p99_us": finite_median([(r.get("latency_us") or {}).get("p99") for r in results])}


def check_interference(proxy: Proxy | None, settings: Settings) -> tuple[dict, list[dict]]:
    k = max(2, settings.instances)
    argv = tuple(engine_args(settings, settings.interference_workloads,
                              gemm_size=settings.gemm_n if settings.backend != "numpy-cpu"
                              else 256).to_argv())
    env = dict(proxy.env) if proxy else {}
    req = LaunchRequest(engine_args=argv, env=env,
                        preload=proxy.preload if proxy else None, label="interference")
    alone = []
    for _ in range(k):   # each instance alone, one after another
        alone += asyncio.run(_run_engines([req], settings.python))
    together = asyncio.run(_run_engines([req] * k, settings.python))
    sessions = alone + together
    failed = [s for s in sessions if s["outcome"] != COMPLETED]
    out: dict[str, Any] = {"check": "interference", "proxy": proxy.name if proxy else "bare",
                           "instances": k, "workloads": settings.interference_workloads}
    if failed:
        return ({**out, "verdict": NOT_APPLICABLE,
                 "reasons": [f"an engine session {failed[0]['outcome']}: {failed[0]['message']}"]},
                sessions)
    rows = []
    for variant in sorted(alone[0]["results"]):
        a = [_summ(s["results"].get(variant, [])) for s in alone]
        t = [_summ(s["results"].get(variant, [])) for s in together]
        if any(x["value"] is None for x in a + t):
            continue
        thr_ratio = [ti["value"] / ai["value"] for ai, ti in zip(a, t)]
        p99_ratio = [ti["p99_us"] / ai["p99_us"] if ai["p99_us"] else None for ai, ti in zip(a, t)]
        vals = [x["value"] for x in t]
        rows.append({"variant": variant, "metric": a[0]["metric"],
                     "alone": [x["value"] for x in a], "together": vals,
                     "throughput_ratio": thr_ratio, "p99_alone_us": [x["p99_us"] for x in a],
                     "p99_together_us": [x["p99_us"] for x in t], "p99_ratio": p99_ratio,
                     "fairness": min(vals) / max(vals) if max(vals) > 0 else None,
                     "jain": (sum(vals) ** 2) / (len(vals) * sum(v * v for v in vals))
                     if any(vals) else None})
    reasons = [f"{r['variant']}: together/alone throughput "
               f"{'/'.join(f'{x:.2f}' for x in r['throughput_ratio'])}, p99 x"
               f"{'/'.join(f'{x:.2f}' if x else '-' for x in r['p99_ratio'])}, "
               f"fairness {r['fairness']:.2f}" for r in rows]
    return {**out, "verdict": MEASURED, "rows": rows, "reasons": reasons}, sessions


def check_init(proxy: Proxy | None, settings: Settings) -> tuple[dict, list[dict]]:
    argv = tuple(engine_args(settings, "init", init_procs=settings.init_procs).to_argv())
    out: dict[str, Any] = {"check": "init", "proxy": proxy.name if proxy else None,
                           "procs": settings.init_procs}
    bare_req = LaunchRequest(engine_args=argv, label="init bare")
    runs = {"bare": asyncio.run(_run_engines([bare_req], settings.python))[0]}
    if proxy is not None and proxy.preload:
        with tempfile.TemporaryDirectory(prefix="gpubench-init-") as tmp:
            # all N processes of a step share one fresh HAMi region, as a new container's do
            under = with_env(proxy, "init", {}, Path(tmp))
            preq = LaunchRequest(engine_args=argv, env=dict(under.env), preload=proxy.preload,
                                 label="init proxy")
            runs["proxy"] = asyncio.run(_run_engines([preq], settings.python))[0]
    sessions = list(runs.values())
    failed = [(k, s) for k, s in runs.items() if s["outcome"] != COMPLETED]
    if failed:
        k, s = failed[0]
        return ({**out, "verdict": NOT_APPLICABLE,
                 "reasons": [f"init {k}: {s['outcome']}: {s['message']}"]}, sessions)
    rows = []
    for variant in sorted({v for s in sessions for v in s["results"]}, key=_procs):
        row: dict[str, Any] = {"variant": variant}
        for k, s in runs.items():
            res = s["results"].get(variant, [])
            row[k] = {"p50_ms": _ms(finite_median([(r.get("latency_us") or {}).get("p50") for r in res])),
                      "p99_ms": _ms(finite_median([(r.get("latency_us") or {}).get("p99") for r in res])),
                      "processes": sum(int(r.get("ops") or 0) for r in res),
                      "failed": sum(int((r.get("params") or {}).get("failed") or 0) for r in res),
                      "phases": (res[-1].get("params") or {}) if res else {}}
        if "proxy" in row and row["bare"]["p50_ms"] and row["proxy"]["p50_ms"]:
            row["proxy_over_bare_p50"] = row["proxy"]["p50_ms"] / row["bare"]["p50_ms"]
            row["proxy_over_bare_p99"] = (row["proxy"]["p99_ms"] / row["bare"]["p99_ms"]
                                          if row["bare"]["p99_ms"] else None)
        rows.append(row)
    reasons = []
    for r in rows:
        txt = f"{r['variant']}: bare p50/p99 {r['bare']['p50_ms']}/{r['bare']['p99_ms']} ms"
        if "proxy" in r:
            txt += f", under {proxy.name} {r['proxy']['p50_ms']}/{r['proxy']['p99_ms']} ms"
        reasons.append(txt)
    return {**out, "verdict": MEASURED, "rows": rows, "reasons": reasons}, sessions


def _procs(variant: str) -> int:
    """The process count of an init variant ("init/n8" -> 8), 0 for any other."""
    n = variant.split("/n")[-1]
    return int(n) if n.isdigit() else 0


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000.0, 3)
