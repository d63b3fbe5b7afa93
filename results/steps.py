"""decode and prefill results as people read them: tokens/s, the step latency's percentiles
and jitter, the device-side p99 (CUDA events, GPU only), TFLOP/s: medians over a variant's valid results (all of them when none is valid,
as every other figure of `show` and the text export). Pure Python: `show` and the exports
read this without NumPy.

A run that measured decode is known by its tail: Compare's headline for it is the p99 step
latency (results/report.py), and its text export's `Throughput:` line says tokens/s.
"""
from __future__ import annotations

from typing import Iterable

from engine.plausibility import STEP_WORKLOADS

from .format import EMPTY, fmt_value
from .stats import finite_median
from .trial_counts import valid_trials

STEP_COLUMNS = ("workload", "variant", "valid/results", "tokens/s", "p50 ms", "p90 ms",
                "p99 ms", "p99.9 ms", "jitter", "device p99 ms", "TFLOP/s")
PERCENTILES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"))


def is_step(wl: dict) -> bool:
    return wl.get("workload") in STEP_WORKLOADS


def step_summary(wl: dict) -> dict:
    """Medians of one decode/prefill variant: tokens_per_s, steps_per_s, p50..p999 (µs, the
    engine's clock), device_p50 and device_p99 (µs, CUDA events; None on the CPU), jitter,
    tflops (None where nothing was measured), and how many results they come from."""
    trials = valid_trials(wl)

    def med(get) -> float | None:
        return finite_median([get(t) for t in trials])

    out = {"tokens_per_s": med(lambda t: t.get("tokens_per_s")),
           "steps_per_s": med(lambda t: t.get("ops_per_s")),
           "jitter": med(lambda t: t.get("jitter")), "tflops": med(lambda t: t.get("tflops")),
           "results": len(trials)}
    for key, _ in PERCENTILES:
        out[key] = med(lambda t, k=key: (t.get("latency_us") or {}).get(k))
    for key in ("p50", "p99"):
        out[f"device_{key}"] = med(lambda t, k=key: (t.get("device_latency_us") or {}).get(k))
    return out


def _ms(us: float | None) -> str:
    return EMPTY if us is None else fmt_value(us / 1000.0)


def step_rows(workloads: Iterable[dict]) -> list[list[str]]:
    """`show` rows under STEP_COLUMNS for the decode/prefill variants of a run."""
    rows = []
    for wl in workloads:
        if not is_step(wl):
            continue
        trials = wl.get("trials") or []
        valid = sum(1 for t in trials if t.get("valid", True))
        s = step_summary(wl)
        rows.append([wl["workload"], wl.get("variant") or "", f"{valid}/{len(trials)}",
                     fmt_value(s["tokens_per_s"]), *(_ms(s[k]) for k, _ in PERCENTILES),
                     fmt_value(s["jitter"]), _ms(s["device_p99"]), fmt_value(s["tflops"])])
    return rows


def step_text(wl: dict) -> str:
    """One line of a variant's figures for the text export (no `Throughput:` in it: the seed's
    script greps for that word and must find the headline's line only)."""
    s = step_summary(wl)
    lat = ", ".join(f"{name} {_ms(s[key])} ms" for key, name in PERCENTILES)
    device = "" if s["device_p50"] is None else \
        f", on the device p50 {_ms(s['device_p50'])} ms, p99 {_ms(s['device_p99'])} ms"
    return (f"  {wl['workload']}/{wl.get('variant', '')}: {fmt_value(s['tokens_per_s'])} "
            f"tokens/s, step {lat}, jitter {fmt_value(s['jitter'])}{device}, "
            f"{fmt_value(s['tflops'])} TFLOP/s ({s['results']} results)")
