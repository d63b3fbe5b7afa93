"""gpubench.runner: interleaved seeded plans, failed sessions, cancel, layer verification."""
from __future__ import annotations

import asyncio
import dataclasses
import time
import types

import numpy as np

from scenarios.config import parse_config
from gpubench.plan_events import (PlanFinished, PlanStarted, RunNotSaved, TrialEvent,
                                  TrialFinished, TrialStarted)
from gpubench import runner as runner_module
from gpubench.runner import PlanOptions, PlanRunner, engine_args
from gpubench.trial_order import interleave_order
from results.store import Store
from scenarios.base import LaunchError
from scenarios.events import Result
from scenarios.replay import ReplayLauncher, ReplaySession
from tests.support import synth


def make_config(tmp_path, **defaults):
    data = {"store": {"data_dir": str(tmp_path / "data")},
            "defaults": {"workloads": ["roundtrip"], "repeats": 2, "trials": 2, **defaults},
            "scenarios": {"a": {"launcher": "local", "title": "A"},
                          "b": {"launcher": "local", "title": "B", "target": "k8s",
                                "baseline": "a"}}}
    return parse_config(data, "test.toml", tmp_path)


def replay_factory(speed=0.0, fail=(), lines_for=None):
    calls = {"n": 0}

    class Failing:
        async def start(self, request):
            raise LaunchError("ssh: connection refused")

        async def close(self):
            pass

    def factory(scenario, config):
        if scenario.name in fail:
            return Failing()
        rng = np.random.default_rng(len(scenario.name))
        lines = lines_for(scenario) if lines_for else synth.session_lines(rng, repeats=2)
        return ReplayLauncher(lines, speed=speed)
    factory.calls = calls
    return factory


def test_interleave_order_is_seeded_complete_and_mixed():
    order = interleave_order(["a", "b", "c"], 10, seed=7)
    assert order == interleave_order(["a", "b", "c"], 10, seed=7)
    assert order != interleave_order(["a", "b", "c"], 10, seed=8)
    assert sorted((s.scenario, s.trial) for s in order) == \
        sorted((n, t) for n in "abc" for t in range(10))
    assert [s.scenario for s in order[:6]] != ["a"] * 3 + ["b"] * 3


def test_engine_args_from_defaults_and_overrides(tmp_path):
    cfg = make_config(tmp_path)
    args = engine_args(cfg.defaults, PlanOptions(workloads=("launch", "h2d"), duration_s=2.0,
                                                 backend="numpy-cpu")).to_argv(full=True)
    assert args[:10] == ["--backend", "numpy-cpu", "--workloads", "launch,h2d", "--duration", "2",
                         "--warmup", "0.3", "--repeats", "2"]
    assert "--sizes" in args and args[args.index("--sizes") + 1] == "4KiB,1MiB,256MiB"
    assert "--cpus" not in args
    pinned = engine_args(dataclasses.replace(cfg.defaults, cpus="4-7"), PlanOptions())
    assert pinned.cpus == "4-7"
    argv = pinned.to_argv(full=True)
    assert argv[argv.index("--cpus") + 1] == "4-7"
    runner = PlanRunner(cfg, [cfg.scenarios["a"]], PlanOptions(seed=1), Store(cfg.data_dir))
    assert runner.args == engine_args(cfg.defaults, PlanOptions()).to_argv(full=True)


async def test_plan_runs_interleaved_and_saves_one_document_per_scenario(tmp_path):
    cfg = make_config(tmp_path)
    events = []
    runner = PlanRunner(cfg, [cfg.scenarios["a"], cfg.scenarios["b"]],
                        PlanOptions(trials=3, seed=11, label="t"), Store(cfg.data_dir),
                        launcher_factory=replay_factory())
    result = await runner.run(events.append)
    assert result.complete and len(result.run_ids) == 2 and result.failed_sessions == 0
    started = [e.slot for e in events if isinstance(e, TrialStarted)]
    assert started == interleave_order(["a", "b"], 3, 11) == result.order
    assert isinstance(events[0], PlanStarted) and isinstance(events[-1], PlanFinished)
    assert any(isinstance(e, TrialEvent) and isinstance(e.event, Result) for e in events)
    store = Store(cfg.data_dir)
    docs = [store.load(i) for i in result.run_ids]
    assert {d["group"]["id"] for d in docs} == {runner.group_id}
    assert docs[0]["group"]["seed"] == 11
    assert docs[0]["group"]["order"] == [[s.scenario, s.trial] for s in result.order]
    for d in docs:
        assert len(d["sessions"]) == 3 and d["label"] == "t" and d["complete"]
        assert sum(len(w["trials"]) for w in d["workloads"]) == 3 * 2 * 2
        assert store.raw_lines(d["id"])[0].startswith('{"v":1,"type":"hello"')
    assert docs[1]["scenario"]["target_pct"] == 1.0 and docs[1]["scenario"]["baseline"] == "a"


async def test_failed_session_is_recorded_and_the_plan_goes_on(tmp_path):
    cfg = make_config(tmp_path)
    runner = PlanRunner(cfg, [cfg.scenarios["a"], cfg.scenarios["b"]], PlanOptions(seed=1),
                        Store(cfg.data_dir), launcher_factory=replay_factory(fail={"b"}))
    finished, not_saved = [], []
    result = await runner.run(lambda e: finished.append(e) if isinstance(e, TrialFinished)
                              else not_saved.append(e) if isinstance(e, RunNotSaved) else None)
    assert len(finished) == 4 and result.failed_sessions == 2
    assert [f.message for f in finished if f.slot.scenario == "b"] == \
        ["ssh: connection refused"] * 2
    # b never started: nothing of it is stored, one event says so (a's run is kept)
    docs = {d["scenario"]["name"]: d for d in result.documents}
    assert list(docs) == ["a"] and docs["a"]["validity"]["status"] == "VALID"
    assert [(e.scenario, e.message) for e in not_saved] == [
        ("b", "nothing saved: none of its 2 session(s) started")]
    assert [r["scenario"] for r in Store(cfg.data_dir).list_runs().runs] == ["a"]


async def test_cancel_saves_what_was_measured_marked_incomplete(tmp_path):
    cfg = make_config(tmp_path)
    rng = np.random.default_rng(0)
    slow = synth.session_lines(rng, repeats=6)  # t runs to ~13 s at speed 1

    runner = PlanRunner(cfg, [cfg.scenarios["a"], cfg.scenarios["b"]], PlanOptions(seed=2),
                        Store(cfg.data_dir),
                        launcher_factory=replay_factory(speed=1.0, lines_for=lambda s: slow))

    def progress(ev):
        if isinstance(ev, TrialEvent) and isinstance(ev.event, Result):
            runner.cancel()

    result = await runner.run(progress)
    assert not result.complete and len(result.run_ids) == 1     # scenario b never ran
    doc = result.documents[0]
    assert doc["complete"] is False and doc["outcome"] in ("cancelled", "incomplete")
    assert doc["group"]["executed"] == 1 and doc["group"]["planned"] == 4
    assert doc["group"]["order"] == [[s.scenario, s.trial] for s in result.order[:1]]
    assert sum(len(w["trials"]) for w in doc["workloads"]) >= 1


async def test_layer_verification_reasons_make_the_run_invalid(tmp_path, monkeypatch):
    seen = []

    def verify(scenario, hello_data):
        seen.append((scenario.name, hello_data["type"]))
        return ["proxy library /usr/local/vgpu/libvgpu.so is not mapped"] if scenario.name == "b" else []
    monkeypatch.setattr(runner_module, "verify", verify)
    cfg = make_config(tmp_path)
    runner = PlanRunner(cfg, [cfg.scenarios["a"], cfg.scenarios["b"]], PlanOptions(trials=1, seed=0),
                        Store(cfg.data_dir), launcher_factory=replay_factory())
    result = await runner.run()
    docs = {d["scenario"]["name"]: d for d in result.documents}
    assert sorted(seen) == [("a", "hello"), ("b", "hello")]
    assert docs["b"]["validity"]["reasons"] == \
        ["layer: proxy library /usr/local/vgpu/libvgpu.so is not mapped"]
    assert docs["a"]["validity"]["status"] == "VALID"


async def test_events_iterator_and_save_failure_reported(tmp_path):
    cfg = make_config(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    runner = PlanRunner(cfg, [cfg.scenarios["a"]], PlanOptions(trials=1, seed=0),
                        Store(blocker / "data"), launcher_factory=replay_factory())
    kinds = [type(e).__name__ async for e in runner.events()]
    assert kinds[0] == "PlanStarted" and kinds[-1] == "PlanFinished"
    assert "SaveFailed" in kinds and "RunSaved" not in kinds


async def test_cancel_while_a_start_hangs_ends_the_plan_and_saves_nothing_empty(tmp_path):
    class Hanging:
        async def start(self, request):
            await asyncio.sleep(3600)

        async def close(self):
            pass

    cfg = make_config(tmp_path)
    runner = PlanRunner(cfg, [cfg.scenarios["a"]], PlanOptions(seed=0), Store(cfg.data_dir),
                        launcher_factory=lambda s, c: Hanging())
    asyncio.get_running_loop().call_later(0.2, runner.cancel)
    result = await asyncio.wait_for(runner.run(), timeout=60)   # the launcher sleeps an hour
    assert not result.complete and result.run_ids == [] and result.sessions == 1
    assert list(Store(cfg.data_dir).list_runs().runs) == []


# ---- start-up details ----------------------------------------------------------------

STARTUP = {"to_running_s": 1.5, "to_hello_s": 2.25, "to_first_sample_s": 4.2}


class _StartupReplaySession(ReplaySession):
    """A replayed session whose launcher reports start-up details, as K8sSession does."""

    def _end(self, outcome, message="", exit_code=None, **details):
        super()._end(outcome, message, exit_code, startup=dict(STARTUP), pod="gpubench-abc",
                     node="gpu-node-7", events=[{"reason": "Pulled"}], when=time, **details)


class _StartupReplayLauncher(ReplayLauncher):
    async def start(self, request):
        session = _StartupReplaySession(request, self.lines, self.speed, self.exit_code)
        session._begin()
        return session


async def test_session_details_reach_the_saved_document_and_show(tmp_path, capsys):
    from gpubench.cli.show import cmd_show
    cfg = make_config(tmp_path)

    def factory(scenario, config):
        lines = synth.session_lines(np.random.default_rng(len(scenario.name)), repeats=2)
        return (_StartupReplayLauncher if scenario.name == "b" else ReplayLauncher)(lines, 0.0)

    runner = PlanRunner(cfg, [cfg.scenarios["a"], cfg.scenarios["b"]],
                        PlanOptions(trials=2, seed=3), Store(cfg.data_dir),
                        launcher_factory=factory)
    result = await runner.run()
    docs = {d["scenario"]["name"]: Store(cfg.data_dir).load(d["id"]) for d in result.documents}
    for s in docs["b"]["sessions"]:
        assert s["details"]["startup"] == STARTUP
        assert s["details"]["pod"] == "gpubench-abc" and s["details"]["node"] == "gpu-node-7"
        assert s["details"]["events"] == [{"reason": "Pulled"}]
        assert isinstance(s["details"]["when"], str)      # not JSON: kept as its text
    assert all("details" not in s for s in docs["a"]["sessions"])   # local: nothing changes

    args = types.SimpleNamespace(run=docs["b"]["id"], json=False, data_dir=str(cfg.data_dir))
    assert cmd_show(args, cfg) == 0
    out = capsys.readouterr().out
    assert ("startup   launch → Running 1.50 s → engine hello 2.25 s → first sample 4.20 s "
            "(medians of 2 sessions; first sample 4.20–4.20 s)") in out
    assert "nodes     gpu-node-7 (2 sessions)" in out
    args.run = docs["a"]["id"]
    cmd_show(args, cfg)
    assert "startup" not in capsys.readouterr().out
