"""Proxy and hypervisor layers: verify() judged from the engine's real hello line.

The preload library is built from tests/data/preload_probe.c with `cc -shared -fPIC`
at test time; the engine runs for real (numpy-cpu) through the local launcher, so the
"mapped" evidence comes from the engine's own /proc/self/maps. Interception is judged
against the fake driver of tests/support/fake_cuda.py (found by soname through
LD_LIBRARY_PATH, as CuPy finds libcuda) with gpubench's interposer as the proxy that
really wraps dlsym and cuGetProcAddress.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from scenarios.config import HypervisorLayer, ProxyLayer, ScenarioConfig
from scenarios.base import LaunchRequest
from scenarios.events import COMPLETED, Hello
from engine.interception import ENTRY_POINTS
from scenarios.layers import HYPERVISOR_NOT_DETECTED, library_mapped, proxy_notes, verify
from scenarios.local import LocalLauncher
from scenarios.registry import request_for
from tests.support.fake_cuda import fake_driver, interposer_lib  # noqa: F401 (fixtures)
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


async def test_loaded_and_intercepting_proxy_is_active(interposer_lib, fake_driver, monkeypatch):
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_driver))
    scenario = proxy_scenario(interposer_lib, env={"CUDA_DEVICE_MEMORY_LIMIT": "16g"})
    hello = await engine_hello(request_for(scenario, QUICK))
    assert hello["host"]["preload"]["mapped"] == [str(interposer_lib)]
    assert hello["host"]["preload"]["resolves"]["cuLaunchKernel"]["dlsym"] == str(interposer_lib)
    assert hello["host"]["env"]["CUDA_DEVICE_MEMORY_LIMIT"] == "16g"
    assert verify(scenario, hello) == []
    assert proxy_notes(scenario, hello) == []


async def test_loaded_library_that_intercepts_nothing_makes_the_run_invalid(
        preload_lib, fake_driver, monkeypatch):
    """Mapped is not active: the probe library wraps neither dlsym nor cuGetProcAddress."""
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_driver))
    scenario = proxy_scenario(preload_lib)
    hello = await engine_hello(request_for(scenario, QUICK))
    assert hello["host"]["preload"]["mapped"] == [str(preload_lib)]
    driver = fake_driver / "libcuda.so.1"
    assert verify(scenario, hello) == [
        f"proxy not intercepting: cuLaunchKernel resolves to libcuda.so.1 ({driver} by dlsym "
        f"and cuGetProcAddress; none of 19 driver lookups reaches {preload_lib})"]


async def test_a_proxy_that_unhooks_every_entry_point_is_not_intercepting(
        interposer_lib, fake_driver, monkeypatch):
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_driver))
    unhook = ",".join(sym for sym, _ in ENTRY_POINTS)
    scenario = proxy_scenario(interposer_lib, env={"GPUBENCH_INTERPOSE_UNHOOK": unhook})
    hello = await engine_hello(request_for(scenario, QUICK))
    reasons = verify(scenario, hello)
    assert len(reasons) == 1 and reasons[0].startswith(
        "proxy not intercepting: cuLaunchKernel resolves to libcuda.so.1 (")
    # leave launches alone only: still a proxy, and the note names what bypasses it
    scenario = proxy_scenario(interposer_lib, env={"GPUBENCH_INTERPOSE_UNHOOK": "cuLaunchKernel"})
    hello = await engine_hello(request_for(scenario, QUICK))
    assert verify(scenario, hello) == []
    assert proxy_notes(scenario, hello) == [
        "proxy intercepts 17 of 19 driver lookups; these bypass it: "
        "cuLaunchKernel by dlsym and cuGetProcAddress (libcuda.so.1)"]


async def test_without_a_driver_the_mapped_check_stands_and_says_so(preload_lib, tmp_path,
                                                                     monkeypatch):
    """No libcuda the engine can load (an unloadable file shadows any real one): mapped is all
    that can be checked, and the note says interception was not proven."""
    (tmp_path / "libcuda.so.1").write_text("not a library\n")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    scenario = proxy_scenario(preload_lib)
    hello = await engine_hello(request_for(scenario, QUICK))
    assert verify(scenario, hello) == []
    notes = proxy_notes(scenario, hello)
    assert len(notes) == 1
    assert notes[0].startswith("proxy interception not proven: no driver library to resolve "
                               f"against: {tmp_path}/libcuda.so.1: ")
    assert notes[0].endswith(f"; only that {preload_lib} is mapped in the engine process was "
                             "checked")


async def test_configured_library_not_loaded_makes_the_run_invalid(preload_lib):
    scenario = proxy_scenario(preload_lib)
    # the proxy was configured but the launch forgot LD_PRELOAD: a silent second baseline
    hello = await engine_hello(LaunchRequest(engine_args=QUICK))
    preload = hello["host"]["preload"]
    assert (preload["ld_preload"], preload["mapped"]) == ([], [])
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


def hello_with(mapped=(), ld_preload=(), hypervisor=None, resolves=None) -> dict:
    host = {"preload": {"ld_preload": list(ld_preload), "mapped": list(mapped)}}
    if resolves is not None:
        host["preload"]["resolves"] = resolves
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


def test_interception_judged_from_hello_lines():
    lib, cuda = "/usr/local/vgpu/libvgpu.so", "/usr/lib/x86_64-linux-gnu/libcuda.so.1"
    scenario = proxy_scenario(lib)

    def hello(**resolves):
        return hello_with([lib], [lib], resolves=resolves)

    both = {"dlsym": lib, "getproc": lib}
    assert verify(scenario, hello(cuLaunchKernel=both, cuMemAlloc_v2=both)) == []
    bypass = {"dlsym": cuda, "getproc": cuda}
    assert verify(scenario, hello(cuMemAlloc_v2=bypass, cuLaunchKernel=bypass)) == [
        f"proxy not intercepting: cuLaunchKernel resolves to libcuda.so.1 ({cuda} by dlsym and "
        f"cuGetProcAddress; none of 4 driver lookups reaches {lib})"]
    # the two doors answered differently, neither with the proxy
    odd = hello(cuLaunchKernel={"dlsym": "/opt/other.so", "getproc": cuda})
    assert verify(scenario, odd) == [
        f"proxy not intercepting: cuLaunchKernel resolves to other.so (/opt/other.so by dlsym, "
        f"{cuda} by cuGetProcAddress; none of 2 driver lookups reaches {lib})"]
    # one door is enough to be a proxy; the other is a note
    half = hello(cuLaunchKernel={"dlsym": lib, "getproc": cuda}, cuMemFree_v2={"dlsym": None})
    assert verify(scenario, half) == []
    assert proxy_notes(scenario, half) == [
        "proxy intercepts 1 of 2 driver lookups; these bypass it: "
        "cuLaunchKernel by cuGetProcAddress (libcuda.so.1)"]
    # nothing resolved at all proves nothing either way: the mapped check stands, noted
    for unresolved in (hello(), hello(cuLaunchKernel={"dlsym": None, "getproc": None})):
        assert verify(scenario, unresolved) == []
        assert proxy_notes(scenario, unresolved) == [
            "proxy interception not proven: the engine reported no driver lookups; only that "
            f"{lib} is mapped in the engine process was checked"]
    # an inactive proxy has its reason and no note; require_active = false, neither
    assert proxy_notes(scenario, hello_with([], [lib])) == []
    lax = proxy_scenario(lib, require_active=False)
    assert verify(lax, hello(cuLaunchKernel=bypass)) == proxy_notes(lax, hello()) == []
    # k8s with only the mounted folder: the mapped preloaded libraries are the proxy
    k8s = proxy_scenario(None, host_path="/usr/local/vgpu")
    assert verify(k8s, hello(cuLaunchKernel=both)) == []
    assert verify(k8s, hello(cuLaunchKernel=bypass))[0].startswith(
        "proxy not intercepting: cuLaunchKernel resolves to libcuda.so.1")


@pytest.mark.parametrize("resolves", [None, "x", [1], {"cuLaunchKernel": "x"},
                                      {"cuLaunchKernel": {"dlsym": 3}}, {1: {"dlsym": "/a.so"}}])
def test_malformed_resolution_facts_never_crash(resolves):
    lib = "/l/libvgpu.so"
    hello = hello_with([lib], [lib])
    hello["host"]["preload"]["resolves"] = resolves
    assert verify(proxy_scenario(lib), hello) == []
    assert proxy_notes(proxy_scenario(lib), hello)[0].startswith("proxy interception not proven")


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
