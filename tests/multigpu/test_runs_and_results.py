"""gpubench run --gpus: per-GPU runs saved as tagged documents, shown and compared per GPU."""
from __future__ import annotations

import json

import pytest

from gpubench.cli import main
from scenarios.config import ConfigError, load_config
from results.document import SessionRecord, build_document
from results.per_gpu import aggregate_workloads, doc_gpus, gpu_workloads, is_per_gpu
from results.report import columns_for, comparison_table, to_csv
from results.schema import NotComparable
from results.comparison import compare_runs
from results.store import Store
from scenarios.replay import synthetic_stream

CONFIG = """
[store]
data_dir = "data"
[defaults]
workloads = ["launch"]
duration_s = 0.2
warmup_s = 0.0
repeats = 1
trials = {trials}
backend = "numpy-cpu"
telemetry_interval_s = 0.5
[scenarios.bare-metal]
launcher = "local"
host = "local"
{extra}
"""


def write_config(tmp_path, trials: int = 1, extra: str = ""):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(trials=trials, extra=extra))
    return path


def _runs(path) -> list[dict]:
    cfg = load_config(path)
    store = Store(cfg.data_dir)
    return [store.load(r["id"]) for r in store.list_runs().runs]


def test_cli_run_gpus_all_concurrent_tags_every_trial_and_show_has_an_aggregate(
        tmp_path, fake_gpus, capsys):
    fake_gpus(2)
    path = write_config(tmp_path, trials=2)
    assert main(["--config", str(path), "run", "--gpus", "all"]) == 0
    err = capsys.readouterr().err
    assert "2 GPU(s) concurrently" in err and "on GPUs 0,1" in err
    [doc] = _runs(path)
    assert doc["gpu_mode"] == "concurrent"
    assert [g["uuid"] for g in doc["gpus"]] == ["CPU-FAKE-0", "CPU-FAKE-1"]
    assert doc["partition"]["kind"] == "cpu" and doc["partition"]["visible_gpus"] == 2
    assert len(doc["sessions"]) == 4 and all(s["gpu"] for s in doc["sessions"])
    assert doc["validity"]["reasons"] == [] or all(
        "sessions differ" not in r for r in doc["validity"]["reasons"])   # GPUs may differ
    for wl in doc["workloads"]:
        for t in wl["trials"]:
            assert set(t["gpu"]) >= {"index", "uuid", "name"}
            assert t["gpu"]["name"] == f"CPU (numpy-cpu) fake device {t['gpu']['index']}"
    assert is_per_gpu(doc) and list(doc_gpus(doc)) == [0, 1]
    agg = aggregate_workloads(doc)
    sync = next(w for w in agg if w["variant"] == "sync")
    per = {i: next(w for w in gpu_workloads(doc, i) if w["variant"] == "sync") for i in (0, 1)}
    for t in sync["trials"]:
        parts = [next(p for p in per[i]["trials"] if (p["trial"], p["repeat"]) ==
                      (t["trial"], t["repeat"])) for i in (0, 1)]
        assert t["ops_per_s"] == pytest.approx(sum(p["ops_per_s"] for p in parts))
        assert t["latency_us"]["p50"] == pytest.approx(
            sum(p["latency_us"]["p50"] for p in parts) / 2)           # median of two
    assert main(["--config", str(path), "show", doc["id"]]) == 0
    out = capsys.readouterr().out
    rows = [ln.split("\t") for ln in out.splitlines() if ln.startswith("launch\t")]
    assert {(r[1], r[2]) for r in rows} == {(v, g) for v in ("sync", "async")
                                            for g in ("0", "1", "all")}
    assert "GPUs: 2" in out


def test_cli_run_gpus_sequential_one_after_the_other(tmp_path, fake_gpus, capsys):
    fake_gpus(2)
    path = write_config(tmp_path)
    assert main(["--config", str(path), "run", "--gpus", "1,0", "--gpus-sequential"]) == 0
    assert "one after the other" in capsys.readouterr().err
    [doc] = _runs(path)
    assert doc["gpu_mode"] == "sequential"
    assert [s["gpu"]["index"] for s in doc["sessions"]] == [1, 0]
    agg = aggregate_workloads(doc)
    assert agg and all(t["ops_per_s"] is None and t["latency_us"] for w in agg
                       for t in w["trials"])     # no summed throughput when not concurrent


def test_cli_bad_gpu_selection_is_one_line_exit_2(tmp_path, fake_gpus, capsys):
    fake_gpus(2)
    path = write_config(tmp_path)
    assert main(["--config", str(path), "run", "--gpus", "0,5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown GPU '5'" in err and "CPU-FAKE-1" in err
    assert main(["--config", str(path), "run", "--gpus", "0,,1"]) == 2
    assert "--gpus" in capsys.readouterr().err
    assert main(["--config", str(path), "run", "--gpus-sequential"]) == 2
    assert _runs(path) == []


def test_config_gpu_select_key_validated_and_used(tmp_path, fake_gpus, capsys):
    fake_gpus(2)
    path = write_config(tmp_path, extra='gpu_select = ["1"]')
    cfg = load_config(path)
    assert cfg.scenarios["bare-metal"].gpu_select == "1"
    assert main(["--config", str(path), "run"]) == 0
    capsys.readouterr()
    [doc] = _runs(path)
    assert [g["index"] for g in doc["gpus"]] == [1]
    assert doc["scenario"]["details"]["gpu_select"] == "1"
    for bad, why in (('gpu_select = "0,,1"', "gpu_select: must be"),
                     ('gpu_select = 3', "gpu_select: must be a string or a list"),
                     ('gpu_select = "1,1"', "names a GPU twice")):
        with pytest.raises(ConfigError, match=why):
            load_config(write_config(tmp_path, extra=bad))
    k8s = tmp_path / "k.toml"
    k8s.write_text('[clusters.c]\n[scenarios.pod]\nlauncher = "k8s"\ncluster = "c"\n'
                   'gpu_select = "all"\n')
    with pytest.raises(ConfigError, match="scenarios.pod.gpu_select: is for local and ssh"):
        load_config(k8s)


# ---- documents and comparisons built from synthetic per-GPU streams ---------------------------

def _gpu(i, name="NVIDIA H100 80GB HBM3", mig=False):
    return {"index": i, "uuid": f"GPU-{i:08d}-0000-0000-0000-000000000000", "name": name,
            "mig_instance": mig}


def _doc(gpus, scale=1.0, mode="concurrent", trials=3, seed=0, mig_device=None):
    recs = []
    for trial in range(trials):
        for g in gpus or [{"index": 0}]:
            lines = synthetic_stream(workloads=("roundtrip",), repeats=2, duration_s=0.5,
                                     scale=scale, seed=seed + 10 * trial + g["index"])
            if mig_device is not None:
                hello = json.loads(lines[0])
                hello["device"]["mig_instance"] = mig_device
                lines = [json.dumps(hello)] + list(lines[1:])
            recs.append(SessionRecord(lines, trial=trial, gpu=g if gpus else None,
                                      gpu_mode=mode))
    return build_document(recs, {"name": "s", "launcher": "local", "target_pct": 5.0})


def test_per_gpu_compare_pairs_gpus_and_adds_the_aggregate():
    base = _doc([_gpu(0), _gpu(1)])
    cand = _doc([_gpu(0), _gpu(1)], scale=0.9, seed=100)
    comp = compare_runs(base, cand, metrics=["ops_per_s", "lat_p99"])
    assert {r.gpu for r in comp.rows} == {"0", "1", "all"}
    agg = next(r for r in comp.rows if r.gpu == "all" and r.metric == "ops_per_s")
    per = [r for r in comp.rows if r.gpu in ("0", "1") and r.metric == "ops_per_s"]
    assert agg.base_median == pytest.approx(sum(r.base_median for r in per), rel=0.1)
    assert columns_for(comp)[2] == "gpu"
    assert comparison_table(comp)[0][2] in ("0", "1", "all")
    assert to_csv([comp]).splitlines()[0].endswith(",gpu,base_backend,cand_backend")


def test_per_gpu_compare_with_a_single_gpu_run_pairs_gpu_0_and_warns_about_the_rest():
    base = _doc([])            # an ordinary single-GPU run (hello device index 0)
    cand = _doc([_gpu(0), _gpu(1)], seed=100)
    comp = compare_runs(base, cand, metrics=["ops_per_s"])
    assert {r.gpu for r in comp.rows} == {"0"}
    assert any("GPU 1 (candidate only)" in w for w in comp.warnings)


def test_compare_refuses_mig_instance_vs_full_gpu():
    full = _doc([_gpu(0), _gpu(1)])
    mig = _doc([_gpu(0, mig=True), _gpu(1, mig=True)], seed=100)
    with pytest.raises(NotComparable, match="GPU 0: full GPU vs MIG instance"):
        compare_runs(full, mig)
    forced = compare_runs(full, mig, force=True, metrics=["ops_per_s"])
    assert forced.forced and forced.rows
    # single-GPU runs: from hello.device.mig_instance
    with pytest.raises(NotComparable, match="full GPU vs MIG instance"):
        compare_runs(_doc([], mig_device=False), _doc([], mig_device=True, seed=5))
    assert _doc([], mig_device=True)["partition"]["kind"] == "mig-instance"


def test_compare_refuses_different_gpu_models_per_pair():
    base = _doc([_gpu(0), _gpu(1)])
    cand = _doc([_gpu(0), _gpu(1, name="NVIDIA A100-SXM4-80GB")], seed=100)
    with pytest.raises(NotComparable, match="GPU 1 model"):
        compare_runs(base, cand)
