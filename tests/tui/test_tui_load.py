"""The dashboard under a stream: every sample taken in, only visible changed rows redrawn."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scenarios.base import LaunchRequest
from scenarios.replay import ReplayLauncher, synthetic_stream
from tui.app import GpubenchApp
from tui.widgets.host_grid import HostGrid
from tui_helpers import SIZE, wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_small_load_run_takes_in_every_sample_and_answers_keys():
    """benchmarks/tui_load.py, run as a user runs it, with its figures as one JSON object."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tui_load.py"), "--hosts", "32",
                           "--rate", "20", "--seconds", "1.5", "--warmup", "0.5", "--parse",
                           "--size", f"{SIZE[0]}x{SIZE[1]}", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
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


def test_sparkline_scales_the_latest_points_between_min_and_max():
    from tui.widgets.host_grid import SPARK_BLOCKS, sparkline
    assert sparkline([], 10) == ""
    assert sparkline([7.0, 7.0, 7.0], 10) == SPARK_BLOCKS[3] * 3          # flat: mid blocks
    line = sparkline(range(100), 10)                                       # only the last 10
    assert len(line) == 10 and line[0] == SPARK_BLOCKS[0] and line[-1] == SPARK_BLOCKS[-1]
    assert list(line) == sorted(line)                                      # rising values
    assert sparkline([3.0, None, 1.0], 10) == SPARK_BLOCKS[-1] + SPARK_BLOCKS[0]


async def test_fleet_grid_of_2000_hosts_draws_only_visible_rows_with_trends(config):
    """The fleet view: 2,000 rows, each with a sparkline; only what is on screen is drawn."""
    from tui.live import HostState
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        for i in range(2000):
            h = app.board.add(HostState(key=f"h{i:04d}", host=f"node-{i:04d}", scenario="fleet"))
            for k in range(12):
                h.on_sample("roundtrip", "pinned-64KiB", 1000.0 + (k if i % 2 else -k), {"p50": 9.0},
                            None, k * 0.1)
        app.board.dirty.update(app.board.hosts)
        await wait_for(pilot, lambda: app.screen.query_one(HostGrid).row_count == 2000)
        await pilot.pause(0.3)
        grid = app.screen.query_one(HostGrid)
        visible = grid.size.height - 1
        assert visible < 100
        # every row changed, yet only the visible ones were rendered (twice at most: first
        # paint and one refresh)
        assert 0 < grid.rows_rendered <= 2 * visible
        screen_text = "\n".join(line.text for line in grid.render_lines(grid.region.reset_offset))
        assert "▁" in screen_text and "█" in screen_text                   # trends drawn
        before = grid.rows_rendered
        await pilot.press("end")
        await pilot.pause(0.3)
        assert "node-1999" in "\n".join(line.text for line in grid.render_lines(grid.region.reset_offset))
        assert grid.rows_rendered - before <= 2 * visible
