"""The dashboard's plain-data model: alerts, progress, the dirty set."""
from __future__ import annotations

import json

from scenarios.replay import hello_line, telemetry_line
from results.labels import CPU_MARK as CPU_LABEL
from tui.live import HostState, LiveBoard


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
