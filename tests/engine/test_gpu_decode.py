"""decode and prefill on a real GPU (CuPy): batch 1/8/64 and the prefill prompts give valid,
believable lines; a graph variant is measured only when its graph did the work, else it is a
not_applicable notice; the verifier refuses a graph that does nothing. Skipped without a GPU.

Set GPUBENCH_GPU_LOG_DIR to keep the engine stream (decode_all.jsonl) as evidence.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.support.engine_run import REPO, EngineRun, engine_env, run_gpu_engine

from engine.backend import CupyBackend
from engine.model_shapes import SHAPES, decode_flops
from engine.plausibility import GEMM_TFLOPS_CEILING, judge_session
from engine.workloads.step_graph import check_graph
from engine.workloads.transformer import Step

pytestmark = pytest.mark.gpu

EAGER = ("8b-l4-b1-kv2048", "8b-l4-b8-kv2048", "8b-l4-b64-kv2048")
GRAPH = tuple(name + "-graph" for name in EAGER)


@pytest.fixture(scope="module")
def gpu_run() -> EngineRun:
    return run_gpu_engine(["--workloads", "gemm,decode,prefill", "--decode-modes", "eager,graph",
                           "--duration", "0.5", "--warmup", "0.2", "--repeats", "1",
                           "--min-window", "0", "--telemetry-interval", "0.1"], "decode_all")


def _steps(run: EngineRun) -> dict[str, dict]:
    return {r["variant"]: r for r in run.of("result") if r["workload"] in ("decode", "prefill")}


def test_decode_batches_and_prefill_give_valid_believable_lines(gpu_run):
    run = gpu_run
    assert run.returncode == 0, run.stderr[-3000:]
    steps = _steps(run)
    assert set(EAGER) | {"8b-l4-n128", "8b-l4-n512", "8b-l4-n2048"} <= set(steps)
    for name, r in steps.items():
        assert r["backend"] == "cupy" and r["params"]["dtype"] == "fp16"
        # a window whose median moved (the host's clocks or load) is a threat to its figure,
        # not a wrong figure: every other reason is a failure of the step
        wrong = [x for x in r["validity_reasons"] if not x.startswith("drift:")]
        assert r["valid"] is True or not wrong, (name, r["validity_reasons"])
        lat = r["latency_us"]
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
        assert 0 < r["tflops"] < GEMM_TFLOPS_CEILING["fp16"]
        assert r["tokens_per_s"] == pytest.approx(r["ops_per_s"] * r["params"]["tokens_per_step"])
        assert r["device_time_s"] > 0
        dev = r["device_latency_us"]        # the same steps between their CUDA events
        assert dev["min"] <= dev["p50"] <= dev["p90"] <= dev["p99"] <= dev["p999"] <= dev["max"]
        assert dev["p50"] <= lat["p50"] * 1.05
    assert steps["8b-l4-b8-kv2048"]["flops_per_step"] == decode_flops(SHAPES["8b"], 4, 8, 2048)
    # more sequences per step, more tokens per second (decode is memory-bound at batch 1)
    assert steps["8b-l4-b64-kv2048"]["tokens_per_s"] > steps["8b-l4-b1-kv2048"]["tokens_per_s"]
    per_result, session = judge_session(run.lines, run.returncode)
    assert session == [] and all(p == [] for p in per_result)


def test_each_graph_variant_is_measured_only_when_its_graph_did_the_work(gpu_run):
    run = gpu_run
    steps = _steps(run)
    notices = {e["message"].split(":")[0]: e for e in run.of("error")
               if e["code"] == "not_applicable"}
    for name in GRAPH:
        if name in steps:     # measured: the check's figures travel with the result
            check = steps[name]["params"]["graph_check"]
            assert check["did_work"] is True and check["replay_us"] >= check["floor_us"]
            assert check["checksum"] == pytest.approx(check["eager_checksum"], rel=1e-3)
            assert f"decode {name}" not in notices
        else:                 # unsupported: said once, plainly, no figure
            assert "unsupported on CuPy" in notices[f"decode {name}"]["message"]
            assert notices[f"decode {name}"]["fatal"] is False


def test_the_verifier_refuses_a_graph_that_skips_the_work():
    import cupy as cp  # here, not at the top: the module is collected (and skipped) without CuPy
    b = CupyBackend(cp, 0)
    s = SHAPES["8b"]
    step = Step(cp, s, 1, "fp16", sequences=8, queries=1, context=512)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:                       # a graph that only zeroes the output: none of the work
        stream.begin_capture()
        step.out.fill(0)
        idle = stream.end_capture()
    check = check_graph(b, step, idle, stream, decode_flops(s, 1, 8, 512), "fp16")
    assert check["did_work"] is False and check["checksum"] == 0.0
    assert check["eager_checksum"] > 0 and check["gemm_tflops"] > 10


def test_the_decode_overhead_benchmark_runs_on_the_gpu(tmp_path):
    out = tmp_path / "do.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "decode_overhead.py"),
                           "--quick", "--backend", "cupy", "--json", str(out)],
                          capture_output=True, text=True, env=engine_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["what"]: r for r in json.loads(out.read_text())["rows"]}
    assert {"8b-l4-b1-kv2048", "8b-l4-b8-kv2048"} <= set(rows)
    assert all(rows[n]["value"] > 0 for n in ("8b-l4-b1-kv2048", "8b-l4-b8-kv2048"))
