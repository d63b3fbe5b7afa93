"""Multi-GPU on real GPUs (CuPy): the p2p matrix and concurrent per-GPU runs.

Skipped without a GPU (tests/conftest.py; GPUBENCH_REQUIRE_GPU=1 makes that an error) and,
with a reason, when only one GPU is visible. Plain functions (asyncio.run), so that pytest
alone is enough on the GPU machine. Set GPUBENCH_GPU_LOG_DIR to keep the streams and a
figures summary (multigpu_figures.json) as evidence.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.engine_run import REPO, engine_env

pytestmark = pytest.mark.gpu


def _gpu_count() -> int:
    try:
        import cupy
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


@pytest.fixture(scope="module")
def two_gpus() -> int:
    n = _gpu_count()
    if n < 2:
        pytest.skip(f"needs 2 or more GPUs for p2p and per-GPU runs ({n} visible)")
    return n


def _log(name: str, text: str) -> None:
    d = os.environ.get("GPUBENCH_GPU_LOG_DIR")
    if d:
        Path(d).mkdir(parents=True, exist_ok=True)
        Path(d, name).write_text(text)


FIGURES: dict = {}


def _save_figures() -> None:
    _log("multigpu_figures.json", json.dumps(FIGURES, indent=2))
    print(json.dumps(FIGURES, indent=1))


def test_list_devices_on_real_gpus(two_gpus):
    proc = subprocess.run([sys.executable, "-m", "engine", "--backend", "cupy", "--list-devices"],
                          capture_output=True, text=True, env=engine_env(drop="GPUBENCH_"), cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    hello, done = [json.loads(t) for t in proc.stdout.splitlines() if t.strip()]
    gpus = hello["host"]["gpus"]
    assert len(gpus) == two_gpus and [g["index"] for g in gpus] == list(range(two_gpus))
    assert all(g["uuid"].startswith(("GPU-", "MIG-")) and g["name"] for g in gpus)
    p2p = hello["host"]["p2p"]
    assert len(p2p) == two_gpus and all(p2p[i][i] is None for i in range(two_gpus))
    assert done["status"] == "ok"
    FIGURES["gpus"] = gpus
    FIGURES["can_access_peer"] = p2p
    FIGURES["nvml_gpu_count"] = hello["host"]["nvml_gpu_count"]


def test_p2p_matrix_peer_and_nopeer_with_bandwidth_and_latency(two_gpus):
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "--backend", "cupy", "--workloads", "p2p",
         "--sizes", "256MiB", "--duration", "0.5", "--warmup", "0.1", "--repeats", "2",
         "--min-window", "0", "--telemetry-interval", "0.1"],
        capture_output=True, text=True, env=engine_env(drop="GPUBENCH_"), cwd=REPO, timeout=500)
    _log("p2p.jsonl", proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(t) for t in proc.stdout.splitlines() if t.strip()]
    hello = lines[0]
    can = hello["host"]["p2p"]
    results = [ln for ln in lines if ln["type"] == "result"]
    got = {r["variant"] for r in results}
    n = two_gpus
    for s in range(n):
        for d in range(n):
            if s == d:
                continue
            assert f"{s}->{d}-nopeer" in got
            if can[s][d] and can[d][s]:
                assert f"{s}->{d}-peer" in got
    for r in results:
        assert r["gbps"] > 0 and r["latency_us"]["p50"] > 0, r
        assert r["params"]["can_access_peer"] in (True, False)
    tel = [ln["readings"] for ln in lines if ln["type"] == "telemetry"]
    assert tel and all("nvlink" in t for t in tel)
    nvlink = next((t["nvlink"] for t in reversed(tel) if t["nvlink"]), None)
    FIGURES["p2p"] = {r["variant"]: {"gbps": round(r["gbps"], 2),
                                     "p50_us": round(r["latency_us"]["p50"], 1),
                                     "p99_us": round(r["latency_us"]["p99"], 1)}
                      for r in results if r["repeat"] == 1}
    FIGURES["nvlink_last_reading"] = nvlink
    _save_figures()


def test_concurrent_per_gpu_runs_tagged_and_aggregated(two_gpus, tmp_path):
    from scenarios.config import load_config
    from gpubench.runner import PlanOptions, PlanRunner
    from results.per_gpu import aggregate_workloads, gpu_workloads
    from results.store import Store
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text('[store]\ndata_dir = "data"\n[defaults]\nworkloads = ["launch", "h2d"]\n'
                        'duration_s = 1.0\nwarmup_s = 0.3\nrepeats = 3\ntrials = 1\n'
                        'backend = "cupy"\ncopy_sizes = ["256MiB"]\n'
                        '[scenarios.bare-metal]\nlauncher = "local"\nhost = "local"\n')
    config = load_config(cfg_path)
    times: dict = {}

    def progress(ev) -> None:
        if type(ev).__name__ == "TrialEvent" and ev.gpu is not None:
            kind = type(ev.event).__name__
            if kind in ("Hello", "SessionEnded"):
                times[(kind, ev.gpu["index"])] = time.monotonic()

    results = {}
    for mode, sequential in (("concurrent", False), ("sequential", True)):
        runner = PlanRunner(config, [config.scenarios["bare-metal"]],
                            PlanOptions(gpus="all", gpus_sequential=sequential, seed=1),
                            Store(config.data_dir))
        times.clear()
        res = asyncio.run(runner.run(progress))
        assert res.failed_sessions == 0 and res.documents, res
        doc = res.documents[0]
        assert doc["gpu_mode"] == mode and len(doc["gpus"]) == two_gpus
        hellos = [t for (k, _), t in times.items() if k == "Hello"]
        ends = [t for (k, _), t in times.items() if k == "SessionEnded"]
        if not sequential:
            assert max(hellos) < min(ends)        # every GPU measured at the same time
        figs = {}
        for i in range(two_gpus):
            for wl in gpu_workloads(doc, i):
                ops = sorted(t["ops_per_s"] for t in wl["trials"])
                figs[f"gpu{i} {wl['workload']}/{wl['variant']}"] = {
                    "ops_per_s": round(ops[len(ops) // 2], 1),
                    "gbps": wl["trials"][0].get("gbps")}
        for wl in aggregate_workloads(doc):
            vals = [t["ops_per_s"] for t in wl["trials"] if t["ops_per_s"] is not None]
            figs[f"all {wl['workload']}/{wl['variant']}"] = {
                "ops_per_s": round(sorted(vals)[len(vals) // 2], 1) if vals else None,
                "gbps": wl["trials"][0].get("gbps")}
        results[mode] = figs
    FIGURES["per_gpu_runs"] = results
    _save_figures()
