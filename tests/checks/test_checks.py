"""`gpubench check` proven both ways without a GPU: the ctypes memory probe drives a fake
libcuda under gpubench's interposer (caps on: ENFORCED, caps off: NOT ENFORCED); init
contention and interference run the real CPU engine with concurrent processes; results go to
the store. The compute check over time: test_compute_share.py."""
from __future__ import annotations

import argparse
import json

import pytest

from gpubench.checks.command import format_checks, register as register_check
from gpubench.checks.proxy import Limits, interposer_proxy, limits_from_env
from gpubench.checks.settings import Settings
from results.check_verdicts import ENFORCED, MEASURED, NOT_APPLICABLE, NOT_ENFORCED
from gpubench.checks.contention import check_init, check_interference
from gpubench.checks.enforcement import check_memory
from results.check_tables import check_detail_tables

MIB = 1 << 20


@pytest.fixture
def settings(fake_driver, interposer_lib, monkeypatch):
    monkeypatch.setenv("GPUBENCH_CACHE_DIR", str(interposer_lib.parent))
    return Settings(backend="numpy-cpu", libcuda=str(fake_driver / "libcuda.so.1"),
                           seconds=0.25, mem_step=8 * MIB)


def test_memory_cap_enforced_with_cap_on(settings):
    """Every allocation path; tests/checks/test_memory_paths.py holds the rest."""
    proxy = interposer_proxy(Limits(mem_bytes=64 * MIB), caps_on=True)
    r = check_memory(proxy, settings)
    assert r["verdict"] == ENFORCED, r["reasons"]
    for p in r["paths"]:
        assert p["probe"]["refused"] and p["probe"]["rc"] == 2
        assert 0.8 * 64 * MIB < p["observed_bytes"] <= 64 * MIB


def test_memory_cap_not_enforced_with_cap_off(settings):
    proxy = interposer_proxy(Limits(mem_bytes=64 * MIB), caps_on=False)
    r = check_memory(proxy, settings)
    assert r["verdict"] == NOT_ENFORCED, r
    for p in r["paths"]:
        assert p["probe"]["allocated"] > 64 * MIB and not p["probe"]["refused"]


def test_memory_without_a_limit_is_not_applicable(settings):
    r = check_memory(interposer_proxy(Limits()), settings)
    assert r["verdict"] == NOT_APPLICABLE and "no memory limit" in r["reasons"][0]


def test_limits_read_from_a_proxy_environment():
    lim = limits_from_env({"CUDA_DEVICE_MEMORY_LIMIT": "16g", "CUDA_DEVICE_SM_LIMIT": "50"})
    assert lim.mem_bytes == 16 << 30 and lim.compute_fraction == 0.5 and lim.launch_rate is None
    lim = limits_from_env({"GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES": "1073741824",
                                  "GPUBENCH_INTERPOSE_LAUNCH_RATE": "500"})
    assert lim.mem_bytes == 1 << 30 and lim.launch_rate == 500.0


def test_a_probe_that_cannot_load_a_driver_says_so(settings):
    settings.libcuda = "/nonexistent/libcuda.so.1"
    proxy = interposer_proxy(Limits(mem_bytes=64 * MIB))
    r = check_memory(proxy, settings)
    assert r["verdict"] == NOT_APPLICABLE and "cannot load the CUDA driver" in r["reasons"][0]


def test_init_contention_with_concurrent_processes_on_cpu(settings):
    """The engine's init workload, N processes at once, bare and under the interposer."""
    settings.init_procs = "1,4"
    settings.repeats = 1
    proxy = interposer_proxy(Limits())
    r, sessions = check_init(proxy, settings)
    assert r["verdict"] == MEASURED, r
    rows = {row["variant"]: row for row in r["rows"]}
    assert set(rows) == {"init/n1", "init/n4"}
    assert rows["init/n4"]["bare"]["processes"] == 4 and rows["init/n4"]["proxy"]["processes"] == 4
    for row in rows.values():
        for side in ("bare", "proxy"):
            assert row[side]["p50_ms"] > 0 and row[side]["p99_ms"] >= row[side]["p50_ms"]
            assert row[side]["failed"] == 0
    assert all(s["outcome"] == "completed" for s in sessions) and len(sessions) == 2
    # the time-to-first-kernel table `gpubench check` and `show` print
    [(title, columns, table)] = check_detail_tables(r)
    assert title.startswith("time to first kernel (ms), under interposer")
    assert columns[:5] == ("processes", "bare p50", "bare p99", "proxy p50", "proxy p99")
    assert [t[0] for t in table] == ["1", "4"] and all(t[-1] == "0" for t in table)
    assert float(table[1][2]) >= float(table[1][1]) > 0
    text = format_checks({"proxy": {"name": "interposer"}, "backend": "numpy-cpu",
                          "elapsed_s": 1.0, "checks": [r]})
    assert "    time to first kernel (ms)" in text
    assert "      processes\tbare p50\tbare p99\tproxy p50\tproxy p99\t" in text


def test_interference_of_two_instances_on_cpu(settings):
    settings.duration = 0.2
    settings.repeats = 1
    settings.interference_workloads = "launch"
    r, sessions = check_interference(None, settings)
    assert r["verdict"] == MEASURED and r["instances"] == 2
    assert len(sessions) == 4                      # 2 alone, 2 together
    row = next(x for x in r["rows"] if x["variant"] == "launch/sync")
    assert len(row["alone"]) == len(row["together"]) == 2
    assert 0 < row["fairness"] <= 1 and 0 < row["jain"] <= 1
    assert all(x > 0 for x in row["throughput_ratio"])


def test_cli_runs_saves_and_writes_json(settings, tmp_path, capsys):
    class Cfg:
        data_dir = tmp_path / "data"
        scenarios: dict = {}
    p = argparse.ArgumentParser()
    register_check(p.add_subparsers(dest="cmd"))
    args = p.parse_args(["check", "--checks", "memory,compute", "--mem-limit", "32M",
                         "--mem-step", "4M", "--launch-rate", "2000", "--backend", "numpy-cpu",
                         "--libcuda", settings.libcuda, "--seconds", "0.2",
                         "--json", str(tmp_path / "c.json")])
    assert args.func(args, Cfg()) == 0
    out = capsys.readouterr().out
    assert "memory       ENFORCED" in out and "compute      ENFORCED" in out
    summary = json.loads((tmp_path / "c.json").read_text())
    assert [c["verdict"] for c in summary["checks"]] == [ENFORCED, ENFORCED]
    from results.store import Store
    store = Store(tmp_path / "data")
    runs = store.list_runs().runs
    assert len(runs) == 1 and runs[0]["scenario"] == "check-interposer"
    doc = store.load(runs[0]["id"])
    assert doc["checks_summary"] == {"memory": ENFORCED, "compute": ENFORCED}
    assert doc["validity"]["status"] == "VALID"


def test_cli_unknown_scenario_is_one_line(capsys):
    class Cfg:
        data_dir = None
        scenarios: dict = {}
    p = argparse.ArgumentParser()
    register_check(p.add_subparsers(dest="cmd"))
    args = p.parse_args(["check", "--scenario", "nope", "--no-save"])
    assert args.func(args, Cfg()) == 2
    assert "no scenario named 'nope'" in capsys.readouterr().err
