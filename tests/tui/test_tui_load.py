"""The dashboard under a stream: every sample taken in, only visible changed rows redrawn."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from scenarios.base import LaunchRequest
from scenarios.replay import ReplayLauncher, synthetic_stream
from tui.app import GpubenchApp
from tui.widgets.host_grid import HostGrid
from tui_helpers import SIZE, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("tui_load", ROOT / "benchmarks" / "tui_load.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


async def test_small_load_run_takes_in_every_sample_and_answers_keys():
    bench = _load_benchmark()
    r = await bench.run(hosts=32, rate=20.0, seconds=1.5, warmup=0.5, parse=True, size=SIZE)
    assert r["sessions_running"] == 32
    assert r["keys_timed"] == r["keys_sent"] >= 4
    assert r["samples_sent_per_s"] > 0.8 * 32 * 20
    # taken in within one pump period of being sent (20 Hz pump, 20 samples/s per host)
    assert r["samples_lost"] <= 32 * 3
    # the grid redraws only rows that changed and are visible: at most every row, 10 times a second
    assert 0 < r["grid_rows_rendered_per_s"] <= 32 * 10 * 1.5


async def test_grid_redraws_only_visible_changed_rows(config):
    app = GpubenchApp(config)
    streams = [synthetic_stream(hostname=f"n{i}", seed=i) for i in range(60)]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        for i, lines in enumerate(streams):
            app.run_worker(app.manager.run_session(f"h{i:02d}", f"node-{i:02d}", "bare-metal",
                                                   ReplayLauncher(lines, speed=float("inf")),
                                                   LaunchRequest()))
        await wait_for(pilot, lambda: len(app.board.hosts) == 60 and all(
            h.status == "completed" for h in app.board.hosts.values()))
        await pilot.pause(0.3)
        grid = app.screen.query_one(HostGrid)
        visible = grid.size.height - 1
        assert grid.row_count == 60 and visible < 60
        before = grid.rows_rendered
        off_screen = [app.board.hosts[f"h{i:02d}"] for i in range(50, 60)]
        for h in off_screen:
            h.ops_per_s = 1.0
        app.board.dirty.update(h.key for h in off_screen)
        await pilot.pause(0.3)
        assert grid.rows_rendered == before           # changed but off screen: nothing drawn
        on_screen = app.board.hosts["h01"]
        on_screen.ops_per_s = 2.0
        app.board.dirty.add("h01")
        await pilot.pause(0.3)
        assert grid.rows_rendered == before + 1       # one changed visible row, one redraw
        await pilot.press("end")                      # scrolling brings the others in view
        await pilot.pause(0.3)
        assert grid.rows_rendered > before + 1
