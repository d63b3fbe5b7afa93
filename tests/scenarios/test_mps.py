"""MPS as a layer, without a daemon: `[scenarios.X.mps]` parsing, what the engine reports of
MPS in `hello` (engine/mps_facts.py), and the judgement of layers.verify on it. The daemon's
lifecycle through the launchers is in test_mps_launchers.py; bad values one line each in
tests/hostile/config/mps-*.toml."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.facts import host_facts
from engine.mps_facts import mps_facts, server_pids
from gpubench.run_identity import scenario_record
from scenarios.builtin_config import tomllib
from scenarios.config import Config, ConfigError, parse_config
from scenarios.layers import verify
from scenarios.mps import MpsLayer
from scenarios.registry import launcher_for
from tests.support.sshd import REPO

BASE = {"hosts": {"gpu1": {"kind": "ssh", "address": "gpu1"}}}


def load(mps: dict | None, launcher: str = "local", **extra) -> Config:
    scenario = {"launcher": launcher, **extra}
    if launcher == "ssh":
        scenario["host"] = "gpu1"
    if mps is not None:
        scenario["mps"] = mps
    return parse_config({**BASE, "scenarios": {"m": scenario}}, "config.toml", Path("/tmp"))


def test_the_layer_is_read_with_its_defaults():
    cfg = load({"thread_percentage": 25, "pinned_memory_limit": "0=1G,1=512M"})
    layer = cfg.scenarios["m"].mps
    assert layer == MpsLayer(thread_percentage=25, pinned_memory_limit="0=1G,1=512M",
                             control="nvidia-cuda-mps-control")
    assert layer.client_env() == {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "25",
                                  "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=1G,1=512M"}
    assert load({}).scenarios["m"].mps == MpsLayer()          # MPS without a compute limit
    assert MpsLayer().client_env() == {}
    assert load(None).scenarios["m"].mps is None


def test_an_ssh_scenario_takes_the_layer_and_its_launcher_gets_it():
    cfg = load({"thread_percentage": 50, "control": "/usr/local/bin/mps-control"}, "ssh")
    scenario = cfg.scenarios["m"]
    launcher = launcher_for(scenario, cfg)
    assert launcher.mps is not None and launcher.mps.layer is scenario.mps
    assert launcher.mps.where == "ssh gpu1"
    local = launcher_for(load({"thread_percentage": 50}).scenarios["m"], cfg)
    assert local.mps is not None and local.mps.where == "local"
    assert launcher_for(load(None).scenarios["m"], cfg).mps is None


def test_the_run_document_records_the_layer():
    cfg = load({"thread_percentage": 25})
    details = scenario_record(cfg.scenarios["m"], cfg)["details"]
    assert details["mps"] == {"thread_percentage": 25, "pinned_memory_limit": None,
                              "control": "nvidia-cuda-mps-control"}


@pytest.mark.parametrize("mps, launcher, expect", [
    ({"thread_percentage": 101}, "local", "scenarios.m.mps.thread_percentage: must be at most 100"),
    ({"thread_percentage": True}, "local", "scenarios.m.mps.thread_percentage: must be an integer"),
    ({"pinned_memory_limit": "0=1G,"}, "local", "scenarios.m.mps.pinned_memory_limit: must be"),
    ({"pinned_memory_limit": "0=0G"}, "local", "scenarios.m.mps.pinned_memory_limit: must be"),
    ({"control": " mps"}, "local", "scenarios.m.mps.control: must name the control program"),
    ({"thread_percentage": 10}, "k8s", "scenarios.m.mps: is for local and ssh scenarios"),
])
def test_bad_values_are_one_line_naming_file_and_key(mps, launcher, expect):
    extra = {"cluster": "c"} if launcher == "k8s" else {}
    with pytest.raises(ConfigError) as err:
        if launcher == "k8s":
            parse_config({"clusters": {"c": {}}, "scenarios": {"m": {
                "launcher": "k8s", "mps": mps, **extra}}}, "config.toml", Path("/tmp"))
        else:
            load(mps, launcher)
    message = str(err.value)
    assert message.startswith("config.toml: ") and "\n" not in message
    assert expect in message, message


# -- what the engine sees ------------------------------------------------------------------

def fake_proc(root: Path, processes: dict[int, list[str]]) -> Path:
    proc = root / "proc"
    for pid, argv in processes.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / "self").mkdir(exist_ok=True)
    return proc


def test_facts_show_the_pipe_the_control_the_server_and_the_limits(tmp_path):
    pipe = tmp_path / "pipe"
    pipe.mkdir()
    os.mkfifo(pipe / "control")
    (pipe / "nvidia-cuda-mps-control.pid").write_text("11\n")
    proc = fake_proc(tmp_path, {
        10: ["/usr/bin/nvidia-cuda-mps-server"], 11: ["nvidia-cuda-mps-control", "-d"],
        12: ["python", "nvidia-cuda-mps-server"]})     # only argv[0] names the process
    env = {"CUDA_MPS_PIPE_DIRECTORY": str(pipe), "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "25"}
    facts = mps_facts(env, proc)
    assert facts == {"pipe_directory": str(pipe), "pipe_directory_set": True, "control": True,
                     "daemon_pid": 11, "servers": [10], "active_thread_percentage": "25",
                     "pinned_device_mem_limit": None}
    assert server_pids(tmp_path / "no-proc") == []


def test_without_a_control_pipe_no_process_is_searched(tmp_path):
    proc = fake_proc(tmp_path, {10: ["nvidia-cuda-mps-server"]})
    facts = mps_facts({"CUDA_MPS_PIPE_DIRECTORY": str(tmp_path / "nothing")}, proc)
    assert facts["control"] is False and facts["servers"] == [] and facts["daemon_pid"] is None
    unset = mps_facts({}, proc)
    assert unset["pipe_directory"] == "/tmp/nvidia-mps" and unset["pipe_directory_set"] is False


def test_hello_carries_the_mps_facts():
    assert set(host_facts()["mps"]) == {"pipe_directory", "pipe_directory_set", "control",
                                        "daemon_pid", "servers", "active_thread_percentage",
                                        "pinned_device_mem_limit"}


# -- the judgement ---------------------------------------------------------------------------

ACTIVE = {"pipe_directory": "/tmp/gpubench-mps-x/pipe", "pipe_directory_set": True,
          "control": True, "daemon_pid": 4241, "servers": [4242], "active_thread_percentage": "25",
          "pinned_device_mem_limit": None}


def hello(**mps) -> dict:
    return {"host": {"mps": {**ACTIVE, **mps}}}


@pytest.mark.parametrize("facts, reason", [
    ({"pipe_directory_set": False}, "CUDA_MPS_PIPE_DIRECTORY is not set in the engine"),
    ({"control": False}, "no control pipe in /tmp/gpubench-mps-x/pipe"),
    ({"servers": []}, "no nvidia-cuda-mps-server process seen by the engine"),
    ({"active_thread_percentage": None}, "active thread percentage None, configured 25"),
    ({"active_thread_percentage": "100"}, "active thread percentage 100, configured 25"),
])
def test_a_scenario_asking_for_mps_is_invalid_when_hello_does_not_show_it(facts, reason):
    scenario = load({"thread_percentage": 25}).scenarios["m"]
    assert verify(scenario, hello()) == []
    assert verify(scenario, hello(**facts)) == [f"MPS not active: {reason}"]


def test_no_facts_at_all_is_invalid_and_a_scenario_without_mps_is_not_judged():
    scenario = load({"thread_percentage": 25}).scenarios["m"]
    assert verify(scenario, {"host": {}}) == ["MPS not active: the engine reported no MPS facts"]
    assert verify(load(None).scenarios["m"], {"host": {}}) == []
    no_limit = load({}).scenarios["m"]
    assert verify(no_limit, hello(active_thread_percentage=None)) == []


def test_the_shipped_example_loads_once_uncommented():
    """config.toml's commented MPS scenario is a working example, not prose that can rot."""
    text = (REPO / "config.toml").read_text()
    start = text.index("# [scenarios.bare-metal-mps]")
    block = text[start:text.index("\n\n", start)]
    example = "\n".join(line[2:] for line in block.splitlines())
    data = tomllib.loads(example)
    data["scenarios"]["bare-metal"] = {"launcher": "local"}
    scenario = parse_config(data, "config.toml", REPO).scenarios["bare-metal-mps"]
    assert scenario.mps == MpsLayer(thread_percentage=25, pinned_memory_limit="0=16G")
    assert scenario.launcher == "local" and scenario.baseline == "bare-metal"
