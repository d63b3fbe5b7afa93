"""Legacy seed text: import (files, kubectl logs) and export the seed's grep still reads."""
from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from results.legacy import LegacyFormatError, export_csv, export_text, import_legacy
from results.schema import check_document
from tests.support.synth import make_doc

SEED = """=== GPU Benchmark ===
Device: NVIDIA L4
Throughput: 6,977 ops/sec
Average Latency: 0.14 ms (140 microseconds)
p99 Latency: 0.198 ms
Memory Bandwidth: 4.31 GB/s (H2D), 4.53 GB/s (D2H)
"""
SCEN = {"name": "bare-metal", "title": "1. Baseline (Bare Metal)", "launcher": "local"}


def test_import_seed_text():
    doc = import_legacy(SEED, SCEN, source="baseline_results.txt")
    check_document(doc)
    assert doc["imported"] is True and doc["source"] == "baseline_results.txt"
    rt = doc["workloads"][0]
    assert rt["workload"] == "roundtrip" and rt["trials"][0]["ops_per_s"] == 6977.0
    assert rt["trials"][0]["latency_us"] == {"mean": pytest.approx(140.0), "p99": pytest.approx(198.0)}
    assert {w["workload"]: w["trials"][0]["gbps"] for w in doc["workloads"][1:]} == \
        {"h2d": 4.31, "d2h": 4.53}


def test_import_kubectl_logs_with_timestamps_and_colour_and_several_runs():
    log = "\n".join([
        "2025-12-15T10:00:00.123456789Z Starting benchmark...",
        "2025-12-15T10:00:05.000000000Z \x1b[32mThroughput: 6,812 ops/sec\x1b[0m",
        "2025-12-15T10:00:05.000000001Z Average Latency: 146 us",
        "2025-12-15T10:00:10.000000000Z Throughput: 6,900.5 ops/sec",
        "2025-12-15T10:00:10.000000001Z Average Latency: 0.145 ms",
    ])
    doc = import_legacy(log, SCEN, source="k8s-baseline-results.txt")
    trials = doc["workloads"][0]["trials"]
    assert [t["ops_per_s"] for t in trials] == [6812.0, 6900.5]
    assert [t["latency_us"]["mean"] for t in trials] == pytest.approx([146.0, 145.0])


def test_file_without_throughput_line_is_a_clear_error():
    with pytest.raises(LegacyFormatError, match=r"^notes\.txt: no 'Throughput: N ops/sec' line found"):
        import_legacy("Average Latency: 0.14 ms\nhello\n", SCEN, source="notes.txt")


def test_export_text_is_read_by_the_seed_grep(tmp_path):
    doc, _ = make_doc(3, sessions=4, workloads=("roundtrip", "h2d", "d2h"))
    text = export_text(doc)
    path = tmp_path / "baseline_results.txt"
    path.write_text(text)
    out = subprocess.run(["grep", "Throughput:", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 1
    trials = doc["workloads"][0]["trials"]
    median = float(np.median([t["ops_per_s"] for t in trials]))
    assert out.stdout.strip() == f"Throughput: {median:,.0f} ops/sec"
    assert re.search(r"^Memory Bandwidth: [\d.]+ GB/s \(H2D\), [\d.]+ GB/s \(D2H\)$", text, re.M)


def test_export_then_import_keeps_the_figures():
    doc, _ = make_doc(4, sessions=3)
    back = import_legacy(export_text(doc), SCEN)
    ops = float(np.median([t["ops_per_s"] for t in doc["workloads"][0]["trials"]]))
    mean = float(np.median([t["latency_us"]["mean"] for t in doc["workloads"][0]["trials"]]))
    assert back["workloads"][0]["trials"][0]["ops_per_s"] == pytest.approx(ops, abs=0.5)
    assert back["workloads"][0]["trials"][0]["latency_us"]["mean"] == pytest.approx(mean, rel=0.01)
    imported = import_legacy(SEED, SCEN)
    assert "Throughput: 6,977 ops/sec" in export_text(imported)


def test_export_csv_one_row_per_trial():
    doc, _ = make_doc(5, sessions=2)
    rows = export_csv(doc).splitlines()
    assert len(rows) == 1 + sum(len(w["trials"]) for w in doc["workloads"])
    assert rows[0].startswith("run_id,scenario,workload,variant")
