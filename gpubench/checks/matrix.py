"""The `matrix` check: victims beside aggressors under each isolation layer the host offers.

For every layer (matrix_plan.host_layers) it runs, through that layer's LocalLauncher, each
victim alone, each aggressor alone, then every victim with every aggressor started together
(two engine processes). A cell holds, from the engines' windows (result lines):

  p50, p99       the victim's window latency percentiles together over alone: a ratio of
                 medians with its bootstrap CI (results/matrix_stats.ratio_ci)
  victim_share,  each side's window throughput together over alone (its normalised
  aggressor_share  throughput), ratio and CI
  jain           Jain's fairness index over the two normalised throughputs
  nvml           on a GPU: NVML's per-process SM split against the measured one

Only windows that ran beside the other side count: each engine's clock is put on ours from
the line's own `t` and the moment it reached us (the least difference over its lines), and a
window counts when at least half of it lies within the other side's measured span.
The figures of a layer are against the victim alone *under that layer*: interference, not
the layer's own cost (the `alone` figures of each layer are stored to compare those too).
"""
from __future__ import annotations

import asyncio
from typing import Any

from engine.vocabulary import COMPLETED
from results.check_verdicts import MEASURED, NOT_APPLICABLE
from results.matrix_stats import alone_stability, jain_index, ratio_ci, split_agreement
from results.matrix_table import matrix_lines, matrix_observed
from results.stats import finite_median
from scenarios.base import LaunchError, LaunchRequest
from scenarios.layers import verify

from .contention import read_together, session_facts
from .matrix_nvml import ProcessUtilisation
from .matrix_plan import NOT_AVAILABLE, Layer, host_layers, role_args
from .matrix_settings import MatrixSettings
from .proxy import Proxy
from .settings import Settings

FAILED = "FAILED"
OVERLAP = 0.5            # a window counts beside the other side when this much of it is


async def run_together(launcher, requests: list[LaunchRequest]) -> list[dict]:
    """Start the sessions together and read them to their end: per session its windows
    (result lines, `start`/`end` on our monotonic clock), hello and outcome. The launcher is
    the caller's (a layer's MPS daemon lives in it, for all of the layer's runs), and each
    window keeps its time, to tell which windows ran beside the other side."""
    out = []
    for got, offset in await read_together(launcher, requests):
        windows = []
        for ev in got.results:
            d = ev.data
            end = offset + float(d.get("t") or 0.0)
            windows.append({"variant": f"{ev.workload}/{ev.variant}", "end": end,
                            "start": end - float(d.get("duration_s") or 0.0),
                            "ops_per_s": d.get("ops_per_s"), "valid": ev.valid,
                            "p50_us": (d.get("latency_us") or {}).get("p50"),
                            "p99_us": (d.get("latency_us") or {}).get("p99")})
        out.append({"windows": windows, **session_facts(got)})
    return out


def _span(windows: list[dict]) -> tuple[float, float] | None:
    return (min(w["start"] for w in windows), max(w["end"] for w in windows)) if windows else None


def beside(windows: list[dict], other: list[dict]) -> list[dict]:
    """The windows of which at least OVERLAP lay within the other side's measured span."""
    span = _span(other)
    if span is None:
        return []
    out = []
    for w in windows:
        length = max(w["end"] - w["start"], 1e-9)
        inside = min(w["end"], span[1]) - max(w["start"], span[0])
        if inside / length >= OVERLAP:
            out.append(w)
    return out


def apart_why(victim: list[dict], aggressor: list[dict]) -> str:
    """Why a pair has no cell, with when each side measured: a side that measured only once
    the other was done (a layer that held it back, a start slowed by the other's load) is
    itself worth reading."""
    why = "the victim's and the aggressor's windows did not overlap"
    spans = {"victim": _span(victim), "aggressor": _span(aggressor)}
    if None in spans.values():
        return f"{why}: the {next(k for k, v in spans.items() if v is None)} measured no window"
    t0 = min(span[0] for span in spans.values())
    told = ", ".join(f"the {side} measured {a - t0:.1f}-{b - t0:.1f} s"
                     for side, (a, b) in sorted(spans.items(), key=lambda kv: kv[1][0]))
    return f"{why}: {told} (from the first window's start)"


def normalised(windows: list[dict], alone: list[dict]) -> list[float]:
    """Each window's throughput over the median alone of its variant (an aggressor may run
    several variants one after the other: GEMM fp32 then fp16)."""
    ref: dict[str, float | None] = {}
    for v in {w["variant"] for w in alone}:
        ref[v] = finite_median([w["ops_per_s"] for w in alone if w["variant"] == v])
    return [w["ops_per_s"] / ref[w["variant"]] for w in windows
            if ref.get(w["variant"]) and isinstance(w["ops_per_s"], (int, float))]


def alone_figures(windows: list[dict]) -> dict:
    """Medians of one side's windows alone, per variant ("gemm/fp16-8192": {...})."""
    out = {}
    for v in dict.fromkeys(w["variant"] for w in windows):
        mine = [w for w in windows if w["variant"] == v]
        out[v] = {"windows": len(mine),
                  "ops_per_s": finite_median([w["ops_per_s"] for w in mine]),
                  "p50_us": finite_median([w["p50_us"] for w in mine]),
                  "p99_us": finite_median([w["p99_us"] for w in mine])}
    return out


def build_cell(victim: str, aggressor: str, v_alone: list[dict], a_alone: list[dict],
               v_together: list[dict], a_together: list[dict], *, seed: int = 0,
               nvml: dict | None = None, tolerance: float = 0.15) -> dict:
    """One cell's figures from the windows of the four runs (see the module's docstring)."""
    v_in = beside(v_together, a_together)
    a_in = beside(a_together, v_together)
    cell: dict[str, Any] = {"victim": victim, "aggressor": aggressor,
                            "windows": {"victim": len(v_in), "victim_run": len(v_together),
                                        "aggressor": len(a_in),
                                        "aggressor_run": len(a_together)}}
    if not v_in or not a_in:
        return {**cell, "status": FAILED, "why": apart_why(v_together, a_together)}
    v_share = ratio_ci(normalised(v_alone, v_alone), normalised(v_in, v_alone), seed=seed)
    a_share = ratio_ci(normalised(a_alone, a_alone), normalised(a_in, a_alone), seed=seed + 1)
    cell.update(status=MEASURED,
                p50=ratio_ci([w["p50_us"] for w in v_alone], [w["p50_us"] for w in v_in],
                             seed=seed),
                p99=ratio_ci([w["p99_us"] for w in v_alone], [w["p99_us"] for w in v_in],
                             seed=seed),
                victim_share=v_share, aggressor_share=a_share,
                jain=jain_index([v_share["ratio"], a_share["ratio"]])
                if v_share and a_share else None)
    cell["nvml"] = nvml_cell(nvml, v_share, a_share, tolerance)
    return cell


def nvml_cell(nvml: dict | None, v_share: dict | None, a_share: dict | None,
              tolerance: float) -> dict:
    """NVML's per-process figures of the together run against the measured shares."""
    if not nvml or nvml.get("unavailable"):
        return {"status": NOT_AVAILABLE,
                "why": (nvml or {}).get("unavailable") or "no NVML figures"}
    if not v_share or not a_share:
        return {"status": NOT_AVAILABLE, "why": "no measured share to compare with"}
    sm = [nvml.get("victim_sm"), nvml.get("aggressor_sm")]
    got = split_agreement([v_share["ratio"], a_share["ratio"]], sm, tolerance)
    if got is None:
        return {"status": NOT_AVAILABLE, "victim_sm": sm[0], "aggressor_sm": sm[1],
                "why": "NVML gave no SM sample for one of the engines' processes (under MPS "
                       "the work may be the MPS server's)"}
    return {"status": "AGREE" if got["agree"] else "DISAGREE", "victim_sm": sm[0],
            "aggressor_sm": sm[1], **got}


def _pid(session: dict) -> int | None:
    return ((session.get("hello") or {}).get("host") or {}).get("pid")


def _problem(layer: Layer, sessions: list[dict]) -> str | None:
    """Why these sessions do not count: one ended badly, or the layer did not take effect."""
    for s in sessions:
        if s["outcome"] != COMPLETED:
            return f"an engine session {s['outcome']}: {s['message']}"
        reasons = verify(layer.scenario(), s.get("hello") or {})
        if reasons:
            return reasons[0]
    return None


async def _run_layer(layer: Layer, settings: Settings, ms: MatrixSettings, gpu: bool,
                     sessions_out: list[dict], progress) -> dict:
    launcher = layer.launcher(settings.python)
    out: dict[str, Any] = {"name": layer.name, "label": layer.label, "status": MEASURED,
                           "alone": {"victim": {}, "aggressor": {}}, "cells": []}
    try:
        alone: dict[tuple[str, str], list[dict]] = {}
        for role, kinds in (("victim", ms.victims), ("aggressor", ms.aggressors)):
            for kind in kinds:
                progress(f"matrix: {layer.label}: {kind} ({role}) alone")
                req = layer.request(role_args(kind, role, settings, ms), f"{role} {kind}")
                got = await run_together(launcher, [req])
                sessions_out += got
                problem = _problem(layer, got)
                if problem:
                    return {**out, "status": FAILED, "why": f"{kind} alone: {problem}"}
                alone[(role, kind)] = got[0]["windows"]
                out["alone"][role][kind] = alone_figures(got[0]["windows"])
        pairs = []
        for v in ms.victims:
            for a in ms.aggressors:
                progress(f"matrix: {layer.label}: {v} beside {a}")
                reqs = [layer.request(role_args(v, "victim", settings, ms), f"victim {v}"),
                        layer.request(role_args(a, "aggressor", settings, ms), f"aggressor {a}")]
                with ProcessUtilisation(settings.device) if gpu else _NoNvml() as nv:
                    got = await run_together(launcher, reqs)
                sessions_out += got
                problem = _problem(layer, got)
                nvml = None if problem else {
                    "unavailable": nv.unavailable, "victim_sm": nv.mean_sm(_pid(got[0])),
                    "aggressor_sm": nv.mean_sm(_pid(got[1]))}
                pairs.append((v, a, got, problem, nvml))
        # each victim alone once more, after its pairs: two processes of it bracket the
        # pairs, its cells are against both, and a victim whose own speed moved between
        # them says so (one process's windows cannot show that spread)
        out["alone_stability"] = {}
        for v in ms.victims:
            progress(f"matrix: {layer.label}: {v} (victim) alone, again")
            req = layer.request(role_args(v, "victim", settings, ms), f"victim {v} (again)")
            got = await run_together(launcher, [req])
            sessions_out += got
            problem = _problem(layer, got)
            if problem:
                return {**out, "status": FAILED, "why": f"{v} alone again: {problem}"}
            before = alone[("victim", v)]
            out["alone_stability"][v] = alone_stability(
                [w["p50_us"] for w in before], [w["p50_us"] for w in got[0]["windows"]])
            alone[("victim", v)] = before + got[0]["windows"]
            out["alone"]["victim"][v] = alone_figures(alone[("victim", v)])
        for v, a, got, problem, nvml in pairs:
            if problem:
                out["cells"].append({"victim": v, "aggressor": a, "status": FAILED,
                                     "why": problem})
                continue
            out["cells"].append(build_cell(
                v, a, alone[("victim", v)], alone[("aggressor", a)], got[0]["windows"],
                got[1]["windows"], seed=len(out["cells"]), nvml=nvml,
                tolerance=settings.tolerance))
    except LaunchError as exc:    # the layer could not start (an MPS daemon that won't)
        return {**out, "status": NOT_AVAILABLE, "why": str(exc)}
    finally:
        await launcher.close()
    return out


class _NoNvml:
    """The CPU backend's stand-in: NVML has no GPU process to tell of."""
    unavailable = "the CPU backend: NVML has no GPU processes to report"

    def __enter__(self) -> "_NoNvml":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def mean_sm(self, pid: int | None) -> None:
        return None


def check_matrix(proxy: Proxy | None, settings: Settings, ms: MatrixSettings, gpu: bool,
                 progress=lambda m: None) -> tuple[dict, list[dict]]:
    """The matrix check's stored figures and its engine sessions."""
    sessions: list[dict] = []
    layers = []
    for layer in host_layers(ms, settings.backend, proxy):
        if layer.unavailable:
            layers.append({"name": layer.name, "label": layer.label, "status": NOT_AVAILABLE,
                           "why": layer.unavailable, "cells": []})
            continue
        layers.append(asyncio.run(_run_layer(layer, settings, ms, gpu, sessions, progress)))
    return matrix_check(ms, layers), sessions


def matrix_check(ms: MatrixSettings, layers: list[dict]) -> dict:
    """The stored check from its layers: verdict, reasons, and the checks table's summary."""
    out = {"check": "matrix", "victims": list(ms.victims), "aggressors": list(ms.aggressors),
           "windows": ms.windows, "window_s": ms.window_s,
           "thread_percentage": ms.thread_percentage, "layers": layers}
    measured = [c for lay in layers for c in lay["cells"] if c.get("status") == MEASURED]
    out["verdict"] = MEASURED if measured else NOT_APPLICABLE
    out["reasons"] = matrix_lines(out)
    out["observed"] = matrix_observed(out)
    out["configured"] = (f"{len(ms.victims)} victim(s) × {len(ms.aggressors)} aggressor(s) × "
                         f"{', '.join(lay['name'] for lay in layers)}")
    if "decode" in ms.victims:
        out["decode_victim_batch"] = ms.victim_batch
        out["configured"] += f"; decode victim batch {ms.victim_batch}"
    return out

