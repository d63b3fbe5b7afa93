"""gpubench-tui: pick hosts and scenarios, watch runs live, compare saved runs.

Views only. Sessions (scenarios/) deliver typed events; one pump (tui/sessions.py) takes
them into the LiveBoard and posts small messages (tui/messages.py), for quick tests,
replays and plan runs alike (a plan's sessions come from gpubench.runner through
tui/plan_feed.py); the dashboard applies the board at 10 Hz. Saved runs come from the
results store through tui/data.py.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from pathlib import Path
from typing import Iterable

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from gpubench.selftest.engine_session import detect_backend
from gpubench.selftest.experiment import Selftest
from gpubench.selftest.judging import NOT_RESOLVED
from gpubench.selftest.options import Options as SelftestOptions
from gpubench.selftest.options import SelftestError, injected_text
from gpubench.selftest.report import STATE_TEXT, format_summary
from gpubench.runner import PlanOptions, PlanRunner
from scenarios.base import LaunchRequest, Launcher
from scenarios.config import Config, ConfigError, ScenarioConfig, load_config
from scenarios.registry import launcher_for
from scenarios.replay import ReplayLauncher

from . import messages as m
from .data import CompareSelection, RunStore
from .engine_args import quick_engine_args
from .live import LiveBoard
from .plan_feed import PlanFeed
from .screens.compare import CompareScreen
from .screens.dashboard import DashboardScreen
from .screens.history import HistoryScreen
from .screens.hosts import HostsScreen
from .screens.modals import ConfirmScreen, HelpScreen
from .screens.selftest import SelftestScreen
from .sessions import SessionManager
from .widgets.host_grid import HostGrid

DARK, LIGHT = "textual-dark", "textual-light"
PROBE_TIMEOUT_S = 20.0
FLEET_SESSIONS = 64       # at most this many quick-test sessions at once


class GpubenchApp(App):
    TITLE = "gpubench"
    SUB_TITLE = "what GPU isolation costs"
    CSS_PATH = "gpubench.tcss"
    MODES = {"hosts": HostsScreen, "dashboard": DashboardScreen, "history": HistoryScreen,
             "compare": CompareScreen}
    DEFAULT_MODE = "hosts"
    BINDINGS = [
        Binding("1", "switch_mode('hosts')", "Hosts"),
        Binding("2", "switch_mode('dashboard')", "Dashboard"),
        Binding("3", "switch_mode('history')", "History"),
        Binding("4", "switch_mode('compare')", "Compare"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("ctrl+t", "toggle_theme", "Dark/light"),
    ]

    def __init__(self, config: Config, *, store: RunStore | None = None,
                 launcher_factory=None, seed: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.store = store if store is not None else RunStore(config)
        self.board = LiveBoard()
        self.manager = SessionManager(self, self.board)
        self.reachability: dict[str, tuple[bool, str]] = {}
        self.last_hello: dict[str, dict] = dict(self.store.last_hellos())
        self.launcher_factory = launcher_factory   # tests: (scenario|host) -> Launcher
        self.seed = seed
        self.plan_running = False
        self.compare_selection = CompareSelection()
        self.runner: PlanRunner | None = None
        self.theme = DARK

    # -- command palette: every action ---------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Go to Hosts & scenarios", "Hosts, reachability, GPU facts",
                            lambda: self.switch_mode("hosts"))
        yield SystemCommand("Go to Live dashboard", "Running sessions",
                            lambda: self.switch_mode("dashboard"))
        yield SystemCommand("Go to History", "Saved runs", lambda: self.switch_mode("history"))
        yield SystemCommand("Go to Compare", "Baseline vs candidates",
                            lambda: self.switch_mode("compare"))
        yield SystemCommand("Run plan", "Enabled scenarios × trials, interleaved",
                            self.action_run_plan)
        yield SystemCommand("Quick throughput test (local)", "roundtrip for 1 s on this machine",
                            lambda: self.action_quick_test("local"))
        yield SystemCommand("Quick test on every enabled host", "One row per host, side by side",
                            self.action_quick_test_all)
        yield SystemCommand("Cancel run", "Interrupt running sessions (partial results kept)",
                            self.action_cancel_run)
        yield SystemCommand("Probe hosts", "Check that configured hosts are reachable",
                            self.action_probe_hosts)
        yield SystemCommand("Self-test", f"Inject known overheads ({self.selftest_injects()}) "
                            "on this machine and check they are measured (gpubench selftest)",
                            self.action_selftest)
        yield SystemCommand("Toggle dark/light theme", "", self.action_toggle_theme)
        yield SystemCommand("Help: key map", "Every binding", self.action_help)
        for title, action, help_text in HistoryScreen.PALETTE + CompareScreen.PALETTE:
            yield SystemCommand(title, help_text,
                                lambda a=action: self.run_action(a))

    # -- app actions ------------------------------------------------------------------------
    def action_help(self) -> None:
        self.push_screen(HelpScreen(key_map()))

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK

    def launcher(self, scenario: ScenarioConfig) -> Launcher:
        if self.launcher_factory is not None:
            return self.launcher_factory(scenario)
        return launcher_for(scenario, self.config)

    def action_run_plan(self) -> None:
        if self.plan_running:
            self.notify("A run is in progress: cancel it first (x on the dashboard).",
                        severity="warning")
            return
        scenarios = self.config.enabled_scenarios()
        if not scenarios:
            self.notify("No enabled scenario in the config.", severity="error")
            return
        factory = None
        if self.launcher_factory is not None:
            factory = lambda scenario, config: self.launcher_factory(scenario)  # noqa: E731
        feed = PlanFeed(self, self.manager, self.config)
        runner = PlanRunner(self.config, scenarios, PlanOptions(seed=self.seed),
                            self.store.backend_store(), launcher_factory=factory,
                            read_session=feed.read_session)
        self.runner = runner
        self.plan_running = True
        self.board.clear()
        self.board.plan_total_runs = len(runner.order)
        self.board.plan_started = time.monotonic()
        self.board.plan_title = (f"Plan: {len(scenarios)} scenario(s) × {runner.trials} "
                                 f"trial(s) = {len(runner.order)} trials, interleaved")
        self.switch_mode("dashboard")
        self.run_plan_worker(feed, runner)

    @work(group="plan", exclusive=True, name="run plan")
    async def run_plan_worker(self, feed: PlanFeed, runner: PlanRunner) -> None:
        """gpubench.runner.PlanRunner runs and saves the plan; its sessions feed the board."""
        try:
            await feed.run(runner)
        finally:
            self.plan_running = False
            self.runner = None

    def action_quick_test(self, host: str = "local") -> None:
        if host.startswith("k8s:"):
            self.notify("Quick test runs on hosts; pick a host row, not a cluster.",
                        severity="warning")
            return
        hcfg = self.config.hosts.get(host)
        if hcfg is None:
            self.notify(f"No host named {host!r}", severity="error")
            return
        scenario = ScenarioConfig(name="quick-test", title=f"Quick test on {host}",
                                  launcher=hcfg.kind, host=host)
        self.board.clear()
        self.board.plan_total_runs = 1
        self.board.plan_started = time.monotonic()
        self.board.plan_title = f"Quick throughput test on {host} (not saved)"
        self.switch_mode("dashboard")
        self.quick_test_worker(scenario, host)

    @work(group="quick", exclusive=True, name="quick test")
    async def quick_test_worker(self, scenario: ScenarioConfig, host: str) -> None:
        try:
            launcher = self.launcher(scenario)
        except Exception as exc:
            self.notify(f"Quick test on {host}: {exc}", severity="error")
            return
        request = LaunchRequest(engine_args=tuple(quick_engine_args(self.config.defaults)),
                                label=f"quick test on {host}")
        await self.manager.run_session(self.manager.new_key("quick-test", host), host,
                                       "quick-test", launcher, request)
        self.board.plan_done_runs = 1

    def action_quick_test_all(self) -> None:
        """The quick test on every enabled host at once: one row per host in the grid."""
        hosts = [h for h in self.config.hosts.values() if h.enabled]
        if not hosts:
            self.notify("No enabled host in the config.", severity="error")
            return
        self.board.clear()
        self.board.plan_total_runs = len(hosts)
        self.board.plan_started = time.monotonic()
        self.board.plan_title = f"Quick test on {len(hosts)} host(s) at once (not saved)"
        self.switch_mode("dashboard")
        limit = asyncio.Semaphore(FLEET_SESSIONS)
        for h in hosts:
            scenario = ScenarioConfig(name="quick-test", title=f"Quick test on {h.name}",
                                      launcher=h.kind, host=h.name)
            self.run_worker(self._fleet_one(scenario, h.name, limit), group="quick",
                            name=f"quick test {h.name}")

    async def _fleet_one(self, scenario: ScenarioConfig, host: str,
                         limit: asyncio.Semaphore) -> None:
        key = self.manager.new_key("quick-test", host)
        try:
            launcher = self.launcher(scenario)
        except Exception as exc:
            self.manager.fail(self.board.add_new(key, host, "quick-test"), f"{host}: {exc}")
            self.board.plan_done_runs += 1
            return
        request = LaunchRequest(engine_args=tuple(quick_engine_args(self.config.defaults)),
                                label=f"quick test on {host}")
        async with limit:     # bounded; the sessions stream side by side
            await self.manager.run_session(key, host, "quick-test", launcher, request)
        self.board.plan_done_runs += 1

    def action_cancel_run(self) -> None:
        if not self.manager.sessions and not self.plan_running:
            self.notify("Nothing is running.")
            return

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            if not self.manager.sessions and not self.plan_running:
                # it ended while the question was open: its run is whole, say so rather than
                # "cancelled" beside a run that History rightly shows complete
                self.notify("Nothing was cancelled: the run had already finished.")
                return
            if self.runner is not None:
                self.runner.cancel()       # interrupts the running trial; saves what ran
            self.cancel_worker()

        self.push_screen(ConfirmScreen("Cancel the running sessions? Partial results are kept."),
                         answer)

    @work(group="cancel", name="cancel sessions")
    async def cancel_worker(self) -> None:
        await self.manager.cancel_all()
        self.notify("Run cancelled.", severity="warning")

    def action_open_run(self, run_id: str) -> None:
        """Replay a saved run's recorded stream into the dashboard."""
        lines = self.store.raw_lines(run_id)
        if not lines:
            self.notify("This run has no recorded stream to replay (imported or empty).",
                        severity="warning")
            return
        summary = self.store.summary(run_id)
        self.board.clear()
        self.board.replay = True
        self.board.plan_total_runs = 1
        self.board.plan_started = time.monotonic()
        self.board.plan_title = f"Replay of saved run {run_id}"
        self.switch_mode("dashboard")
        self.replay_worker(ReplayLauncher(lines, speed=self.replay_speed), run_id,
                           summary.host if summary else "replay",
                           summary.scenario if summary else "")

    replay_speed = 20.0

    @work(group="replay", exclusive=True, name="replay")
    async def replay_worker(self, launcher: Launcher, run_id: str, host: str,
                            scenario: str) -> None:
        await self.manager.run_session(self.manager.new_key(scenario or "replay", host), host,
                                       scenario or "replay", launcher,
                                       LaunchRequest(label=f"replay {run_id}"))
        self.board.plan_done_runs = 1

    selftest_overrides: dict = {}     # tests: smaller gpubench.selfteSelftestOptions

    def selftest_options(self) -> SelftestOptions:
        return SelftestOptions(data_dir=self.config.data_dir, **self.selftest_overrides)

    def selftest_injects(self) -> str:
        """The overheads the self-test will inject, from gpubench.selftest's own defaults."""
        return injected_text(self.selftest_options())

    def action_selftest(self) -> None:
        if self.plan_running or self.manager.sessions:
            self.notify("Something is running: the self-test needs the machine to itself.",
                        severity="warning")
            return
        if any(w.name == "selftest" and w.is_running for w in self.workers):
            self.notify("The self-test is already running.", severity="warning")
            return
        self.push_screen(SelftestScreen(f"Self-test: injected overheads "
                                        f"({self.selftest_injects()}) vs what is measured "
                                        f"(local)", start=self.selftest_worker))

    @work(group="selftest", exclusive=True, name="selftest")
    async def selftest_worker(self, screen) -> None:
        """gpubench.selftest (the CLI's code) on this machine; arms saved in the store."""
        opts = self.selftest_options()
        if opts.backend == "auto":   # its probe is a blocking subprocess: off the UI loop
            opts.backend = await asyncio.to_thread(detect_backend, opts.python)
        screen.progress(f"backend {opts.backend}")
        try:
            summary = await Selftest(opts, progress=screen.progress).run()
        except SelftestError as exc:
            screen.show_error(str(exc))
            self.notify(f"Self-test could not run: {exc}", severity="error", timeout=10)
            return
        screen.show_summary(format_summary(summary), summary["state"])
        for run_id in summary.get("saved") or []:
            self.post_message(m.RunSaved(run_id, "selftest"))
        self.notify(f"Self-test {STATE_TEXT[summary['state']]}",
                    severity="information" if summary["ok"] else
                    "warning" if summary["state"] == NOT_RESOLVED else "error")

    def action_probe_hosts(self) -> None:
        self.probe_worker()

    @work(group="probe", exclusive=True, name="probe hosts")
    async def probe_worker(self) -> None:
        """Local: always there. SSH: SshLauncher.prepare() connects, checks the remote
        Python and deploys the engine (honours ~/.ssh/config, host keys); one line back."""
        async def probe(h) -> None:
            if h.kind == "local":
                self.post_message(m.HostProbed(h.name, True, "this machine"))
                return
            try:   # asyncssh is loaded only when there is an SSH host to probe
                from scenarios.ssh.launcher import SshLauncher
                launcher = SshLauncher.from_config(h)
            except Exception as exc:
                self.post_message(m.HostProbed(h.name, False, f"{type(exc).__name__}: {exc}"))
                return
            try:
                notes = await asyncio.wait_for(launcher.prepare(), timeout=PROBE_TIMEOUT_S)
                self.post_message(m.HostProbed(h.name, True, "; ".join(notes[-1:]) or "ready"))
            except asyncio.TimeoutError:
                self.post_message(m.HostProbed(h.name, False,
                                               f"no answer in {PROBE_TIMEOUT_S:g} s"))
            except Exception as exc:
                self.post_message(m.HostProbed(h.name, False, str(exc) or type(exc).__name__))
            finally:
                try:
                    await launcher.close()
                except Exception:
                    pass

        await asyncio.gather(*(probe(h) for h in self.config.hosts.values() if h.enabled))

    # -- messages from workers ------------------------------------------------------------
    def on_host_probed(self, msg: m.HostProbed) -> None:
        self.reachability[msg.host] = (bool(msg.reachable), msg.detail)
        self._refresh_hosts()

    def on_hello_received(self, msg: m.HelloReceived) -> None:
        state = self.board.hosts.get(msg.key)
        if state is not None and not self.board.replay:
            self.last_hello[state.host] = msg.hello
            self._refresh_hosts()

    def on_launch_failed(self, msg: m.LaunchFailed) -> None:
        self.notify(f"{msg.host}: launch failed: {msg.message}", severity="error",
                    title="Launch failed", timeout=8)

    def on_engine_error_received(self, msg: m.EngineErrorReceived) -> None:
        self.notify(f"{msg.code}: {msg.message}", severity="error" if msg.fatal else "warning",
                    title="Engine error")

    def on_session_finished(self, msg: m.SessionFinished) -> None:
        if msg.outcome == "failed":
            state = self.board.hosts.get(msg.key)
            host = state.host if state else msg.key
            self.notify(f"{host}: {msg.message or 'failed'}", severity="error",
                        title="Session failed", timeout=8)

    def on_run_saved(self, msg: m.RunSaved) -> None:
        for screen in self._mode_screens(HistoryScreen):
            screen.reload()

    def on_plan_finished(self, msg: m.PlanFinished) -> None:
        saved = f"{len(msg.saved)} run(s) saved" if msg.saved else "no run saved"
        if msg.complete:
            text = f"Plan finished: {msg.trials} trial(s), {saved}"
        else:
            text = f"Plan cancelled: {saved} with what was measured, marked incomplete"
        if msg.failed:
            text += f", {msg.failed} session(s) failed"
        self.notify(text, severity="warning" if msg.failed or not msg.complete
                    else "information")

    def _mode_screens(self, cls):
        for stack in self._screen_stacks.values():
            for screen in stack:
                if isinstance(screen, cls):
                    yield screen

    def _refresh_hosts(self) -> None:
        """Redraw the hosts tables now if they are on screen, else when shown next."""
        for screen in self._mode_screens(HostsScreen):
            screen.stale = True
            if screen.is_mounted and screen.is_current:
                screen.refresh_tables()

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            err = event.worker.error
            self.notify(f"{event.worker.name}: {type(err).__name__}: {err}", severity="error",
                        title="Error", timeout=10)

    async def on_unmount(self) -> None:
        if self.runner is not None:
            self.runner.cancel()
        await self.manager.cancel_all()


def key_map() -> list[tuple[str, str, str]]:
    """(where, keys, what) for every binding of the app and its screens (the help screen)."""
    rows: list[tuple[str, str, str]] = []
    for where, cls in (("everywhere", GpubenchApp), ("Hosts", HostsScreen),
                       ("Dashboard", DashboardScreen), ("Dashboard grid", HostGrid),
                       ("History", HistoryScreen), ("Compare", CompareScreen)):
        for b in cls.BINDINGS:
            if isinstance(b, Binding):
                desc = b.description or b.action.replace("_", " ")
                rows.append((where, b.key_display or b.key, desc))
    rows.append(("everywhere", "ctrl+p", "Command palette (every action)"))
    rows.append(("everywhere", "ctrl+q", "Quit"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpubench-tui", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="config.toml (default: $GPUBENCH_CONFIG, ./config.toml, "
                                         "~/.config/gpubench/config.toml)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="result store (default: [store] data_dir), as for gpubench")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)      # the same one line as the gpubench CLI
        return 2
    if args.data_dir:
        config = dataclasses.replace(config, data_dir=Path(args.data_dir).expanduser())
    GpubenchApp(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
