"""results.report: one table builder, md/csv/json/tsv, and comparison.md."""
from __future__ import annotations

import csv
import io
import json

from results.comparison import compare_runs
from results.report import (ReportScenario, comparison_report, to_csv, to_json, to_markdown,
                            to_tsv)
from tests.support.synth import make_doc

REFERENCE = [ReportScenario("bare-metal", "1. Baseline (Bare Metal)"),
             ReportScenario("k8s-pod", "2. Kubernetes Pod (Bare Metal)", 1.0, "bare-metal"),
             ReportScenario("bare-metal-proxy", "3. With GPU Proxy (No Hypervisor)", 5.0, "bare-metal"),
             ReportScenario("k8s-proxy", "4. Kubernetes + GPU Proxy", 5.0, "bare-metal"),
             ReportScenario("k8s-hypervisor", "5. Kubernetes + Xen Hypervisor", 10.0, "bare-metal")]


def comps():
    base, _ = make_doc(1, sessions=4)
    cand, _ = make_doc(2, sessions=4, scale=0.9, scenario="k8s-pod", target_pct=1.0)
    return [compare_runs(base, cand)]


def test_formats_carry_the_same_rows():
    cs = comps()
    n = len(cs[0].rows)
    md = to_markdown(cs)
    assert md.count("\n| ") == n + 1 and "FAIL" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(cs))))
    assert len(rows) == n and rows[0]["verdict"] == cs[0].rows[0].verdict
    data = json.loads(to_json(cs))
    assert data["comparisons"][0]["verdict"] == cs[0].verdict == "FAIL"
    tsv = to_tsv(cs).splitlines()
    assert sum(1 for line in tsv if not line.startswith("#")) == n + 1
    assert all(len(line.split("\t")) == 12 for line in tsv if not line.startswith("#"))


def test_comparison_md_covers_the_five_reference_scenarios():
    base, _ = make_doc(1, sessions=4)
    k8s, _ = make_doc(2, sessions=4, scale=0.9, scenario="k8s-pod", target_pct=1.0)
    proxy, _ = make_doc(3, sessions=4, scale=1.0, scenario="bare-metal-proxy", target_pct=5.0)
    other, _ = make_doc(4, sessions=4, scenario="k8s-hypervisor", driver="575.57")
    latest = {"bare-metal": base, "k8s-pod": k8s, "bare-metal-proxy": proxy, "k8s-proxy": None,
              "k8s-hypervisor": other}
    text = comparison_report(REFERENCE, latest,
                             lambda b, c, sc: compare_runs(b, c, target_pct=sc.target_pct),
                             generated="2026-11-25 12:00 UTC", tool_version="0.1.0")
    summary = [ln for ln in text.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert [ln.split(" | ")[1] for ln in summary] == [s.title for s in REFERENCE]
    assert "| baseline |" in summary[0]
    assert summary[1].endswith("| < 1% | FAIL |")
    assert "no run yet" in summary[3] and "gpubench run k8s-proxy" in summary[3]
    assert "not comparable: driver 580.159.04 vs 575.57" in summary[4]
    assert "### 2. Kubernetes Pod (Bare Metal) vs bare-metal" in text
