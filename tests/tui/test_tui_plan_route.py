"""A plan run reaches the dashboard the way a quick test does: PlanRunner hands each session it
starts to tui/plan_feed.py, which puts it in the SessionManager's pump; the runner still
records and saves every session."""
from __future__ import annotations

import json

from gpubench.plan_events import TrialEvent, TrialFinished
from gpubench.runner import PlanOptions, PlanRunner
from results.store import Store
from scenarios.config import ScenarioConfig
from scenarios.multigpu import GpuInfo
from scenarios.replay import ReplayLauncher, synthetic_stream
from tui import messages as m
from tui.live import AggregateState, LiveBoard
from tui.plan_feed import PlanFeed, host_of
from tui.sessions import SessionManager
from tui_helpers import FailingLauncher, write_config

STREAM = synthetic_stream(backend="numpy-cpu", workloads=("roundtrip", "launch"), repeats=2)
RESULTS_PER_SESSION = sum(json.loads(line)["type"] == "result" for line in STREAM)


class Posts:
    """What the app would receive: the messages posted and the notifications shown."""

    def __init__(self) -> None:
        self.messages: list = []
        self.notes: list[str] = []

    def post_message(self, message) -> bool:
        self.messages.append(message)
        return True

    def notify(self, text: str, **_kw) -> None:
        self.notes.append(text)

    def of(self, cls) -> list:
        return [x for x in self.messages if isinstance(x, cls)]


def plan(config, factory, options=PlanOptions(seed=1)):
    app = Posts()
    manager = SessionManager(app, LiveBoard())
    feed = PlanFeed(app, manager, config)
    runner = PlanRunner(config, config.enabled_scenarios(), options, Store(config.data_dir),
                        launcher_factory=factory, read_session=feed.read_session)
    seen: list = []
    progress = feed.progress

    def watching(ev) -> None:
        seen.append(ev)
        progress(ev)
    feed.progress = watching
    return app, manager, feed, runner, seen


async def test_plan_sessions_go_through_the_pump_and_are_recorded(tmp_path):
    config = write_config(tmp_path, trials=2)
    starts: list = []

    def factory(scenario, cfg):
        starts.append(scenario.name)
        return ReplayLauncher(STREAM, speed=float("inf"))
    app, manager, feed, runner, seen = plan(config, factory)
    await feed.run(runner)

    rows = list(manager.board.hosts.values())
    assert [h.host for h in rows] == ["local", "local"]
    assert all(h.status == "completed" and h.samples > 0 for h in rows), [h.message for h in rows]
    assert [len(h.results) for h in rows] == [RESULTS_PER_SESSION] * 2
    assert manager.board.plan_done_runs == 2 and not manager.sessions
    # the sessions' events went to the pump, none to the plan's progress callback
    assert not any(isinstance(ev, TrialEvent) for ev in seen)
    finished = [ev for ev in seen if isinstance(ev, TrialFinished)]
    assert [(ev.outcome, ev.results) for ev in finished] == [("completed", RESULTS_PER_SESSION)] * 2
    # ...and the runner recorded them whole
    docs = Store(config.data_dir).list_runs().runs
    assert len(docs) == 1 and docs[0]["complete"] is True
    doc = Store(config.data_dir).load(docs[0]["id"])
    assert len(doc["sessions"]) == 2 and all(s["outcome"] == "completed" for s in doc["sessions"])
    assert len(app.of(m.HelloReceived)) == 2
    assert [x.outcome for x in app.of(m.SessionFinished)] == ["completed", "completed"]
    assert [x.run_id for x in app.of(m.RunSaved)] == [docs[0]["id"]]
    [done] = app.of(m.PlanFinished)
    assert (done.trials, done.failed, done.saved) == (2, 0, [docs[0]["id"]])


async def test_per_gpu_trial_gives_one_row_per_gpu_session_and_an_all_gpu_row(tmp_path):
    config = write_config(tmp_path, trials=1)
    app, manager, feed, runner, seen = plan(
        config, lambda scenario, cfg: ReplayLauncher(STREAM, speed=float("inf")),
        PlanOptions(seed=1, gpus="all"))
    runner.gpus["bare-metal"] = [GpuInfo(0, "GPU-A"), GpuInfo(1, "GPU-B")]   # as listed
    await feed.run(runner)

    rows = list(manager.board.hosts.values())
    assert [h.gpu for h in rows] == ["0", "1", "all"] and isinstance(rows[2], AggregateState)
    assert rows[0].key.endswith("/gpu0") and rows[1].key.endswith("/gpu1")
    assert all(h.status == "completed" for h in rows[:2])
    [finished] = [ev for ev in seen if isinstance(ev, TrialFinished)]
    assert finished.gpus == (0, 1) and finished.results == 2 * RESULTS_PER_SESSION
    doc = Store(config.data_dir).load(app.of(m.RunSaved)[0].run_id)
    assert sorted(s["gpu"]["uuid"] for s in doc["sessions"]) == ["GPU-A", "GPU-B"]


async def test_a_plan_trial_that_never_starts_is_a_failed_row_and_one_notification(tmp_path):
    config = write_config(tmp_path, trials=1)
    app, manager, feed, runner, seen = plan(config, lambda scenario, cfg: FailingLauncher())
    await feed.run(runner)

    [row] = manager.board.hosts.values()
    assert row.status == "failed" and "connection refused" in row.message
    [failed] = app.of(m.LaunchFailed)
    assert failed.key == row.key and "connection refused" in failed.message
    [done] = app.of(m.PlanFinished)
    assert (done.trials, done.failed) == (1, 1)


def test_host_of_names_the_host_or_the_cluster(tmp_path):
    config = write_config(tmp_path)
    assert host_of(config.scenarios["bare-metal"]) == "local"
    assert host_of(ScenarioConfig(name="s", title="s", launcher="ssh", host="gpu-node-1")) \
        == "gpu-node-1"
    assert host_of(ScenarioConfig(name="p", title="p", launcher="k8s", cluster="lab")) == "k8s:lab"
    assert host_of(None) == "local"
