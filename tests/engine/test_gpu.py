"""The engine on a real GPU (CuPy). Skipped without one; `make test-gpu` runs them.

Set GPUBENCH_GPU_LOG_DIR to keep the full engine stream (engine_all.jsonl) as evidence.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from tests.support.engine_run import REPO, EngineRun, engine_env, run_gpu_engine

from engine.plausibility import judge_session
from engine.protocol import validate_line

pytestmark = pytest.mark.gpu

ALL = "roundtrip,launch,h2d,d2h,d2d,alloc,gemm,init,p2p"


@pytest.fixture(scope="module")
def gpu_run() -> EngineRun:
    return run_gpu_engine(["--workloads", ALL, "--duration", "0.3", "--warmup", "0.1",
                           "--repeats", "1", "--min-window", "0", "--telemetry-interval", "0.1",
                           "--init-procs", "1,8,32", "--sizes", "4KiB,64KiB,1MiB,16MiB,256MiB"],
                          "engine_all")


def _result(run: EngineRun, workload: str, variant: str) -> dict:
    return next(r for r in run.of("result") if (r["workload"], r["variant"]) == (workload, variant))


def test_every_workload_runs_on_cupy_and_every_line_is_valid(gpu_run):
    run = gpu_run
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.done["status"] == "ok"
    assert {line["backend"] for line in run.lines} == {"cupy"}
    planned = {(v["workload"], v["variant"]) for v in run.hello["plan"]["variants"]}
    got = {(r["workload"], r["variant"]) for r in run.of("result")}
    assert {p for p in planned if p[0] != "p2p"} <= got
    for r in run.of("result"):
        assert r["ops"] > 0 and r["ops_per_s"] > 0, r
        assert 0 < r["latency_us"]["p50"] <= r["latency_us"]["max"]
    gpus = run.hello["device"]["visible_devices"]
    p2p = [r for r in run.of("result") if r["workload"] == "p2p"]
    if gpus < 2:
        assert any(e["code"] == "not_applicable" for e in run.of("error"))
    else:
        assert p2p and all(r["gbps"] > 0 for r in p2p)
    assert not [e for e in run.of("error") if e["code"] not in ("not_applicable",)]


def test_the_orchestrators_judge_believes_every_real_figure(gpu_run):
    # The physical bounds must never refuse what a real GPU measures, at any copy size.
    per_result, session_problems = judge_session(gpu_run.lines, gpu_run.returncode)
    flagged = [(r["workload"], r["variant"], problems)
               for r, problems in zip(gpu_run.of("result"), per_result) if problems]
    assert session_problems == [] and flagged == []
    assert len(per_result) == len(gpu_run.of("result")) > 20


def test_hello_has_device_and_host_facts(gpu_run):
    dev, host = gpu_run.hello["device"], gpu_run.hello["host"]
    assert dev["backend"] == "cupy" and dev["name"]
    assert dev["uuid"].startswith("GPU-") and dev["driver"] and dev["cuda_runtime"]
    assert dev["compute_capability"] and dev["memory_total_mib"] > 1000
    assert dev["pcie"]["gen_max"] is None or dev["pcie"]["gen_max"] >= 1
    assert dev["clocks_max"]["sm_mhz"] and dev["power_limit_w"]
    assert host["cupy"] and host["nvml"]
    assert isinstance(host["hypervisor"]["detected"], bool)
    if dev["virtualization_mode"] == 1:  # a passthrough guest says so
        assert host["hypervisor"]["detected"]


def test_telemetry_has_clocks_power_and_temperature(gpu_run):
    tele = [t["readings"] for t in gpu_run.of("telemetry")]
    assert len(tele) >= 3
    assert any(t["sm_clock_mhz"] for t in tele) and any(t["power_w"] for t in tele)
    assert any(t["temperature_c"] is not None for t in tele)
    assert all(isinstance(t["throttle_reasons"], int) for t in tele)


def test_figures_are_in_plausible_ranges(gpu_run):
    run = gpu_run
    sync = _result(run, "launch", "sync")
    assert 2.0 < sync["latency_us"]["p50"] < 500.0
    assert _result(run, "launch", "async")["ops_per_s"] > sync["ops_per_s"]
    assert 1.0 < _result(run, "h2d", "pinned-256MiB")["gbps"] < 200.0
    assert 1.0 < _result(run, "d2h", "pinned-256MiB")["gbps"] < 200.0
    assert _result(run, "d2d", "256MiB")["gbps"] > 50.0
    fp32 = _result(run, "gemm", "fp32-8192")
    fp16 = _result(run, "gemm", "fp16-8192")
    assert fp32["tflops"] > 1.0 and fp16["tflops"] > fp32["tflops"]
    cold = _result(run, "alloc", "1MiB")["latency_us"]["p50"]
    held = _result(run, "alloc", "1MiB-held")["latency_us"]["p50"]
    # nothing else live: the driver maps and unmaps a chunk per pair; with a neighbour
    # held it sub-allocates (H200: ~67 us vs ~3 us)
    assert cold > 2 * held > 0.5
    rt = _result(run, "roundtrip", "pinned-64KiB")
    assert 5.0 < rt["latency_us"]["p50"] < 5000.0
    n32 = _result(run, "init", "n32")
    assert n32["ops"] == 32 and n32["latency_us"]["p50"] < 120e6


def test_device_by_uuid_selects_the_same_gpu(gpu_run, run_engine):
    uuid = gpu_run.hello["device"]["uuid"]
    run = run_engine("--backend", "cupy", "--device", uuid, "--workloads", "launch",
                     "--duration", "0.05", "--warmup", "0", "--repeats", "1")
    assert run.returncode == 0, run.stderr
    assert run.hello["device"]["uuid"] == uuid


def test_sigint_on_gpu_gives_partial_result_and_exit_130():
    proc = subprocess.Popen([sys.executable, "-m", "engine", "--backend", "cupy",
                             "--workloads", "roundtrip", "--duration", "30", "--warmup", "0",
                             "--repeats", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=engine_env(), cwd=REPO)
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = proc.stdout.readline()
            assert text, proc.stderr.read()
            lines.append(validate_line(json.loads(text)))
            if lines[-1]["type"] == "sample":
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines += [validate_line(json.loads(t)) for t in out.splitlines() if t.strip()]
    assert proc.returncode == 130, err
    result = [line for line in lines if line["type"] == "result"][-1]
    assert result["interrupted"] and result["ops"] > 0
    assert lines[-1]["status"] == "interrupted"
