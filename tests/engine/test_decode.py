"""decode and prefill: the transformer shapes and their FLOP counts, the workloads through the
real engine on numpy-cpu, their options, and the check that keeps a captured graph honest."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from engine.engine_args import EngineArgs
from engine.model_shapes import SHAPES, decode_flops, layer_flops, prefill_flops, weight_count
from engine.plan import build_variants, parse_args
from engine.plausibility import StreamJudge, device_bounds, judge_session, result_problems
from engine.workloads.step_graph import judge_replay
from engine.workloads.transformer import Step
from results.document import SessionRecord, build_document
from tests.engine.test_plausibility import hello, result
from tests.support.engine_run import REPO, engine_env
from tests.support.engine_run import run_engine as engine_process

# one BLAS thread: the test machine is shared, and OpenBLAS threads spinning against other
# processes turn a 3 ms step into 70 ms (what is tested here is the stream, not the speed)
CPU_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
# the window rules judge the machine's steadiness, which a busy shared CPU cannot promise
STEADY = ("--min-window", "0", "--stall-limit", "0", "--drift-limit", "0")


def test_the_8b_shape_is_an_8b_class_decoder():
    s = SHAPES["8b"]
    assert (s.hidden, s.heads, s.head_dim, s.kv_heads, s.mlp, s.dtype) == \
        (4096, 32, 128, 8, 14336, "fp16")
    assert (s.q_dim, s.kv_dim, s.group) == (4096, 1024, 4)
    assert {"8b", "1b", "small"} <= set(SHAPES)


def test_flop_counts_by_hand():
    s = SHAPES["8b"]
    # one token over 2048 positions: QKV 2·4096·6144, scores and values 2·2·32·128·2048,
    # output 2·4096·4096, MLP 2·4096·28672 + 2·14336·4096
    per_layer = 50_331_648 + 33_554_432 + 33_554_432 + 352_321_536
    assert layer_flops(s, 1, 2048) == per_layer == 469_762_048
    assert decode_flops(s, 4, 1, 2048) == 4 * per_layer
    assert decode_flops(s, 4, 8, 2048) == 8 * 4 * per_layer
    # a 512-token prompt: the projections on 512 tokens (436,207,616 each), attention over
    # the 512 × 512 square (4·512·32·128·512), two layers
    assert prefill_flops(s, 2, 512) == 2 * (223_338_299_392 + 4_294_967_296) == 455_266_533_376
    assert weight_count(s, 1) == 4096 * 6144 + 4096 * 4096 + 4096 * 28672 + 14336 * 4096 + 8192


class _Counting(np.ndarray):
    """An array that adds 2·m·n·k (per batch) to `flops` for every matrix product done on it."""
    flops = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        args = [np.asarray(x) if isinstance(x, _Counting) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(np.asarray(x) if isinstance(x, _Counting) else x
                                  for x in kwargs["out"])
        if ufunc is np.matmul and method == "__call__":
            a, b = args[0], args[1]
            batch = math.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
            _Counting.flops += 2 * batch * a.shape[-2] * a.shape[-1] * b.shape[-1]
        out = getattr(ufunc, method)(*args, **kwargs)
        return out.view(_Counting) if isinstance(out, np.ndarray) else out


def _counted(step: Step) -> int:
    for block in step.blocks:
        for name in ("norm1", "wqkv", "wo", "norm2", "wgu", "wdown"):
            setattr(block, name, getattr(block, name).view(_Counting))
    step.x = step.x.view(_Counting)
    _Counting.flops = 0
    step()
    return _Counting.flops


@pytest.mark.parametrize("name", ["small", "1b"])
def test_the_step_does_exactly_the_flops_it_reports(name):
    s = SHAPES[name]
    decode = Step(np, s, 2, "fp32", sequences=3, queries=1, context=40)
    assert _counted(decode) == decode_flops(s, 2, 3, 40)
    prefill = Step(np, s, 1, "fp32", sequences=1, queries=24, context=24, causal=True)
    assert _counted(prefill) == prefill_flops(s, 1, 24)


def test_the_arrays_have_the_shapes_of_the_model():
    s = SHAPES["small"]
    step = Step(np, s, 2, "fp32", sequences=4, queries=1, context=16)
    block = step.blocks[0]
    assert block.wqkv.shape == (s.hidden, s.q_dim + 2 * s.kv_dim)
    assert block.wo.shape == (s.q_dim, s.hidden)
    assert block.wgu.shape == (s.hidden, 2 * s.mlp) and block.wdown.shape == (s.mlp, s.hidden)
    assert step.k_cache[1].shape == (4, s.kv_heads, s.head_dim, 16)
    assert step.v_cache[1].shape == (4, s.kv_heads, 16, s.head_dim)
    step()
    first = step.checksum()
    step()
    assert step.out.shape == (4, s.hidden) and np.isfinite(step.out).all()
    assert step.checksum() == first   # every step the same work on the same input


def test_causal_prefill_attends_only_backwards():
    s = SHAPES["small"]
    step = Step(np, s, 1, "fp32", sequences=1, queries=8, context=8, causal=True)
    step()
    before = step.out[:4].copy()
    step.x = step.x.copy()
    step.x[4:] += 1.0            # change the later tokens: the earlier ones must not see it
    step()
    assert np.allclose(step.out[:4], before) and not np.allclose(step.out[4:], 0)


def test_variants_default_per_backend_and_name_the_work():
    cpu = build_variants(parse_args(["--workloads", "decode,prefill"]), "numpy-cpu")
    assert [v.name for v in cpu] == ["small-l2-b1-kv128", "small-l2-b8-kv128",
                                     "small-l2-b64-kv128", "small-l2-n16", "small-l2-n64"]
    assert cpu[0].params["dtype"] == "fp32"
    gpu = build_variants(parse_args(["--workloads", "decode,prefill", "--decode-modes",
                                     "eager,graph"]), "cupy")
    assert [v.name for v in gpu][:4] == ["8b-l4-b1-kv2048", "8b-l4-b8-kv2048",
                                         "8b-l4-b64-kv2048", "8b-l4-b1-kv2048-graph"]
    assert [v.name for v in gpu][-3:] == ["8b-l4-n128", "8b-l4-n512", "8b-l4-n2048"]
    assert gpu[1].params == {"shape": "8b", "layers": 4, "dtype": "fp16", "mode": "eager",
                             "batch": 8, "kv_len": 2048, "tokens_per_step": 8,
                             "flops_per_step": decode_flops(SHAPES["8b"], 4, 8, 2048)}
    picked = build_variants(parse_args(["--workloads", "decode", "--model-shape", "1b",
                                        "--layers", "3", "--kv-len", "512",
                                        "--decode-batches", "2"]), "cupy")
    assert [v.name for v in picked] == ["1b-l3-b2-kv512"]


def test_engine_args_carry_the_new_options():
    args = EngineArgs(workloads=("decode",), model_shape="1b", layers=2, kv_len=256,
                      decode_batches=(1, 4), decode_modes=("graph",), prefill_tokens="8,32")
    assert EngineArgs.from_argv(args.to_argv()) == args
    plan = parse_args(args.to_argv())
    assert (plan.model_shape, plan.layers, plan.kv_len, plan.decode_batches,
            plan.decode_modes, plan.prefill_tokens) == ("1b", 2, 256, (1, 4), ("graph",), (8, 32))


@pytest.mark.parametrize("argv, message", [
    (["--decode-modes", "lazy"], "--decode-modes takes eager and/or graph, not 'lazy'"),
    (["--decode-batches", "0"], "--decode-batches values must be 1..4096"),
    (["--prefill-tokens", "x"], "--prefill-tokens takes whole numbers, not 'x'"),
    (["--kv-len", "0"], "--kv-len must be 1..131072"),
    (["--layers", "0"], "--layers must be 1..256"),
])
def test_bad_step_options_are_one_line_and_exit_2(run_engine, argv, message):
    run = run_engine("--backend", "numpy-cpu", "--workloads", "decode", *argv)
    assert run.returncode == 2
    assert [e["message"] for e in run.of("error")] == [message]


@pytest.fixture(scope="module")
def cpu_session():
    proc, lines = engine_process("--backend", "numpy-cpu", "--workloads", "decode,prefill",
                             "--decode-modes", "eager,graph", "--duration", "0.3",
                             "--warmup", "0.05", "--repeats", "2", "--telemetry-interval", "0",
                             *STEADY, env=CPU_ENV)
    return proc, lines


def test_a_cpu_session_gives_valid_step_lines_with_ordered_percentiles(cpu_session):
    proc, lines = cpu_session
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {line["backend"] for line in lines} == {"numpy-cpu"}
    results = [ln for ln in lines if ln["type"] == "result"]
    assert sorted({(r["workload"], r["variant"]) for r in results}) == [
        ("decode", "small-l2-b1-kv128"), ("decode", "small-l2-b64-kv128"),
        ("decode", "small-l2-b8-kv128"), ("prefill", "small-l2-n16"), ("prefill", "small-l2-n64")]
    assert len(results) == 10
    for r in results:
        assert r["valid"] is True, r["validity_reasons"]
        lat = r["latency_us"]
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
        assert r["jitter"] == pytest.approx(lat["p99"] / lat["p50"], rel=1e-3)
        assert r["tokens_per_s"] == pytest.approx(r["ops_per_s"] * r["params"]["tokens_per_step"])
        assert r["flops_per_step"] == r["params"]["flops_per_step"] > 0
        assert r["tflops"] > 0 and r["params"]["dtype"] == "fp32"
        assert "device_latency_us" not in r     # the CPU's clock is the step's only clock
    per_result, session = judge_session(lines, proc.returncode)
    assert session == [] and all(p == [] for p in per_result)


def test_the_graph_variant_is_unsupported_on_the_cpu_with_a_notice(cpu_session):
    proc, lines = cpu_session
    errors = [ln for ln in lines if ln["type"] == "error"]
    assert [(e["code"], e["fatal"]) for e in errors] == [("not_applicable", False)] * 3
    assert errors[0]["message"] == ("decode small-l2-b1-kv128-graph: a CUDA graph needs the "
                                    "cupy backend (this is numpy-cpu)")
    assert not [ln for ln in lines if ln["type"] == "result" and ln["variant"].endswith("graph")]
    assert lines[-1]["status"] == "ok"


def test_a_replay_that_did_no_work_is_refused_and_an_honest_one_passes():
    flops = 64 * 4096 * 4096 * 2 * 8     # the eight GEMMs a hand-built graph skipped
    # at 800 TFLOP/s they need 21.5 us: a replay under half that did not do them
    empty = judge_replay(0.3e-6, flops, 800.0, eager=1234.5, replayed=0.0)
    assert empty["did_work"] is False and empty["floor_us"] == pytest.approx(10.737, rel=1e-3)
    fast_but_wrong = judge_replay(1e-3, flops, 800.0, eager=1234.5, replayed=1.0)
    assert fast_but_wrong["did_work"] is False
    assert judge_replay(1e-3, flops, 800.0, eager=1234.5, replayed=1234.6)["did_work"] is True


def _step_result(tflops: float, workload: str = "decode", **change) -> dict:
    """An 8b batch-8 decode result as the engine writes it: 1 ms steps, 8 tokens each."""
    line = result(workload, "8b-l4-b8-kv2048", 1000.0, 1000.0,
                  params={"dtype": "fp16", "tokens_per_step": 8, "flops_per_step": 15_032_385_536},
                  tokens_per_s=8000.0, flops_per_step=15_032_385_536, tflops=tflops,
                  device_time_s=0.95)
    line["jitter"] = round(line["latency_us"]["p99"] / line["latency_us"]["p50"], 4)
    line.update(change)
    return line


def test_a_believable_step_passes():
    assert result_problems(_step_result(15.8), device_bounds(hello())) == []


def test_a_step_claiming_more_than_the_gemm_ceiling_is_named():
    problems = result_problems(_step_result(25_000.0, "prefill"), device_bounds(hello()))
    assert problems == ["25000 TFLOP/s is above the 10000 TFLOP/s GEMM ceiling"]


def test_a_step_beyond_twice_the_sessions_gemm_is_named_and_its_trial_invalid():
    gemm = result("gemm", "fp16-8192", 700.0, 1400.0, params={"dtype": "fp16"}, tflops=770.0,
                  device_time_s=0.99)
    step = _step_result(1600.0)
    judge = StreamJudge()
    assert judge.line(hello()) == [] and judge.line(gemm) == []
    assert judge.line(step) == ["1600 TFLOP/s is above 2× the 770 TFLOP/s this session's "
                                "gemm fp16-8192 measured"]
    assert judge.line(_step_result(800.0)) == []     # under twice the GEMM: believed
    doc = build_document([SessionRecord([hello(), gemm, step], outcome="completed")],
                         {"name": "decode"})
    trial = next(wl for wl in doc["workloads"] if wl["workload"] == "decode")["trials"][0]
    assert trial["valid"] is False
    assert "1600 TFLOP/s is above 2× the 770 TFLOP/s this session's gemm fp16-8192 " \
           "measured" in trial["validity_reasons"]


def test_step_figures_that_disagree_with_each_other_are_named():
    bounds = device_bounds(hello())
    assert result_problems(_step_result(15.8, tokens_per_s=9000.0), bounds) == [
        "tokens_per_s 9000 is not 1000 steps/s × 8 tokens (8000)"]
    assert result_problems(_step_result(15.8, jitter=1.2), bounds) == [
        "jitter 1.2 is not p99 ÷ p50 (2.5)"]
    step = _step_result(15.8)
    step["latency_us"]["p90"] = step["latency_us"]["p99"] * 2
    assert result_problems(step, bounds)[0].startswith("latency percentiles out of order")


def test_the_decode_overhead_benchmark_runs_on_the_cpu_and_reanalyses(tmp_path):
    out = tmp_path / "do.json"
    bench = str(REPO / "benchmarks" / "decode_overhead.py")
    proc = subprocess.run([sys.executable, bench, "--quick", "--backend", "numpy-cpu",
                           "--rounds", "2", "--trial-s", "0.05", "--batches", "1",
                           "--json", str(out)],
                          capture_output=True, text=True, env=engine_env(CPU_ENV), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# decode_overhead — CPU (numpy-cpu: not GPU figures)")
    rows = json.loads(out.read_text())["rows"]
    assert [r["what"] for r in rows] == ["small-l2-b1-kv128", "small-l2-b1-kv128-graph"]
    assert rows[0]["value"] > 0 and len(rows[0]["ratios"]) == 2
    assert rows[0]["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")
    assert rows[1]["verdict"] == "UNSUPPORTED"
    # the table again from the file: the same rows, measured nothing
    again = subprocess.run([sys.executable, bench, "--reanalyse", str(out)], capture_output=True,
                           text=True, env=engine_env(), timeout=60)
    assert again.returncode == 0, again.stderr
    assert f"| small-l2-b1-kv128 | {rows[0]['value']:.4f} |" in again.stdout
    assert "| small-l2-b1-kv128-graph | | | <= 1.02 | UNSUPPORTED | decode small-l2-b1-kv128-" \
           "graph: a CUDA graph needs the cupy backend (this is numpy-cpu) |" in again.stdout


def test_device_step_percentiles_follow_the_same_rules():
    bounds = device_bounds(hello())
    device = {"mean": 950.0, "min": 800.0, "max": 4000.0, "p50": 900.0, "p90": 1000.0,
              "p99": 1500.0, "p999": 2000.0}
    assert result_problems(_step_result(15.8, device_latency_us=device), bounds) == []
    device["p99"] = 5000.0
    assert result_problems(_step_result(15.8, device_latency_us=device), bounds) == [
        "device latency percentiles out of order: p99 5000 > p999 2000 µs"]
