"""scenarios/fleet_run semantics with in-process launchers (fast; the SSH path is in test_fleet_ssh.py)."""
from __future__ import annotations

import asyncio
import errno
import json

import pytest

from tests.support.fleet_stream import HostProfile, complete_stream
from scenarios.base import LaunchError, LaunchRequest, Launcher
from scenarios.descriptors import is_descriptor_exhaustion, raise_nofile_limit
from scenarios.events import CANCELLED, COMPLETED, FAILED, INCOMPLETE, Sample
from scenarios.fleet_run.failures import FleetError, check_descriptor_budget, is_transient
from scenarios.fleet_run.hosts import FleetTarget, new_group_id
from scenarios.fleet_run.run import FleetRun
from scenarios.replay import ReplayLauncher

REQ = LaunchRequest(engine_args=("--workloads", "roundtrip"))


def stream(name: str, hang_at: int | None = None) -> list[str]:
    lines = complete_stream(HostProfile(name), {"workloads": ["roundtrip"], "duration_s": 1.0,
                                                "repeats": 2, "warmup_s": 0.0})
    for i, line in enumerate(lines):
        line["t"] = 0.01 * i
        if hang_at is not None and i >= hang_at:
            line["t"] = 1000.0 + i          # silence: the next line is due in 1000 s
    return [json.dumps(l) for l in lines]


class FailingLauncher(Launcher):
    def __init__(self, exc: Exception, then: Launcher | None = None, failures: int = 10**6):
        self.exc, self.then, self.failures, self.calls = exc, then, failures, 0

    async def start(self, request):
        self.calls += 1
        if self.calls <= self.failures or self.then is None:
            raise self.exc
        return await self.then.start(request)


class CountingLauncher(ReplayLauncher):
    running = 0
    peak = 0

    async def start(self, request):
        CountingLauncher.running += 1
        CountingLauncher.peak = max(CountingLauncher.peak, CountingLauncher.running)
        session = await super().start(request)
        orig = session._end

        def end(*a, **kw):
            if session.ended is None:
                CountingLauncher.running -= 1
            orig(*a, **kw)
        session._end = end
        return session


@pytest.mark.parametrize("direct", [True, False], ids=["direct-events", "events-iterator"])
async def test_dead_host_is_isolated_and_the_rest_complete(direct):
    targets = [FleetTarget(f"h{i}", ReplayLauncher(stream(f"h{i}"), speed=0)) for i in range(5)]
    targets.append(FleetTarget("dead", FailingLauncher(LaunchError("dead: connection refused"))))
    seen = []
    fleet = FleetRun(targets, REQ, direct_events=direct)
    fleet.add_listener(lambda host, ev: seen.append(host) if isinstance(ev, Sample) else None)
    result = await fleet.run()
    assert result.statuses["dead"].state == FAILED
    assert "connection refused" in result.statuses["dead"].message
    assert result.statuses["dead"].attempts == 1            # refused: not retried
    assert all(result.statuses[f"h{i}"].state == COMPLETED for i in range(5))
    assert result.counts() == {COMPLETED: 5, FAILED: 1}
    assert set(seen) == {f"h{i}" for i in range(5)} and "dead" not in seen
    assert all(len(result.statuses[f"h{i}"].raw_lines) > 5 for i in range(5))
    assert result.group.startswith("fleet-")


async def test_hung_host_times_out_as_incomplete_while_others_finish():
    targets = [FleetTarget(f"h{i}", ReplayLauncher(stream(f"h{i}"), speed=1)) for i in range(4)]
    targets.append(FleetTarget("hung", ReplayLauncher(stream("hung", hang_at=4), speed=1)))
    fleet = FleetRun(targets, REQ, inactivity_timeout_s=0.5, watchdog_interval_s=0.1)
    result = await asyncio.wait_for(fleet.run(), 20)
    hung = result.statuses["hung"]
    assert hung.state == INCOMPLETE and "no output for 0.5 s" in hung.message
    assert hung.samples >= 1 and hung.hello is not None     # it streamed before it hung
    assert all(result.statuses[f"h{i}"].state == COMPLETED for i in range(4))
    assert result.ended_at - result.started_at < 5


async def test_transient_failure_is_retried_then_runs():
    flaky = FailingLauncher(ConnectionResetError(104, "Connection reset by peer"),
                            then=ReplayLauncher(stream("flaky"), speed=0), failures=2)
    fleet = FleetRun([FleetTarget("flaky", flaky)], REQ, retry_backoff_s=0.01)
    result = await fleet.run()
    assert result.statuses["flaky"].state == COMPLETED and result.statuses["flaky"].attempts == 3


async def test_retries_are_bounded():
    flaky = FailingLauncher(LaunchError("ssh: Connection lost"))
    result = await FleetRun([FleetTarget("x", flaky)], REQ, retry_backoff_s=0.01, connect_retries=2).run()
    assert result.statuses["x"].state == FAILED and flaky.calls == 3
    assert "after 3 attempts" in result.statuses["x"].message


async def test_sessions_are_bounded_by_the_semaphore():
    CountingLauncher.running = CountingLauncher.peak = 0
    targets = [FleetTarget(f"h{i}", CountingLauncher(stream(f"h{i}"), speed=4)) for i in range(12)]
    result = await FleetRun(targets, REQ, max_sessions=3).run()
    assert result.ok and CountingLauncher.peak == 3


async def test_cancel_stops_running_and_queued_hosts():
    targets = [FleetTarget(f"h{i}", ReplayLauncher(stream(f"h{i}", hang_at=3), speed=1)) for i in range(6)]
    fleet = FleetRun(targets, REQ, max_sessions=3, inactivity_timeout_s=60)
    task = asyncio.create_task(fleet.run())
    await asyncio.sleep(0.3)
    await fleet.cancel()
    result = await asyncio.wait_for(task, 10)
    assert set(s.state for s in result.statuses.values()) == {CANCELLED}


async def test_descriptor_exhaustion_becomes_a_plain_error():
    exc = LaunchError("ssh: cannot connect")
    exc.__cause__ = OSError(errno.EMFILE, "Too many open files")
    assert is_descriptor_exhaustion(exc)
    result = await FleetRun([FleetTarget("x", FailingLauncher(exc))], REQ).run()
    assert result.descriptor_exhausted
    assert result.statuses["x"].message.startswith("out of file descriptors (open-files limit")
    assert not is_descriptor_exhaustion(LaunchError("ssh: connection refused"))


def test_descriptor_budget_refuses_a_fleet_that_cannot_fit():
    soft, hard = raise_nofile_limit()
    assert soft == hard or hard < 0 or soft >= 1 << 20
    with pytest.raises(FleetError, match=r"need about \d+ open files, but the limit is"):
        check_descriptor_budget(soft + 10)
    check_descriptor_budget(soft + 10, max_sessions=10)       # bounded sessions fit


def test_transient_classification():
    assert is_transient(ConnectionResetError())
    assert is_transient(LaunchError("host: Connection lost"))
    assert not is_transient(ConnectionRefusedError())
    assert not is_transient(LaunchError("host: Host key is not trusted"))
    assert not is_transient(LaunchError("host: Permission denied (publickey)"))


def test_group_ids_are_unique_and_duplicate_hosts_are_refused():
    assert new_group_id() != new_group_id()
    with pytest.raises(ValueError, match="appears twice"):
        FleetRun([FleetTarget("a", ReplayLauncher([])), FleetTarget("a", ReplayLauncher([]))], REQ)


class PreparingLauncher(ReplayLauncher):
    """Records when it was prepared and started, and the fleet settings it got."""
    log: list[tuple[str, str]] = []

    def __init__(self, name, lines, fail_prepare=False, **kw):
        super().__init__(lines, **kw)
        self.name_, self.fail_prepare, self.settings = name, fail_prepare, None

    async def prepare(self):
        await asyncio.sleep(0.05 if self.name_ == "slow" else 0)
        PreparingLauncher.log.append(("prepare", self.name_))
        if self.fail_prepare:
            raise LaunchError(f"{self.name_}: connection refused")
        return []

    def use_fleet_settings(self, **settings):
        self.settings = settings

    async def start(self, request):
        PreparingLauncher.log.append(("start", self.name_))
        return await super().start(request)


async def test_every_host_is_prepared_before_any_engine_starts():
    PreparingLauncher.log = []
    launchers = {n: PreparingLauncher(n, stream(n), speed=0, fail_prepare=(n == "bad"))
                 for n in ("a", "slow", "b", "bad")}
    fleet = FleetRun([FleetTarget(n, l) for n, l in launchers.items()], REQ, max_connects=7,
                     keepalive_s=45)
    result = await fleet.run()
    kinds = [k for k, _ in PreparingLauncher.log]
    assert kinds == ["prepare"] * 4 + ["start"] * 3, PreparingLauncher.log
    assert result.statuses["bad"].state == FAILED and "refused" in result.statuses["bad"].message
    assert all(result.statuses[n].state == COMPLETED for n in ("a", "slow", "b"))
    assert fleet.prepared_at is not None
    assert all(l.settings == {"max_connects": 7, "keepalive_s": 45} for l in launchers.values())


async def test_bounded_sessions_prepare_each_host_just_before_it_starts():
    PreparingLauncher.log = []
    targets = [FleetTarget(n, PreparingLauncher(n, stream(n), speed=0)) for n in ("a", "b", "c")]
    result = await FleetRun(targets, REQ, max_sessions=1).run()
    assert result.ok
    assert PreparingLauncher.log == [("prepare", "a"), ("start", "a"), ("prepare", "b"),
                                     ("start", "b"), ("prepare", "c"), ("start", "c")]


async def test_a_host_hung_while_preparing_holds_the_others_back_only_one_start_timeout():
    class Hung(Launcher):
        async def prepare(self):
            await asyncio.sleep(3600)

        async def start(self, request):
            raise AssertionError("never prepared")
    targets = [FleetTarget("ok", ReplayLauncher(stream("ok"), speed=0)), FleetTarget("hung", Hung())]
    fleet = FleetRun(targets, REQ, start_timeout_s=0.3, connect_retries=1, retry_backoff_s=0.01)
    result = await asyncio.wait_for(fleet.run(), 10)
    ok, hung = result.statuses["ok"], result.statuses["hung"]
    assert ok.state == COMPLETED and hung.state == FAILED
    assert "no answer within 0.3 s while preparing (after 2 attempts)" in hung.message
    assert ok.running_since - result.started_at < hung.ended_at - result.started_at  # did not wait


async def test_gc_is_frozen_while_every_host_runs_and_unfrozen_after():
    import gc
    seen = []
    targets = [FleetTarget(f"h{i}", ReplayLauncher(stream(f"h{i}"), speed=1)) for i in range(3)]
    fleet = FleetRun(targets, REQ, freeze_gc=True)
    fleet.add_listener(lambda host, ev: seen.append(gc.get_freeze_count()) if isinstance(ev, Sample) else None)
    before = gc.get_freeze_count()
    result = await fleet.run()
    assert result.ok and max(seen) > before
    assert gc.get_freeze_count() == before
    assert FleetRun(targets, REQ).freeze_gc is False          # small fleets: left alone


async def test_no_full_collection_while_connecting_threshold_restored_after():
    import gc
    from scenarios.fleet_run.gc_pause import CONNECT_GC_THRESHOLD2
    original = gc.get_threshold()
    held, after_all = [], []
    targets = [FleetTarget(f"h{i}", ReplayLauncher(stream(f"h{i}"), speed=1)) for i in range(3)]
    fleet = FleetRun(targets, REQ, freeze_gc=True)

    def on_status(status):
        if status.state == "connecting":
            held.append(gc.get_threshold())

    def on_event(host, event):
        if isinstance(event, Sample) and len(fleet._settled) == len(targets):
            after_all.append((gc.get_threshold(), gc.get_freeze_count() > 0))
    fleet.add_status_listener(on_status)
    fleet.add_listener(on_event)
    result = await fleet.run()
    assert result.ok and held and all(t == original[:2] + (CONNECT_GC_THRESHOLD2,) for t in held)
    # once every host runs: the old threshold and the freeze (after the last RUNNING status)
    assert after_all and after_all[-1] == (original, True)
    assert gc.get_threshold() == original
    small = FleetRun(targets, REQ)                    # small fleets: left alone
    await small.run()
    assert gc.get_threshold() == original
