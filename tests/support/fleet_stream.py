"""Synthetic protocol v1 streams of simulated GPU hosts, as dicts (standard library only).

A `HostProfile` is one simulated host: its GPU, link, clocks, throttling and how it
misbehaves (hang, drop, fail). `StreamBuilder` makes that host's lines for a plan: a hello
with the host's facts, samples, telemetry, one result per workload x repeat and a done.
`complete_stream()` is a whole stream at once (the fleet analysis tests); the farm's hosts
(farm_host.py) and the sshd hosts' "python" (sim_engine.py) send the same lines paced in
real time. Standard library and `engine.telemetry` only: sim_engine.py imports this under
`python -S` on a bare interpreter.

Profiles plant the bad cases the fleet tests need: a PCIe link trained at Gen3 x8, a
throttling GPU, another GPU model, a host that hangs mid-stream, one whose connection drops.
"""
from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from typing import Sequence

from engine.telemetry import INVALIDATING_MASK, throttle_names

H100 = "NVIDIA H100 80GB HBM3"
# workload -> (variant, ops/s, p50 latency µs, GB/s or None) on a healthy H100 (GPU-FACTS.md)
SHAPES = {
    "roundtrip": ("pinned-64KiB", 18600.0, 51.0, 2.4),
    "launch": ("sync", 77400.0, 11.6, None),
    "h2d": ("pinned-1MiB", 33000.0, 29.0, 33.7),
    "d2h": ("pinned-1MiB", 29000.0, 33.0, 30.7),
    "alloc": ("1MiB", 10300.0, 96.5, None),
}
# How much a Gen3 x8 link (about 1/8 of Gen5 x16) slows each workload (copies suffer most).
PCIE_SENSITIVITY = {"roundtrip": 0.8, "h2d": 1.0, "d2h": 1.0, "launch": 0.05, "alloc": 0.05}


@dataclass
class HostProfile:
    name: str
    gpu_model: str = H100
    backend: str = "cupy"
    speed: float = 1.0                      # throughput multiplier (1.0 = healthy)
    pcie: tuple[int, int, int, int] = (5, 16, 5, 16)   # gen, width, gen_max, width_max
    sm_clock_mhz: int = 1980
    sm_clock_max_mhz: int = 1980
    throttle_mask: int = 0
    other_processes: int = 0
    noise: float = 0.015                    # relative noise of each result
    behavior: str = "normal"                # normal | hang | drop | fail
    behave_after_s: float = 1.0             # when hang/drop happens
    seed: int | None = None

    @property
    def rng_seed(self) -> int:
        if self.seed is not None:
            return self.seed
        return int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:4], "little")


def _lat(p50: float) -> dict[str, float]:
    return {"mean": round(p50 * 1.05, 3), "p50": round(p50, 3), "p90": round(p50 * 1.2, 3),
            "p99": round(p50 * 1.8, 3), "p999": round(p50 * 3.0, 3), "min": round(p50 * 0.8, 3),
            "max": round(p50 * 5.0, 3)}


def parse_plan(command: str) -> dict:
    """The engine arguments the client asked for (what matters to the replay)."""
    at = command.rfind("-m engine")     # a check-and-start command: the engine's argv is its tail
    args = (command[at:] if at >= 0 else command).split()
    plan = {"workloads": ["roundtrip"], "duration_s": 1.0, "repeats": 1, "warmup_s": 0.0}
    for i, a in enumerate(args[:-1]):
        nxt = args[i + 1]
        try:
            if a == "--workloads":
                plan["workloads"] = [w for w in nxt.split(",") if w]
            elif a == "--duration":
                plan["duration_s"] = float(nxt)
            elif a == "--repeats":
                plan["repeats"] = int(nxt)
            elif a == "--warmup":
                plan["warmup_s"] = float(nxt)
        except ValueError:
            pass
    return plan


class StreamBuilder:
    """Protocol v1 lines for one host profile (dicts; the caller stamps t and sends)."""

    def __init__(self, profile: HostProfile, plan: dict):
        self.p = profile
        self.plan = plan
        self.rng = random.Random(profile.rng_seed)
        self.counts = {"hello": 0, "sample": 0, "telemetry": 0, "result": 0}

    def _base(self, kind: str) -> dict:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return {"v": 1, "type": kind, "t": 0.0, "backend": self.p.backend}

    def speed(self, workload: str) -> float:
        gen, width, gmax, wmax = self.p.pcie
        link = (min(gen, gmax) * width) / max(1, gmax * wmax)
        sens = PCIE_SENSITIVITY.get(workload, 0.5)
        pcie_factor = 1.0 - sens * (1.0 - link) * 0.5
        return self.p.speed * pcie_factor

    def hello(self) -> dict:
        gen, width, gmax, wmax = self.p.pcie
        line = self._base("hello")
        line.update(engine_version="0.1.0-sim", plan=self.plan, device={
            "name": self.p.gpu_model, "uuid": f"GPU-sim-{self.p.rng_seed:08x}", "index": 0,
            "driver": "580.159.04", "cuda_driver": 13000, "cuda_runtime": 13000,
            "compute_capability": "9.0", "memory_total_mib": 81559,
            "pcie": {"gen_current": gen, "gen_max": gmax, "width_current": width, "width_max": wmax},
            "mig_mode": 0, "power_limit_w": 700.0,
            "clocks_max": {"sm_mhz": self.p.sm_clock_max_mhz, "mem_mhz": 2619},
            "virtualization_mode": None},
            host={"hostname": self.p.name, "os": "Linux", "kernel": "6.1.0-sim", "python": "3.11.7",
                  "numpy": "2.1.3", "cupy": "14.2.0", "nvml": "13.580", "cpu_model": "sim",
                  "pid": os.getpid(), "hypervisor": {"detected": False, "evidence": [], "vendor": None},
                  "preload": {"ld_preload": [], "mapped": []}, "env": {}})
        return line

    def sample(self, workload: str) -> dict:
        variant, ops, lat, gbps = SHAPES.get(workload, ("default", 1000.0, 1000.0, None))
        f = self.speed(workload) * (1 + self.rng.gauss(0, self.p.noise * 2))
        line = self._base("sample")
        line.update(workload=workload, variant=variant, interval_ops=max(1, int(ops * f * 0.5)),
                    ops_per_s=round(ops * f, 2), latency_us=_lat(lat / f))
        if gbps is not None:
            line["gbps"] = round(gbps * f, 3)
        return line

    def telemetry(self) -> dict:
        gen, width, gmax, wmax = self.p.pcie
        line = self._base("telemetry")
        line["readings"] = {
            "gpu_util_pct": 97, "mem_util_pct": 40, "sm_clock_mhz": self.p.sm_clock_mhz,
            "mem_clock_mhz": 2619, "power_w": 420.0, "power_limit_w": 700.0, "temperature_c": 55,
            "memory_used_mib": 2200, "memory_total_mib": 81559, "pcie_tx_kbps": 1_200_000,
            "pcie_rx_kbps": 900_000, "pcie_gen": gen, "pcie_width": width, "pcie_gen_max": gmax,
            "pcie_width_max": wmax, "throttle_reasons": self.p.throttle_mask,
            "throttle_names": throttle_names(self.p.throttle_mask), "mig_mode": 0, "ecc_volatile": 0,
            "other_processes": self.p.other_processes}
        return line

    def result(self, workload: str, repeat: int, interrupted: bool = False) -> dict:
        variant, ops, lat, gbps = SHAPES.get(workload, ("default", 1000.0, 1000.0, None))
        f = self.speed(workload) * (1 + self.rng.gauss(0, self.p.noise))
        dur = float(self.plan.get("duration_s", 1.0))
        reasons = ["interrupted"] if interrupted else []
        reasons += [f"throttled: {n}" for n in throttle_names(self.p.throttle_mask & INVALIDATING_MASK)]
        line = self._base("result")
        line.update(workload=workload, variant=variant, repeat=repeat, ops=int(ops * f * dur),
                    duration_s=dur, ops_per_s=round(ops * f, 2),
                    latency_us={**_lat(lat / f), "stdev": round(lat * 0.05, 3), "cv": 0.05},
                    valid=not reasons, validity_reasons=reasons, interrupted=interrupted,
                    params={"size_bytes": 65536, "memory": "pinned"})
        if gbps is not None:
            line["gbps"] = round(gbps * f, 3)
        return line

    def done(self, status: str = "ok", exit_code: int = 0) -> dict:
        line = self._base("done")
        line.update(status=status, exit_code=exit_code, counts=dict(self.counts))
        return line


def steps(plan: dict, per_window: int, telemetry_every: int):
    """What follows the hello, in order: ("sample", workload, repeat, n) `per_window` times per
    workload x repeat, ("telemetry", w, r, n) after every `telemetry_every`-th sample, then
    ("result", w, r, n); n counts the samples before this step (a sample's own index)."""
    n = 0
    for w in plan["workloads"]:
        for r in range(plan["repeats"]):
            for _ in range(per_window):
                yield "sample", w, r, n
                n += 1
                if telemetry_every and n % telemetry_every == 0:
                    yield "telemetry", w, r, n
            yield "result", w, r, n


def samples_per_window(plan: dict, rate: float) -> int:
    return max(1, round(plan["duration_s"] * rate))


def complete_stream(profile: HostProfile, plan: dict | None = None, samples_per_window: int = 2,
                    telemetry_every: int = 2) -> list[dict]:
    """A whole stream as dicts, stamped every 0.25 s (for tests that need no network)."""
    plan = plan or {"workloads": ["roundtrip"], "duration_s": 1.0, "repeats": 5, "warmup_s": 0.0}
    b = StreamBuilder(profile, plan)
    out = [b.hello()]
    for kind, w, r, _ in steps(plan, samples_per_window, telemetry_every):
        out.append(b.sample(w) if kind == "sample" else b.telemetry() if kind == "telemetry"
                   else b.result(w, r))
    out.append(b.done())
    t = 0.0
    for line in out:
        line["t"] = round(t, 3)
        t += 0.25
    return out


class RecordedStream:
    """Lines recorded from `python -m engine`: replayed with t and sent restamped."""

    def __init__(self, lines: Sequence[dict]):
        self.hello = next(l for l in lines if l["type"] == "hello")
        self.samples = [l for l in lines if l["type"] == "sample"] or None
        self.telemetry = [l for l in lines if l["type"] == "telemetry"]
        self.results = [l for l in lines if l["type"] == "result"]
        self.done = next((l for l in lines if l["type"] == "done"), None)
        if not self.samples:
            raise ValueError("recording has no sample lines")
