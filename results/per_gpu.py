"""Per-GPU views of a result document: its GPUs, one GPU's trials, the all-GPU aggregate.

A per-GPU run (one engine session per GPU, `gpubench run --gpus`) tags each trial with its
GPU; `compare`, `show` and the TUI read it GPU by GPU and as the all-GPU aggregate.

    is_per_gpu(doc)               the trials carry `gpu`
    doc_gpus(doc)                 {index: GPU tag}
    gpu_workloads(doc, 1)         the workloads with GPU 1's trials only
    aggregate_workloads(doc)      throughput summed across concurrent GPUs, latency the median
"""
from __future__ import annotations

from typing import Any

from .stats import finite_median, finite_number


def is_per_gpu(doc: dict) -> bool:
    """True when the run measured one session per GPU (its trials carry `gpu`)."""
    return any("gpu" in t for wl in doc.get("workloads") or [] for t in wl.get("trials") or [])


def doc_gpus(doc: dict) -> dict[int, dict]:
    """index -> GPU tag, for a per-GPU run; for a single-GPU run its one device (index 0 when
    the engine did not say)."""
    if is_per_gpu(doc):
        out: dict[int, dict] = {}
        for wl in doc.get("workloads") or []:
            for t in wl.get("trials") or []:
                g = t.get("gpu")
                if g is not None:
                    out.setdefault(g.get("index"), g)
        return dict(sorted(out.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))
    device = (doc.get("hello") or {}).get("device") or {}
    index = device.get("index") if isinstance(device.get("index"), int) else 0
    return {index: {"index": index, "uuid": device.get("uuid"), "name": device.get("name"),
                    "mig_instance": bool(device.get("mig_instance"))}}


def gpu_workloads(doc: dict, index: int) -> list[dict]:
    """The document's workloads restricted to one GPU's trials (the whole run if single-GPU)."""
    if not is_per_gpu(doc):
        return list(doc.get("workloads") or [])
    out = []
    for wl in doc.get("workloads") or []:
        trials = [t for t in wl.get("trials") or [] if (t.get("gpu") or {}).get("index") == index]
        if trials:
            out.append({**wl, "trials": trials})
    return out


AGGREGATE_SUM = ("ops_per_s", "tokens_per_s", "gbps", "tflops", "ops", "bytes")


def aggregate_workloads(doc: dict) -> list[dict]:
    """All-GPU trials of a per-GPU run: for every (trial, repeat) measured on every GPU,
    throughput summed across the GPUs when they ran concurrently (null when sequential: one
    GPU at a time is no aggregate throughput) and each latency statistic the median across
    GPUs. Valid only when every GPU's trial is valid. [] for a single-GPU run."""
    if not is_per_gpu(doc):
        return []
    n_gpus = len(doc_gpus(doc))
    concurrent = doc.get("gpu_mode") != "sequential"
    out = []
    for wl in doc.get("workloads") or []:
        groups: dict[tuple, list[dict]] = {}
        for t in wl.get("trials") or []:
            groups.setdefault((t.get("trial"), t.get("repeat")), []).append(t)
        trials = []
        for (trial, repeat), ts in sorted(groups.items(), key=lambda kv: str(kv[0])):
            if len({(t.get("gpu") or {}).get("index") for t in ts}) < n_gpus:
                continue   # a GPU failed or was cut short: no honest aggregate
            agg: dict[str, Any] = {"trial": trial, "repeat": repeat, "gpus": len(ts),
                                   "gpu": {"index": "all"}}
            for key in AGGREGATE_SUM:
                vals = [finite_number(t.get(key)) for t in ts]
                agg[key] = (sum(vals) if concurrent and all(v is not None for v in vals)
                            else None)
            lat: dict[str, Any] = {}
            for key in {k for t in ts for k in (t.get("latency_us") or {})}:
                med = finite_median((t.get("latency_us") or {}).get(key) for t in ts)
                if med is not None:
                    lat[key] = med
            agg["latency_us"] = lat
            reasons = sorted({r for t in ts for r in t.get("validity_reasons") or []})
            agg["valid"] = all(t.get("valid", True) for t in ts)
            agg["validity_reasons"] = reasons
            trials.append(agg)
        if trials:
            out.append({**wl, "trials": trials})
    return out
