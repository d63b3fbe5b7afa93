"""Isolation layers on top of a launcher: a GPU proxy (LD_PRELOAD + env), MPS and a hypervisor.

A layer is configuration (config.toml `[scenarios.X.proxy]`, `[scenarios.X.mps]`,
`[scenarios.X.hypervisor]`).
How it is applied belongs to the launcher (registry.request_for puts the proxy's
library and env into the LaunchRequest; local and ssh put them on the engine's
command line, k8s mounts the library). Whether it really took effect is judged here,
from the engine's `hello`, never assumed:

    reasons = verify(scenario, hello)     # [] when every configured layer is active
    notes = proxy_notes(scenario, hello)  # what the judgement could not prove

- proxy: active means mapped AND intercepting. The engine reports its LD_PRELOAD entries
  and which of them are mapped into its own process (hello.host.preload {ld_preload,
  mapped}); a configured library that is not mapped means the run measured the bare GPU:
  INVALID "proxy not active: <lib> not loaded in the engine process", never a silent second
  baseline. Mapped is not enough: CuPy resolves the driver with dlopen/dlsym and the runtime
  with cuGetProcAddress (GPU-FACTS.md), so a loaded library can see none of the calls. The
  engine resolves the driver's entry points both ways and names each address's owner
  (hello.host.preload.resolves, engine/interception.py); a mapped proxy that owns none of
  them is INVALID "proxy not intercepting: cuLaunchKernel resolves to libcuda.so.1 (...)".
  Where the engine could not resolve anything (no libcuda in its process: the CPU backend on
  a machine without a driver), the mapped check stands alone and proxy_notes() says that
  interception was not proven. `require_active = false` skips both checks.
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
PROXY_NOT_INTERCEPTING = "proxy not intercepting: {symbol} resolves to {owner} ({detail})"
PROXY_PARTLY = "proxy intercepts {owned} of {total} driver lookups; these bypass it: {missed}"
PROXY_NOT_PROVEN = ("proxy interception not proven: {why}; only that {lib} is mapped in the "
                    "engine process was checked")
DOORS = (("dlsym", "dlsym"), ("getproc", "cuGetProcAddress"))
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


def _resolves(facts: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """hello.host.preload.resolves as {symbol: {door: owner path}}, unresolved doors left out."""
    raw = facts.get("resolves")
    out: dict[str, dict[str, str]] = {}
    for symbol, doors in (raw.items() if isinstance(raw, Mapping) else ()):
        if isinstance(symbol, str) and isinstance(doors, Mapping):
            got = {door: path for door, _ in DOORS
                   if isinstance(path := doors.get(door), str) and path}
            if got:
                out[symbol] = got
    return out


def _proxy_libraries(proxy, mapped: list[str]) -> list[str]:
    """The configured libraries; k8s with only a mounted folder: every mapped preloaded one."""
    return _strings(proxy.preload) if proxy.preload else mapped


def _bypasses(resolves: dict[str, dict[str, str]], libraries: list[str],
              entries: list[str]) -> dict[str, dict[str, str]]:
    """The lookups whose owner is none of the proxy's libraries."""
    out: dict[str, dict[str, str]] = {}
    for symbol, doors in resolves.items():
        for door, path in doors.items():
            if not any(library_mapped(lib, [path], entries) for lib in libraries):
                out.setdefault(symbol, {})[door] = path
    return out


def _not_intercepting(resolves: dict[str, dict[str, str]], libraries: list[str]) -> str:
    symbol = "cuLaunchKernel" if "cuLaunchKernel" in resolves else next(iter(resolves))
    doors = resolves[symbol]
    owners = list(dict.fromkeys(doors.values()))
    names = dict(DOORS)
    if len(owners) == 1:
        how = f"{owners[0]} by {' and '.join(names[d] for d in doors)}"
    else:
        how = ", ".join(f"{path} by {names[d]}" for d, path in doors.items())
    lookups = sum(len(d) for d in resolves.values())
    detail = f"{how}; none of {lookups} driver lookups reaches {' or '.join(libraries)}"
    return PROXY_NOT_INTERCEPTING.format(symbol=symbol, owner=posixpath.basename(owners[0]),
                                         detail=detail)


def proxy_reasons(scenario: ScenarioConfig, hello: Mapping[str, Any]) -> list[str]:
    proxy = scenario.proxy
    if proxy is None or not proxy.require_active:
        return []
    preload = _host(hello).get("preload")
    facts = preload if isinstance(preload, Mapping) else {}
    mapped = _strings(facts.get("mapped"))
    entries = _strings(facts.get("ld_preload"))
    if not proxy.preload:
        # k8s with only host_path/mount_path: the library's name is not configured, so some
        # preloaded library must be mapped (an env-only "proxy" is no proxy at all).
        if not mapped:
            what = f"{proxy.mount_path.rstrip('/')}/*" if proxy.host_path else "an LD_PRELOAD library"
            return [PROXY_NOT_ACTIVE.format(lib=what)]
    else:
        missing = [lib for lib in _strings(proxy.preload) if not library_mapped(lib, mapped, entries)]
        if missing:
            return [PROXY_NOT_ACTIVE.format(lib=lib) for lib in missing]
    resolves = _resolves(facts)
    libraries = _proxy_libraries(proxy, mapped)
    if not resolves or _bypasses(resolves, libraries, entries) != resolves:
        return []
    return [_not_intercepting(resolves, libraries)]


def proxy_notes(scenario: ScenarioConfig, hello: Mapping[str, Any]) -> list[str]:
    """What verify() leaves unsaid about an active proxy: that its interception could not be
    tested (no driver to resolve against), or which driver lookups bypass it."""
    proxy = scenario.proxy
    data = getattr(hello, "data", hello)
    if proxy is None or not proxy.require_active or not isinstance(data, Mapping) \
            or proxy_reasons(scenario, data):
        return []
    preload = _host(data).get("preload")
    facts = preload if isinstance(preload, Mapping) else {}
    libraries = _proxy_libraries(proxy, _strings(facts.get("mapped")))
    resolves = _resolves(facts)
    if not resolves:
        why = facts.get("resolves_error")
        why = why if isinstance(why, str) and why else "the engine reported no driver lookups"
        return [PROXY_NOT_PROVEN.format(why=why, lib=" and ".join(libraries))]
    missed = _bypasses(resolves, libraries, _strings(facts.get("ld_preload")))
    if not missed:
        return []
    total = sum(len(d) for d in resolves.values())
    names = dict(DOORS)
    listed = ", ".join(f"{sym} by {' and '.join(names[d] for d in doors)} "
                       f"({posixpath.basename(next(iter(doors.values())))})"
                       for sym, doors in missed.items())
    return [PROXY_PARTLY.format(owned=total - sum(len(d) for d in missed.values()), total=total,
                                missed=listed)]


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
