"""A plan run on the dashboard: gpubench.runner.PlanRunner runs, records and saves the plan;
this gives each trial its row, hands every session the runner starts to the SessionManager
(the same pump a quick test's session goes through) and turns the plan's progress into
messages.

    feed = PlanFeed(app, manager, config)
    runner = PlanRunner(config, scenarios, options, store, read_session=feed.read_session)
    await feed.run(runner)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from gpubench.plan_events import (PlanFinished, RunNotSaved, RunnerEvent, RunSaved, SaveFailed,
                                  TrialFinished, TrialSession, TrialStarted)
from results.labels import configured_host
from scenarios.base import Session
from scenarios.config import Config, ScenarioConfig
from scenarios.events import Event

from . import messages as m
from .live import HostState
from .sessions import SessionManager

if TYPE_CHECKING:
    from textual.app import App

    from gpubench.runner import PlanRunner


def host_of(scenario: ScenarioConfig | None) -> str:
    """The grid's host for a scenario's sessions: its configured name, as History names it."""
    if scenario is None:
        return "local"
    return configured_host(scenario.launcher, scenario.host, scenario.cluster) or "local"


class PlanFeed:
    def __init__(self, app: "App", manager: SessionManager, config: Config) -> None:
        self.app, self.manager, self.board, self.config = app, manager, manager.board, config
        self.runner: PlanRunner | None = None
        self._rows: dict[int, HostState] = {}      # one-session trial -> its row
        self._groups: dict[int, str] = {}          # per-GPU trial -> its aggregate row's key
        self._hosts: dict[int, str] = {}           # trial -> its host

    async def run(self, runner: "PlanRunner") -> None:
        """Run the plan (built with read_session=self.read_session) to its end."""
        self.runner = runner
        await runner.run(progress=self.progress)

    async def read_session(self, session: Session, trial: TrialSession,
                           take: Callable[[Event], Any]) -> None:
        """The runner's read_session hook: the session goes to the pump under its row."""
        if trial.gpu is None:
            state = self._rows[trial.index]
        else:           # one row per GPU session, plus the trial's aggregate row
            host = self._hosts.get(trial.index, "local")
            group = self._groups.get(trial.index)
            if group is None:
                group = self._groups[trial.index] = self.manager.new_key(trial.slot.scenario,
                                                                         host)
            gpu = trial.gpu.get("index")
            state = self.board.add_gpu(group, f"{group}/gpu{gpu}", host, trial.slot.scenario,
                                       str(gpu))
        await self.manager.watch(state, session, take)

    def progress(self, ev: RunnerEvent) -> None:
        if isinstance(ev, TrialStarted):
            self._trial_started(ev)
        elif isinstance(ev, TrialFinished):
            self._trial_finished(ev)
        elif isinstance(ev, RunSaved):
            self.app.post_message(m.RunSaved(ev.run_id, ev.scenario))
        elif isinstance(ev, SaveFailed):
            self.app.notify(f"Could not save {ev.scenario}: {ev.message}", severity="error",
                            timeout=10)
        elif isinstance(ev, RunNotSaved):
            self.app.notify(f"{ev.scenario}: {ev.message}", severity="warning", timeout=10)
        elif isinstance(ev, PlanFinished):
            total = len(self.runner.order) if self.runner is not None else 0
            self.app.post_message(m.PlanFinished(total, ev.failed_sessions, list(ev.run_ids),
                                                 ev.complete))

    def _trial_started(self, ev: TrialStarted) -> None:
        scenario = self.config.scenarios.get(ev.slot.scenario)
        host = self._hosts[ev.index] = host_of(scenario)
        if scenario is not None and self.runner is not None \
                and self.runner.gpu_selection(scenario)[0] is not None:
            return       # per-GPU trial: its rows come with its GPUs' sessions
        self._rows[ev.index] = self.board.add_new(self.manager.new_key(ev.slot.scenario, host),
                                                  host, ev.slot.scenario)

    def _trial_finished(self, ev: TrialFinished) -> None:
        self.board.plan_done_runs += 1
        if ev.gpus:
            return       # the GPU sessions ended with their own SessionEnded events
        state = self._rows.get(ev.index)
        if state is None and ev.index not in self._groups:     # failed before any GPU
            host = self._hosts.get(ev.index, "local")
            state = self._rows[ev.index] = self.board.add_new(
                self.manager.new_key(ev.slot.scenario, host), host, ev.slot.scenario)
        if state is not None and state.status in ("starting", "running"):
            # the session never started (launch failed): no SessionEnded came
            self.manager.fail(state, ev.message, ev.outcome)
