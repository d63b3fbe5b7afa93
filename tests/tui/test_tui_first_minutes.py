"""What a newcomer meets in the app's first ten minutes: hints that name the real keys, text
that is not cut off, History that shows what the CLI saved, a detail panel that follows the
live session, plain words after a cancel, the headline on finished rows, Compare's labels."""
from __future__ import annotations

import dataclasses

from textual.widgets import DataTable

from gpubench.selftest.options import Options as SelftestOptions
from gpubench.selftest.options import injected_text
from results.store import Store
from scenarios.base import LaunchRequest
from engine.vocabulary import WORKLOADS
from scenarios.replay import ReplayLauncher, synthetic_stream
from tui.app import GpubenchApp, main
from tui.data import ComparisonRow, ComparisonView
from tui.screens.compare import CompareScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.history import HistoryScreen
from tui.screens.hosts import HostsScreen
from tui.screens.modals import ConfirmScreen
from tui.widgets.charts import BarChart
from tui.widgets.host_grid import HostGrid

from test_tui_app import save_doc, screen_text
from tui_helpers import SIZE, cell, replay_factory, wait_for, write_config


# ---- hints and text that fit ----------------------------------------------------------------

async def test_empty_dashboard_names_the_keys_the_hosts_screen_binds(config):
    quick, run = HostsScreen.key_for("quick_test"), HostsScreen.key_for("app.run_plan")
    assert (quick, run) == ("t", "r")
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        hint = str(app.screen.header_w.render())
        assert f"Press {run} on the Hosts screen to run the plan, {quick} there for a quick " \
               f"test" in hint
        await pilot.press("1", quick)               # that key does start the quick test
        assert isinstance(app.screen, DashboardScreen)
        assert "Quick throughput test on local" in app.board.plan_title


async def test_hosts_plan_line_is_whole_at_160_columns(config):
    every = dataclasses.replace(config.defaults, workloads=tuple(WORKLOADS))  # the longest line
    app = GpubenchApp(dataclasses.replace(config, defaults=every))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app).replace("\n", " ")
        assert f"workloads {', '.join(WORKLOADS)}" in text
        assert "t quick test on the selected host" in text


async def test_delete_dialog_shows_its_whole_question(config):
    save_doc(Store(config.data_dir), "bare-metal", run_id="20261120-100000-bare-metal-a1b2c3")
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.pause()
        text = screen_text(app)
        assert "20261120-100000-bare-metal-a1b2c3" in text and "This cannot be undone." in text


# ---- History -----------------------------------------------------------------------------

async def test_history_says_what_to_do_when_empty_and_shows_a_run_the_cli_saved(config):
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert isinstance(app.screen, HistoryScreen)
        assert "No saved runs yet. Press r on the Hosts screen to run the plan, or run " \
               "`gpubench run`" in screen_text(app)
        table = app.screen.query_one("#history-table", DataTable)
        save_doc(Store(config.data_dir), "bare-metal", run_id="run-from-cli")   # another process
        await wait_for(pilot, lambda: table.row_count == 1, timeout=15)    # no key pressed
        assert table.get_row_at(0)[0] == "run-from-cli"
        assert "No saved runs yet" not in screen_text(app)
        await pilot.press("1")                      # saved while History was hidden
        save_doc(Store(config.data_dir), "bare-metal", run_id="run-two",
                 created="2026-11-21T10:00:00Z")
        await pilot.press("3")
        await pilot.pause()
        assert table.row_count == 2


# ---- the live dashboard ----------------------------------------------------------------------

async def test_detail_follows_the_running_trial_until_the_user_picks_one(tmp_path):
    config = write_config(tmp_path, trials=3)
    app = GpubenchApp(config, launcher_factory=replay_factory(repeats=3, speed=2.0), seed=1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        screen = app.screen
        board = app.board

        def running_key():
            return next((h.key for h in board.hosts.values() if h.status == "running"), None)

        await wait_for(pilot, lambda: len(board.hosts) == 2 and running_key() is not None
                       and list(board.hosts)[0] != running_key(), timeout=60)
        await wait_for(pilot, lambda: screen.selected == running_key(), timeout=5)
        await pilot.press("up")                     # the user picks the first, ended trial
        picked = list(board.hosts)[0]
        await wait_for(pilot, lambda: screen.selected == picked)
        await wait_for(pilot, lambda: len(board.hosts) == 3, timeout=60)
        await pilot.pause(0.3)
        assert screen.selected == picked and screen.pinned
        app.runner.cancel()
        await wait_for(pilot, lambda: not app.plan_running, timeout=30)


async def test_a_cancelled_run_says_cancelled_once_and_history_marks_it_incomplete(config):
    app = GpubenchApp(config, launcher_factory=replay_factory(repeats=40, speed=1.0))
    notes = []
    real_notify = app.notify
    app.notify = lambda message, **kw: (notes.append(message), real_notify(message, **kw))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: any(h.samples for h in app.board.hosts.values()))
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: not app.plan_running)
        await wait_for(pilot, lambda: any(n.startswith("Plan ") for n in notes))
        assert "Plan cancelled: 1 run(s) saved with what was measured, marked incomplete" \
            in notes
        state = next(iter(app.board.hosts.values()))
        assert state.status == "cancelled"
        screen = app.screen
        await pilot.pause(0.6)
        text = screen_text(app)
        assert "cancelled (cancelled)" not in text
        assert "cancelled at" in str(screen.query_one("#plan-left").render())
        assert " done" not in str(screen.query_one("#plan-left").render())
        await pilot.press("3")
        await pilot.pause(0.3)
        table = app.screen.query_one("#history-table", DataTable)
        assert "incomplete" in str(cell(table, 0, "Validity"))


async def test_a_finished_row_shows_the_headline_not_the_last_workload(config):
    app = GpubenchApp(config)
    lines = synthetic_stream(workloads=("roundtrip", "launch", "d2h"), duration_s=0.5,
                             repeats=2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        app.run_worker(app.manager.run_session("h0", "local", "s", ReplayLauncher(
            lines, speed=float("inf")), LaunchRequest()))
        await wait_for(pilot, lambda: app.board.hosts and all(
            h.status == "completed" for h in app.board.hosts.values()))
        await pilot.pause(0.3)
        state = app.board.hosts["h0"]
        assert (state.workload, state.variant) == ("roundtrip", "pinned-64KiB")
        roundtrip = [r["ops_per_s"] for r in state.results if r["workload"] == "roundtrip"]
        assert min(roundtrip) <= state.ops_per_s <= max(roundtrip)
        grid_row = app.screen.query_one(HostGrid).render_line(1).text
        assert "roundtrip/pin" in grid_row and "d2h" not in grid_row


# ---- Compare ----------------------------------------------------------------------------------

def _view(base: str, cand: str) -> ComparisonView:
    rows = [ComparisonRow(f"{w}/{v} bandwidth", 10.0, 9.0, 10.0, 8.0, 12.0, 5.0, "FAIL",
                          workload=w, variant=v, what="bandwidth")
            for w, v in (("h2d", "pinned-4KiB"), ("h2d", "pinned-1MiB"),
                         ("h2d", "pageable-1MiB"), ("roundtrip", "pinned-64KiB"))]
    return ComparisonView(base, cand, rows=rows,
                          warnings=["12 invalid baseline trials excluded (--include-invalid "
                                    "to use them)"])


async def test_compare_bar_labels_name_the_variant_and_warnings_name_the_pair(config):
    store = Store(config.data_dir)
    base, cand = "20261120-100000-bare-metal-a1b2c3", "20261120-110000-bare-metal-proxy-d4e5f6"
    save_doc(store, "bare-metal", run_id=base, label="nightly-baseline")
    save_doc(store, "bare-metal-proxy", run_id=cand, label="nightly-proxy")
    app = GpubenchApp(config)
    app.store.compare = _view
    shown = {}
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        chart = screen.query_one(BarChart)
        real_show = chart.show
        chart.show = lambda labels, values, *a, **kw: (shown.update(labels=list(labels)),
                                                       real_show(labels, values, *a, **kw))
        table = screen.query_one("#compare-runs", DataTable)
        table.move_cursor(row=table.get_row_index(base))
        await pilot.press("b")
        table.move_cursor(row=table.get_row_index(cand))
        await pilot.press("space")
        await pilot.pause(0.3)
        # the variant where a workload has several, not where it has one
        assert shown["labels"] == ["C1 h2d/pinned-4KiB bandwidth", "C1 h2d/pinned-1MiB bandwidth",
                                   "C1 h2d/pageable-1MiB bandwidth", "C1 roundtrip bandwidth"]
        text = screen_text(app)
        assert f"B {base} · C1 {cand}" in text
        assert "⚠ C1 vs B: 12 invalid baseline trials excluded" in text
        assert f"⚠ {cand}: 12 invalid baseline" not in text
        assert "nightly-baseline" in text and "nightly-proxy" in text     # Label not cut


# ---- self-test and start-up ---------------------------------------------------------------------

async def test_palette_says_what_the_selftest_will_inject(config):
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE):
        cmd = next(c for c in app.get_system_commands(app.screen) if c.title == "Self-test")
        assert "(1/5/10 %)" in cmd.help                     # slots, either backend
        app.selftest_overrides = dict(backend="numpy-cpu", design="sessions")
        cmd = next(c for c in app.get_system_commands(app.screen) if c.title == "Self-test")
        assert "(50/100/200 %)" in cmd.help
        app.selftest_overrides = dict(design="sessions")    # backend found when it runs
        cmd = next(c for c in app.get_system_commands(app.screen) if c.title == "Self-test")
        assert "(1/5/10 % on a GPU, 50/100/200 % on the CPU)" in cmd.help
    opts = SelftestOptions(backend="numpy-cpu", design="sessions")
    assert injected_text(opts) == "50/100/200 %"


def test_tui_takes_data_dir_like_the_cli(tmp_path, monkeypatch):
    write_config(tmp_path)
    seen = []
    monkeypatch.setattr(GpubenchApp, "run", lambda self: seen.append(
        (self.config.data_dir, self.store.data_dir)))
    assert main(["--config", str(tmp_path / "config.toml"),
                 "--data-dir", str(tmp_path / "elsewhere")]) == 0
    assert seen == [(tmp_path / "elsewhere", tmp_path / "elsewhere")]
