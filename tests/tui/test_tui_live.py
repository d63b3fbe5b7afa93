"""The dashboard's plain-data model: alerts, progress, the dirty set."""
from __future__ import annotations

import json

from scenarios.replay import hello_line, telemetry_line
from results.labels import CPU_MARK as CPU_LABEL
from tui.live import HostState, LiveBoard
from tui.widgets.host_grid import rate_cell


def test_alerts_name_throttling_and_downtrained_pcie_but_not_benign_reasons():
    h = HostState(key="k", host="h")
    h.on_hello(json.loads(hello_line(pcie_gen=5)))
    assert h.alerts() == []
    h.on_telemetry(json.loads(telemetry_line(0.5, "cupy", ["gpu_idle", "sync_boost"]))["readings"], 0.5)
    assert h.alerts() == []                                  # idle / sync boost: not a slowdown
    h.on_telemetry(json.loads(telemetry_line(1.0, "cupy", ["sw_thermal_slowdown"], pcie_gen=3))
                   ["readings"], 1.0)
    assert h.alerts() == ["THROTTLING: sw_thermal_slowdown", "PCIe DOWNTRAINED: gen 3 of 5"]


def test_hello_alone_reports_a_downtrained_link_and_the_cpu_label():
    h = HostState(key="k", host="h")
    h.on_hello(json.loads(hello_line(pcie_gen=4)))
    assert h.alerts() == ["PCIe DOWNTRAINED: gen 4 of 5"]
    cpu = HostState(key="c", host="c")
    cpu.on_hello(json.loads(hello_line(backend="numpy-cpu")))
    assert cpu.is_cpu and cpu.backend_label == CPU_LABEL and cpu.alerts() == []


DRIFT = ("drift: quarter medians 50, 50, 80, 80 µs per call (+60%, limit 25%): the machine's "
         "load or clocks changed within the window")


def test_alerts_warn_when_the_headline_has_invalid_trials_so_far():
    h = HostState(key="k", host="h")
    h.on_hello(json.loads(hello_line(pcie_gen=5)))
    ok = {"workload": "roundtrip", "variant": "pinned-64KiB", "valid": True,
          "validity_reasons": [], "ops_per_s": 18600.0}
    bad = {**ok, "valid": False, "validity_reasons": [DRIFT]}
    h.on_result(ok)
    assert h.alerts() == []                                  # every trial so far counts
    h.on_result(bad)
    assert h.alerts() == ["FEW RESULTS: roundtrip 1/2 results count (too few for a CI): " + DRIFT]
    h.on_result(ok)
    assert h.alerts() == ["INVALID RESULTS: roundtrip 2/3 results count: " + DRIFT]


def test_progress_counts_results_against_plan_variants_and_plan_runs():
    board = LiveBoard()
    h = board.add(HostState(key="a", host="a"))
    hello = json.loads(hello_line())
    hello["plan"] = {"repeats": 2, "variants": [{"workload": "launch", "variant": "sync"},
                                                {"workload": "launch", "variant": "async"}]}
    h.on_hello(hello)
    assert h.expected_results == 4 and h.progress == 0.0
    h.on_result({"workload": "launch", "variant": "sync"})
    assert h.progress == 0.25
    board.plan_total_runs, board.plan_done_runs = 4, 1
    assert board.progress()[0] == (1 + 0.25) / 4


def test_take_dirty_empties_the_same_set_workers_hold_and_bumps_versions():
    board = LiveBoard()
    h = board.add(HostState(key="a", host="a"))
    held = board.dirty                                     # as a worker would hold it
    v = h.version
    assert [x.key for x in board.take_dirty()] == ["a"] and h.version == v + 1
    held.add("a")
    assert [x.key for x in board.take_dirty()] == ["a"]    # still the board's set
    assert board.take_dirty() == []


def test_a_step_rows_headline_is_tokens_per_s_summed_over_a_trials_gpus():
    board = LiveBoard()
    a = board.add_gpu("t", "t/0", "h", "s", "0")
    b = board.add_gpu("t", "t/1", "h", "s", "1")
    lat = {"p50": 1000.0, "p99": 1300.0}
    a.on_sample("decode", "8b-l4-b8-kv2048", 900.0, lat, None, 1.0, tokens_per_s=7200.0)
    b.on_sample("decode", "8b-l4-b8-kv2048", 850.0, lat, None, 1.0, tokens_per_s=6800.0)
    board.take_dirty()
    agg = board.hosts["t"]
    assert agg.is_step and agg.tokens_per_s == 14000.0 and agg.ops_per_s == 1750.0
    assert [rate_cell(h) for h in (a, b, agg)] == ["7,200 tokens/s", "6,800 tokens/s",
                                                   "14k tokens/s"]
    assert a.step_unit == ("decode", "8b-l4-b8-kv2048") and a.step_live["tokens_per_s"] == 7200.0
    launch = board.add(HostState(key="l", host="l"))
    launch.on_sample("launch", "sync", 77400.0, {"p50": 11.0}, None, 1.0, tokens_per_s=5.0)
    assert not launch.is_step and launch.step_unit is None and rate_cell(launch) == "77.4k ops/s"
