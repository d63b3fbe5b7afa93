"""Snapshot tests (pytest-textual-snapshot) of each screen at 160×48 with a fixed config.

Content is deterministic: replayed synthetic streams, saved runs with fixed ids and
times, no clock on screen, notifications cleared before the picture.
Update after an intended change: pytest tests/tui/test_tui_snapshots.py --snapshot-update
"""
from __future__ import annotations

import asyncio

from results.document import SessionRecord, build_document
from results.store import Store
from scenarios.base import LaunchRequest
from scenarios.replay import ReplayLauncher, synthetic_stream
from tests.support.synth import decode_session_lines
from tui.app import GpubenchApp
from tui_helpers import SIZE, wait_for, write_config


def fixed_runs(config) -> None:
    store = Store(config.data_dir)
    for run_id, scenario, scale, created, driver in (
            ("20261120-100000-bare-metal-aaaaaa", "bare-metal", 1.0, "2026-11-20T10:00:00Z",
             "580.65.06"),
            ("20261120-110000-bare-metal-proxy-bbbbbb", "bare-metal-proxy", 0.96,
             "2026-11-20T11:00:00Z", "580.65.06"),
            ("20261121-090000-bare-metal-proxy-cccccc", "bare-metal-proxy", 0.99,
             "2026-11-21T09:00:00Z", "575.57.08")):
        lines = synthetic_stream(workloads=("roundtrip", "h2d"), repeats=6, duration_s=0.5,
                                 scale=scale, seed=len(run_id) + int(scale * 100))
        lines = [ln.replace("580.65.06", driver) for ln in lines]
        doc = build_document([SessionRecord(lines, trial=0)],
                             {"name": scenario, "title": scenario, "launcher": "local",
                              "host": "local", "target": "proxy" if "proxy" in scenario else "none",
                              "target_pct": 5.0 if "proxy" in scenario else None},
                             run_id=run_id, created=created,
                             label="nightly" if scale == 1.0 else "")
        store.save(doc, lines)


def make_app(tmp_path) -> GpubenchApp:
    config = write_config(tmp_path, trials=3, proxy_enabled=True)
    fixed_runs(config)
    return GpubenchApp(config, seed=1)


async def settle(pilot) -> None:
    pilot.app.clear_notifications()
    await pilot.pause(0.2)


def test_snapshot_hosts(tmp_path, snap_compare):
    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=settle)


def test_snapshot_dashboard(tmp_path, snap_compare):
    app = make_app(tmp_path)

    async def run_before(pilot):
        await pilot.press("2")
        streams = [synthetic_stream(workloads=("roundtrip", "h2d"), repeats=2, hostname="n0"),
                   synthetic_stream(backend="numpy-cpu", hostname="cpu-box", seed=3),
                   synthetic_stream(throttle=("hw_slowdown",), seed=4),
                   synthetic_stream(pcie_gen=4, seed=5)]
        for i, lines in enumerate(streams):
            app.run_worker(app.manager.run_session(
                f"h{i}", f"gpu-node-{i + 1}", "bare-metal",
                ReplayLauncher(lines, speed=float("inf")), LaunchRequest()))
        await wait_for(pilot, lambda: len(app.board.hosts) == 4 and all(
            h.status == "completed" for h in app.board.hosts.values()))
        await asyncio.sleep(1.3)          # charts redraw at most once a second
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_dashboard_decode(tmp_path, snap_compare):
    """A decode session that has ended: tokens/s in the grid, the step panel's medians over its
    results (the first row, a GPU's, with device p99), the last window's histogram."""
    app = make_app(tmp_path)

    async def run_before(pilot):
        await pilot.press("2")
        for i, lines in enumerate([decode_session_lines(1, batches=(1, 8), repeats=2),
                                   decode_session_lines(2, backend="numpy-cpu", repeats=2,
                                                        hostname="cpu-box")]):
            app.run_worker(app.manager.run_session(
                f"h{i}", f"gpu-node-{i + 1}", "bare-metal",
                ReplayLauncher(lines, speed=float("inf")), LaunchRequest()))
        await wait_for(pilot, lambda: len(app.board.hosts) == 2 and all(
            h.status == "completed" for h in app.board.hosts.values()))
        await pilot.press("home")
        await asyncio.sleep(1.3)          # charts redraw at most once a second
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_history(tmp_path, snap_compare):
    assert snap_compare(make_app(tmp_path), press=["3"], terminal_size=SIZE, run_before=settle)


def test_snapshot_compare(tmp_path, snap_compare):
    async def run_before(pilot):
        # History lists newest first: ccc (driver 575), bbb, aaa
        await pilot.press("3", "down", "down", "b", "up", "c", "up", "c", "4")
        await pilot.pause(0.5)
        await settle(pilot)

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=run_before)


def test_snapshot_compare_with_checks(tmp_path, snap_compare):
    """The candidate's isolation-check verdicts (the newest `check-bare-metal-proxy`
    run, as gpubench.checks writes it) under the overheads: ENFORCED green, NOT ENFORCED red,
    NOT APPLICABLE dim."""
    from tests.checks.fixed_checks import fixed_check_document
    app = make_app(tmp_path)
    doc = fixed_check_document("bare-metal-proxy",
                               run_id="20261119-080000-check-bare-metal-proxy-dddddd",
                               created="2026-11-19T08:00:00Z")
    Store(app.config.data_dir).save(doc)

    async def run_before(pilot):
        # History, newest first: ccc, bbb, aaa, then the (older) check run
        await pilot.press("3", "down", "down", "b", "up", "c", "4")
        await pilot.pause(0.5)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_help(tmp_path, snap_compare):
    assert snap_compare(make_app(tmp_path), press=["question_mark"], terminal_size=SIZE,
                        run_before=settle)


def test_snapshot_matrix(tmp_path, snap_compare):
    """A matrix check run's grid (History: m): red/yellow/green by p99 inflation, the MPS
    layer NOT AVAILABLE with why, and the focused cell's numbers after Enter."""
    from tests.checks.fixed_matrix import fixed_matrix_document
    app = make_app(tmp_path)
    Store(app.config.data_dir).save(fixed_matrix_document(
        run_id="20261119-080000-check-two-services-eeeeee", created="2026-11-19T08:00:00Z"))

    async def run_before(pilot):
        # History, newest first: ccc, bbb, aaa, then the (older) matrix run
        await pilot.press("3", "down", "down", "down", "m")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
