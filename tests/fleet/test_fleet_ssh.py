"""The fleet over real SSH: 20 simulated hosts (asyncssh servers on 127.0.0.1 in other
processes) plus a dead one, through the product's SshLauncher and scenarios/fleet_run."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from results.fleet_analysis import analyze_fleet, summarize_host
from scenarios.base import LaunchRequest
from scenarios.events import COMPLETED, FAILED, INCOMPLETE, Sample
from scenarios.fleet_run.close import close_launchers
from scenarios.fleet_run.hosts import FleetTarget
from scenarios.fleet_run.run import FleetRun
from scenarios.ssh.launcher import SshLauncher

ARGS = ("--workloads", "roundtrip", "--duration", "0.5", "--repeats", "3")


@pytest.fixture(scope="module")
def fleet_run(farm):
    """One fleet run over the whole farm (20 hosts + 1 dead), shared by the tests below."""
    hosts = farm.host_configs(extra_dead=("sim-dead",))
    delays: list[float] = []

    async def go():
        targets = [FleetTarget.for_host(h, SshLauncher(h, ssh_config=[])) for n, h in hosts.items()]
        fleet = FleetRun(targets, LaunchRequest(engine_args=ARGS), inactivity_timeout_s=1.5,
                         watchdog_interval_s=0.2, cancel_timeout_s=1.0, max_connects=8)

        def on_event(host, event):
            if isinstance(event, Sample) and "sent" in event.data:
                delays.append(time.monotonic() - event.data["sent"])
        fleet.add_listener(on_event)
        t0 = time.monotonic()
        try:
            result = await fleet.run()
        finally:
            await close_launchers((t.launcher for t in targets), timeout_s=1.0)
        return result, time.monotonic() - t0

    result, took = asyncio.run(go())
    return result, took, delays


def test_healthy_hosts_complete_and_stream(fleet_run):
    result, took, delays = fleet_run
    healthy = [s for n, s in result.statuses.items() if n.startswith("sim-") and n not in ("sim-hang", "sim-dead")]
    assert len(healthy) == 19 and all(s.state == COMPLETED for s in healthy), \
        {s.name: (s.state, s.message) for s in healthy if s.state != COMPLETED}
    assert all(s.results == 3 and s.samples >= 10 for s in healthy)
    assert len(delays) >= 19 * 10 and sorted(delays)[len(delays) // 2] < 0.5
    assert took < 30


def test_hung_host_ends_incomplete_without_holding_the_others(fleet_run):
    result, took, _ = fleet_run
    hung = result.statuses["sim-hang"]
    assert hung.state == INCOMPLETE and "no output for 1.5 s" in hung.message
    assert hung.hello is not None and hung.samples >= 1
    done_at = max(s.ended_at for n, s in result.statuses.items() if n != "sim-hang")
    assert done_at < hung.ended_at + 5      # the others did not wait for its timeout


def test_dead_host_fails_alone_with_a_clear_reason(fleet_run):
    result, _, _ = fleet_run
    dead = result.statuses["sim-dead"]
    assert dead.state == FAILED and "connection refused" in dead.message
    assert result.counts() == {COMPLETED: 19, INCOMPLETE: 1, FAILED: 1}


def test_fleet_analysis_flags_planted_nodes_and_excludes_other_model(fleet_run):
    result, _, _ = fleet_run
    summaries = [summarize_host(n, s.state, [json.loads(l) for l in s.raw_lines], s.message)
                 for n, s in result.statuses.items()]
    report = analyze_fleet(summaries, group=result.group)
    slow = {o.host: o for o in report.outliers if o.direction == "slow"}
    assert set(slow) == {"sim-gen3x8", "sim-hot"}
    assert any("PCIe Gen3 x8 below max Gen5 x16" in c for c in slow["sim-gen3x8"].causes)
    assert any("sw_thermal_slowdown" in c for c in slow["sim-hot"].causes)
    assert "different GPU model" in report.excluded["sim-a100"]
    assert report.excluded["sim-dead"].startswith("no results (failed")
    assert report.excluded["sim-hang"].startswith("incomplete: no output for 1.5 s")
    assert report.group == result.group and result.group.startswith("fleet-")
