"""A fleet on Kubernetes: one engine pod per GPU node, gathered and cleaned up.

Against the Kubernetes API emulator (conftest.py): no scheduler or kubelet, so
`spec.nodeName` is simply recorded and the scripted FakeKubelet plays each pod.
"""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from scenarios.base import LaunchRequest
from scenarios.events import COMPLETED, FAILED, INCOMPLETE, Hello
from scenarios.k8s.api import K8sError
from scenarios.k8s.nodes import run_on_nodes
from tests.support.k8s_emulator import CONFIGMAPS, PODS, PodScript

pytestmark = pytest.mark.k8s

REQUEST = LaunchRequest(engine_args=("--backend", "numpy-cpu", "--workloads", "roundtrip"))


def k8s_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("k8s-")
            and t.name != "k8s-emulator" and t.is_alive()]


async def no_k8s_threads(timeout: float = 3.0) -> list[str]:
    until = time.monotonic() + timeout
    while k8s_threads() and time.monotonic() < until:
        await asyncio.sleep(0.05)
    return k8s_threads()


async def test_one_pod_per_named_node(emu, cluster, pod_scenario, stream_lines):
    emu.kubelet.default = PodScript(lines=stream_lines, line_interval_s=0.02)
    nodes = [f"gpu-node-{i}" for i in range(6)]
    sessions = await run_on_nodes(cluster, pod_scenario, REQUEST, nodes)
    assert [s.node_name for s in sessions] == nodes
    pods = emu.live(PODS, "gpubench")
    assert len(pods) == 6
    assert sorted(p["spec"]["nodeName"] for p in pods.values()) == nodes
    assert {p["metadata"]["labels"]["gpubench/node"] for p in pods.values()} == set(nodes)
    runs = {p["metadata"]["labels"]["gpubench/run"] for p in pods.values()}
    assert len(runs) == 1                                  # one run id ties them together
    assert len(emu.live(CONFIGMAPS, "gpubench")) == 1      # one engine ConfigMap for all
    ends = await asyncio.gather(*(s.wait() for s in sessions))
    assert [e.outcome for e in ends] == [COMPLETED] * 6
    assert [e.details["node"] for e in ends] == nodes
    assert all(s.raw_lines == stream_lines for s in sessions)
    assert emu.live(PODS, "gpubench") == {} and emu.live(CONFIGMAPS, "gpubench") == {}
    assert await no_k8s_threads() == []


async def test_nodes_from_label_selector(emu, cluster, pod_scenario, stream_lines):
    emu.kubelet.default = PodScript(lines=stream_lines)
    for i in range(3):
        emu.add_node(f"gpu-{i}", {"nvidia.com/gpu.present": "true"})
    emu.add_node("cpu-0", {"node-role": "cpu"})
    sessions = await run_on_nodes(cluster, pod_scenario, REQUEST)   # default GPU selector
    assert sorted(s.node_name for s in sessions) == ["gpu-0", "gpu-1", "gpu-2"]
    ends = await asyncio.gather(*(s.wait() for s in sessions))
    assert all(e.outcome == COMPLETED for e in ends)
    with pytest.raises(K8sError, match="no node matches 'pool=none'"):
        await run_on_nodes(cluster, pod_scenario, REQUEST, selector="pool=none")


async def test_pod_evicted_mid_run_is_incomplete_others_complete(emu, cluster, pod_scenario,
                                                                 stream_lines):
    def script(pod):
        if pod["spec"].get("nodeName") == "gpu-node-2":
            return PodScript(lines=stream_lines, outcome="evicted", stop_after=3,
                             line_interval_s=0.02)
        return PodScript(lines=stream_lines, line_interval_s=0.02)

    emu.kubelet.script_for = script
    nodes = [f"gpu-node-{i}" for i in range(4)]
    sessions = await run_on_nodes(cluster, pod_scenario, REQUEST, nodes)
    ends = await asyncio.gather(*(s.wait() for s in sessions))
    outcomes = {s.node_name: e.outcome for s, e in zip(sessions, ends)}
    assert outcomes == {"gpu-node-0": COMPLETED, "gpu-node-1": COMPLETED,
                        "gpu-node-2": INCOMPLETE, "gpu-node-3": COMPLETED}
    evicted = ends[2]
    assert "evicted on node gpu-node-2 mid-run" in evicted.message
    assert "Warning Evicted" in evicted.message
    assert len(sessions[2].raw_lines) == 3                 # the partial stream is kept
    assert emu.live(PODS, "gpubench") == {}


async def test_cancel_all_nodes_removes_every_pod(emu, cluster, pod_scenario, stream_lines):
    emu.kubelet.default = PodScript(lines=stream_lines, line_interval_s=0.5)
    sessions = await run_on_nodes(cluster, pod_scenario, REQUEST, [f"n{i}" for i in range(5)])
    for s in sessions:
        async for ev in s.events():
            if isinstance(ev, Hello):
                break
    assert len(emu.live(PODS, "gpubench")) == 5
    await asyncio.gather(*(s.cancel() for s in sessions))
    assert all(s.ended.outcome == "cancelled" for s in sessions)
    assert emu.live(PODS, "gpubench") == {} and emu.live(CONFIGMAPS, "gpubench") == {}
    assert await no_k8s_threads() == []


async def test_unreachable_cluster_fails_each_node_not_the_caller(pod_scenario):
    from scenarios.config import ClusterConfig
    cluster = ClusterConfig(name="gone", api_url="http://127.0.0.1:9", namespace="gpubench")
    sessions = await run_on_nodes(cluster, pod_scenario, REQUEST, ["a", "b"])
    ends = [await s.wait() for s in sessions]
    assert [e.outcome for e in ends] == [FAILED, FAILED]
    assert all("cannot reach the Kubernetes API server" in e.message for e in ends)


async def test_node_without_free_gpu_fails_alone(emu, cluster, pod_scenario, stream_lines):
    """nodeName bypasses the scheduler: a node with no free GPU rejects the pod at admission."""
    emu.kubelet.script_for = lambda pod: PodScript(
        lines=stream_lines, outcome="rejected" if pod["spec"]["nodeName"] == "busy" else "succeeded")
    sessions = await run_on_nodes(cluster, pod_scenario, REQUEST, ["free", "busy"])
    ends = [await s.wait() for s in sessions]
    assert [e.outcome for e in ends] == [COMPLETED, FAILED]
    assert ends[1].message.startswith(f"pod {sessions[1].pod_name} failed on node busy before its "
                                      "container ran (UnexpectedAdmissionError: Pod was rejected: "
                                      "Allocate failed")
    assert "Warning UnexpectedAdmissionError" in ends[1].message
    assert emu.live(PODS, "gpubench") == {}
