"""From a configured scenario to a Launcher and a LaunchRequest.

Launcher modules are imported lazily so that, say, the local launcher works on a
machine where the kubernetes client is broken.
"""
from __future__ import annotations

from scenarios.config import Config, ScenarioConfig

from .base import LaunchRequest, Launcher


def launcher_for(scenario: ScenarioConfig, config: Config) -> Launcher:
    if scenario.launcher == "local":
        from .local import LocalLauncher
        return LocalLauncher(mps=scenario.mps)
    if scenario.launcher == "ssh":
        from .ssh.launcher import SshLauncher
        return SshLauncher.from_config(config.hosts[scenario.host or "local"], mps=scenario.mps)
    if scenario.launcher == "k8s":
        from .k8s.launcher import K8sLauncher
        return K8sLauncher.from_config(config.clusters[scenario.cluster or ""], scenario)
    raise ValueError(f"unknown launcher {scenario.launcher!r}")


def layer_env(scenario: ScenarioConfig) -> tuple[dict[str, str], str | None]:
    """The environment the scenario's engine runs in (its own env, then its proxy layer's)
    and the proxy library to preload (None without a proxy layer)."""
    env = dict(scenario.env)
    if scenario.proxy is None:
        return env, None
    env.update(scenario.proxy.env)
    return env, scenario.proxy.preload


def request_for(scenario: ScenarioConfig, engine_args: list[str] | tuple[str, ...],
                label: str = "") -> LaunchRequest:
    """The engine arguments plus the scenario's environment and GPU proxy layer."""
    env, preload = layer_env(scenario)
    return LaunchRequest(engine_args=tuple(engine_args), env=env, preload=preload,
                         label=label or scenario.name)
