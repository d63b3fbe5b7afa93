"""Isolation layers on top of a launcher: a GPU proxy (LD_PRELOAD + env), MPS and a hypervisor.

A layer is configuration (config.toml `[scenarios.X.proxy]`, `[scenarios.X.mps]`,
`[scenarios.X.hypervisor]`).
How it is applied belongs to the launcher (registry.request_for puts the proxy's
library and env into the LaunchRequest; local and ssh put them on the engine's
command line, k8s mounts the library). Whether it really took effect is judged here,
from the engine's `hello`, never assumed:

    reasons = verify(scenario, hello)     # [] when every configured layer is active

- proxy: the engine reports its LD_PRELOAD entries and which of them are mapped
  into its own process (hello.host.preload {ld_preload, mapped}). A configured
  library that is not mapped means the run measured the bare GPU, not the proxy:
  INVALID "proxy not active: <lib> not loaded in the engine process", never a
  silent second baseline. `require_active = false` skips the check.
  A mapped library is necessary, not sufficient: an interposer can be loaded and
  still see none of CuPy's calls (CuPy resolves the driver with dlopen/dlsym; see
  GPU-FACTS.md). Proving interception is the self-test's job, not this check's.
- mps: the engine must see what an MPS client sees (hello.host.mps, engine/mps_facts.py):
  CUDA_MPS_PIPE_DIRECTORY set, the daemon's control pipe in it, an nvidia-cuda-mps-server
  process, and the configured active thread percentage in its environment. Else INVALID
  "MPS not active: <the first thing missing>": the run measured the GPU without MPS.
- hypervisor: hello.host.hypervisor.detected must be true when the scenario
  expects a guest (`require_detected`, the default): otherwise INVALID
  "hypervisor not detected in the guest".
"""
from __future__ import annotations

import posixpath
import re
from typing import Any, Iterable, Mapping

from scenarios.config import ScenarioConfig

PROXY_NOT_ACTIVE = "proxy not active: {lib} not loaded in the engine process"
HYPERVISOR_NOT_DETECTED = "hypervisor not detected in the guest"
MPS_NOT_ACTIVE = "MPS not active: {why}"


def _host(hello: Mapping[str, Any]) -> Mapping[str, Any]:
    host = hello.get("host") if isinstance(hello, Mapping) else None
    return host if isinstance(host, Mapping) else {}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v for v in value.replace(":", " ").split() if v]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str) and v]
    return []


def _stem(path: str) -> str:
    """libvgpu.so.1.2 -> libvgpu.so: a symlinked soname still names the same library."""
    return re.sub(r"(\.so)(\.[0-9]+)+$", r"\1", posixpath.basename(path))


def library_mapped(library: str, mapped: Iterable[str], ld_preload: Iterable[str] = ()) -> bool:
    """Is `library` (a path as configured, or a bare file name) among the mapped paths?

    Matches by full path; a bare name by file name; a path by file name or soname stem in
    the same folder (`/usr/local/vgpu/libvgpu.so` → mapped `/usr/local/vgpu/libvgpu.so.1`),
    or in any folder when the engine reported that exact entry in its LD_PRELOAD (it then
    resolved the symlink itself). A different library is never a match.
    """
    mapped = list(mapped)
    if library in mapped:
        return True
    name, stem = posixpath.basename(library), _stem(library)
    for path in mapped:
        if posixpath.basename(path) != name and _stem(path) != stem:
            continue
        if "/" not in library or posixpath.dirname(path) == posixpath.dirname(library):
            return True
        if library in ld_preload:
            return True
    return False


def proxy_reasons(scenario: ScenarioConfig, hello: Mapping[str, Any]) -> list[str]:
    proxy = scenario.proxy
    if proxy is None or not proxy.require_active:
        return []
    preload = _host(hello).get("preload")
    facts = preload if isinstance(preload, Mapping) else {}
    mapped = _strings(facts.get("mapped"))
    libraries = _strings(proxy.preload) if proxy.preload else []
    if not libraries:
        # k8s with only host_path/mount_path: the library's name is not configured, so some
        # preloaded library must be mapped (an env-only "proxy" is no proxy at all).
        if mapped:
            return []
        what = f"{proxy.mount_path.rstrip('/')}/*" if proxy.host_path else "an LD_PRELOAD library"
        return [PROXY_NOT_ACTIVE.format(lib=what)]
    entries = _strings(facts.get("ld_preload"))
    return [PROXY_NOT_ACTIVE.format(lib=lib) for lib in libraries
            if not library_mapped(lib, mapped, entries)]


def mps_reasons(scenario: ScenarioConfig, hello: Mapping[str, Any]) -> list[str]:
    layer = scenario.mps
    if layer is None:
        return []
    facts = _host(hello).get("mps")
    if not isinstance(facts, Mapping):
        return [MPS_NOT_ACTIVE.format(why="the engine reported no MPS facts")]
    pipe = facts.get("pipe_directory")
    if facts.get("pipe_directory_set") is not True:
        why = "CUDA_MPS_PIPE_DIRECTORY is not set in the engine"
    elif facts.get("control") is not True:
        why = f"no control pipe in {pipe}"
    elif not facts.get("servers"):
        why = "no nvidia-cuda-mps-server process seen by the engine"
    elif layer.thread_percentage is not None and \
            not _same_number(facts.get("active_thread_percentage"), layer.thread_percentage):
        why = (f"active thread percentage {facts.get('active_thread_percentage')}, "
               f"configured {layer.thread_percentage}")
    else:
        return []
    return [MPS_NOT_ACTIVE.format(why=why)]


def _same_number(text: Any, number: float) -> bool:
    try:
        return float(text) == number
    except (TypeError, ValueError):
        return False


def hypervisor_reasons(scenario: ScenarioConfig, hello: Mapping[str, Any]) -> list[str]:
    layer = scenario.hypervisor
    if layer is None or not layer.require_detected:
        return []
    facts = _host(hello).get("hypervisor")
    if isinstance(facts, Mapping) and facts.get("detected") is True:
        return []
    return [HYPERVISOR_NOT_DETECTED]


def verify(scenario: ScenarioConfig, hello: Mapping[str, Any]) -> list[str]:
    """INVALID reasons for the scenario's layers, judged from the engine's hello line.

    `hello` is the decoded hello line (a dict) or a scenarios.events.Hello (its .data).
    """
    data = getattr(hello, "data", hello)
    if not isinstance(data, Mapping):
        data = {}
    return proxy_reasons(scenario, data) + mps_reasons(scenario, data) + \
        hypervisor_reasons(scenario, data)
