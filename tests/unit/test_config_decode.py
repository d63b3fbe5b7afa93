"""config.toml's decode/prefill keys in [defaults] (model_shape, layers, kv_len, decode_batches,
decode_modes, prefill_tokens): loaded, handed to the engine through EngineArgs, and measured
as configured by the real engine. Bad values are the hostile cases in tests/hostile/config/."""
from __future__ import annotations

from engine.engine_args import EngineArgs
from engine.plan import build_variants, parse_args
from gpubench.runner import PlanOptions, engine_args
from scenarios.config import BenchDefaults, parse_config
from tests.support.engine_run import run_engine

DECODE_DEFAULTS = {"workloads": ["decode", "prefill"], "model_shape": "small", "layers": 1,
                   "kv_len": 32, "decode_batches": [2, 4, 2], "decode_modes": ["eager"],
                   "prefill_tokens": [8]}


def load(tmp_path, **defaults):
    return parse_config({"defaults": defaults}, "config.toml", tmp_path).defaults


def test_decode_keys_load_and_leaving_them_out_keeps_the_engine_defaults(tmp_path):
    d = load(tmp_path, **DECODE_DEFAULTS)
    assert (d.model_shape, d.layers, d.kv_len) == ("small", 1, 32)
    assert d.decode_batches == (2, 4)            # each once, in the order given
    assert (d.decode_modes, d.prefill_tokens) == (("eager",), (8,))
    plain = load(tmp_path)
    assert plain == BenchDefaults()
    assert plain.engine_args() == EngineArgs(workloads=plain.workloads, repeats=plain.repeats)
    assert not any(o in plain.engine_args().to_argv() for o in
                   ("--model-shape", "--layers", "--kv-len", "--decode-batches",
                    "--decode-modes", "--prefill-tokens"))


def test_the_plan_hands_them_to_the_engine_which_builds_those_variants(tmp_path):
    d = load(tmp_path, **DECODE_DEFAULTS)
    argv = engine_args(d, PlanOptions()).to_argv()
    for pair in (["--model-shape", "small"], ["--layers", "1"], ["--kv-len", "32"],
                 ["--decode-batches", "2,4"], ["--prefill-tokens", "8"]):
        i = argv.index(pair[0])
        assert argv[i:i + 2] == pair, argv
    names = [(v.workload, v.name) for v in build_variants(parse_args(argv), "numpy-cpu")]
    assert names == [("decode", "small-l1-b2-kv32"), ("decode", "small-l1-b4-kv32"),
                     ("prefill", "small-l1-n8")]


def test_the_real_engine_measures_the_configured_steps(tmp_path):
    d = load(tmp_path, **{**DECODE_DEFAULTS, "workloads": ["decode"], "decode_batches": [3],
                          "duration_s": 0.05, "warmup_s": 0.0, "repeats": 1,
                          "backend": "numpy-cpu", "telemetry_interval_s": 0.05})
    proc, lines = run_engine(*d.engine_args().to_argv(), "--min-window", "0")
    assert proc.returncode == 0, proc.stderr
    results = [ln for ln in lines if ln["type"] == "result"]
    assert [(r["workload"], r["variant"]) for r in results] == [("decode", "small-l1-b3-kv32")]
    params = results[0]["params"]
    assert (params["shape"], params["layers"], params["batch"], params["kv_len"]) == \
        ("small", 1, 3, 32)
    assert results[0]["tokens_per_s"] > 0
