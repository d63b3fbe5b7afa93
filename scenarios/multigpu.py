"""Multi-GPU hosts: resolve a GPU selection, then one engine session per GPU.

    gpus = await resolve_gpus(launcher, request, "all")          # or "0,2", "GPU-ab12,GPU-cd34"
    for gs in await start_concurrent(launcher, request, gpus):   # concurrent: all started first
        ...gs.gpu.index, gs.session.events()...
    session = await launcher.start(gpu_request(request, gpu, first=i == 0))   # one at a time

Sequential runs start each GPU's session once the previous one has ended; the plan runner
does that itself (gpubench/runner.py), so that cancelling a plan reaches a start in flight.

The selection is resolved against the host's own GPU list: the engine runs once with
`--list-devices` through the same launcher (so an SSH host lists its GPUs, and
CUDA_VISIBLE_DEVICES in the scenario's env applies) and its hello's `host.gpus` is read.
Each session gets `--device <uuid>` (the index when there is no uuid). An unknown index or
UUID is a GpuSelectionError naming the available GPUs, in one line.

`p2p` measures every GPU pair from one process, so it stays in the first GPU's session only.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Sequence

from engine.engine_args import EngineArgs
from engine.plan import UsageError

from .base import LaunchError, LaunchRequest, Launcher, Session
from .collect import collect

LIST_TIMEOUT_S = 120.0


class GpuSelectionError(LaunchError):
    """A --gpus selection that names no GPU of the host (one line, lists what exists)."""


@dataclass(frozen=True)
class GpuInfo:
    index: int
    uuid: str | None = None
    name: str | None = None
    pci_bus_id: str | None = None
    memory_total_mib: float | None = None
    mig_mode: int | None = None
    mig_instance: bool = False

    @classmethod
    def from_fact(cls, d: dict) -> "GpuInfo":
        return cls(index=int(d.get("index", 0)), uuid=d.get("uuid"), name=d.get("name"),
                   pci_bus_id=d.get("pci_bus_id"), memory_total_mib=d.get("memory_total_mib"),
                   mig_mode=d.get("mig_mode"), mig_instance=bool(d.get("mig_instance")))

    @property
    def device_arg(self) -> str:
        return self.uuid or str(self.index)

    def tag(self) -> dict:
        """What a result document stores per session and trial."""
        return {"index": self.index, "uuid": self.uuid, "name": self.name,
                "mig_instance": self.mig_instance}

    def describe(self) -> str:
        return f"{self.index} {self.uuid or ''} ({self.name or '?'})".replace("  ", " ")


@dataclass
class GpuSession:
    gpu: GpuInfo
    session: Session | None            # None: the launch failed (error says why)
    error: str | None = None


def parse_selection(text: str | None) -> str | list[str] | None:
    """None (no selection), "all", or the list of indexes/UUIDs; ValueError if malformed."""
    if text is None:
        return None
    t = str(text).strip()
    if not t:
        raise ValueError("empty GPU selection (use all, 0,2 or GPU UUIDs)")
    if t.lower() == "all":
        return "all"
    items = [p.strip() for p in t.split(",")]
    if any(not p for p in items):
        raise ValueError(f"bad GPU selection {text!r} (use all, 0,2 or GPU UUIDs, comma-separated)")
    if len(set(x.lower() for x in items)) != len(items):
        raise ValueError(f"GPU selection {text!r} names a GPU twice")
    return items


def select(gpus: Sequence[GpuInfo], selection: str | list[str]) -> list[GpuInfo]:
    """The GPUs a parsed selection names, in its order; GpuSelectionError otherwise."""
    if not gpus:
        raise GpuSelectionError("no GPU visible on the host (--list-devices found none)")
    if selection == "all":
        return list(gpus)
    available = "; ".join(g.describe() for g in gpus)
    out = []
    for item in selection:
        found = None
        if item.isdigit():
            found = next((g for g in gpus if g.index == int(item)), None)
        else:
            want = item.lower()
            found = next((g for g in gpus if g.uuid and (
                g.uuid.lower() == want or g.uuid.lower()[4:].startswith(want.removeprefix("gpu-")
                                                                        .removeprefix("mig-")))), None)
        if found is None:
            raise GpuSelectionError(f"unknown GPU {item!r}; available: {available}")
        out.append(found)
    return out


def _engine_args(request: LaunchRequest) -> EngineArgs:
    try:
        return EngineArgs.from_argv(request.engine_args)
    except UsageError as exc:  # what the engine would end with: say it before starting one
        raise LaunchError(f"bad_args: {exc}") from None


async def list_gpus(launcher: Launcher, request: LaunchRequest,
                    timeout: float = LIST_TIMEOUT_S) -> list[GpuInfo]:
    """Run the engine with --list-devices through `launcher`; its hello's host.gpus."""
    try:
        args = replace(_engine_args(request), device=None, list_devices=True)
    except LaunchError as exc:
        raise LaunchError(f"could not list the GPUs: {exc}") from None
    session = await launcher.start(replace(request, engine_args=tuple(args.to_argv()),
                                           label=f"{request.label} (list devices)".strip()))
    try:
        got = await asyncio.wait_for(collect(session), timeout)
    except asyncio.TimeoutError:   # collect() has cancelled the session
        raise LaunchError(f"listing the GPUs took over {timeout:g} s") from None
    if got.hello is None:
        raise LaunchError(f"could not list the GPUs: {got.message}")
    return [GpuInfo.from_fact(g) for g in (got.hello.host.get("gpus") or [])
            if isinstance(g, dict)]


async def resolve_gpus(launcher: Launcher, request: LaunchRequest,
                       selection: str | list[str] | None) -> list[GpuInfo]:
    """The GPUs to run on: `selection` as text ("all", "0,2", UUIDs) or already parsed."""
    if isinstance(selection, str) and selection != "all":
        try:
            selection = parse_selection(selection)
        except ValueError as exc:
            raise GpuSelectionError(str(exc)) from None
    if selection is None:
        raise GpuSelectionError("no GPU selection given")
    return select(await list_gpus(launcher, request), selection)


def gpu_request(request: LaunchRequest, gpu: GpuInfo, first: bool = True) -> LaunchRequest:
    """The request for one GPU's session: --device <uuid or index>; p2p only in the first."""
    args = replace(_engine_args(request), device=gpu.device_arg)
    if "p2p" in args.workloads and not first:
        # nothing else to measure on this GPU: a short launch loop keeps the stream whole
        rest = tuple(w for w in args.workloads if w != "p2p") or ("launch",)
        args = replace(args, workloads=rest)
    label = f"{request.label} gpu{gpu.index}".strip()
    return replace(request, engine_args=tuple(args.to_argv()), label=label)


async def _start(launcher: Launcher, request: LaunchRequest, gpu: GpuInfo, first: bool
                 ) -> GpuSession:
    try:
        return GpuSession(gpu, await launcher.start(gpu_request(request, gpu, first)))
    except LaunchError as exc:
        return GpuSession(gpu, None, str(exc))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a launcher bug: this GPU fails, the others go on
        return GpuSession(gpu, None, f"GPU {gpu.index}: {type(exc).__name__}: {exc}")


async def start_concurrent(launcher: Launcher, request: LaunchRequest,
                           gpus: Sequence[GpuInfo]) -> list[GpuSession]:
    """Start every GPU's session at once; a failed launch is a GpuSession with an error."""
    tasks = [asyncio.ensure_future(_start(launcher, request, g, i == 0))
             for i, g in enumerate(gpus)]
    try:
        return list(await asyncio.gather(*tasks))
    except asyncio.CancelledError:
        for t in tasks:
            if t.done() and not t.cancelled() and t.result().session is not None:
                await t.result().session.cancel()
            else:
                t.cancel()
        raise
