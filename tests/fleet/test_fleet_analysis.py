"""results/fleet_analysis.py on synthetic fleets: outliers, causes, exclusions, fleet overhead."""
from __future__ import annotations

import json

import pytest

from results.fleet_analysis import MAD_FLOOR_REL, analyze_fleet, fleet_overhead, summarize_host
from results.fleet_table import format_fleet_table, format_overhead_table
from results.stats import robust_z
from tests.support import synth
from tests.support.fleet_stream import HostProfile, complete_stream

PLAN = {"workloads": ["roundtrip", "launch"], "duration_s": 1.0, "repeats": 5, "warmup_s": 0.0}
RT = "roundtrip/pinned-64KiB ops/s"


def summaries(profiles, plan=PLAN):
    out = []
    for p in profiles:
        lines = complete_stream(p, plan)
        # what the app has is text: round-trip through JSON like the archived stream
        lines = [json.loads(json.dumps(line)) for line in lines]
        out.append(summarize_host(p.name, "completed", lines))
    return out


def healthy(n, prefix="node", **kw):
    return [HostProfile(f"{prefix}-{i:03d}", **kw) for i in range(n)]


def test_homogeneous_fleet_of_50_has_no_false_flags():
    report = analyze_fleet(summaries(healthy(50)))
    assert len(report.hosts) == 50 and not report.excluded
    assert report.outliers == []
    assert {m.metric for m in report.metrics} >= {RT, "launch/sync ops/s", "roundtrip/pinned-64KiB p50 us"}
    assert all(m.hosts == 50 for m in report.metrics)


@pytest.mark.parametrize("seed_prefix", ["a", "b", "c"])
def test_no_false_flags_across_seeds(seed_prefix):
    assert analyze_fleet(summaries(healthy(50, prefix=seed_prefix))).outliers == []


def test_pcie_gen3_x8_node_is_flagged_with_that_cause():
    fleet = healthy(19) + [HostProfile("node-slow", pcie=(3, 8, 5, 16))]
    report = analyze_fleet(summaries(fleet))
    flagged = report.outliers_of("node-slow")
    rt = [o for o in flagged if o.metric == RT]
    assert rt and rt[0].direction == "slow" and rt[0].deviation_pct < -10
    assert any("PCIe Gen3 x8 below max Gen5 x16 under load" in c for c in rt[0].causes)
    # only the planted node is flagged, and it is not flagged on the link-insensitive launch rate
    assert {o.host for o in report.outliers} == {"node-slow"}
    assert not any(o.metric == "launch/sync ops/s" for o in flagged)
    table = format_fleet_table(report)
    assert "node-slow" in table and "OUTLIER" in table and "Gen3 x8" in table


def test_throttling_node_is_flagged_with_throttle_cause():
    fleet = healthy(19) + [HostProfile("node-hot", speed=0.8, throttle_mask=0x20, sm_clock_mhz=1400)]
    report = analyze_fleet(summaries(fleet))
    flagged = [o for o in report.outliers_of("node-hot") if o.metric == RT]
    assert flagged and flagged[0].direction == "slow"
    causes = " ".join(flagged[0].causes)
    assert "sw_thermal_slowdown" in causes
    assert "SM clock 1400 MHz" in causes
    assert {o.host for o in report.outliers} == {"node-hot"}


def test_other_processes_are_named_as_cause():
    fleet = healthy(15) + [HostProfile("node-busy", speed=0.7, other_processes=2)]
    report = analyze_fleet(summaries(fleet))
    o = [o for o in report.outliers_of("node-busy") if o.metric == RT][0]
    assert o.causes == ["2 other processes on the GPU"]


def test_slow_node_without_evidence_says_so():
    fleet = healthy(15) + [HostProfile("node-odd", speed=0.7)]
    report = analyze_fleet(summaries(fleet))
    assert [o.causes for o in report.outliers_of("node-odd")][0] == []
    assert "node-odd: slow on" in format_fleet_table(report)
    assert "no cause in its telemetry" in format_fleet_table(report)


def test_different_gpu_model_is_reported_and_excluded_from_statistics():
    fleet = healthy(10) + [HostProfile("node-a100", gpu_model="NVIDIA A100-SXM4-80GB", speed=0.4)]
    report = analyze_fleet(summaries(fleet))
    assert report.reference_model.startswith("NVIDIA H100")
    assert "different GPU model: NVIDIA A100-SXM4-80GB" in report.excluded["node-a100"]
    assert report.outliers == []                       # 0.4x speed but not an outlier: excluded
    rt = next(m for m in report.metrics if m.metric == RT)
    assert rt.hosts == 10 and rt.minimum > 15000       # the A100's figure is not in the stats
    assert "excluded" in format_fleet_table(report)


def test_fleet_overhead_pairs_hosts_and_excludes_other_models():
    base = healthy(12) + [HostProfile("node-a100", gpu_model="NVIDIA A100-SXM4-80GB")]
    cand = [HostProfile(p.name, gpu_model=p.gpu_model, speed=0.97 if p.gpu_model.startswith("NVIDIA H") else 0.5,
                        seed=p.rng_seed + 1) for p in base]
    rows = fleet_overhead(summaries(base), summaries(cand), target_pct=5.0)
    rt = next(r for r in rows if r.metric == RT)
    assert rt.hosts == 12
    assert 1.5 < rt.median_pct < 4.5 and rt.ci_low_pct <= rt.median_pct <= rt.ci_high_pct
    assert rt.verdict == "PASS"
    assert "node-a100" in rt.excluded and "different GPU model" in rt.excluded["node-a100"]
    lat = next(r for r in rows if r.metric == "roundtrip/pinned-64KiB p50 us")
    assert lat.median_pct > 0                          # slower candidate: latency overhead positive
    text = format_overhead_table(rows, "bare-metal", "proxy", 5.0)
    assert "PASS" in text and "node-a100" in text


def test_fleet_overhead_fails_when_clearly_over_target():
    base = healthy(10)
    cand = [HostProfile(p.name, speed=0.85, seed=p.rng_seed + 7) for p in base]
    rt = next(r for r in fleet_overhead(summaries(base), summaries(cand), target_pct=5.0) if r.metric == RT)
    assert rt.verdict == "FAIL" and len(rt.over_target) == 10


def test_idle_downshift_in_hello_is_not_a_pcie_finding_when_load_shows_full_link():
    lines = complete_stream(HostProfile("n"), PLAN)
    lines[0]["device"]["pcie"]["gen_current"] = 1        # idle GPU reported Gen1 at start
    s = summarize_host("n", "completed", lines)
    assert s.pcie["gen"] == 5 and s.pcie["under_load"]
    assert not [f for f in s.findings if f.kind == "pcie"]


def test_hosts_without_results_are_listed_with_their_outcome():
    fleet = summaries(healthy(6))
    fleet.append(summarize_host("node-dead", "failed", [], "connection refused"))
    report = analyze_fleet(fleet)
    assert report.excluded["node-dead"] == "no results (failed: connection refused)"
    assert "6 completed" in format_fleet_table(report) and "1 failed" in format_fleet_table(report)


def test_robust_z_survives_identical_values():
    med, mad, zs = robust_z([100.0] * 10, MAD_FLOOR_REL)
    assert med == 100.0 and mad == 0.0 and zs == [0.0] * 10
    _, _, zs = robust_z([100.0] * 9 + [90.0], MAD_FLOOR_REL)
    assert zs[-1] < -3.5                                 # floored MAD: a 10 % drop still stands out


def test_too_few_hosts_gives_a_note_not_outliers():
    fleet = healthy(3) + [HostProfile("x", speed=0.5)]
    report = analyze_fleet(summaries(fleet))
    assert report.outliers == [] and "outlier detection needs at least 5" in report.notes[-1]


def test_incomplete_host_shows_partial_figures_but_is_not_in_the_statistics():
    fleet = summaries(healthy(8))
    lines = complete_stream(HostProfile("node-cut", speed=0.5), PLAN)[:6]     # cut after a result
    fleet.append(summarize_host("node-cut", "incomplete", lines, "no output for 60 s"))
    report = analyze_fleet(fleet)
    assert report.excluded["node-cut"].startswith("incomplete: no output for 60 s (partial figures from 1 trial")
    assert report.outliers == []
    assert next(m for m in report.metrics if m.metric == RT).hosts == 8


def test_application_clocks_are_benign_as_in_show_and_the_dashboard():
    """Clocks an administrator set (applications_clocks_setting) are no slowdown: the fleet
    leaves them out of a host's throttling like the stored run (`show`) and the dashboard do
    (engine/throttle.py's one BENIGN_THROTTLE); a real slowdown beside them still counts."""
    s = summaries([HostProfile("node-appclk", throttle_mask=0x2)])[0]
    assert s.telemetry_readings and s.throttle == {}
    assert not [f for f in s.findings if f.kind == "throttle"]
    hot = summaries([HostProfile("node-hot", throttle_mask=0x2 | 0x20)])[0]
    assert set(hot.throttle) == {"sw_thermal_slowdown"}
    # a reading with the mask alone (no names) is judged the same way
    masked = summarize_host("m", "completed", [
        {"type": "telemetry", "readings": {"throttle_reasons": 0x2}},
        {"type": "telemetry", "readings": {"throttle_reasons": 0x2 | 0x4 | 0x400}}])
    assert masked.throttle == {"sw_power_cap": 1, "0x400": 1}


def test_a_decode_hosts_rate_metric_is_its_tokens_per_s():
    lines = [json.loads(x) for x in synth.decode_session_lines(0, batches=(8,), repeats=3)]
    s = summarize_host("gpu-node-1", "completed", lines)
    tokens = sorted(x["tokens_per_s"] for x in lines if x["type"] == "result")
    assert set(s.metrics) == {"decode/8b-l4-b8-kv2048 tokens/s", "decode/8b-l4-b8-kv2048 p50 us"}
    assert s.metrics["decode/8b-l4-b8-kv2048 tokens/s"].value == tokens[1]
