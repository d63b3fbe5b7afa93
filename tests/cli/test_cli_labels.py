"""Every output that shows a figure says which backend made it; `trials` counts engine
sessions' trials everywhere (result lines are `results`); a host has one name in every view."""
from __future__ import annotations

import csv
import io
import json
import types

import pytest

from gpubench.cli import tables
from results.document import archive_lines
from results.labels import CPU_CELL, CPU_MARK, NOT_GPU
from tests.support.synth import make_doc, trial_doc
from tests.support.cli_env import BARE_METAL_CONFIG, run, use_config

CONFIG = BARE_METAL_CONFIG + """[scenarios.k8s-pod]
title = "2. Kubernetes Pod (Bare Metal)"
launcher = "local"
target = "k8s"
baseline = "bare-metal"
"""
SESSIONS = 4       # trials of each synthetic run: one engine session each
# make_doc's sessions: roundtrip and h2d, 3 repeats each
RESULTS = SESSIONS * 2 * 3


def _store(tmp_path, monkeypatch, backend: str):
    store = use_config(tmp_path, monkeypatch, CONFIG)
    ids = {}
    for seed, (name, scale, target) in enumerate([("bare-metal", 1.0, None),
                                                  ("k8s-pod", 0.99, 5.0)]):
        doc, recs = make_doc(seed, scenario=name, scale=scale, target_pct=target,
                             sessions=SESSIONS, backend=backend, hostname="vm")
        store.save(doc, archive_lines(recs))
        ids[name] = doc["id"]
    return types.SimpleNamespace(path=tmp_path, store=store, ids=ids)


@pytest.fixture
def cpu(tmp_path, monkeypatch):
    return _store(tmp_path, monkeypatch, "numpy-cpu")


@pytest.fixture
def gpu(tmp_path, monkeypatch):
    return _store(tmp_path, monkeypatch, "cupy")



def list_rows(capsys) -> list[dict]:
    code, out, _ = run(capsys, "list")
    assert code == 0
    header, *rows = out.splitlines()
    return [dict(zip(header.split("\t"), r.split("\t"))) for r in rows]


COMPARE_FORMATS = ("table", "tsv", "md", "json", "csv")


def compare_out(capsys, monkeypatch, env, fmt: str, *extra: str) -> str:
    """`compare` in one format: `table` on a terminal, `tsv` the table in a pipe."""
    monkeypatch.setattr(tables, "is_tty", lambda: fmt == "table")
    argv = ["compare", env.ids["bare-metal"], env.ids["k8s-pod"], *extra]
    if fmt not in ("table", "tsv"):
        argv += ["--format", fmt]
    code, out, err = run(capsys, *argv)
    assert code in (0, 1), err
    return out


# ---- the backend mark -------------------------------------------------------------------------

def test_list_and_show_say_a_cpu_run_is_no_gpu_figure(cpu, capsys):
    rows = list_rows(capsys)
    assert len(rows) == 2 and all(r["backend"] == CPU_CELL for r in rows)
    code, out, _ = run(capsys, "show", cpu.ids["k8s-pod"])
    lines = out.splitlines()
    assert code == 0
    assert any(ln.startswith("backend") and ln.endswith(CPU_MARK) for ln in lines)
    assert any(CPU_MARK in ln for ln in lines if ln.startswith("device"))
    assert f"# figures by {CPU_MARK}" in lines          # the title of the figures' table


def test_list_and_show_name_the_gpu_backend_and_no_cpu_mark(gpu, capsys):
    rows = list_rows(capsys)
    assert all(r["backend"] == "GPU (cupy)" for r in rows)
    code, out, _ = run(capsys, "show", gpu.ids["k8s-pod"])
    assert code == 0 and "# figures by GPU (cupy)" in out.splitlines()
    assert NOT_GPU not in out and CPU_CELL not in out


@pytest.mark.parametrize("fmt", COMPARE_FORMATS)
def test_compare_carries_the_cpu_mark_in_every_format(cpu, capsys, monkeypatch, fmt):
    out = compare_out(capsys, monkeypatch, cpu, fmt)
    if fmt == "json":
        [comp] = json.loads(out)["comparisons"]
        assert comp["backends"] == CPU_MARK
        assert comp["base_backend"] == comp["cand_backend"] == "numpy-cpu"
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert rows and all(r["base_backend"] == r["cand_backend"] == "numpy-cpu"
                            for r in rows)
    else:
        assert f"figures by {CPU_MARK}" in out


@pytest.mark.parametrize("fmt", COMPARE_FORMATS)
def test_compare_of_gpu_runs_names_the_gpu_backend_only(gpu, capsys, monkeypatch, fmt):
    out = compare_out(capsys, monkeypatch, gpu, fmt)
    assert NOT_GPU not in out and CPU_CELL not in out and "numpy-cpu" not in out
    if fmt == "json":
        assert json.loads(out)["comparisons"][0]["backends"] == "GPU (cupy)"
    elif fmt == "csv":
        assert {r["cand_backend"] for r in csv.DictReader(io.StringIO(out))} == {"cupy"}
    else:
        assert "figures by GPU (cupy)" in out


@pytest.mark.parametrize("fmt", COMPARE_FORMATS)
def test_a_forced_cpu_against_gpu_comparison_says_it_mixes_backends(cpu, capsys, monkeypatch,
                                                                     fmt):
    doc, recs = make_doc(9, scenario="k8s-pod", sessions=SESSIONS, target_pct=5.0)  # cupy
    cpu.store.save(doc, archive_lines(recs))
    cpu.ids["k8s-pod"] = doc["id"]
    out = compare_out(capsys, monkeypatch, cpu, fmt, "--force")
    if fmt == "json":
        assert json.loads(out)["comparisons"][0]["backends"].startswith("MIXED backends: ")
    elif fmt == "csv":
        row = next(csv.DictReader(io.StringIO(out)))
        assert (row["base_backend"], row["cand_backend"]) == ("numpy-cpu", "cupy")
    else:
        assert (f"MIXED backends: baseline {CPU_CELL}, candidate GPU (cupy) — {NOT_GPU}"
                in out)


def test_export_text_of_a_cpu_run_is_not_titled_a_gpu_result(cpu, gpu, capsys):
    code, out, _ = run(capsys, "export", cpu.ids["bare-metal"], "--format", "text")
    head = out.splitlines()[0]
    assert code == 0 and "GPU Benchmark Results" not in head and head.startswith("=== CPU ")
    assert NOT_GPU in head and CPU_MARK in out
    code, out, _ = run(capsys, "export", cpu.ids["bare-metal"], "--format", "csv")
    assert code == 0 and {r["backend"] for r in csv.DictReader(io.StringIO(out))} == \
        {"numpy-cpu"}


def test_export_text_of_a_gpu_run_keeps_its_gpu_title(gpu, capsys):
    code, out, _ = run(capsys, "export", gpu.ids["bare-metal"], "--format", "text")
    assert code == 0 and out.startswith("=== GPU Benchmark Results (gpubench export) ===")
    assert NOT_GPU not in out and "GPU (cupy)" in out


def test_comparison_md_marks_the_cpu_runs(cpu, capsys):
    code, out, _ = run(capsys, "report", "--out", "-")
    assert code == 0 and out.startswith("# GPU isolation overhead")
    assert f"runs marked {CPU_CELL}" in out and NOT_GPU in out
    runs = [ln for ln in out.splitlines() if ln.startswith(("| 1 |", "| 2 |"))
            and "isolation check" not in ln]
    assert len(runs) == 2 and all(f"· {CPU_CELL}" in ln for ln in runs)
    assert f"### 2. Kubernetes Pod (Bare Metal) vs bare-metal — {CPU_MARK}" in out


def test_comparison_md_of_gpu_runs_has_no_cpu_mark(gpu, capsys):
    code, out, _ = run(capsys, "report", "--out", "-")
    assert code == 0 and NOT_GPU not in out and CPU_CELL not in out
    assert "· GPU (cupy)" in out


# ---- trials and results -----------------------------------------------------------------------

def test_list_counts_trials_as_sessions_and_result_lines_as_results(cpu, capsys):
    rows = list_rows(capsys)
    assert [(r["trials"], r["results"]) for r in rows] == [(str(SESSIONS), str(RESULTS))] * 2
    code, out, _ = run(capsys, "show", cpu.ids["bare-metal"])
    assert code == 0
    assert f"trials    {SESSIONS} ({SESSIONS} engine sessions), {RESULTS} results" in out
    assert "valid/results" in out and "valid/trials" not in out


def test_list_shows_an_imported_figure_as_no_trial(cpu, capsys):
    (cpu.path / "seed.txt").write_text("Throughput: 6,977 ops/sec\n")
    code, _, err = run(capsys, "import", "seed.txt", "--scenario", "bare-metal")
    assert code == 0, err
    [row] = [r for r in list_rows(capsys) if "imported" in r["flags"]]
    assert (row["trials"], row["results"]) == ("0", "1")


def test_list_reads_an_index_written_before_results_were_counted(cpu, capsys):
    """An older index (version 1) counted result lines as `trials`: it is read again from the
    documents, never shown as a count of trials."""
    index = json.loads(cpu.store.index_path.read_text())
    for entry in index["entries"].values():
        entry["summary"]["trials"] = RESULTS
        entry["summary"].pop("results")
    index["version"] = 1
    cpu.store.index_path.write_text(json.dumps(index))
    assert {(r["trials"], r["results"]) for r in list_rows(capsys)} == \
        {(str(SESSIONS), str(RESULTS))}


def test_compare_speaks_of_results_where_it_counts_result_lines(tmp_path, monkeypatch, capsys):
    store = use_config(tmp_path, monkeypatch, CONFIG)
    a, b = trial_doc([1000.0], scenario="bare-metal"), trial_doc([990.0], scenario="k8s-pod")
    store.save(a), store.save(b)
    monkeypatch.setattr(tables, "is_tty", lambda: False)
    code, out, err = run(capsys, "compare", a["id"], b["id"])
    assert "one result on a side: no confidence interval" in out
    assert "fewer than 10 results per side" in err
    assert "one trial on a side" not in out and "trials per side" not in err


# ---- one host name ----------------------------------------------------------------------------

def test_list_names_the_host_as_configured_with_its_hostname_beside(cpu, capsys):
    assert {r["host"] for r in list_rows(capsys)} == {"local (vm)"}
    code, out, _ = run(capsys, "show", cpu.ids["bare-metal"])
    assert code == 0 and "host      local (vm)" in out
    code, out, _ = run(capsys, "list", "--host", "local")
    assert len(out.splitlines()) == 3
