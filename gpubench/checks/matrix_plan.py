"""What the interference matrix runs: its victims and aggressors as engine command lines, and
the isolation layers this host offers (or why it offers one not).

    VICTIMS      decode (batch 64, or --victim-batch), roundtrip (pinned 64 KiB),
                 launch (launch + synchronize)
    AGGRESSORS   gemm (saturation), d2d / h2d (copy bandwidth), alloc (allocation storm),
                 launch (async launch storm), decode (another decode, batch 8)
    LAYERS       none (time-slicing), mps (a private MPS daemon at a thread percentage),
                 proxy (the check's proxy: gpubench's interposer or a scenario's), hami
                 (HAMi-core's libvgpu.so with an SM limit, where installed)

Each side is its own engine process with one workload; the aggressor runs two windows more
than the victim, so that it is still loading the GPU when the victim's last window ends. A
layer the host cannot offer is kept with its reason (NOT AVAILABLE), never dropped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from engine.engine_args import EngineArgs
from scenarios.base import LaunchRequest
from scenarios.config import ProxyLayer, ScenarioConfig
from scenarios.local import LocalLauncher
from scenarios.mps import DEFAULT_CONTROL, MpsLayer
from scenarios.mps_control import resolve as find_control

from .contention import engine_args
from .matrix_settings import MatrixSettings
from .proxy import Limits, Proxy, hami_env
from .settings import CheckError, Settings

EXTRA_AGGRESSOR_WINDOWS = 2
NOT_AVAILABLE = "NOT AVAILABLE"
CPU_NO_DRIVER = "the CPU backend makes no driver calls for a proxy to intercept"


def role_args(kind: str, role: str, settings: Settings, ms: MatrixSettings) -> EngineArgs:
    """The engine command line of a victim or an aggressor (`role`) of workload `kind`."""
    gpu = settings.backend != "numpy-cpu"
    windows = ms.windows + (EXTRA_AGGRESSOR_WINDOWS if role == "aggressor" else 0)
    base = replace(settings, duration=ms.window_s, repeats=windows)
    extra: dict = {}
    workload = kind
    if kind == "decode":
        extra["decode_batches"] = (str(ms.victim_batch),) if role == "victim" else ("8",)
    elif kind == "roundtrip":
        extra["memory"] = ("pinned",)
    elif kind == "launch":
        extra["launch_modes"] = ("sync",) if role == "victim" else ("async",)
    elif kind == "gemm":
        extra["gemm_size"] = settings.gemm_n if gpu else 256
    elif kind in ("d2d", "h2d"):
        extra["sizes"] = ("256MiB",) if gpu else ("4MiB",)
        extra["memory"] = ("pinned",)
    elif kind != "alloc":          # alloc: the engine's two allocation variants as they are
        raise CheckError(f"matrix: no engine workload for {kind!r}")
    return engine_args(base, workload, **extra)


@dataclass
class Layer:
    """One isolation layer of the matrix: how its engines start, or why it cannot."""
    name: str
    label: str
    unavailable: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    preload: str | None = None
    mps: MpsLayer | None = None

    def launcher(self, python: str | None) -> LocalLauncher:
        return LocalLauncher(python, mps=self.mps)

    def request(self, args: EngineArgs, label: str) -> LaunchRequest:
        return LaunchRequest(engine_args=tuple(args.to_argv()), env=dict(self.env),
                             preload=self.preload, label=label)

    def scenario(self) -> ScenarioConfig:
        """The layer as a scenario, for scenarios.layers.verify to judge from a hello."""
        proxy = ProxyLayer(preload=self.preload, env=dict(self.env)) if self.preload else None
        return ScenarioConfig(name=f"matrix-{self.name}", title=self.label, launcher="local",
                              proxy=proxy, mps=self.mps)


def host_layers(ms: MatrixSettings, backend: str, proxy: Proxy | None) -> list[Layer]:
    """The requested layers, each ready to run or NOT AVAILABLE with why."""
    cpu = backend == "numpy-cpu"
    pct = ms.thread_percentage
    out = []
    for name in ms.layers:
        if name == "none":
            out.append(Layer("none", "none (time-slicing)"))
        elif name == "mps":
            control = ms.mps_control or DEFAULT_CONTROL
            layer = Layer("mps", f"MPS {pct}%", mps=MpsLayer(thread_percentage=pct,
                                                              control=control))
            if cpu:
                layer.unavailable = "the CPU backend: MPS shares a GPU's SMs between processes"
            elif find_control(control) is None:
                layer.unavailable = f"no MPS control program ({control} not found)"
            out.append(layer)
        elif name == "proxy":
            label = f"proxy {proxy.name}" if proxy else "proxy"
            layer = Layer("proxy", label, env=dict(proxy.env) if proxy else {},
                          preload=proxy.preload if proxy else None)
            if cpu:
                layer.unavailable = CPU_NO_DRIVER
            elif not layer.preload:
                layer.unavailable = "the check's proxy has no library to preload"
            out.append(layer)
        elif name == "hami":
            # HAMi's own environment (its redirect, a shared-region file of this layer's own
            # that the victim and the aggressor share, as two processes of one pod do);
            # its default policy: with two processes on the GPU, it throttles
            layer = Layer("hami", f"HAMi-core SM {pct}%", preload=ms.hami_library,
                          env=hami_env(Limits(compute_fraction=pct / 100), ms.hami_library))
            if not os.path.isfile(ms.hami_library):
                layer.unavailable = f"no HAMi-core library at {ms.hami_library}"
            elif cpu:
                layer.unavailable = CPU_NO_DRIVER
            out.append(layer)
    return out

