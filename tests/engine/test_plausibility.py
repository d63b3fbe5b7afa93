"""engine.plausibility: real figures pass, impossible ones are named, bounds follow the link,
and the emitter keeps our own streams consistent (counts taken under its lock, nothing after
done). The hostile corpus that drives the whole path is tests/hostile/streams/."""
from __future__ import annotations

import io
import json

import pytest

from engine.plausibility import (HOST_LINK_CEILING_GBPS, StreamJudge, device_bounds,
                                 host_link_bound, result_problems)
from engine.protocol import Emitter

MiB = 1 << 20
XEON = "Intel(R) Xeon(R) Platinum 8480+"


def hello(name="NVIDIA H100 80GB HBM3", cpu=XEON, gen=5, width=16, gen_current=None,
          backend="cupy") -> dict:
    pcie = {"gen_current": gen if gen_current is None else gen_current, "gen_max": gen,
            "width_current": width, "width_max": width}
    return {"v": 1, "type": "hello", "t": 0.0, "backend": backend, "engine_version": "0.1.0",
            "device": {"name": name, "uuid": "GPU-1", "pcie": pcie},
            "host": {"cpu_model": cpu}, "plan": {}}


def result(workload, variant, ops_per_s, p50_us, duration=1.0, params=None, **extra) -> dict:
    """A result as the engine writes it: ops = ops/s × window, latencies around the p50."""
    ops = round(ops_per_s * duration)
    lat = {"mean": p50_us * 1.1, "p50": p50_us, "p90": p50_us * 1.3, "p99": p50_us * 2.5,
           "p999": p50_us * 4, "min": p50_us * 0.8, "max": p50_us * 9, "stdev": 1.0, "cv": 0.1}
    return {"v": 1, "type": "result", "t": 2.0, "backend": "cupy", "workload": workload,
            "variant": variant, "repeat": 0, "ops": ops, "duration_s": duration,
            "ops_per_s": ops / duration, "latency_us": lat, "valid": True,
            "validity_reasons": [], "interrupted": False,
            "params": {"ops_per_call": 1, **(params or {})}, **extra}


def copy_result(workload, size, gbps, variant=None):
    ops_per_s = gbps * 1e9 / size
    return result(workload, variant or f"pinned-{size // MiB}MiB", ops_per_s, 1e6 / ops_per_s,
                  params={"size_bytes": size}, gbps=gbps, bytes=round(ops_per_s) * size)


# Reference figures of ../shared/GPU-FACTS.md (H100 PCIe gen5 x16 and H200) and of shipping
# GPUs the bounds must leave alone.
REAL = {
    "launch sync raw CUDA, H200": (hello(), result("launch", "sync", 134_500, 7.25)),
    "launch sync CuPy, H100": (hello(), result("launch", "sync", 84_000, 11.6)),
    "async launches, H200": (hello(), result("launch", "async", 409_000, 2.44,
                                             params={"ops_per_call": 1000})),
    "pinned H2D 256 MiB": (hello(), copy_result("h2d", 256 * MiB, 55.5)),
    "pinned D2H 16 MiB": (hello(), copy_result("d2h", 16 * MiB, 55.0)),
    "pageable H2D": (hello(), copy_result("h2d", 256 * MiB, 12.0, "pageable-256MiB")),
    "pinned H2D, link idle at gen1 in the hello": (hello(gen_current=1),
                                                   copy_result("h2d", 256 * MiB, 55.5)),
    "roundtrip 1 MiB pinned": (hello(), result("roundtrip", "pinned-1MiB", 5_200, 168,
                                               params={"size_bytes": MiB},
                                               gbps=5_200 * 2 * MiB / 1e9)),
    "D2D H100 (2950 GB/s read + written)": (hello(), copy_result("d2d", 256 * MiB, 1475.0,
                                                                   "256MiB")),
    "D2D B200-class 8 TB/s HBM": (hello("NVIDIA B200"), copy_result("d2d", 256 * MiB, 4000.0,
                                                                    "256MiB")),
    "GEMM fp32 H100": (hello(), result("gemm", "fp32-8192", 51.7e12 / (2 * 8192 ** 3), 21_000,
                                       params={"dtype": "fp32"}, tflops=51.7)),
    "GEMM fp16 H100": (hello(), result("gemm", "fp16-8192", 813e12 / (2 * 8192 ** 3), 1_350,
                                       params={"dtype": "fp16"}, tflops=813.0)),
    "GEMM fp16 B200 dense": (hello("NVIDIA B200"), result("gemm", "fp16-8192", 2.2e15 / (2 * 8192 ** 3),
                                                          500, params={"dtype": "fp16"},
                                                          tflops=2200.0)),
    "cudaMalloc + free 1 MiB": (hello(), result("alloc", "1MiB", 10_300, 96.5)),
    "sub-allocated malloc + free": (hello(), result("alloc", "1MiB-held", 330_000, 3.0)),
    "init n32 (processes side by side)": (hello(), result("init", "n32", 32 / 2.5, 250_000,
                                                          duration=2.5)),
    "GH200 C2C copy 420 GB/s": (hello("NVIDIA GH200 480GB", cpu="Neoverse-V2"),
                                copy_result("h2d", 256 * MiB, 420.0)),
    "C2C copy on a host that names no CPU": (hello("NVIDIA Vera Rubin", cpu=None),
                                             copy_result("h2d", 256 * MiB, 800.0)),
}


@pytest.mark.parametrize("case", REAL, ids=list(REAL))
def test_real_figures_are_believed(case):
    h, line = REAL[case]
    judge = StreamJudge()
    judge.line(h)
    assert judge.line(line) == []


@pytest.mark.parametrize("line, word", [
    (dict(result("launch", "sync", 84_000, 11.6), ops_per_s=float("nan")), "ops_per_s nan"),
    (dict(result("launch", "sync", 84_000, 11.6), duration_s=float("inf")), "duration_s inf"),
    (dict(result("launch", "sync", 84_000, 11.6), ops=-3), "ops -3 is not a count"),
    (dict(result("launch", "sync", 84_000, 11.6), ops=True), "ops True is not a count"),
    (dict(result("launch", "sync", 84_000, 11.6), ops=10 ** 400), "is not a count"),
    (dict(result("launch", "sync", 84_000, 11.6), ops_per_s=10 ** 400), "is not finite"),
    (dict(result("launch", "sync", 84_000, 11.6), tflops=-1.0), "tflops -1"),
    (dict(result("launch", "sync", 84_000, 11.6), latency_us="fast"), "latency_us is missing"),
    (dict(result("launch", "sync", 84_000, 11.6), ops_per_s=84_200.0), "not the 84200 ops/s"),
    (copy_result("h2d", 256 * MiB, 45.0), "above the 39.38 GB/s PCIe gen4 x16"),
])
def test_impossible_figures_are_named(line, word):
    problems = result_problems(line, device_bounds(hello(gen=4)))
    assert any(word in p for p in problems), problems


def test_rounding_of_the_window_is_not_a_contradiction():
    line = result("launch", "sync", 84_123.456, 11.6, duration=0.5000004)
    line["duration_s"] = round(line["duration_s"], 6)
    assert result_problems(line, None) == []


def test_a_coarse_clock_may_read_a_zero_minimum_but_nothing_else():
    line = result("alloc", "1MiB", 10_300, 96.5)
    line["latency_us"]["min"] = 0.0
    assert result_problems(line, device_bounds(hello())) == []
    line["latency_us"]["p50"] = 0.0
    assert result_problems(line, device_bounds(hello())) != []


def test_the_pcie_bound_applies_only_where_the_link_must_be_pcie():
    assert host_link_bound(hello())[1] == "PCIe gen5 x16 + 25 %"
    assert host_link_bound(hello())[0] == pytest.approx(3.938 * 16 * 1.25)
    for h in (hello(cpu="Neoverse-V2"), hello(cpu=None), hello("NVIDIA GH200 480GB"),
              hello(gen=7), hello(gen=None), hello(width=0)):
        assert host_link_bound(h) == (HOST_LINK_CEILING_GBPS, "host-link ceiling"), h


def test_cpu_backend_gets_cpu_bounds():
    """numpy-cpu: no PCIe; a Python call can be much quicker than a GPU synchronise."""
    bounds = device_bounds(hello(backend="numpy-cpu"))
    line = dict(result("launch", "sync", 800_000, 1.2), backend="numpy-cpu")
    assert result_problems(line, bounds) == []
    assert result_problems(copy_result("h2d", 4096, 60.0), bounds) == []


def test_emitter_counts_what_it_wrote_and_writes_nothing_after_done():
    out = io.StringIO()
    em = Emitter("numpy-cpu", out=out)
    em.emit("hello", engine_version="x", device={}, host={}, plan={})
    em.emit("telemetry", readings={})
    done = em.emit("done", status="ok", exit_code=0, counts={"hello": 7})   # caller's are stale
    em.emit("telemetry", readings={})                                        # a late reading
    lines = [json.loads(t) for t in out.getvalue().splitlines()]
    assert [ln["type"] for ln in lines] == ["hello", "telemetry", "done"]
    assert lines[-1]["counts"]["hello"] == 1 and lines[-1]["counts"]["telemetry"] == 1
    assert done["counts"] == lines[-1]["counts"]
    judge = StreamJudge()
    for ln in lines:
        judge.line(ln)
    assert judge.end(0) == []
