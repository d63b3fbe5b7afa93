"""`python -m engine` end to end on the CPU backend: stream validity, variants, failures, signals."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from engine.protocol import validate_line
from tests.support.own_lines import own_lines

from tests.support.engine_run import REPO, EngineRun, engine_env

FAST = ["--backend", "numpy-cpu", "--duration", "0.05", "--warmup", "0.01", "--min-window", "0"]
ALL = ("roundtrip,launch,h2d,d2h,d2d,gemm,alloc,init,p2p")
DESIGN_DEVICE_KEYS = {"name", "uuid", "index", "driver", "cuda_driver", "cuda_runtime",
                      "compute_capability", "memory_total_mib", "pcie", "mig_mode",
                      "power_limit_w", "clocks_max", "virtualization_mode", "backend"}
DESIGN_HOST_KEYS = {"hostname", "os", "kernel", "python", "numpy", "cupy", "nvml", "cpu_model",
                    "cpu_affinity", "pid", "hypervisor", "preload", "env"}


@pytest.fixture(scope="module")
def full_cpu_run():
    proc = subprocess.run(
        [sys.executable, "-m", "engine", *FAST, "--workloads", ALL, "--repeats", "2",
         "--sizes", "4KiB,1MiB", "--init-procs", "1,2", "--gemm-size", "64"],
        capture_output=True, text=True, env=engine_env(), cwd=REPO, timeout=180)
    return EngineRun(proc)


def test_every_line_is_protocol_v1_and_labelled_cpu(full_cpu_run):
    run = full_cpu_run
    assert run.returncode == 0, run.stderr
    assert run.lines[0]["type"] == "hello" and run.done["type"] == "done"
    assert len(run.of("hello")) == 1 and len(run.of("done")) == 1
    assert {line["backend"] for line in run.lines} == {"numpy-cpu"}
    assert run.done["status"] == "ok" and run.done["exit_code"] == 0
    ts = [line["t"] for line in run.lines]
    assert ts == sorted(ts), "t must be monotonic"
    assert run.done["counts"]["result"] == len(run.of("result"))


def test_every_variant_appears_once_per_repeat_with_sane_values(full_cpu_run):
    run = full_cpu_run
    planned = [(v["workload"], v["variant"]) for v in run.hello["plan"]["variants"]]
    names = {w: {v for ww, v in planned if ww == w} for w, _ in planned}
    assert names["roundtrip"] == {"pinned-64KiB"}
    assert names["launch"] == {"sync", "async"}
    assert names["h2d"] == names["d2h"] == {"pinned-4KiB", "pinned-1MiB", "pageable-4KiB",
                                            "pageable-1MiB"}
    assert names["d2d"] == {"4KiB", "1MiB"}
    assert names["gemm"] == {"fp32-64", "fp16-64"}
    assert names["alloc"] == {"1MiB", "1MiB-held"} and names["init"] == {"n1", "n2"}
    results = run.of("result")
    for workload, variant in planned:
        if workload == "p2p":
            continue
        mine = [r for r in results if (r["workload"], r["variant"]) == (workload, variant)]
        assert sorted(r["repeat"] for r in mine) == [0, 1], (workload, variant)
        for r in mine:
            lat = r["latency_us"]
            assert r["ops"] > 0 and r["ops_per_s"] > 0 and r["duration_s"] > 0
            assert 0 < lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"]
            assert lat["stdev"] >= 0 and lat["cv"] >= 0
            assert r["interrupted"] is False
            assert r["valid"] == (not r["validity_reasons"])
            if workload in ("h2d", "d2h", "d2d"):
                assert r["gbps"] > 0 and r["bytes"] == r["ops"] * r["params"]["size_bytes"]
            if workload == "gemm":
                assert r["tflops"] > 0
    launch_async = [r for r in results if r["variant"] == "async"]
    assert all(r["ops"] % r["params"]["launches_per_sync"] == 0 for r in launch_async)
    init = [r for r in results if r["workload"] == "init" and r["variant"] == "n2"]
    assert all(r["ops"] == 2 and r["params"]["processes"] == 2 for r in init)


def test_samples_are_emitted_while_measuring(full_cpu_run):
    samples = full_cpu_run.of("sample")
    assert {s["workload"] for s in samples} >= {"roundtrip", "launch", "h2d", "gemm", "alloc"}
    assert all(s["interval_ops"] > 0 and s["ops_per_s"] > 0 for s in samples)


def test_p2p_is_not_applicable_on_the_cpu_and_the_run_goes_on(full_cpu_run):
    errors = full_cpu_run.of("error")
    assert [e["code"] for e in errors] == ["not_applicable"]
    assert errors[0]["fatal"] is False


def test_hello_carries_design_facts(full_cpu_run):
    hello = full_cpu_run.hello
    assert DESIGN_DEVICE_KEYS <= set(hello["device"])
    assert DESIGN_HOST_KEYS <= set(hello["host"])
    assert hello["device"]["backend"] == "numpy-cpu"
    assert set(hello["host"]["hypervisor"]) == {"detected", "evidence", "vendor"}
    assert set(hello["host"]["preload"]) == {"ld_preload", "mapped", "driver", "cuda_version",
                                             "getproc", "resolves", "resolves_error"}
    assert hello["plan"]["repeats"] == 2 and hello["plan"]["sizes"] == [4096, 1048576]
    assert hello["engine_version"]


def test_cpus_pins_the_engine_and_hello_says_where(run_engine):
    run = run_engine("--workloads", "launch", "--launch-modes", "sync", "--duration", "0.05",
                     "--repeats", "1", "--cpus", "0")
    assert run.returncode == 0, run.stderr
    assert run.lines[0]["host"]["cpu_affinity"] == "0"


@pytest.mark.parametrize("args", [
    ["--workloads", "bogus"],
    ["--sizes", "1KiB"],
    ["--sizes", "512MiB"],
    ["--duration", "-1"],
    ["--repeats", "0"],
    ["--memory", "shared"],
    ["--launch-modes", "both"],
    ["--cpus", "x"],
    ["--cpus", "100000"],
    ["--backend", "gpu"],
    ["--no-such-flag"],
    ["--duration", "abc"],
])
def test_bad_arguments_give_one_line_and_exit_2(run_engine, args):
    run = run_engine(*args)
    assert run.returncode == 2
    assert len(own_lines(run.stderr)) == 1 and "Traceback" not in run.stderr, run.stderr
    assert [line["type"] for line in run.lines] == ["error", "done"]
    assert run.lines[0]["code"] == "bad_args" and run.lines[0]["fatal"] is True
    assert run.done["status"] == "error" and run.done["exit_code"] == 2


def _cupy_gpu() -> bool:
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.mark.skipif(_cupy_gpu(), reason="a GPU is present")
def test_backend_cupy_without_gpu_is_fatal_no_gpu(run_engine):
    run = run_engine("--backend", "cupy", "--workloads", "launch")
    assert run.returncode == 2
    assert [line["type"] for line in run.lines] == ["error", "done"]
    assert run.lines[0]["code"] == "no_gpu" and run.lines[0]["fatal"] is True
    assert run.lines[0]["backend"] == "cupy"
    assert run.done["status"] == "error" and run.done["exit_code"] == 2
    assert "Traceback" not in run.stderr


@pytest.mark.skipif(_cupy_gpu(), reason="a GPU is present")
def test_backend_auto_falls_back_to_cpu_with_a_note(run_engine):
    run = run_engine("--backend", "auto", "--workloads", "launch", "--duration", "0.02",
                     "--warmup", "0", "--repeats", "1")
    assert run.returncode == 0
    assert "numpy-cpu" in run.stderr
    assert run.hello["backend"] == "numpy-cpu"


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_gives_partial_interrupted_result_and_done(sig, code):
    proc = subprocess.Popen([sys.executable, "-m", "engine", "--backend", "numpy-cpu",
                             "--workloads", "launch", "--duration", "30", "--warmup", "0",
                             "--repeats", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=engine_env(), cwd=REPO)
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until it is measuring
            text = proc.stdout.readline()
            assert text, f"engine ended early: {proc.stderr.read()}"
            lines.append(validate_line(json.loads(text)))
            if lines[-1]["type"] == "sample":
                break
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines += [validate_line(json.loads(t)) for t in out.splitlines() if t.strip()]
    assert proc.returncode == code, err
    assert "Traceback" not in err
    results = [line for line in lines if line["type"] == "result"]
    assert len(results) == 1
    partial = results[0]
    assert partial["interrupted"] is True and partial["valid"] is False
    assert "interrupted" in partial["validity_reasons"]
    assert partial["ops"] > 0 and 0 < partial["duration_s"] < 30
    assert lines[-1]["type"] == "done"
    assert lines[-1]["status"] == "interrupted" and lines[-1]["exit_code"] == code


def test_runs_from_a_plain_copy_of_the_folder(tmp_path, run_engine):
    shutil.copytree(REPO / "engine", tmp_path / "engine",
                    ignore=shutil.ignore_patterns("__pycache__"))
    run = run_engine(*FAST, "--workloads", "launch,roundtrip", "--repeats", "1",
                     pythonpath=tmp_path, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.done["status"] == "ok"
    assert len(run.of("result")) == 3
    # and nothing of ours beyond the engine is imported, even where it could be
    probe = ("import sys, engine.lifecycle, engine.workloads, engine.telemetry, engine.facts, "
             "engine.child; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
             "('scenarios', 'results', 'tui', 'gpubench', 'textual')); print(bad); "
             "sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=engine_env(pythonpath=tmp_path), cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cpu_delay_measurably_slows_roundtrip_and_launch(run_engine, tmp_path):
    args = [*FAST, "--workloads", "roundtrip,launch", "--repeats", "1", "--duration", "0.1"]
    base = run_engine(*args)
    report = tmp_path / "delay.json"
    slow = run_engine(*args, env={"GPUBENCH_CPU_DELAY_NS": "50000",
                                  "GPUBENCH_CPU_DELAY_REPORT": str(report)})
    assert base.returncode == slow.returncode == 0
    spent = json.loads(report.read_text())        # written at exit: what the waits cost
    assert spent["delay_ns"] == 50000 and 0 < spent["timed_calls"] <= spent["calls"]
    assert spent["spent_ns_total"] >= 50000 * spent["timed_calls"]
    assert slow.hello["host"]["env"]["GPUBENCH_CPU_DELAY_NS"] == "50000"
    assert "GPUBENCH_CPU_DELAY_NS" not in base.hello["host"]["env"]

    def p50(run, variant):
        return next(r for r in run.of("result") if r["variant"] == variant)["latency_us"]["p50"]
    # a wait cannot end before its deadline, whatever the load: the floor holds in every op
    for variant in ("pinned-64KiB", "sync"):
        assert p50(slow, variant) >= 50.0
    # async launches are busy-waited one by one too
    assert p50(slow, "async") >= 50.0
