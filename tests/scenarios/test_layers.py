"""Proxy and hypervisor layers: verify() judged from the engine's real hello line.

The preload library is built from tests/data/preload_probe.c with `cc -shared -fPIC`
at test time; the engine runs for real (numpy-cpu) through the local launcher, so the
"mapped" evidence comes from the engine's own /proc/self/maps.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from scenarios.config import HypervisorLayer, ProxyLayer, ScenarioConfig
from scenarios.base import LaunchRequest
from scenarios.events import COMPLETED, Hello
from scenarios.layers import (HYPERVISOR_NOT_DETECTED, library_mapped, verify)
from scenarios.local import LocalLauncher
from scenarios.registry import request_for
from tests.support.sshd import REMOTE_PYTHON

QUICK = ("--backend", "numpy-cpu", "--workloads", "roundtrip", "--duration", "0.05",
         "--warmup", "0", "--repeats", "1", "--telemetry-interval", "0", "--min-window", "0.01")


def proxy_scenario(lib, **proxy) -> ScenarioConfig:
    return ScenarioConfig(name="proxy", title="bare metal + proxy", launcher="local",
                          host="local", target="proxy", baseline="bare-metal",
                          proxy=ProxyLayer(preload=str(lib) if lib else None, **proxy))


async def engine_hello(request: LaunchRequest) -> dict:
    session = await LocalLauncher(python=REMOTE_PYTHON).start(request)
    events = [e async for e in session.events()]
    assert events[-1].outcome == COMPLETED, events[-1]
    return next(e for e in events if isinstance(e, Hello)).data


async def test_loaded_proxy_library_is_active(preload_lib):
    scenario = proxy_scenario(preload_lib, env={"CUDA_DEVICE_MEMORY_LIMIT": "16g"})
    hello = await engine_hello(request_for(scenario, QUICK))
    assert hello["host"]["preload"]["mapped"] == [str(preload_lib)]
    assert hello["host"]["env"]["CUDA_DEVICE_MEMORY_LIMIT"] == "16g"
    assert verify(scenario, hello) == []


async def test_configured_library_not_loaded_makes_the_run_invalid(preload_lib):
    scenario = proxy_scenario(preload_lib)
    # the proxy was configured but the launch forgot LD_PRELOAD: a silent second baseline
    hello = await engine_hello(LaunchRequest(engine_args=QUICK))
    assert hello["host"]["preload"] == {"ld_preload": [], "mapped": []}
    assert verify(scenario, hello) == [
        f"proxy not active: {preload_lib} not loaded in the engine process"]


async def test_a_different_library_loaded_is_not_the_proxy(preload_lib, other_preload_lib):
    scenario = proxy_scenario(preload_lib)
    hello = await engine_hello(LaunchRequest(engine_args=QUICK, preload=str(other_preload_lib)))
    assert hello["host"]["preload"]["mapped"] == [str(other_preload_lib)]
    assert verify(scenario, hello) == [
        f"proxy not active: {preload_lib} not loaded in the engine process"]


async def test_preload_that_fails_to_load_is_reported(preload_lib, tmp_path):
    missing = tmp_path / "libvgpu.so"  # the dynamic loader warns and goes on without it
    scenario = proxy_scenario(missing)
    hello = await engine_hello(request_for(scenario, QUICK))
    assert hello["host"]["preload"]["ld_preload"] == [str(missing)]
    assert hello["host"]["preload"]["mapped"] == []
    assert verify(scenario, hello) == [f"proxy not active: {missing} not loaded in the engine process"]
    assert verify(replace(scenario, proxy=replace(scenario.proxy, require_active=False)), hello) == []


def hello_with(mapped=(), ld_preload=(), hypervisor=None) -> dict:
    host = {"preload": {"ld_preload": list(ld_preload), "mapped": list(mapped)}}
    if hypervisor is not None:
        host["hypervisor"] = hypervisor
    return {"v": 1, "type": "hello", "host": host}


def test_library_matching_rules():
    lib = "/usr/local/vgpu/libvgpu.so"
    assert library_mapped(lib, [lib])
    assert library_mapped(lib, ["/usr/local/vgpu/libvgpu.so.1"])            # symlinked soname
    assert library_mapped("libvgpu.so", ["/opt/x/libvgpu.so"])               # bare name
    assert library_mapped(lib, ["/opt/hami/libvgpu.so.2"], ld_preload=[lib])  # engine resolved it
    assert not library_mapped(lib, ["/opt/hami/libvgpu.so.2"])
    assert not library_mapped(lib, ["/usr/local/vgpu/libother.so"])
    assert not library_mapped(lib, ["/usr/local/vgpu/libvgpu_extra.so"])
    assert not library_mapped(lib, [])


def test_proxy_checks_from_hello_lines():
    lib = "/usr/local/vgpu/libvgpu.so"
    scenario = proxy_scenario(lib)
    assert verify(scenario, hello_with([lib], [lib])) == []
    assert verify(scenario, hello_with([], [lib])) == [
        "proxy not active: /usr/local/vgpu/libvgpu.so not loaded in the engine process"]
    # an engine that reported no preload facts at all proves nothing: INVALID too
    assert verify(scenario, {"host": {}}) != []
    assert verify(scenario, {}) != []
    # k8s: only the mounted folder is configured; some preloaded library must be mapped
    k8s = proxy_scenario(None, host_path="/usr/local/vgpu")
    assert verify(k8s, hello_with(["/usr/local/vgpu/libvgpu.so"], ["/usr/local/vgpu/libvgpu.so"])) == []
    assert verify(k8s, hello_with()) == [
        "proxy not active: /usr/local/vgpu/* not loaded in the engine process"]
    # no proxy layer, no proxy reason
    bare = ScenarioConfig(name="bare", title="bare", launcher="local")
    assert verify(bare, hello_with()) == []


def test_hypervisor_checks_from_hello_lines():
    guest = ScenarioConfig(name="vm", title="vm", launcher="ssh", host="vm", target="hypervisor",
                           hypervisor=HypervisorLayer(runtime_class="kata-qemu"))
    detected = {"detected": True, "evidence": ["cpuinfo flag hypervisor"], "vendor": "kvm"}
    assert verify(guest, hello_with(hypervisor=detected)) == []
    assert verify(guest, hello_with(hypervisor={"detected": False, "evidence": []})) == [
        HYPERVISOR_NOT_DETECTED]
    assert verify(guest, hello_with()) == [HYPERVISOR_NOT_DETECTED]   # no facts: not proven
    lax = replace(guest, hypervisor=HypervisorLayer(require_detected=False))
    assert verify(lax, hello_with(hypervisor={"detected": False})) == []
    both = replace(guest, proxy=ProxyLayer(preload="/l/libvgpu.so"))
    assert verify(both, hello_with(hypervisor={"detected": False})) == [
        "proxy not active: /l/libvgpu.so not loaded in the engine process", HYPERVISOR_NOT_DETECTED]


async def test_hypervisor_check_agrees_with_the_real_engine():
    hello = await engine_hello(LaunchRequest(engine_args=QUICK))
    facts = hello["host"]["hypervisor"]
    guest = ScenarioConfig(name="vm", title="vm", launcher="local",
                           hypervisor=HypervisorLayer())
    expected = [] if facts["detected"] else [HYPERVISOR_NOT_DETECTED]
    assert verify(guest, hello) == expected
    assert isinstance(facts["evidence"], list)
    if facts["detected"]:
        assert facts["evidence"]  # detection always says why


def test_verify_accepts_the_hello_event(preload_lib):
    scenario = proxy_scenario(preload_lib)
    event = Hello(hello_with([str(preload_lib)], [str(preload_lib)]))
    assert verify(scenario, event) == []


@pytest.mark.parametrize("mapped", [None, "notalist", [1, 2]])
def test_malformed_preload_facts_never_crash(mapped):
    scenario = proxy_scenario("/l/libvgpu.so")
    hello = {"host": {"preload": {"mapped": mapped, "ld_preload": mapped}}}
    assert verify(scenario, hello) == [
        "proxy not active: /l/libvgpu.so not loaded in the engine process"]
