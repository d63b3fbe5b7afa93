"""The dashboard during a per-GPU plan: one grid row per GPU session and an all-GPU row."""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tui"))

from scenarios.config import load_config  # noqa: E402
from tui.app import GpubenchApp  # noqa: E402
from tui.live import AggregateState, HostState, LiveBoard  # noqa: E402
from tui.widgets.host_grid import HostGrid  # noqa: E402

CONFIG = """
[store]
data_dir = "data"
[defaults]
workloads = ["launch"]
duration_s = 0.3
warmup_s = 0.0
repeats = 1
trials = 1
backend = "numpy-cpu"
telemetry_interval_s = 0.5
[scenarios.bare-metal]
launcher = "local"
host = "local"
gpu_select = "all"
"""


async def _wait(pilot, predicate, timeout=90.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    await pilot.pause()


async def test_two_fake_gpu_plan_shows_two_gpu_rows_and_an_aggregate(tmp_path, fake_gpus):
    fake_gpus(2)
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    app = GpubenchApp(load_config(path), seed=1)          # real LocalLauncher, real engines
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("r")
        await _wait(pilot, lambda: not app.plan_running)
        await pilot.pause(0.3)
        hosts = list(app.board.hosts.values())
        assert [h.gpu for h in hosts] == ["0", "1", "all"]
        assert [h.label for h in hosts] == ["local gpu0", "local gpu1", "local all GPUs"]
        assert all(h.status == "completed" for h in hosts), [h.message for h in hosts]
        gpu0, gpu1, agg = hosts
        assert "gpu0" in gpu0.key and "gpu1" in gpu1.key and isinstance(agg, AggregateState)
        assert gpu0.hello["device"]["uuid"] == "CPU-FAKE-0"
        assert gpu1.hello["device"]["uuid"] == "CPU-FAKE-1"
        assert agg.ops_per_s == gpu0.ops_per_s + gpu1.ops_per_s
        assert app.screen.query_one(HostGrid).row_count == 3
        assert app.board.progress()[0] == 1.0


def test_aggregate_row_recomputed_only_from_dirty_members():
    board = LiveBoard()
    a = board.add_gpu("g", "g/gpu0", "h", "s", "0")
    b = board.add_gpu("g", "g/gpu1", "h", "s", "1")
    assert list(board.hosts) == ["g/gpu0", "g/gpu1", "g"]   # aggregate row after its GPUs
    board.take_dirty()
    a.on_sample("launch", "sync", 100.0, {"p50": 1.0, "p99": 5.0}, None, 1.0)
    b.on_sample("launch", "sync", 50.0, {"p50": 3.0, "p99": 7.0}, None, 1.0)
    board.dirty.add(a.key)
    changed = {h.key for h in board.take_dirty()}
    assert changed == {"g/gpu0", "g"}
    agg = board.hosts["g"]
    assert agg.ops_per_s == 150.0 and agg.latency_us == {"p50": 2.0, "p99": 6.0}
    assert board.take_dirty() == []
    plain = board.add(HostState(key="x", host="other"))
    assert plain.label == "other"
