"""End to end on the local CPU backend: the real engine through `gpubench run`, then
compare, `export --format text | grep "Throughput:"`, report, and Ctrl-C during a run."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
[store]
data_dir = "data"
[defaults]
workloads = ["roundtrip"]
duration_s = 0.5
warmup_s = 0.0
repeats = 2
trials = 2
backend = "numpy-cpu"
[scenarios.bare-metal]
title = "1. Baseline (Bare Metal)"
launcher = "local"
[scenarios.same-again]
title = "2. The same, again"
launcher = "local"
target = "k8s"
baseline = "bare-metal"
"""


def gpubench_cmd() -> list[str]:
    script = Path(sys.executable).parent / "gpubench"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from gpubench.cli import main; sys.exit(main())"]


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG)
    return tmp_path


def gb(workdir, *args, **kw):
    env = dict(os.environ, GPUBENCH_CONFIG=str(workdir / "config.toml"),
               PYTHONPATH=str(ROOT))
    return subprocess.run([*gpubench_cmd(), *args], cwd=workdir, capture_output=True, text=True,
                          env=env, timeout=120, **kw)


def test_run_compare_export_report_on_the_cpu_backend(workdir):
    run = gb(workdir, "run", "bare-metal", "same-again", "--seed", "3", "--label", "e2e")
    assert run.returncode == 0, run.stderr
    ids = run.stdout.split()
    assert len(ids) == 2 and "[4/4]" in run.stderr and "saved" in run.stderr
    listing = gb(workdir, "list", "--label", "e2e")
    assert len(listing.stdout.splitlines()) == 3
    doc = json.loads(gb(workdir, "show", ids[0], "--json").stdout)
    assert doc["backend"] == "numpy-cpu" and doc["group"]["seed"] == 3
    assert len(doc["sessions"]) == 2 and all(s["outcome"] == "completed" for s in doc["sessions"])
    cmp_ = gb(workdir, "compare", ids[0], ids[1], "--include-invalid", "--format", "json")
    assert cmp_.returncode in (0, 1), cmp_.stderr
    comp = json.loads(cmp_.stdout)["comparisons"][0]
    assert comp["rows"] and comp["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")
    assert "fewer than 10 results" in cmp_.stderr
    export = gb(workdir, "export", ids[0], "--format", "text")
    grep = subprocess.run(["grep", "Throughput:"], input=export.stdout, capture_output=True,
                          text=True)
    assert grep.returncode == 0 and grep.stdout.startswith("Throughput: ")
    assert grep.stdout.strip().endswith(" ops/sec")
    report = gb(workdir, "report", "--out", "comparison.md", "--include-invalid")
    text = (workdir / "comparison.md").read_text()
    assert report.returncode == 0 and "| 2. The same, again |" in text and "< 1%" in text


def test_run_progress_marks_cpu_figures_and_list_counts_its_trials(workdir):
    """The real engine on the CPU backend: every trial's progress line and the saved line say
    it is no GPU figure; `list` counts the trials `run --trials` asked for."""
    run = gb(workdir, "run", "bare-metal", "--trials", "2", "--repeats", "1")
    assert run.returncode == 0, run.stderr
    trials = [ln for ln in run.stderr.splitlines() if " bare-metal trial " in ln
              and "results" in ln]
    assert len(trials) == 2 and all("results, CPU (numpy-cpu)" in ln for ln in trials)
    assert any(ln.startswith("saved ") and ln.endswith("CPU (numpy-cpu) — not a GPU figure)")
               for ln in run.stderr.splitlines())
    header, row = gb(workdir, "list").stdout.splitlines()
    listed = dict(zip(header.split("\t"), row.split("\t")))
    assert listed["trials"] == "2" and listed["results"] == "2"   # one workload, one repeat
    assert listed["backend"] == "CPU (numpy-cpu)" and listed["host"].startswith("local")


def test_ctrl_c_during_run_saves_what_was_measured_marked_incomplete(workdir):
    env = dict(os.environ, GPUBENCH_CONFIG=str(workdir / "config.toml"), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([*gpubench_cmd(), "run", "bare-metal", "--trials", "3",
                             "--duration", "1", "--repeats", "3"], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline:  # wait until the first trial has finished
        line = proc.stderr.readline()
        seen += line
        if "[1/3] bare-metal trial" in line and "results" in line:
            break
    time.sleep(0.8)  # well into the second trial
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, seen + err
    assert "plan interrupted" in err
    run_id = out.split()[0]
    doc = json.loads(gb(workdir, "show", run_id, "--json").stdout)
    assert doc["complete"] is False and doc["group"]["executed"] == 2
    assert [s["outcome"] for s in doc["sessions"]] == ["completed", "cancelled"]


def test_proxy_that_is_not_loaded_makes_the_run_invalid(workdir):
    """Layer verification with the real scenarios.layers: a configured proxy library that
    the engine never mapped (here: it does not exist) makes the run INVALID, and compare
    leaves it out unless --include-invalid."""
    (workdir / "config.toml").write_text(CONFIG + """
[scenarios.fake-proxy]
title = "3. With GPU Proxy"
launcher = "local"
target = "proxy"
baseline = "bare-metal"
[scenarios.fake-proxy.proxy]
preload = "/nonexistent/libvgpu.so"
""")
    run = gb(workdir, "run", "fake-proxy", "--trials", "1", "--repeats", "1")
    assert run.returncode == 0, run.stderr
    assert "[INVALID: " in run.stderr and "libvgpu.so" in run.stderr
    doc = json.loads(gb(workdir, "show", run.stdout.split()[0], "--json").stdout)
    assert doc["validity"]["status"] == "INVALID"
    assert any("libvgpu.so" in r and r.startswith("layer: ") for r in doc["validity"]["reasons"])
    assert doc["scenario"]["details"]["proxy"]["preload"] == "/nonexistent/libvgpu.so"
