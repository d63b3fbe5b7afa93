"""The proxy under test: a configured local scenario's proxy layer (its preload and env; limits
read from CUDA_DEVICE_MEMORY_LIMIT, CUDA_DEVICE_SM_LIMIT, GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES,
GPUBENCH_INTERPOSE_LAUNCH_RATE), HAMi-core (`libvgpu.so`, the limits written into its own
environment), or gpubench's own interposer as a stand-in proxy, whose caps can be switched off
to prove that the checks say NOT ENFORCED."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from gpubench import interposer
from scenarios.base import LaunchRequest
from scenarios.bench_defaults import parse_size
from scenarios.local import engine_environment
from scenarios.mps import THREAD_PERCENTAGE_VAR as MPS_THREAD_PERCENTAGE
from scenarios.registry import layer_env

from .settings import (HAMI_CACHE, HAMI_LIBRARY, HAMI_MEM_LIMIT, HAMI_POLICY, HAMI_SM_LIMIT,
                       CheckError)

# the variables a proxy takes an SM share from, in percent: HAMi-core's and MPS's
PERCENT_LIMIT_VARS = (HAMI_SM_LIMIT, MPS_THREAD_PERCENTAGE)


@dataclass
class Limits:
    mem_bytes: int | None = None          # memory limit the proxy should apply
    compute_fraction: float | None = None # fraction of unlimited throughput (SM limit %)
    launch_rate: float | None = None      # launches/s cap


@dataclass
class Proxy:
    name: str
    preload: str | None
    env: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)

    def process_env(self) -> dict[str, str]:
        """The environment of a process under this proxy (its env and preload)."""
        return engine_environment(LaunchRequest(env=dict(self.env), preload=self.preload))


def limits_from_env(env: dict[str, str]) -> Limits:
    """The limits a proxy's environment asks for (HAMi's names and the interposer's)."""
    lim = Limits()
    for key in (interposer.ENV_MEM_LIMIT, HAMI_MEM_LIMIT, f"{HAMI_MEM_LIMIT}_0"):
        if env.get(key):
            try:
                lim.mem_bytes = parse_size(env[key])
                break
            except ValueError:
                pass
    for key in PERCENT_LIMIT_VARS:
        if env.get(key):
            try:
                pct = float(env[key])
                if 0 < pct < 100:
                    lim.compute_fraction = pct / 100
            except ValueError:
                pass
    if env.get(interposer.ENV_LAUNCH_RATE):
        try:
            lim.launch_rate = float(env[interposer.ENV_LAUNCH_RATE])
        except ValueError:
            pass
    return lim


def interposer_proxy(limits: Limits, caps_on: bool = True, unhook: str | None = None) -> Proxy:
    """gpubench's interposer as a stand-in GPU proxy; with caps off it applies nothing;
    `unhook` leaves entry points alone (a proxy that misses cuLaunchKernelEx, say)."""
    try:
        lib = str(interposer.library_path())
    except interposer.InterposerBuildError as exc:
        raise CheckError(str(exc)) from None
    env: dict[str, str] = {}
    if caps_on:
        env = interposer.interposer_env(mem_limit_bytes=limits.mem_bytes,
                                        launch_rate=limits.launch_rate)
    if unhook:
        env[interposer.ENV_UNHOOK] = unhook
    name = f"interposer (caps {'on' if caps_on else 'off'}" + (f", {unhook} unhooked)"
                                                               if unhook else ")")
    return Proxy(name, lib, env, limits)


def is_hami(preload: str | None, env: dict[str, str]) -> bool:
    return "libvgpu" in os.path.basename(preload or "") or any(
        k.startswith(HAMI_MEM_LIMIT) or k == HAMI_SM_LIMIT for k in env)


def hami_env(limits: Limits, library: str, policy: str | None = None,
             base: dict[str, str] | None = None) -> dict[str, str]:
    """HAMi-core's environment for these limits: the memory limit in CUDA_DEVICE_MEMORY_LIMIT
    (MiB with its `m` suffix where whole, else bytes), the SM fraction as the percentage
    CUDA_DEVICE_SM_LIMIT, the utilisation policy, and a private shared-region file: HAMi keeps
    its limits and usage there, and a file left by another run would impose that run's limits."""
    env = dict(base or {})
    if limits.mem_bytes is not None:
        mib, rest = divmod(limits.mem_bytes, 1 << 20)
        env[HAMI_MEM_LIMIT] = f"{mib}m" if not rest else str(limits.mem_bytes)
    if limits.compute_fraction is not None:
        env[HAMI_SM_LIMIT] = str(max(1, round(limits.compute_fraction * 100)))
    if policy:
        env[HAMI_POLICY] = policy
    # HAMi's dlsym hook hands out the functions of the library at CUDA_REDIRECT (default: its
    # install path); preloaded from anywhere else without it, it would intercept nothing
    env.setdefault("CUDA_REDIRECT", library)
    if HAMI_CACHE not in env:
        folder = tempfile.mkdtemp(prefix="gpubench-hami-")
        atexit.register(shutil.rmtree, folder, True)
        env[HAMI_CACHE] = os.path.join(folder, "cudevshr.cache")
    return env


def hami_proxy(limits: Limits, library: str | None = None, policy: str | None = None) -> Proxy:
    """HAMi-core preloaded with these limits (`gpubench check --proxy hami`)."""
    lib = library or HAMI_LIBRARY
    if not os.path.isfile(lib):
        raise CheckError(f"no HAMi-core library at {lib}: build it (shared/vendor/README.md) "
                         "or name it with --proxy-lib")
    if limits.launch_rate is not None:
        raise CheckError("HAMi-core has no launch-rate cap: use --compute-fraction (its SM "
                         "limit) or the interposer")
    try:   # the folder of HAMi's cross-process lock; without it every process logs an error
        os.makedirs("/tmp/vgpulock", exist_ok=True)
    except OSError:
        pass
    name = "HAMi-core" + (f" (policy {policy})" if policy else "")
    return Proxy(name, lib, hami_env(limits, lib, policy), limits)


def scenario_proxy(scenario, overrides: Limits) -> Proxy:
    """The scenario's layer as the proxy under test: its proxy layer, and its MPS layer's
    limits (the daemon's folders join them when it runs: mps_layer.py)."""
    if scenario.launcher != "local":
        raise CheckError(f"scenario {scenario.name}: the enforcement probes run on local "
                         f"scenarios only (launcher is {scenario.launcher})")
    env, preload = layer_env(scenario)
    if scenario.mps is not None:
        env.update(scenario.mps.client_env())
    lim = limits_from_env(env)
    for name in ("mem_bytes", "compute_fraction", "launch_rate"):
        if getattr(overrides, name) is not None:
            setattr(lim, name, getattr(overrides, name))
    if preload and is_hami(preload, env):
        # the limits checked are the limits HAMi is given, overrides included
        env = hami_env(lim, preload, env.get(HAMI_POLICY), base=env)
    return Proxy(scenario.name, preload, env, lim)
