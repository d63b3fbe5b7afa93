"""Pilot tests: every screen and flow of gpubench-tui, driven by keys."""
from __future__ import annotations

import asyncio
import json
import re

from textual.widgets import DataTable, Input

from results.document import SessionRecord, build_document
from results.store import Store
from scenarios.base import LaunchRequest
from tests.checks.fixed_checks import fixed_check_document
from scenarios.replay import ReplayLauncher, synthetic_stream
from tui.app import GpubenchApp, main
from results.labels import CPU_MARK as CPU_LABEL
from tui.screens.compare import CompareScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.history import HistoryScreen
from tui.screens.modals import ConfirmScreen, HelpScreen, InputScreen
from tui.widgets.host_grid import HostGrid
from tests.support.own_lines import own_lines

from tui_helpers import (REAL_CPU_STREAM, SIZE, FailingLauncher, cell, replay_factory, wait_for,
                       write_config)


def screen_text(app) -> str:
    """Everything on the current screen, as plain text (from an SVG screenshot)."""
    import html
    import re
    svg = app.export_screenshot()
    text = html.unescape("".join(re.findall(r">([^<>]*)</text>", svg))).replace("\xa0", " ")
    return re.sub(r"[ \t]+", " ", text)


def save_doc(store: Store, scenario: str, scale: float = 1.0, run_id: str | None = None,
             created: str = "2026-11-20T10:00:00Z", driver: str = "580.65.06",
             label: str = "", repeats: int = 5) -> dict:
    lines = synthetic_stream(workloads=("roundtrip",), repeats=repeats, duration_s=0.5,
                             scale=scale, seed=hash(scenario) % 1000)
    if driver != "580.65.06":
        lines = [ln.replace("580.65.06", driver) for ln in lines]
    rec = SessionRecord(lines, outcome="completed", trial=0)
    doc = build_document([rec], {"name": scenario, "title": scenario, "launcher": "local",
                                 "host": "local",
                                 "target_pct": 5.0 if scenario != "bare-metal" else None},
                         run_id=run_id, created=created, label=label)
    store.save(doc, lines)
    return doc


async def save_pair_with_check(store: Store) -> None:
    """run-a (bare-metal), run-b (bare-metal-proxy, 3 % slower) and a check run of
    bare-metal-proxy (tests/checks/fixed_checks.py), as Compare's check panels read them."""
    save_doc(store, "bare-metal", run_id="run-a")
    save_doc(store, "bare-metal-proxy", run_id="run-b", scale=0.97)
    store.save(await asyncio.to_thread(fixed_check_document, "bare-metal-proxy",
                                       run_id="run-check", created="2026-11-19T08:00:00Z"))


# ---- start-up ---------------------------------------------------------------------------------

def test_bad_config_stops_before_the_ui_with_the_cli_message(tmp_path, capsys):
    bad = tmp_path / "config.toml"
    bad.write_text("[defaults]\nrepeats = 'three'\n")
    assert main(["--config", str(bad)]) == 2
    err = own_lines(capsys.readouterr().err)
    assert err == [f"{bad}: defaults.repeats: must be an integer (got 'three')"]
    from gpubench.cli import main as cli_main
    assert cli_main(["--config", str(bad), "list"]) == 2
    assert own_lines(capsys.readouterr().err) == err      # the same line as the CLI


# ---- hosts & scenarios ------------------------------------------------------------------------

async def test_hosts_screen_lists_hosts_scenarios_and_probes_reachability(config):
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        hosts = app.screen.query_one("#host-table", DataTable)
        assert [r.value for r in hosts.rows] == ["local", "gpu-node-1"]
        scen = app.screen.query_one("#scenario-table", DataTable)
        assert [r.value for r in scen.rows] == ["bare-metal", "bare-metal-proxy"]
        assert "proxy < 5 %" in str(scen.get_row("bare-metal-proxy"))
        await pilot.press("p")
        await wait_for(pilot, lambda: len(app.reachability) == 2)
        assert app.reachability["local"][0] is True
        assert app.reachability["gpu-node-1"][0] is False          # nothing listens on :9
        assert str(hosts.get_row("gpu-node-1")[4]).startswith("no: ")
        assert app.reachability["gpu-node-1"][1]                   # says why, in one line


async def test_quick_test_streams_into_dashboard_and_gpu_facts_appear_on_hosts(config):
    app = GpubenchApp(config, launcher_factory=replay_factory(speed=20.0))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")                        # quick test on the selected host (local)
        assert isinstance(app.screen, DashboardScreen)
        await wait_for(pilot, lambda: any(h.status == "completed" for h in app.board.hosts.values()))
        state = next(iter(app.board.hosts.values()))
        assert state.scenario == "quick-test" and state.samples > 0
        await wait_for(pilot, lambda: "roundtrip/pinned-64KiB" in screen_text(app))
        await pilot.press("1")
        row = app.screen.query_one("#host-table", DataTable).get_row("local")
        assert "NVIDIA H100 80GB HBM3" in str(row[5])               # from the last hello


async def test_quick_test_on_all_hosts_one_row_each_failure_isolated(config):
    good = replay_factory(speed=20.0)
    app = GpubenchApp(config, launcher_factory=lambda s: FailingLauncher()
                      if s.launcher == "ssh" else good(s))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f")
        await wait_for(pilot, lambda: len(app.board.hosts) == 2 and all(
            h.status in ("completed", "failed") for h in app.board.hosts.values()))
        await pilot.pause(0.3)
        by_host = {h.host: h for h in app.board.hosts.values()}
        assert by_host["local"].status == "completed" and by_host["local"].results
        assert by_host["gpu-node-1"].status == "failed"
        assert app.screen.query_one(HostGrid).row_count == 2
        assert any(n.severity == "error" and "gpu-node-1" in n.message
                   for n in app._notifications)


# ---- dashboard ------------------------------------------------------------------------------

async def _start_replays(app, streams):
    for i, lines in enumerate(streams):
        app.run_worker(app.manager.run_session(f"h{i}", f"node-{i}", "bare-metal",
                                               ReplayLauncher(lines, speed=float("inf")),
                                               LaunchRequest()))


async def test_dashboard_grid_warnings_cpu_label_and_fleet_mode(config):
    app = GpubenchApp(config)
    streams = [synthetic_stream(hostname=f"n{i}", seed=i) for i in range(8)]
    streams[1] = synthetic_stream(backend="numpy-cpu", hostname="cpu-box")
    streams[2] = synthetic_stream(throttle=("hw_slowdown",), hostname="hot")
    streams[3] = synthetic_stream(pcie_gen=3, hostname="slow-link")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await _start_replays(app, streams)
        await wait_for(pilot, lambda: len(app.board.hosts) == 8 and all(
            h.status == "completed" for h in app.board.hosts.values()))
        await pilot.pause(0.3)
        screen = app.screen
        grid = screen.query_one(HostGrid)
        assert grid.row_count == 8 and screen.has_class("-fleet")   # one row per host
        text = screen_text(app)
        assert "THROTTLING: hw_slowdown" in text and "PCIe DOWNTRAINED: gen 3 of 5" in text
        await pilot.press("down")                                  # the CPU host
        await wait_for(pilot, lambda: screen.selected == "h1")
        await wait_for(pilot, lambda: CPU_LABEL in screen_text(app))
        assert "No GPU telemetry" in screen_text(app)
        await pilot.press("down")                                  # the throttled host
        await wait_for(pilot, lambda: "⚠ THROTTLING" in screen_text(app))
        assert screen.chart_ops.draws >= 1 and screen.chart_ops.builds >= 1


def _with_invalid_results(lines: list[str], invalid: int) -> list[str]:
    """The stream with its first `invalid` results INVALID by a stall."""
    out = []
    for text in lines:
        obj = json.loads(text)
        if obj["type"] == "result" and invalid > 0:
            obj.update(valid=False, validity_reasons=["stall: one call took 150.0 ms, 13% of "
                                                      "the window"])
            invalid -= 1
            text = json.dumps(obj)
        out.append(text)
    return out


async def test_dashboard_warns_while_the_headline_has_too_few_valid_trials(config):
    app = GpubenchApp(config)
    stream = _with_invalid_results(synthetic_stream(repeats=3, duration_s=0.5), invalid=2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await _start_replays(app, [stream])
        await wait_for(pilot, lambda: app.board.hosts and all(
            h.status == "completed" for h in app.board.hosts.values()))
        await wait_for(pilot, lambda: "⚠ FEW RESULTS" in screen_text(app))
        text = screen_text(app)
        assert "⚠ FEW RESULTS: roundtrip 1/3 results count" in text     # the host panel
        assert "too few for a CI" in text
        assert text.count("FEW RESULTS: roundtrip") == 2                # and the grid's Alerts


async def test_real_cpu_stream_replays_with_results_and_percentiles(config):
    app = GpubenchApp(config)
    lines = REAL_CPU_STREAM.read_text().splitlines()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await _start_replays(app, [lines])
        await wait_for(pilot, lambda: app.board.hosts and all(
            h.status == "completed" for h in app.board.hosts.values()))
        state = app.board.hosts["h0"]
        n_results = sum('"type":"result"' in ln for ln in lines)
        assert state.is_cpu and n_results >= 4 and len(state.results) == n_results
        await wait_for(pilot, lambda: CPU_LABEL in screen_text(app))
        text = screen_text(app)
        assert "latency µs per op" in text
        for variant in ("roundtrip/pinned-64KiB", "launch/sync", "launch/async"):
            assert variant in text


async def test_failed_launch_shows_in_host_panel_and_notification(config):
    app = GpubenchApp(config, launcher_factory=lambda s: FailingLauncher())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: not app.plan_running)
        await pilot.pause(0.3)
        # a trial is one engine session, here as in the CLI: the plan counts trials, not runs
        assert re.fullmatch(r"Plan: 1 scenario\(s\) × \d+ trial\(s\) = \d+ trials, interleaved",
                            app.board.plan_title), app.board.plan_title
        state = next(iter(app.board.hosts.values()))
        assert state.status == "failed" and "connection refused" in state.message
        assert any("connection refused" in n.message and n.severity == "error"
                   for n in app._notifications)
        assert "connection refused" in screen_text(app)
        await pilot.press("1")                                    # the app keeps running
        assert app.is_running and app.screen.id == "hosts"


# ---- a full run on the local CPU backend ----------------------------------------------------

async def test_full_local_cpu_run_from_key_press_to_history(tmp_path):
    config = write_config(tmp_path, trials=1)
    app = GpubenchApp(config, seed=1)                  # real LocalLauncher, real engine
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        assert isinstance(app.screen, DashboardScreen)
        await wait_for(pilot, lambda: not app.plan_running, timeout=90)
        state = next(iter(app.board.hosts.values()))
        assert state.status == "completed", state.message
        assert state.backend == "numpy-cpu" and state.results
        await pilot.press("3")
        await pilot.pause(0.3)
        table = app.screen.query_one("#history-table", DataTable)
        assert table.row_count == 1
        row = table.get_row_at(0)
        assert row[2] == "bare-metal" and "numpy-cpu" in str(row[4])
        saved = Store(config.data_dir).list_runs().runs
        assert len(saved) == 1 and saved[0]["id"] == row[0]


async def test_cancel_run_keeps_partial_results(config):
    app = GpubenchApp(config, launcher_factory=replay_factory(repeats=40, speed=1.0))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: any(h.samples for h in app.board.hosts.values()))
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.plan_running)
        runs = Store(config.data_dir).list_runs().runs
        assert len(runs) == 1 and runs[0]["complete"] is False


# ---- history ----------------------------------------------------------------------------------

async def test_history_filter_sort_label_delete_and_import(config, tmp_path):
    store = Store(config.data_dir)
    save_doc(store, "bare-metal", run_id="run-a", created="2026-11-20T10:00:00Z")
    save_doc(store, "bare-metal-proxy", 0.95, run_id="run-b", created="2026-11-21T10:00:00Z")
    legacy = tmp_path / "baseline_results.txt"
    legacy.write_text("GPU benchmark\nThroughput: 6,977 ops/sec\nAverage Latency: 0.14 ms\n")
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        screen = app.screen
        table = screen.query_one("#history-table", DataTable)
        assert [table.get_row_at(i)[0] for i in range(2)] == ["run-b", "run-a"]   # newest first
        await pilot.press("s")                                    # oldest first
        assert table.get_row_at(0)[0] == "run-a"
        await pilot.press("slash")
        await pilot.press(*"proxy", "enter")
        assert table.row_count == 1 and table.get_row_at(0)[0] == "run-b"
        await pilot.press("escape")
        assert table.row_count == 2
        # label the selected run
        table.move_cursor(row=table.get_row_index("run-a"))
        await pilot.press("l")
        assert isinstance(app.screen, InputScreen)
        await pilot.press(*"nightly", "enter")
        await pilot.pause()
        assert Store(config.data_dir).load("run-a")["label"] == "nightly"
        # delete asks first; "n" keeps it, "y" deletes it
        table.move_cursor(row=table.get_row_index("run-b"))
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert table.row_count == 2
        await pilot.press("d", "y")
        await pilot.pause()
        assert table.row_count == 1 and [r["id"] for r in store.list_runs().runs] == ["run-a"]
        # import a seed-format text result (scenario found from config's legacy_file)
        await pilot.press("i")
        app.screen.query_one("#import-path", Input).value = str(legacy)
        await pilot.press("enter")
        await pilot.pause()
        assert table.row_count == 2
        imported = [r for r in store.list_runs().runs if r["imported"]]
        assert len(imported) == 1 and imported[0]["scenario"] == "bare-metal"
        assert "IMPORTED" in [str(cell(table, i, "Validity")) for i in range(2)]


async def test_open_saved_run_replays_its_stream_into_dashboard(config):
    store = Store(config.data_dir)
    save_doc(store, "bare-metal", run_id="run-a")
    app = GpubenchApp(config)
    app.replay_speed = float("inf")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "enter")
        assert isinstance(app.screen, DashboardScreen)
        await wait_for(pilot, lambda: app.board.hosts and all(
            h.status == "completed" for h in app.board.hosts.values()))
        state = next(iter(app.board.hosts.values()))
        assert len(state.results) == 5 and state.samples == 10
        assert "Replay of saved run run-a" in screen_text(app)


# ---- compare --------------------------------------------------------------------------------

async def test_compare_two_runs_from_a_plan_with_verdicts_and_exports(tmp_path):
    config = write_config(tmp_path, trials=4, proxy_enabled=True)
    factory = replay_factory({"bare-metal": 1.0, "bare-metal-proxy": 0.80}, repeats=3)
    app = GpubenchApp(config, launcher_factory=factory, seed=5)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: not app.plan_running)
        runs = Store(config.data_dir).list_runs().runs
        assert sorted(r["scenario"] for r in runs) == ["bare-metal", "bare-metal-proxy"]
        # results count the plan's trials (as `run --trials`), results its result lines
        assert all(r["trials"] == 4 and r["results"] == 12 for r in runs)  # 4 sessions × 3
        base = next(r["id"] for r in runs if r["scenario"] == "bare-metal")
        cand = next(r["id"] for r in runs if r["scenario"] == "bare-metal-proxy")
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        table = screen.query_one("#compare-runs", DataTable)
        table.move_cursor(row=table.get_row_index(base))
        await pilot.press("b")
        table.move_cursor(row=table.get_row_index(cand))
        await pilot.press("space")
        await pilot.pause()
        [view] = screen.views
        assert not view.not_comparable
        ops = next(r for r in view.rows if "ops/s" in r.metric or "throughput" in r.metric.lower())
        assert 15 < ops.overhead_pct < 25 and ops.verdict == "FAIL"   # 20 % over a 5 % target
        assert "FAIL" in screen_text(app)
        await pilot.press("e", "v", "m")
        await pilot.pause()
        md = (config.data_dir / f"comparison-{base}.md").read_text()
        csv = (config.data_dir / f"comparison-{base}.csv").read_text()
        assert "FAIL" in md and cand in csv.splitlines()[1]
        assert (config.data_dir / "comparison.md").read_text().startswith("#")


async def test_compare_shows_not_comparable_plainly(config):
    store = Store(config.data_dir)
    save_doc(store, "bare-metal", run_id="run-a")
    save_doc(store, "bare-metal-proxy", run_id="run-b", driver="575.57.08")
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.press("b", "down", "c")            # pick from History, then show Compare
        await pilot.press("4")
        await pilot.pause()
        text = screen_text(app)
        assert "NOT COMPARABLE" in text and "580.65.06 vs 575.57.08" in text


async def test_compare_shows_the_candidates_check_verdicts_coloured_and_exports_them(config):
    """The newest `check-<candidate scenario>` run's verdicts under the overheads."""
    from textual.widgets import Static

    from tui.screens.compare import check_verdict_text
    await save_pair_with_check(Store(config.data_dir))
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        screen = app.screen
        table = screen.query_one("#compare-runs", DataTable)
        table.move_cursor(row=table.get_row_index("run-a"))
        await pilot.press("b")
        table.move_cursor(row=table.get_row_index("run-b"))
        await pilot.press("space")
        await pilot.pause()
        [view] = screen.views
        shown = [(c["check"], c["verdict"], c["run"]) for c in view.checks]
        assert shown[:3] == [("memory", "ENFORCED", "run-check"),
                             ("compute", "NOT ENFORCED", "run-check"),
                             ("interference", "NOT APPLICABLE", "run-check")]
        assert ("memory/cuMemAllocManaged", "NOT SUPPORTED", "run-check") in shown[3:]
        checks = screen.query_one("#compare-checks", Static)
        assert checks.display
        text = screen_text(app)
        assert "Isolation checks" in text and "NOT ENFORCED" in text
        # the panel's foot (which run each verdict came from), scrolled into view as a user would
        checks.scroll_visible(animate=False, top=False)
        screen.query_one("#compare-share").scroll_visible(animate=False)
        await pilot.pause()
        assert "from: C1 check run run-check" in screen_text(app)
        await pilot.press("e", "v")
        await pilot.pause()
        md = (config.data_dir / "comparison-run-a.md").read_text()
        assert "| check run | run-check | compute | NOT ENFORCED |" in md
        csv_text = (config.data_dir / "comparison-run-a.csv").read_text()
        assert "isolation-check,memory,verdict" in csv_text
        await pilot.press("x")                   # cleared: no panel left behind
        await pilot.pause()
        assert not screen.query_one("#compare-checks", Static).display
    assert check_verdict_text("ENFORCED").style == "bold green"
    assert check_verdict_text("NOT ENFORCED").style == "bold red"
    assert check_verdict_text("NOT APPLICABLE").style == "dim"
    assert check_verdict_text("WRONG ERROR").style == "bold yellow"
    assert check_verdict_text("NOT SUPPORTED").style == "dim"


# ---- help, palette, theme ---------------------------------------------------------------------

async def test_help_lists_every_binding_and_theme_toggles(config):
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        await pilot.press("end")             # the key map is longer than the screen: its end
        await pilot.pause()
        text += screen_text(app)
        for words in ("Run plan", "Quick test", "Probe hosts", "Cancel run", "Filter", "Delete",
                      "Import legacy", "Baseline", "Candidate", "Export MD", "Export CSV",
                      "comparison.md", "Dark/light", "Command palette"):
            assert words in text, words
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        assert app.theme == "textual-dark"
        await pilot.press("ctrl+t")
        assert app.theme == "textual-light"


async def test_command_palette_has_an_entry_for_every_action(config):
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE):
        titles = {c.title for c in app.get_system_commands(app.screen)}
    for title in ("Go to Hosts & scenarios", "Go to Live dashboard", "Go to History",
                  "Go to Compare", "Run plan", "Quick throughput test (local)", "Cancel run",
                  "Probe hosts", "Self-test", "Toggle dark/light theme", "Help: key map",
                  "History: delete selected run", "History: import legacy text result",
                  "History: interference matrix of selected run",
                  "Compare: export CSV", "Compare: write comparison.md"):
        assert title in titles, title


async def run_from_palette(pilot, title: str) -> None:
    await pilot.press("ctrl+p")
    await pilot.pause()
    await pilot.press(*title)
    await pilot.pause(0.5)
    await pilot.press("enter")


async def test_selftest_from_the_palette_runs_shows_its_table_and_saves_the_arms(config):
    """The palette's Self-test runs gpubench.selftest on this machine (the CPU engine here,
    a short budget), shows progress and then the table, and History gets the arms."""
    from tui.screens.selftest import SelftestScreen
    app = GpubenchApp(config)
    app.selftest_overrides = dict(backend="numpy-cpu", design="sessions", workloads=("launch",),
                                  levels=(100.0, 400.0),
                                  trials=2, calibration_trials=2, duration=0.15, warmup=0.05,
                                  repeats=1, tolerance_pp=60.0, n_boot=500)
    async with app.run_test(size=SIZE) as pilot:
        await run_from_palette(pilot, "Self-test")
        await wait_for(pilot, lambda: isinstance(app.screen, SelftestScreen))
        screen = app.screen
        await wait_for(pilot, lambda: screen.finished, timeout=120)
        text = screen_text(app)
        assert "gpubench selftest on numpy-cpu" in text and "launch/sync" in text
        assert "L400" in text and any(f"SELFTEST {state}" in text
                                      for state in ("PASSED", "FAILED", "NOT RESOLVED"))
        assert "backend numpy-cpu" in str(screen.query_one("#selftest-log").lines)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, SelftestScreen)
        runs = Store(config.data_dir).list_runs().runs
        assert {"selftest-launch-baseline", "selftest-launch-L400"} <= {r["scenario"] for r in runs}
        app.action_selftest()                       # a second one while idle starts again
        await wait_for(pilot, lambda: isinstance(app.screen, SelftestScreen))
        await pilot.press("x")                      # and can be stopped
        await wait_for(pilot, lambda: "stopped" in str(app.screen.query_one("#selftest-log").lines))


async def test_selftest_dialog_closed_while_running_goes_on_and_reports_by_notification(config):
    from tui.screens.selftest import SelftestScreen
    app = GpubenchApp(config)
    app.selftest_overrides = dict(backend="numpy-cpu", design="sessions", workloads=("launch",),
                                  levels=(100.0, 400.0),
                                  trials=2, calibration_trials=2, duration=0.15, warmup=0.05,
                                  repeats=1, tolerance_pp=60.0, n_boot=500)
    notes = []
    app.notify = lambda message, **kw: notes.append((message, kw.get("severity")))
    async with app.run_test(size=SIZE) as pilot:
        app.action_selftest()
        await wait_for(pilot, lambda: isinstance(app.screen, SelftestScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: bool(notes), timeout=120)
    assert notes[0] in {("Self-test passed", "information"), ("Self-test FAILED", "error"),
                        ("Self-test NOT RESOLVED", "warning")}, notes
    runs = Store(config.data_dir).list_runs().runs
    assert "selftest-launch-L400" in {r["scenario"] for r in runs}


async def test_selftest_too_noisy_to_decide_is_not_resolved_never_failed(config, monkeypatch):
    """Sessions whose CIs hold the truth but are wider than the tolerance (the self-test's own
    noisy stand-in engine): the dialog (in the warning colour) and the notification say NOT
    RESOLVED, a warning."""
    from gpubench.selftest import experiment
    from tests.selftest.test_selftest import _fake_session_factory
    from tui.screens.selftest import SelftestScreen
    monkeypatch.setattr(experiment, "run_session",
                        _fake_session_factory(0.10, 0.015, 1, drift=0.01, cpu_turn_ns=70))
    app = GpubenchApp(config)
    app.selftest_overrides = dict(backend="numpy-cpu", workloads=("launch",), levels=(5.0,),
                                  trials=2, n_boot=500, save=False)
    notes = []
    app.notify = lambda message, **kw: notes.append((message, kw.get("severity")))
    async with app.run_test(size=SIZE) as pilot:
        app.action_selftest()
        await wait_for(pilot, lambda: isinstance(app.screen, SelftestScreen))
        screen = app.screen
        await wait_for(pilot, lambda: screen.finished, timeout=60)
        assert "SELFTEST NOT RESOLVED at ±1 pp" in screen_text(app)
        table = screen.query_one("#selftest-table")
        assert table.has_class("unresolved") and not table.has_class("bad")
    assert notes == [("Self-test NOT RESOLVED", "warning")]


async def test_command_palette_runs_an_action(config):
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await run_from_palette(pilot, "Go to History")
        await pilot.pause(0.3)
        assert isinstance(app.screen, HistoryScreen)
