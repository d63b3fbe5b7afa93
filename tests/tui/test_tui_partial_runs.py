"""Runs that did not run whole, in the app: a plan none of whose sessions started saves
nothing and says so; a cancelled or cut-off run is marked incomplete wherever a run is
listed (History and Compare's picker)."""
from __future__ import annotations

import pytest
from textual.widgets import DataTable

from results.document import SessionRecord, archive_lines, build_document
from results.store import Store
from scenarios.replay import ReplayLauncher, synthetic_stream
from tui.app import GpubenchApp

from test_tui_app import save_doc
from tui_helpers import SIZE, FailingLauncher, cell, replay_factory, wait_for, write_config


def noted(app) -> list[tuple[str, str]]:
    """(message, severity) of every notification the app gives from now on."""
    seen: list[tuple[str, str]] = []
    real = app.notify

    def notify(message, **kw):
        seen.append((message, kw.get("severity", "information")))
        return real(message, **kw)

    app.notify = notify
    return seen


@pytest.mark.parametrize("launcher", [
    FailingLauncher,                                 # the host refuses the connection
    lambda: ReplayLauncher([], exit_code=1),         # the engine exits before its hello
], ids=["launch-fails", "engine-exits-before-hello"])
async def test_a_plan_none_of_whose_sessions_started_saves_nothing_and_says_so(tmp_path,
                                                                                launcher):
    config = write_config(tmp_path, trials=2)
    app = GpubenchApp(config, launcher_factory=lambda scenario: launcher())
    notes = noted(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: any(n.startswith("Plan ") for n, _ in notes), timeout=60)
        assert ("bare-metal: nothing saved: none of its 2 session(s) started", "warning") \
            in notes
        assert ("Plan finished: 2 trial(s), no run saved, 2 session(s) failed", "warning") in notes
        await pilot.press("3")
        await pilot.pause()
        assert app.screen.query_one("#history-table", DataTable).row_count == 0
    assert Store(config.data_dir).list_runs().runs == []


def save_cancelled(store: Store, run_id: str) -> dict:
    """A run whose second session the user cancelled, as the runner saves it."""
    lines = synthetic_stream(workloads=("roundtrip",), repeats=3, duration_s=0.5, seed=3)
    recs = [SessionRecord(lines, trial=0),
            SessionRecord(lines[:5], outcome="cancelled", message="cancelled", trial=1)]
    doc = build_document(recs, {"name": "bare-metal", "title": "bare-metal", "launcher": "local",
                                "host": "local"},
                         run_id=run_id, created="2026-11-22T10:00:00Z", complete=False,
                         incomplete_reason="interrupted after 2 of 3 trials")
    store.save(doc, archive_lines(recs))
    return doc


async def test_a_cancelled_run_is_marked_incomplete_in_history_and_the_compare_picker(config):
    store = Store(config.data_dir)
    save_doc(store, "bare-metal", run_id="whole")
    doc = save_cancelled(store, "cut")
    assert doc["validity"]["status"] == "VALID"     # what it measured counts: the mark must show
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        table = app.screen.query_one("#history-table", DataTable)
        validity = {table.get_row_at(i)[0]: str(cell(table, i, "Validity")) for i in range(2)}
        assert validity["cut"].startswith("VALID") and validity["cut"].endswith(" incomplete")
        assert "incomplete" not in validity["whole"]
        await pilot.press("4")
        await pilot.pause()
        picker = app.screen.query_one("#compare-runs", DataTable)
        ops = {picker.get_row_at(i)[1]: str(cell(picker, i, "Headline")) for i in range(2)}
        assert ops["cut"].endswith(" incomplete") and "incomplete" not in ops["whole"]


async def test_a_run_cancelled_from_the_dashboard_is_marked_incomplete_in_both_lists(config):
    app = GpubenchApp(config, launcher_factory=replay_factory(repeats=40, speed=1.0))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: any(h.samples for h in app.board.hosts.values()))
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: not app.plan_running)
        (saved,) = Store(config.data_dir).list_runs().runs
        await pilot.press("3")
        await pilot.pause(0.3)
        table = app.screen.query_one("#history-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        assert str(cell(table, 0, "Validity")).endswith(" incomplete")
        await pilot.press("4")
        await pilot.pause()
        picker = app.screen.query_one("#compare-runs", DataTable)
        assert picker.get_row_at(0)[1] == saved["id"]
        assert str(cell(picker, 0, "Headline")).endswith(" incomplete")


async def test_a_cancel_confirmed_after_the_plan_ended_cancels_nothing_and_says_so(config):
    """The plan ends while the cancel question is open: its run is saved whole (no
    incomplete mark), and the app does not say "cancelled" beside it."""
    app = GpubenchApp(config, launcher_factory=replay_factory(repeats=4, speed=2.0))
    notes = noted(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: any(h.samples for h in app.board.hosts.values()))
        await pilot.press("x")
        await wait_for(pilot, lambda: not app.plan_running, timeout=60)
        await pilot.press("y")
        await pilot.pause(0.3)
        said = [n for n, _ in notes]
        assert "Nothing was cancelled: the run had already finished." in said
        assert "Run cancelled." not in said and not any(n.startswith("Plan cancelled") for n in said)
        (saved,) = Store(config.data_dir).list_runs().runs
        assert saved["complete"] is True
        await pilot.press("3")
        await pilot.pause()
        table = app.screen.query_one("#history-table", DataTable)
        assert "incomplete" not in str(cell(table, 0, "Validity"))
