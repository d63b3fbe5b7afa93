"""Per-GPU orchestration through the real LocalLauncher and the real engine on fake CPU devices."""
from __future__ import annotations

import asyncio
import time

import pytest

from scenarios.base import LaunchError, LaunchRequest
from scenarios.events import Hello, Result, SessionEnded
from scenarios.local import LocalLauncher
from gpubench.plan_events import TrialEvent
from gpubench.runner import PlanOptions, PlanRunner
from results.store import Store
from scenarios.config import load_config
from scenarios.multigpu import (GpuInfo, GpuSelectionError, gpu_request, list_gpus,
                                parse_selection, resolve_gpus, select, start_concurrent)
from tests.multigpu.test_runs_and_results import write_config

ARGS = ("--backend", "numpy-cpu", "--workloads", "launch", "--duration", "0.3", "--warmup", "0",
        "--repeats", "1", "--min-window", "0", "--telemetry-interval", "0")


async def _consume(gs, log: list) -> dict:
    out = {"hello": None, "results": [], "ended": None}
    async for ev in gs.session.events():
        if isinstance(ev, Hello):
            out["hello"] = ev.data
            log.append(("hello", gs.gpu.index, time.monotonic()))
        elif isinstance(ev, Result):
            out["results"].append(ev.data)
        elif isinstance(ev, SessionEnded):
            out["ended"] = ev
            log.append(("end", gs.gpu.index, time.monotonic()))
    return out


async def test_list_devices_through_the_launcher(fake_gpus):
    fake_gpus(3)
    gpus = await list_gpus(LocalLauncher(), LaunchRequest(engine_args=ARGS))
    assert [g.index for g in gpus] == [0, 1, 2]
    assert [g.uuid for g in gpus] == ["CPU-FAKE-0", "CPU-FAKE-1", "CPU-FAKE-2"]
    assert gpus[2].name == "CPU (numpy-cpu) fake device 2" and not gpus[2].mig_instance


async def test_concurrent_sessions_one_per_gpu_tagged_and_overlapping(fake_gpus):
    fake_gpus(3)
    launcher, request = LocalLauncher(), LaunchRequest(engine_args=ARGS, label="t")
    gpus = await resolve_gpus(launcher, request, "0,2")
    sessions = await start_concurrent(launcher, request, gpus)
    assert [gs.gpu.index for gs in sessions] == [0, 2]
    assert all(gs.session is not None and gs.error is None for gs in sessions)
    log: list = []
    outs = await asyncio.gather(*(_consume(gs, log) for gs in sessions))
    for gs, out in zip(sessions, outs):
        assert out["ended"].outcome == "completed", out["ended"].message
        dev = out["hello"]["device"]
        assert (dev["index"], dev["uuid"]) == (gs.gpu.index, gs.gpu.uuid)
        assert out["hello"]["plan"]["device"] == gs.gpu.uuid           # --device <uuid>
        assert {r["variant"] for r in out["results"]} == {"sync", "async"}
    hellos = [t for kind, _, t in log if kind == "hello"]
    ends = [t for kind, _, t in log if kind == "end"]
    assert max(hellos) < min(ends)          # both engines were measuring at the same time


async def test_sequential_sessions_start_after_the_previous_ended(fake_gpus, tmp_path):
    fake_gpus(2)
    config = load_config(write_config(tmp_path))
    runner = PlanRunner(config, [config.scenarios["bare-metal"]],
                        PlanOptions(gpus="all", gpus_sequential=True, seed=1), Store(config.data_dir))
    log: list = []

    def progress(ev) -> None:
        if isinstance(ev, TrialEvent) and isinstance(ev.event, (Hello, SessionEnded)):
            log.append(("hello" if isinstance(ev.event, Hello) else "end", ev.gpu["index"]))
            if isinstance(ev.event, Hello):
                assert ev.event.data["device"]["uuid"] == f"CPU-FAKE-{ev.gpu['index']}"

    res = await runner.run(progress)
    assert res.failed_sessions == 0 and res.documents[0]["gpu_mode"] == "sequential"
    assert log == [("hello", 0), ("end", 0), ("hello", 1), ("end", 1)]


async def test_selection_by_uuid_and_unknown_gpu_errors_name_the_available_ones(fake_gpus):
    fake_gpus(2)
    launcher, request = LocalLauncher(), LaunchRequest(engine_args=ARGS)
    gpus = await resolve_gpus(launcher, request, "CPU-FAKE-1")
    assert [g.index for g in gpus] == [1]
    for bad in ("5", "GPU-deadbeef", "0,7"):
        with pytest.raises(GpuSelectionError) as err:
            await resolve_gpus(launcher, request, bad)
        msg = str(err.value)
        assert "\n" not in msg and "unknown GPU" in msg
        assert "0 CPU-FAKE-0" in msg and "1 CPU-FAKE-1" in msg


async def test_no_gpus_visible_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("GPUBENCH_FAKE_DEVICES", raising=False)
    with pytest.raises(GpuSelectionError, match="no GPU visible"):
        await resolve_gpus(LocalLauncher(), LaunchRequest(engine_args=ARGS), "all")


def test_parse_selection_and_select_without_an_engine():
    assert parse_selection("all") == "all" and parse_selection(" ALL ") == "all"
    assert parse_selection("0, 2") == ["0", "2"]
    for bad in ("", "0,,1", "1,1"):
        with pytest.raises(ValueError):
            parse_selection(bad)
    gpus = [GpuInfo(0, "GPU-aaaa1111-0000-0000-0000-000000000000", "H100"),
            GpuInfo(1, "GPU-bbbb2222-0000-0000-0000-000000000000", "H100")]
    assert select(gpus, ["GPU-bbbb2222"]) == [gpus[1]]        # a UUID prefix is enough
    assert select(gpus, ["bbbb2222"]) == [gpus[1]]
    assert select(gpus, ["1", "0"]) == [gpus[1], gpus[0]]


def test_gpu_request_sets_device_and_keeps_p2p_in_the_first_session_only():
    req = LaunchRequest(engine_args=("--workloads", "launch,p2p", "--device", "3"), label="x")
    g0, g1 = GpuInfo(0, "GPU-a"), GpuInfo(1, None)
    first, second = gpu_request(req, g0, first=True), gpu_request(req, g1, first=False)
    assert first.engine_args == ("--workloads", "launch,p2p", "--device", "GPU-a")
    assert second.engine_args == ("--workloads", "launch", "--device", "1")
    assert second.label == "x gpu1"


def test_a_p2p_only_plan_measures_launch_on_the_other_gpus():
    req = LaunchRequest(engine_args=("--backend", "numpy-cpu", "--workloads=p2p"))
    second = gpu_request(req, GpuInfo(1, "GPU-b"), first=False)
    assert second.engine_args == ("--backend", "numpy-cpu", "--workloads", "launch",
                                  "--device", "GPU-b")


async def test_engine_arguments_the_engine_would_refuse_are_one_line_before_any_launch():
    class NoLaunch(LocalLauncher):
        async def start(self, request):
            raise AssertionError("nothing may start")

    with pytest.raises(LaunchError) as info:
        await list_gpus(NoLaunch(), LaunchRequest(engine_args=("--nope",)))
    assert str(info.value) == "could not list the GPUs: bad_args: unrecognized arguments: --nope"
