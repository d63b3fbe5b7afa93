"""Fixtures for the Kubernetes tests.

They talk to a Kubernetes API *emulator* (kmock 0.8, patched in tests/support/k8s_emulator.py) through
the real `kubernetes` client over HTTP on 127.0.0.1. The emulator has no
scheduler, kubelet or GPU device plugin: pod phases, events and logs are scripted
per test by its FakeKubelet (a `PodScript`), and the logs replay a recorded engine
stream from fixtures/.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.config import ClusterConfig, HypervisorLayer, ProxyLayer, ScenarioConfig
from tests.support.k8s_emulator import EmulatorThread, engine_stream_lines

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def emu():
    with EmulatorThread() as thread:
        yield thread


@pytest.fixture
def stream_lines() -> list[str]:
    return engine_stream_lines(FIXTURES / "engine_stream.jsonl")


@pytest.fixture
def sigterm_lines() -> list[str]:
    return engine_stream_lines(FIXTURES / "engine_sigterm.jsonl")


@pytest.fixture
def cluster(emu) -> ClusterConfig:
    return ClusterConfig(name="emulated", api_url=emu.url, namespace="gpubench",
                         image="registry.example/gpubench-engine:1", pod_timeout_s=1.0)


def scenario(name: str = "k8s-pod", **kw) -> ScenarioConfig:
    return ScenarioConfig(name=name, title=name, launcher="k8s", cluster="emulated", **kw)


@pytest.fixture
def pod_scenario() -> ScenarioConfig:
    return scenario()


@pytest.fixture
def proxy_scenario() -> ScenarioConfig:
    return scenario("k8s-proxy", target="proxy", proxy=ProxyLayer(
        preload="/usr/local/vgpu/libvgpu.so", host_path="/usr/local/vgpu",
        mount_path="/usr/local/vgpu",
        env={"CUDA_DEVICE_MEMORY_LIMIT": "16g", "CUDA_DEVICE_SM_LIMIT": "50"}))


@pytest.fixture
def hypervisor_scenario() -> ScenarioConfig:
    return scenario("k8s-hypervisor", target="hypervisor",
                    hypervisor=HypervisorLayer(runtime_class="kata-qemu"),
                    node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                    tolerations=({"key": "nvidia.com/gpu", "operator": "Exists",
                                  "effect": "NoSchedule"},), gpus=2)
