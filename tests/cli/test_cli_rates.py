"""A decode run's throughput reads in tokens/s wherever the CLI prints one (`list`, `show`,
`compare`, `export --format text`, `report`), a round trip's in ops/s: the commands run through
their real entry point on saved documents. A decode step at batch 8 makes 8 tokens, so its
steps/s under "ops/s" would read eight times too slow to someone sizing a service."""
from __future__ import annotations

import csv
import io
import re
import types

import pytest

from gpubench.cli.base import EXIT_GATE, EXIT_OK
from results.document import SessionRecord, archive_lines, build_document
from results.format import fmt_value
from results.stats import finite_median
from results.trial_counts import valid_trials
from tests.support import synth
from tests.support.cli_env import BARE_METAL_CONFIG, run, use_config

CONFIG = BARE_METAL_CONFIG + """[scenarios.decode-proxy]
title = "3. Decode with GPU Proxy"
launcher = "local"
target = "proxy"
target_pct = 5
baseline = "bare-metal"
[scenarios.k8s-pod]
title = "2. Kubernetes Pod (Bare Metal)"
launcher = "local"
target = "k8s"
"""
BATCHES = (1, 8)


def decode_doc(scenario: str, seed: int, scale: float) -> tuple[dict, list[str]]:
    recs = [SessionRecord(synth.decode_session_lines(seed + i, batches=BATCHES, repeats=3,
                                                     scale=scale), trial=i) for i in range(3)]
    doc = build_document(recs, {"name": scenario, "title": scenario, "launcher": "local",
                                "host": "local"}, run_id=f"20261120-10000{seed}-{scenario}-aaaaaa",
                         created=f"2026-11-20T10:00:0{seed}Z")
    return doc, [ln for r in recs for ln in r.lines]


def medians(doc: dict, workload: str, key: str) -> dict[str, float]:
    """variant -> the median of `key` over its valid results (what every view reads)."""
    return {wl["variant"]: finite_median([t.get(key) for t in valid_trials(wl)])
            for wl in doc["workloads"] if wl["workload"] == workload}


@pytest.fixture
def env(tmp_path, monkeypatch):
    store = use_config(tmp_path, monkeypatch, CONFIG)
    base, base_lines = decode_doc("bare-metal", 1, 1.0)
    cand, cand_lines = decode_doc("decode-proxy", 2, 0.9)
    store.save(base, base_lines)
    store.save(cand, cand_lines)
    rt, recs = synth.make_doc(0, scenario="k8s-pod", sessions=3)
    store.save(rt, archive_lines(recs))
    return types.SimpleNamespace(path=tmp_path, base=base, cand=cand, rt=rt)


def tsv(out: str, first: str) -> list[dict[str, str]]:
    """The rows of the tab-separated table whose header starts with `first`."""
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.split("\t")[0] == first)
    head = lines[start].split("\t")
    rows = []
    for ln in lines[start + 1:]:
        if not ln or ln.startswith("#") or "\t" not in ln:
            break
        rows.append(dict(zip(head, ln.split("\t"))))
    return rows


def test_list_labels_each_runs_headline_with_its_own_unit(env, capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    rows = {r["id"]: r for r in tsv(out, "id")}
    assert "headline ops/s" not in out.splitlines()[0]
    # the decode run's headline is its first variant (batch 1), in tokens
    tokens = medians(env.base, "decode", "tokens_per_s")
    first = next(wl["variant"] for wl in env.base["workloads"])
    assert rows[env.base["id"]]["headline"] == f"{fmt_value(tokens[first])} tokens/s"
    ops = medians(env.rt, "roundtrip", "ops_per_s")
    assert rows[env.rt["id"]]["headline"] == f"{fmt_value(next(iter(ops.values())))} ops/s"


def test_show_reads_each_decode_variant_in_tokens_and_the_round_trip_in_ops(env, capsys):
    code, out, _ = run(capsys, "show", env.base["id"])
    assert code == 0
    rows = tsv(out, "workload")                 # the figures table comes first
    tokens = medians(env.base, "decode", "tokens_per_s")
    assert {r["variant"]: r["throughput"] for r in rows} == \
        {v: f"{fmt_value(t)} tokens/s" for v, t in tokens.items()}
    _, out, _ = run(capsys, "show", env.rt["id"])
    rows = tsv(out, "workload")
    assert rows and all(r["throughput"].endswith(" ops/s") for r in rows)


def test_compare_compares_a_decode_variants_throughput_in_tokens(env, capsys):
    # the candidate's steps are 10 % slower, over its 5 % target: the gate's exit is expected
    code, out, _ = run(capsys, "compare", env.base["id"], env.cand["id"], "--format", "csv")
    assert code in (EXIT_OK, EXIT_GATE)
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r["workload"] == "decode"]
    through = {r["variant"]: r for r in rows if r["metric"] in ("ops_per_s", "tokens_per_s")}
    base, cand = medians(env.base, "decode", "tokens_per_s"), medians(env.cand, "decode",
                                                                        "tokens_per_s")
    assert set(through) == set(base)
    for variant, r in through.items():
        assert (r["metric"], r["unit"]) == ("tokens_per_s", "tokens/s")
        assert float(r["base_median"]) == pytest.approx(base[variant])
        assert float(r["cand_median"]) == pytest.approx(cand[variant])
    # the terminal-less table says it too
    _, out, _ = run(capsys, "compare", env.base["id"], env.cand["id"])
    decode = [r for r in tsv(out, "workload") if r["workload"] == "decode"]
    assert {r["metric"] for r in decode if "throughput" in r["metric"]} == \
        {"throughput (tokens/s)"}


def test_the_text_exports_lines_say_tokens_for_decode_and_keep_one_throughput_line(env, capsys):
    code, out, _ = run(capsys, "export", env.base["id"], "--format", "text")
    assert code == 0
    throughput = [ln for ln in out.splitlines() if "Throughput:" in ln]
    assert len(throughput) == 1 and re.fullmatch(r"Throughput: [\d,]+ tokens/sec", throughput[0])
    details = out.split("Details (median over valid results):")[1]
    tokens = medians(env.base, "decode", "tokens_per_s")
    for variant, t in tokens.items():
        assert f"  decode/{variant}: 9 results, {t:,.1f} tokens/s," in details
    assert "ops/s" not in details
    _, out, _ = run(capsys, "export", env.rt["id"], "--format", "text")
    assert re.search(r"^Throughput: [\d,]+ ops/sec$", out, re.M)
    assert re.search(r"^  roundtrip/\S+: \d+ results, [\d,.]+ ops/s,", out, re.M)


def test_comparison_md_gives_each_scenarios_throughput_its_unit(env, capsys):
    code, _, _ = run(capsys, "report", "--out", "comparison.md")
    text = (env.path / "comparison.md").read_text()
    assert code == 0
    assert "| Throughput |" in text and "Throughput (ops/s)" not in text
    decode = next(ln for ln in text.splitlines() if ln.startswith("| 1 | 1. Baseline"))
    assert re.search(r"\| [\d,.]+ tokens/s \|", decode), decode
    k8s = next(ln for ln in text.splitlines() if "2. Kubernetes Pod" in ln)
    assert re.search(r"\| [\d,.]+ ops/s \|", k8s), k8s


def test_show_sums_a_per_gpu_decode_runs_tokens_in_its_all_row(tmp_path, monkeypatch, capsys):
    store = use_config(tmp_path, monkeypatch, CONFIG)
    gpus = [{"index": i, "uuid": f"GPU-{i:08d}-0000-0000-0000-000000000000",
             "name": "NVIDIA H100 80GB HBM3", "mig_instance": False} for i in (0, 1)]
    recs = [SessionRecord(synth.decode_session_lines(10 * trial + g["index"], batches=(8,)),
                          trial=trial, gpu=g, gpu_mode="concurrent")
            for trial in range(2) for g in gpus]
    doc = build_document(recs, {"name": "bare-metal", "launcher": "local"})
    store.save(doc, [ln for r in recs for ln in r.lines])
    code, out, _ = run(capsys, "show", doc["id"])
    assert code == 0
    rows = {r["gpu"]: r["throughput"] for r in tsv(out, "workload")}
    (wl,) = doc["workloads"]
    sums: dict[tuple, float] = {}
    for t in wl["trials"]:
        sums[(t["trial"], t["repeat"])] = sums.get((t["trial"], t["repeat"]), 0.0) + \
            t["tokens_per_s"]
    assert rows["all"] == f"{fmt_value(finite_median(list(sums.values())))} tokens/s"
    assert rows["0"].endswith(" tokens/s") and rows["1"].endswith(" tokens/s")
