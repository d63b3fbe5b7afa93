"""decode runs through results/: stored with their step figures, shown, compared by their p99
step latency against the target, and exported as text with one `Throughput:` line the seed's
grep reads. The runs are real numpy-cpu engine sessions."""
from __future__ import annotations

import copy
import re

import pytest

from results.comparison import compare_runs
from results.document import SessionRecord, archive_lines, build_document
from results.legacy import export_text
from results.report import header_lines, headline, to_tsv
from results.steps import STEP_COLUMNS, step_rows, step_summary
from results.structure import DOCUMENT
from tests.support.cli_env import BARE_METAL_CONFIG, run, use_config
from tests.support.engine_run import run_engine

# one BLAS thread and the window rules off: a shared, busy CPU must not decide what is
# tested here (the figures' path, not their steadiness)
CPU_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
ARGS = ("--backend", "numpy-cpu", "--workloads", "decode,prefill", "--decode-batches", "1,8",
        "--prefill-tokens", "16", "--duration", "0.2", "--warmup", "0.05", "--repeats", "3",
        "--telemetry-interval", "0", "--min-window", "0", "--stall-limit", "0",
        "--drift-limit", "0")
CONFIG = BARE_METAL_CONFIG + """[scenarios.proxy]
title = "3. With GPU Proxy (No Hypervisor)"
launcher = "local"
target = "proxy"
target_pct = 5
baseline = "bare-metal"
"""


def _doc(scenario: str, target_pct: float | None = None) -> tuple[dict, list]:
    proc, lines = run_engine(*ARGS, env=CPU_ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = [SessionRecord(lines, exit_code=0)]
    return build_document(recs, {"name": scenario, "target_pct": target_pct}), recs


@pytest.fixture(scope="module")
def runs():
    return _doc("bare-metal"), _doc("proxy", 5.0)


def test_a_decode_run_is_stored_with_its_step_figures(runs):
    (doc, _), _ = runs
    assert DOCUMENT.problem(doc) is None
    decode = [wl for wl in doc["workloads"] if wl["workload"] == "decode"]
    assert [wl["variant"] for wl in decode] == ["small-l2-b1-kv128", "small-l2-b8-kv128"]
    for trial in decode[1]["trials"]:
        assert trial["valid"] is True, trial["validity_reasons"]
        assert trial["tokens_per_s"] == pytest.approx(8 * trial["ops_per_s"])
        assert trial["jitter"] >= 1 and trial["flops_per_step"] > 0
    s = step_summary(decode[1])
    assert s["results"] == 3 and s["p50"] <= s["p90"] <= s["p99"] <= s["p999"]


def test_the_text_export_of_a_decode_run_has_one_throughput_line_in_tokens(runs):
    (doc, _), _ = runs
    text = export_text(doc)
    assert text.startswith("=== CPU Benchmark Results")
    throughput = [ln for ln in text.splitlines() if "Throughput:" in ln]
    assert len(throughput) == 1
    assert re.fullmatch(r"Throughput: [\d,]+ tokens/sec", throughput[0])
    tokens = step_summary(next(wl for wl in doc["workloads"]
                               if wl["variant"] == "small-l2-b1-kv128"))["tokens_per_s"]
    assert throughput[0] == f"Throughput: {tokens:,.0f} tokens/sec"
    assert re.search(r"^  decode/small-l2-b8-kv128: [\d,.]+ tokens/s, step p50 [\d.]+ ms, "
                     r"p90 [\d.]+ ms, p99 [\d.]+ ms, p99\.9 [\d.]+ ms, jitter [\d.]+, ",
                     text, re.M)


def test_compare_reports_the_decode_p99_overhead_with_its_ci_and_target(runs):
    (base, _), (cand, _) = runs
    comp = compare_runs(base, cand)
    head = headline(comp)
    assert (head.workload, head.variant, head.metric) == ("decode", "small-l2-b1-kv128",
                                                          "lat_p99")
    assert head.target_pct == 5.0 and head.ci_low is not None
    tails = [ln for ln in header_lines(comp) if "p99 step latency" in ln]
    assert [ln.split(" p99")[0] for ln in tails] == [
        "decode small-l2-b1-kv128", "decode small-l2-b8-kv128", "prefill small-l2-n16"]
    assert re.fullmatch(r"decode small-l2-b1-kv128 p99 step latency: [+-][\d.]+% "
                        r"\[[+-][\d.]+%, [+-][\d.]+%\], target <5%: "
                        r"(PASS|FAIL|INCONCLUSIVE)", tails[0])
    assert f"# {tails[0]}" in to_tsv([comp])


def test_show_prints_the_step_table(runs, tmp_path, monkeypatch, capsys):
    (doc, recs), _ = runs
    store = use_config(tmp_path, monkeypatch, CONFIG)
    store.save(doc, archive_lines(recs))
    code, out, _ = run(capsys, "show", doc["id"])
    assert code == 0
    lines = out.splitlines()
    header = lines.index("\t".join(STEP_COLUMNS))
    rows = [ln.split("\t") for ln in lines[header + 1:header + 4]]
    assert [r[:3] for r in rows] == [["decode", "small-l2-b1-kv128", "3/3"],
                                     ["decode", "small-l2-b8-kv128", "3/3"],
                                     ["prefill", "small-l2-n16", "3/3"]]
    code, out, _ = run(capsys, "export", doc["id"], "--format", "text")
    assert code == 0 and re.search(r"^Throughput: [\d,]+ tokens/sec$", out, re.M)


def test_a_gpu_runs_device_side_step_time_is_shown_and_exported(runs):
    (doc, _), _ = runs
    gpu = copy.deepcopy(doc)        # the CPU run's figures, as a GPU run's trials carry them
    for wl in gpu["workloads"]:
        for t in wl["trials"]:
            t["device_latency_us"] = {"p50": 900.0, "p99": 1500.0}
    rows = step_rows(gpu["workloads"])
    assert rows[0][STEP_COLUMNS.index("device p99 ms")] == "1.50"
    assert ", on the device p50 0.9 ms, p99 1.50 ms, " in export_text(gpu)
    assert step_rows(doc["workloads"])[0][STEP_COLUMNS.index("device p99 ms")] == "—"
