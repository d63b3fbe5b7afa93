"""Helpers for the TUI tests: a fixed tmp config, a tmp data dir, replayed streams."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable

from scenarios.config import Config, ScenarioConfig, load_config
from scenarios.base import LaunchError, LaunchRequest, Launcher, Session
from scenarios.replay import ReplayLauncher, synthetic_stream

DATA = Path(__file__).parent / "data"
REAL_CPU_STREAM = DATA / "cpu_roundtrip_launch.jsonl"
SIZE = (160, 48)

CONFIG_TEXT = """
[store]
data_dir = "data"

[defaults]
workloads = ["roundtrip"]
duration_s = 0.2
warmup_s = 0.05
repeats = 1
trials = {trials}
backend = "numpy-cpu"
telemetry_interval_s = 0.5

[hosts.local]
kind = "local"

[hosts.gpu-node-1]
kind = "ssh"
address = "127.0.0.1"
port = 9
enabled = true

[scenarios.bare-metal]
title = "1. Baseline (Bare Metal)"
launcher = "local"
host = "local"
legacy_file = "baseline_results.txt"

[scenarios.bare-metal-proxy]
title = "3. With GPU Proxy (No Hypervisor)"
launcher = "local"
host = "local"
target = "proxy"
baseline = "bare-metal"
legacy_file = "with-gpu-proxy-results.txt"
enabled = {proxy_enabled}
"""


def write_config(tmp_path: Path, trials: int = 1, proxy_enabled: bool = False) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG_TEXT.format(trials=trials,
                                       proxy_enabled="true" if proxy_enabled else "false"))
    return load_config(path)


class FailingLauncher(Launcher):
    name = "failing"

    async def start(self, request: LaunchRequest) -> Session:
        raise LaunchError("gpu-node-1: connection refused (port 22)")


def replay_factory(scales: dict[str, float] | None = None, repeats: int = 3,
                   speed: float = float("inf"), backend: str = "cupy",
                   throttle: tuple[str, ...] = ()) -> Callable[[ScenarioConfig], Launcher]:
    """Each scenario replays a synthetic stream; `scales` sets its throughput factor."""
    scales = scales or {}
    counter = {"n": 0}

    def factory(scenario: ScenarioConfig) -> Launcher:
        counter["n"] += 1
        lines = synthetic_stream(backend=backend, workloads=("roundtrip",), duration_s=0.5,
                                 repeats=repeats, seed=counter["n"],
                                 scale=scales.get(scenario.name, 1.0), throttle=throttle)
        return ReplayLauncher(lines, speed=speed)

    return factory


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the app run until predicate() holds (workers stream in the background)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        await asyncio.sleep(0.05)
    await pilot.pause()


def cell(table, row: int, column: str):
    """A DataTable cell by its column's heading, so a test does not break when columns move."""
    labels = [c.label.plain for c in table.columns.values()]
    return table.get_row_at(row)[labels.index(column)]
