"""Synthetic protocol v1 streams and result documents with a known truth, for tests.

Lines follow DESIGN.md and pass `engine.protocol.validate_line`. Per-trial noise
is log-normal with the CV the GPU test machine showed (GPU-FACTS.md "Noise":
trial-to-trial CV about 4 %); `scale` multiplies throughput (0.97 = 3 % overhead)
and divides latency.
"""
from __future__ import annotations

import json
import math
from typing import Sequence

import numpy as np

from engine.measure import step_fields
from engine.protocol import validate_line
from engine.timing import latency_stats
from results.document import SessionRecord, build_document
from tests.support.fleet_stream import H100
# workload -> (variant, ops/s, mean µs, p99 µs, GB/s or None, params)
SHAPES = {
    "roundtrip": ("pinned-64KiB", 18600.0, 51.0, 144.0, 9.2, {"size_bytes": 65536, "memory": "pinned"}),
    "launch": ("sync", 77400.0, 11.6, 22.7, None, {}),
    "h2d": ("pinned-256MiB", 210.0, 4700.0, 4900.0, 54.4, {"size_bytes": 268435456, "memory": "pinned"}),
    "d2h": ("pinned-256MiB", 205.0, 4800.0, 5000.0, 55.1, {"size_bytes": 268435456, "memory": "pinned"}),
}


def line(kind: str, t: float, backend: str = "cupy", **fields) -> str:
    obj = {"v": 1, "type": kind, "t": round(t, 6), "backend": backend, **fields}
    validate_line(obj)
    return json.dumps(obj, separators=(",", ":"))


def hello(backend: str = "cupy", hostname: str = "gpu-node-1", device: str = H100,
          driver: str = "580.159.04", cuda: int = 13000, engine_version: str = "0.1.0",
          mapped: Sequence[str] = (), hypervisor: bool = False, plan: dict | None = None) -> str:
    dev = {"name": device, "uuid": "GPU-0000", "index": 0, "driver": driver,
           "cuda_driver": cuda, "cuda_runtime": cuda, "compute_capability": "9.0",
           "memory_total_mib": 81559,
           "pcie": {"gen_current": 5, "gen_max": 5, "width_current": 16, "width_max": 16},
           "mig_mode": None, "power_limit_w": 700.0, "clocks_max": {"sm_mhz": 1980, "mem_mhz": 2619},
           "virtualization_mode": None}
    host = {"hostname": hostname, "os": "Linux", "kernel": "6.1.0", "python": "3.12.3",
            "numpy": "2.5.0", "cupy": "14.2.0", "nvml": "13.580", "cpu_model": "Xeon", "pid": 42,
            "hypervisor": {"detected": hypervisor, "evidence": [], "vendor": None},
            "preload": {"ld_preload": list(mapped), "mapped": list(mapped)}, "env": {}}
    plan = plan or {"workloads": list(SHAPES), "duration_s": 1.0, "warmup_s": 0.3, "repeats": 3}
    return line("hello", 0.0, backend, engine_version=engine_version, device=dev, host=host,
                plan=plan)


def telemetry(t: float, throttle: Sequence[str] = (), power: float = 310.0,
              backend: str = "cupy") -> str:
    readings = {"gpu_util_pct": 97, "sm_clock_mhz": 1980, "power_w": power,
                "temperature_c": 54, "throttle_reasons": 0x20 if throttle else 0,
                "throttle_names": list(throttle), "pcie_gen": 5}
    return line("telemetry", t, backend, readings=readings)


def result(t: float, workload: str, variant: str, repeat: int, ops: float, mean: float,
           p99: float, gbps: float | None = None, reasons: Sequence[str] = (),
           params: dict | None = None, backend: str = "cupy") -> str:
    extra = {"gbps": round(gbps, 4)} if gbps is not None else {}
    lat = {"mean": mean, "p50": mean * 0.97, "p90": min(mean * 1.3, p99), "p99": p99,
           "p999": p99 * 1.5,
           "min": mean * 0.7, "max": p99 * 3, "stdev": mean * 0.2, "cv": 0.2}
    return line("result", t, backend, workload=workload, variant=variant, repeat=repeat,
                ops=int(ops), duration_s=1.0, ops_per_s=ops, latency_us=lat,
                valid=not reasons, validity_reasons=list(reasons), interrupted=False,
                params=params or {}, **extra)


def done(t: float, status: str = "ok", backend: str = "cupy") -> str:
    return line("done", t, backend, status=status, exit_code=0 if status == "ok" else 130,
                counts={})


def session_lines(rng: np.random.Generator, *, workloads: Sequence[str] = ("roundtrip", "h2d"),
                  repeats: int = 3, scale: float = 1.0, cv: float = 0.04,
                  throttle: Sequence[str] = (), invalid_every: int = 0, status: str = "ok",
                  **hello_kw) -> list[str]:
    lines = [hello(**hello_kw)]
    backend = hello_kw.get("backend", "cupy")     # every line from the hello's backend
    t = 0.1
    n = 0
    for wl in workloads:
        variant, ops, mean, p99, gbps, params = SHAPES[wl]
        for r in range(repeats):
            f = scale * math.exp(rng.normal(0.0, cv))
            lines.append(telemetry(t, throttle, backend=backend))
            n += 1
            reasons = ["cv 12.0% > limit 10%"] if invalid_every and n % invalid_every == 0 else []
            lines.append(result(t + 1.0, wl, variant, r, ops * f, mean / f, p99 / f,
                                gbps * f if gbps else None, reasons, params, backend))
            t += 1.1
    if status != "cut":
        lines.append(done(t, status, backend))
    return lines


def make_doc(seed: int = 0, *, scenario: str = "bare-metal", sessions: int = 10,
             target_pct: float | None = None, label: str = "", layer_reasons: Sequence[str] = (),
             **kw) -> tuple[dict, list[SessionRecord]]:
    rng = np.random.default_rng(seed)
    recs = [SessionRecord(session_lines(rng, **kw), trial=i, layer_reasons=layer_reasons)
            for i in range(sessions)]
    doc = build_document(recs, {"name": scenario, "title": scenario, "launcher": "local",
                                "host": "local", "target": "k8s" if target_pct else "none",
                                "target_pct": target_pct}, label=label)
    return doc, recs


def trial_doc(values: Sequence[float], *, scenario: str = "x", run_id: str | None = None,
              target_pct: float | None = None, workload: str = "launch") -> dict:
    """A document whose `workload` ops/s trials are exactly `values` (one session each)."""
    variant, _, mean, p99, _, params = SHAPES[workload]
    recs = []
    for i, v in enumerate(values):
        f = v / SHAPES[workload][1]
        recs.append(SessionRecord([hello(), result(1.0, workload, variant, 0, float(v), mean / f,
                                                   p99 / f, params=params), done(2.0)], trial=i))
    return build_document(recs, {"name": scenario, "target_pct": target_pct}, run_id=run_id)


# decode at batch b on an H100 (8b shape, 4 layers, KV 2048, eager): step ms, CUDA-event share
DECODE_STEP_MS = {1: 1.02, 8: 1.10, 64: 1.62}


def decode_session_lines(seed: int = 0, *, backend: str = "cupy", batches: Sequence[int] = (8,),
                         repeats: int = 2, scale: float = 1.0, steps: int = 900,
                         samples: int = 4, hostname: str = "gpu-node-1") -> list[str]:
    """A decode session as the engine streams it: per batch and repeat, `samples` sample lines
    (an interval's percentiles and tokens/s) and a result with the step figures (tokens_per_s,
    jitter, flops_per_step, tflops, step_histogram; device_latency_us on cupy), every figure
    computed by the engine's own functions from `steps` log-normal step times with a tail of
    slow steps. `scale` divides the step time (0.9: a 10 % slower step)."""
    rng = np.random.default_rng(seed)
    shape = "small" if backend == "numpy-cpu" else "8b"
    variants = [(b, f"{shape}-l4-b{b}-kv2048") for b in batches]
    plan = {"workloads": ["decode"], "duration_s": 1.0, "warmup_s": 0.3, "repeats": repeats,
            "variants": [{"workload": "decode", "variant": v} for _, v in variants]}
    lines = [hello(backend=backend, hostname=hostname, plan=plan)]
    t = 0.1
    for batch, variant in variants:
        flops = int(2 * 1.75e9 * batch)
        params = {"shape": shape, "layers": 4, "dtype": "fp16", "mode": "eager", "batch": batch,
                  "kv_len": 2048, "tokens_per_step": batch, "flops_per_step": flops}
        for r in range(repeats):
            step_us = DECODE_STEP_MS[batch] * 1000.0 / scale
            us = step_us * rng.lognormal(0.0, 0.03, steps)
            us[rng.choice(steps, steps // 50, replace=False)] *= rng.uniform(1.5, 3.0, steps // 50)
            ns = (us * 1000.0).astype(np.int64)
            window_s = float(us.sum()) / 1e6
            for chunk in np.array_split(ns, samples):
                secs = float(chunk.sum()) / 1e9
                t += secs
                lines.append(line("sample", t, backend, workload="decode", variant=variant,
                                  repeat=r, interval_ops=int(chunk.size),
                                  ops_per_s=chunk.size / secs, latency_us=latency_stats(chunk),
                                  tokens_per_s=batch * chunk.size / secs))
            lat = latency_stats(ns, full=True)
            extra = {"device_latency_us": latency_stats((ns * 0.97).astype(np.int64))} \
                if backend == "cupy" else {}
            lines.append(line("result", t, backend, workload="decode", variant=variant,
                              repeat=r, ops=steps, duration_s=round(window_s, 6),
                              ops_per_s=steps / window_s, latency_us=lat, valid=True,
                              validity_reasons=[], interrupted=False, params=params,
                              tflops=flops * steps / window_s / 1e12,
                              **step_fields(_StepPrep(batch, flops), steps, window_s, lat, ns),
                              **extra))
            t += 0.05
    lines.append(done(t, backend=backend))
    return lines


class _StepPrep:
    """What engine.measure.step_fields reads of a prepared step."""

    def __init__(self, tokens: int, flops: float) -> None:
        self.tokens_per_op, self.flops_per_op = tokens, flops
