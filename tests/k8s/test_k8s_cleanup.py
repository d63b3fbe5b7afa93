"""`gpubench cleanup` in a namespace shared with other runs; the heartbeat that tells them apart.

Against the Kubernetes API emulator (conftest.py: no scheduler, kubelet or GPU device
plugin; pod phases and logs are scripted). Objects of "other runs" are made here through
the real client with the annotations such a run would write.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import threading
import time
from datetime import datetime, timezone

import kmock
import pytest

from gpubench import cli
from scenarios.base import LaunchRequest
from scenarios.events import CANCELLED, COMPLETED, Hello, Status
from scenarios.k8s.launcher import K8sLauncher
from scenarios.k8s.cleanup import cleanup_leftovers
from scenarios.k8s.heartbeat import (HEARTBEAT, HEARTBEAT_TTL, OWNER, OWNER_PROCESS, this_machine,
                                     process_start, judge, owner_annotations, parse_stamp,
                                     stamp)
from scenarios.k8s.spec import MANAGED_BY
from tests.hostile import case_id, cases
from tests.k8s.conftest import scenario
from tests.support.k8s_emulator import CONFIGMAPS, JOBS, PODS, PodScript
from tests.support.waiting import wait_for

pytestmark = pytest.mark.k8s

NS = "gpubench"
REQUEST = LaunchRequest(engine_args=("--backend", "numpy-cpu", "--workloads", "roundtrip"))
HOSTILE = cases("k8s_annotations", "*.json")
MACHINE = this_machine()
needs_proc = pytest.mark.skipif(MACHINE is None,
                                reason="needs Linux /proc (boot id, pid namespace)")


def core_api(emu):
    from kubernetes import client
    cfg = client.Configuration()
    cfg.host = emu.url
    api = client.ApiClient(cfg)
    return client.CoreV1Api(api), client.BatchV1Api(api)


def make(emu, kind: str, name: str, annotations, *, mounts: str | None = None,
         labels: dict | None = None) -> None:
    """An object as another run (or an older gpubench, or a person) left it."""
    core, batch = core_api(emu)
    meta = {"name": name, "labels": labels if labels is not None else
            {MANAGED_BY: "gpubench", "gpubench/run": "other"}, "annotations": annotations}
    spec = {"containers": [{"name": "engine", "image": "i"}], "restartPolicy": "Never"}
    if mounts:
        spec["volumes"] = [{"name": "gpubench-engine", "configMap": {"name": mounts}}]
    if kind == "pod":
        core.create_namespaced_pod(NS, {"metadata": meta, "spec": spec})
    elif kind == "configmap":
        core.create_namespaced_config_map(NS, {"metadata": meta, "data": {}})
    else:
        batch.create_namespaced_job(NS, {"metadata": meta, "spec": {"template": {"spec": spec}}})


def foreign(age_s: float, ttl_s: int = 120, owner: str = "far-host:77") -> dict:
    """A run on another machine whose last renewal was `age_s` ago."""
    return {OWNER: owner, OWNER_PROCESS: "0000-other-boot.4026531836:77:12345",
            HEARTBEAT: stamp(time.time() - age_s), HEARTBEAT_TTL: str(ttl_s)}


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def here(pid: int, start: str, age_s: float = 1.0) -> dict:
    """A run on this machine (same kernel and pid namespace), pid and start time as given."""
    return {OWNER: f"{socket.gethostname()}:{pid}", OWNER_PROCESS: f"{MACHINE}:{pid}:{start}",
            HEARTBEAT: stamp(time.time() - age_s), HEARTBEAT_TTL: "120"}


def names(emu, resource) -> set[str]:
    return set(emu.live(resource, NS))


# ---------------------------------------------------------------------------------------------
# Two runs, one namespace
# ---------------------------------------------------------------------------------------------

async def test_one_run_ending_leaves_a_concurrent_run_its_engine_and_pod(emu, cluster,
                                                                         stream_lines):
    """Two gpubench runs (two launchers, as two processes would have) with the same engine
    source. A, started first, ends and deletes what is its own; a `gpubench cleanup`
    meanwhile removes nothing of B; B runs on, its pod mounting a ConfigMap that exists."""
    emu.kubelet.default = PodScript(lines=stream_lines, outcome="hang")   # runs until deleted
    a_launcher = K8sLauncher(cluster, scenario("k8s-a"))
    b_launcher = K8sLauncher(cluster, scenario("k8s-b"))
    a, b = await a_launcher.start(REQUEST), await b_launcher.start(REQUEST)
    for session in (a, b):
        async for ev in session.events():
            if isinstance(ev, Hello):
                break
    assert a_launcher.bundle.hash == b_launcher.bundle.hash          # the same engine source
    await a.cancel()
    assert a.ended.outcome == CANCELLED
    pod = emu.live(PODS, NS)[b.pod_name]
    mounted = [v["configMap"]["name"] for v in pod["spec"]["volumes"] if v.get("configMap")]
    assert mounted == [b_launcher.bundle.configmap_name]
    assert names(emu, CONFIGMAPS) == set(mounted)       # A's own is gone, B's is there

    report = await asyncio.to_thread(cleanup_leftovers, cluster)
    assert report.removed == []
    assert report.kept == [f"run of {socket.gethostname()}:{os.getpid()} alive (owner process "
                           f"{os.getpid()} is running on this host), skipped pod/{b.pod_name}, "
                           f"configmap/{mounted[0]}; --all removes them"]
    assert names(emu, PODS) == {b.pod_name} and names(emu, CONFIGMAPS) == set(mounted)
    assert b.ended is None
    await b.cancel()
    assert b.ended.outcome == CANCELLED
    assert names(emu, PODS) == set() and names(emu, CONFIGMAPS) == set()


# ---------------------------------------------------------------------------------------------
# Alive, gone, unknown
# ---------------------------------------------------------------------------------------------

@needs_proc
async def test_cleanup_removes_only_what_gone_runs_left(emu, cluster):
    me = os.getpid()
    await asyncio.to_thread(make, emu, "pod", "live-far", foreign(5))
    await asyncio.to_thread(make, emu, "configmap", "live-far-engine", foreign(5))
    await asyncio.to_thread(make, emu, "pod", "expired-far", foreign(500, owner="old-host:9"))
    await asyncio.to_thread(make, emu, "job", "expired-far-job", foreign(500, owner="old-host:9"))
    # The owner ran here and has exited: gone at once, though its heartbeat is still fresh.
    await asyncio.to_thread(make, emu, "pod", "dead-here", here(dead_pid(), "1"))
    # Our pid, but another start time: the pid was reused, the owner is gone.
    await asyncio.to_thread(make, emu, "pod", "reused-pid", here(me, "1"))
    # This process itself, heartbeat long expired (a suspended laptop): still alive.
    await asyncio.to_thread(make, emu, "pod", "live-here", here(me, process_start(me), 9999))
    # An expired ConfigMap that a kept pod mounts is kept for it.
    await asyncio.to_thread(make, emu, "configmap", "engine-in-use", foreign(500))
    await asyncio.to_thread(make, emu, "pod", "mounts-it", foreign(5, owner="far-host:78"),
                            mounts="engine-in-use")
    await asyncio.to_thread(make, emu, "pod", "someone-elses", {}, labels={"app": "other"})

    before = names(emu, PODS), names(emu, CONFIGMAPS)
    dry = await asyncio.to_thread(cleanup_leftovers, cluster, dry_run=True)
    assert (names(emu, PODS), names(emu, CONFIGMAPS)) == before      # nothing removed
    report = await asyncio.to_thread(cleanup_leftovers, cluster)
    assert sorted(report.removed) == sorted(dry.removed) == [
        "job/expired-far-job", "pod/dead-here", "pod/expired-far", "pod/reused-pid"]
    assert names(emu, PODS) == {"live-far", "live-here", "mounts-it", "someone-elses"}
    assert names(emu, CONFIGMAPS) == {"live-far-engine", "engine-in-use"}
    assert names(emu, JOBS) == set()
    kept = "\n".join(report.kept)
    assert re.search(r"^run of far-host:77 alive \(heartbeat \d+ s ago\), skipped pod/live-far, "
                     r"configmap/live-far-engine; --all removes them$", kept, re.M), kept
    assert (f"run of {socket.gethostname()}:{me} alive (owner process {me} is running on this "
            f"host), skipped pod/live-here; --all removes it") in kept
    assert ("in use (mounted by a pod that is kept), skipped configmap/engine-in-use; "
            "--all removes it") in kept
    assert report.kept_objects == 5 and len(report.kept) == 4

    everything = await asyncio.to_thread(cleanup_leftovers, cluster, everything=True)
    assert sorted(everything.removed) == [
        "configmap/engine-in-use", "configmap/live-far-engine", "pod/live-far", "pod/live-here",
        "pod/mounts-it"] and everything.kept == []
    assert names(emu, PODS) == {"someone-elses"} and names(emu, CONFIGMAPS) == set()


@pytest.mark.parametrize("case", HOSTILE, ids=case_id)
async def test_unreadable_heartbeat_is_kept_with_one_line(emu, cluster, case):
    """Whatever a heartbeat annotation holds, cleanup never removes an object it cannot prove
    gone: it keeps it and says why in one line. `--all` still removes it."""
    assert case.expect, f"{case.path.name}: no '# expect:' line"
    # Stored server-side: the client refuses to send annotations that are not strings, but
    # what cleanup reads back is whatever the server (or something in between) holds.
    await emu.acall(emu.emulator.put_object(PODS, NS, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "odd", "labels": {MANAGED_BY: "gpubench"},
                     "annotations": json.loads(case.body)},
        "spec": {"containers": [{"name": "engine", "image": "i"}]}}))
    report = await asyncio.to_thread(cleanup_leftovers, cluster)
    assert report.removed == [] and names(emu, PODS) == {"odd"}
    assert len(report.kept) == 1 and "\n" not in report.kept[0] and len(report.kept[0]) < 300
    assert report.kept[0].startswith("pod/odd: ")
    assert report.kept[0].endswith(": kept, as its run may be alive; --all removes it")
    for expect in case.expect:
        assert expect in report.kept[0]
    report = await asyncio.to_thread(cleanup_leftovers, cluster, everything=True)
    assert report.removed == ["pod/odd"] and names(emu, PODS) == set()


def test_hostile_corpus_is_there():
    assert len(HOSTILE) >= 15


def test_heartbeat_boundaries():
    """Fresh to the second of its TTL, gone after; the kubelet's RFC3339Nano form parses."""
    meta = {"annotations": {HEARTBEAT: "2027-01-15T08:00:00.123456789Z", HEARTBEAT_TTL: "60"}}
    at = parse_stamp(meta["annotations"][HEARTBEAT])
    assert at == datetime(2027, 1, 15, 8, tzinfo=timezone.utc).timestamp()
    assert judge(meta, at + 60, machine="x").alive is True
    assert judge(meta, at + 61, machine="x").alive is False
    assert judge(meta, at - 599, machine="x").alive is True      # a clock a little ahead
    assert judge(meta, at - 601, machine="x").alive is None      # too far ahead to trust


@needs_proc
def test_owner_on_this_host_hidden_by_proc_is_judged_by_its_heartbeat(monkeypatch):
    """/proc mounted with hidepid hides another user's live process: it exists (kill 0 says
    so), its start time cannot be read, so the heartbeat decides, not "exited"."""
    from scenarios.k8s import heartbeat as k8s_heartbeat
    me = os.getpid()
    monkeypatch.setattr(k8s_heartbeat, "process_start", lambda pid: None)
    assert judge({"annotations": here(me, "1", age_s=5)}, time.time()).alive is True
    assert judge({"annotations": here(me, "1", age_s=500)}, time.time()).alive is False
    gone = judge({"annotations": here(dead_pid(), "1", age_s=5)}, time.time())
    assert gone.alive is False and gone.why.endswith("on this host has exited")
    huge = judge({"annotations": here(999_999_999_999, "1", age_s=5)}, time.time())
    assert huge.alive is False


# ---------------------------------------------------------------------------------------------
# Renewal
# ---------------------------------------------------------------------------------------------

def fresh(obj: dict, within_s: float = 30) -> bool:
    at = parse_stamp((obj["metadata"].get("annotations") or {}).get(HEARTBEAT, ""))
    return at is not None and abs(time.time() - at) < within_s


@pytest.mark.parametrize("workload", ["pod", "job"])
async def test_heartbeat_is_renewed_off_the_event_loop(emu, cluster, pod_scenario, stream_lines,
                                                      workload):
    emu.kubelet.default = PodScript(lines=stream_lines, outcome="hang")
    launcher = K8sLauncher(cluster, pod_scenario, workload=workload)
    launcher.heartbeat.interval_s = 0.05
    await launcher.connect()
    threads: list[threading.Thread] = []
    real = launcher.api.patch_annotations

    def recording(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    launcher.api.patch_annotations = recording
    session = await launcher.start(REQUEST)
    async for ev in session.events():
        if isinstance(ev, Hello):
            break
    kinds = [(PODS, session.pod_name), (CONFIGMAPS, launcher.bundle.configmap_name)]
    if workload == "job":
        kinds.append((JOBS, session.job_name))
    for resource, name in kinds:          # each made with the owner and a fresh heartbeat
        annotations = emu.live(resource, NS)[name]["metadata"]["annotations"]
        assert annotations[OWNER] == f"{socket.gethostname()}:{os.getpid()}"
        assert annotations[HEARTBEAT_TTL] == "120"
        await emu.acall(emu.emulator.patch_object(resource, NS, name, {"metadata": {
            "annotations": {HEARTBEAT: "2000-01-01T00:00:00Z"}}}))
    for resource, name in kinds:          # ... and renewed
        assert await wait_for(lambda: fresh(emu.live(resource, NS)[name])), (resource, name)
    loop_thread = threading.current_thread()
    assert threads and all(t is not loop_thread for t in threads)
    assert {t.name for t in threads} == {"k8s-heartbeat"}
    await session.cancel()
    assert session.ended.outcome == CANCELLED
    assert await wait_for(lambda: not any(t.name == "k8s-heartbeat" and t.is_alive()
                                          for t in threading.enumerate()))
    assert launcher.heartbeat.tracked() == []


async def test_failed_renewal_is_said_once_and_the_run_goes_on(emu, cluster, pod_scenario,
                                                              stream_lines):
    emu.emulator[kmock.method.PATCH, PODS] << kmock.Response(
        status=500, payload={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "message": "etcdserver: request timed out", "code": 500})
    emu.kubelet.default = PodScript(lines=stream_lines, line_interval_s=0.2)
    launcher = K8sLauncher(cluster, pod_scenario)
    launcher.heartbeat.interval_s = 0.02
    session = await launcher.start(REQUEST)
    events = [ev async for ev in session.events()]
    assert session.ended.outcome == COMPLETED, session.ended
    said = [ev.message for ev in events if isinstance(ev, Status) and "heartbeat" in ev.message]
    assert len(said) == 1, said
    assert said[0].startswith(f"heartbeat of pod/{session.pod_name} not renewed (")
    assert "etcdserver: request timed out" in said[0] and "the run goes on" in said[0]


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------

@needs_proc
async def test_cleanup_command(emu, tmp_path, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[clusters.lab]\napi_url = "{emu.url}"\nnamespace = "{NS}"\n')
    await asyncio.to_thread(make, emu, "pod", "live-far", foreign(5))
    await asyncio.to_thread(make, emu, "pod", "gone-far", foreign(500))
    await asyncio.to_thread(make, emu, "pod", "legacy", {})

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(["--config", str(cfg), "cleanup", *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = await asyncio.to_thread(run, "--dry-run")
    assert code == 0 and out == "lab\tpod/gone-far\n"
    assert "lab: would remove 1 leftover object(s), kept 2" in err
    assert len(names(emu, PODS)) == 3
    code, out, err = await asyncio.to_thread(run)
    assert code == 0 and out == "lab\tpod/gone-far\n"
    assert re.search(r"^lab: run of far-host:77 alive \(heartbeat \d+ s ago\), skipped "
                     r"pod/live-far; --all removes it$", err, re.M), err
    assert ("lab: pod/legacy: no heartbeat annotation (made by an older gpubench or by hand): "
            "kept, as its run may be alive; --all removes it") in err.splitlines()
    assert "lab: removed 1 leftover object(s), kept 2" in err.splitlines()
    code, out, err = await asyncio.to_thread(run, "--all")
    assert code == 0 and sorted(out.splitlines()) == ["lab\tpod/legacy", "lab\tpod/live-far"]
    assert names(emu, PODS) == set()


def test_owner_annotations_name_this_process():
    ann = owner_annotations(120, now=0)
    assert ann[OWNER] == f"{socket.gethostname()}:{os.getpid()}"
    assert ann[HEARTBEAT] == "1970-01-01T00:00:00Z" and ann[HEARTBEAT_TTL] == "120"
    if MACHINE is not None:
        assert ann[OWNER_PROCESS] == f"{MACHINE}:{os.getpid()}:{process_start(os.getpid())}"
        assert judge({"annotations": ann}, time.time()).alive is True
