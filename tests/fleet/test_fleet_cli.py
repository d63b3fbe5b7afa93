"""`gpubench fleet` end to end over the simulated farm: selection, table, overhead, store."""
from __future__ import annotations

import argparse
import json

import pytest

from engine.engine_args import EngineArgs
from gpubench.cli.fleet import register
from gpubench.fleet import engine_args
from scenarios.config import BenchDefaults, Config, parse_config
from tests.support.farm import interleaved
from tests.support.own_lines import own_lines


def make_config(farm, tmp_path, labelled=(), dead=()):
    hosts = farm.host_configs(labels={n: ("rack-a",) for n in labelled}, extra_dead=dead)
    table = {n: {"kind": "ssh", "address": h.address, "port": h.port, "user": h.user,
                 "identity_file": h.identity_file, "known_hosts": h.known_hosts,
                 "labels": list(h.labels)} for n, h in hosts.items()}
    first = next(iter(hosts))
    data = {"store": {"data_dir": str(tmp_path / "data")}, "hosts": table,
            "defaults": {"workloads": ["roundtrip"], "duration_s": 0.5, "repeats": 3, "warmup_s": 0.0},
            "scenarios": {
                "bare": {"launcher": "ssh", "host": first},
                "proxy": {"launcher": "ssh", "host": first, "target": "proxy", "baseline": "bare",
                          "proxy": {"preload": "/usr/local/vgpu/libvgpu.so",
                                    "env": {"CUDA_DEVICE_SM_LIMIT": "50"}}}}}
    return parse_config(data, "test.toml", tmp_path)


def run_cli(argv, config):
    parser = argparse.ArgumentParser(prog="gpubench")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["fleet", *argv])
    return args.func(args, config)


def test_fleet_by_label_with_two_scenarios(farm, tmp_path, capsys):
    labelled = [f"sim-{i:02d}" for i in range(6)] + ["sim-gen3x8", "sim-a100"]
    config = make_config(farm, tmp_path, labelled=labelled)
    out_json = tmp_path / "fleet.json"
    rc = run_cli(["--label", "rack-a", "--scenario", "bare", "--scenario", "proxy", "--quiet",
                  "--json", str(out_json)], config)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "sim-hot" not in out and "sim-hang" not in out            # not labelled rack-a
    assert out.count("OUTLIER") == 2                                 # sim-gen3x8 in each scenario
    assert "sim-gen3x8: slow on roundtrip/pinned-64KiB ops/s" in out and "PCIe Gen3 x8" in out
    assert "sim-a100: different GPU model: NVIDIA A100-SXM4-80GB" in out
    assert "Overhead of proxy vs bare across the fleet" in out
    doc = json.loads(out_json.read_text())
    assert set(doc["reports"]) == {"bare", "proxy"} and doc["group"].startswith("fleet-")
    assert doc["overhead"]["proxy"][0]["hosts"] == 7                 # A100 excluded from the pairs
    from results.store import Store
    runs = Store(config.data_dir).list_runs().runs
    assert len(runs) == 16 and {r["group"] for r in runs} == {doc["group"]}


def test_fleet_with_a_dead_host_exits_1_and_names_it(farm, tmp_path, capsys):
    config = make_config(farm, tmp_path, dead=("sim-dead",))
    rc = run_cli(["--hosts", "sim-00,sim-01,sim-dead", "--quiet", "--no-save"], config)
    out = capsys.readouterr().out
    assert rc == 1
    assert "2 completed, 1 failed" in out
    assert "sim-dead: no results (failed: ssh sim-dead" in out and "connection refused" in out
    assert "outlier detection needs at least 5" in out


def test_fleet_stores_nothing_for_a_host_that_never_connected(farm, tmp_path, capsys):
    config = make_config(farm, tmp_path, dead=("sim-dead",))
    rc = run_cli(["--hosts", "sim-00,sim-dead", "--quiet"], config)
    err = capsys.readouterr().err
    assert rc == 1
    assert [ln for ln in own_lines(err) if "nothing saved" in ln] == [
        "gpubench fleet: nothing saved for 1 host(s) that never started fleet: sim-dead"]
    from results.store import Store
    runs = Store(config.data_dir).list_runs().runs
    assert len(runs) == 1 and runs[0]["host"] != "sim-dead"   # sim-00's run only


def test_fleet_without_hosts_is_a_usage_error(farm, tmp_path, capsys):
    config = make_config(farm, tmp_path)
    assert run_cli(["--label", "no-such-label", "--quiet"], config) == 2
    assert "no hosts with label 'no-such-label'" in capsys.readouterr().err


def test_fleet_scale_pin_on_one_cpu_is_one_line():
    """`--pin on` needs a second CPU for the farm: on one it says so in one line, exit 2."""
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet_scale.py"
    proc = subprocess.run(["taskset", "-c", "0", sys.executable, str(script), "--pin", "on",
                           "--hosts", "1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert own_lines(proc.stderr) == ["fleet_scale: --pin on needs 2 or more CPUs (this process may use 1)"]


def test_fleet_scale_spreads_the_sshd_hosts_through_the_fleet_order():
    """The real-sshd hosts (added last) go evenly among the simulated ones, all of each kept once
    (fleet_scale.py orders its fleet with tests/support/farm.py's interleaved())."""
    hosts = {f"sim-{i}": f"sim-{i}" for i in range(10)}
    hosts.update({f"sshd-{i}": f"sshd-{i}" for i in range(3)})
    order = interleaved(hosts, 3)
    assert sorted(order) == sorted(hosts.values())
    assert [order.index(f"sshd-{i}") for i in range(3)] == [0, 4, 9]
    assert interleaved({"a": "a", "b": "b"}, 0) == ["a", "b"]


def test_fleet_engine_args_are_the_defaults_with_this_commands_overrides(tmp_path):
    config = Config(path=None, data_dir=tmp_path, targets={}, hosts={}, clusters={}, scenarios={},
                    defaults=BenchDefaults(workloads=("roundtrip",), repeats=5, cpus="4-7",
                                           copy_sizes=("4KiB",)))
    given = argparse.Namespace(workloads="launch,h2d", duration=2.0, warmup=None, repeats=None,
                               backend="numpy-cpu")
    assert engine_args(config, given) == EngineArgs(
        backend="numpy-cpu", workloads=("launch", "h2d"), duration=2.0, warmup=0.3, repeats=5)
    none = argparse.Namespace(workloads=None, duration=None, warmup=None, repeats=None,
                              backend=None)
    assert engine_args(config, none).to_argv() == ["--workloads", "roundtrip", "--repeats", "5"]
