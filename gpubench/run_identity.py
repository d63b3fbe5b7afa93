"""What a run records about where it came from: the scenario as plain data (results/ never
sees the config model) and the commit of the code that measured it.

Both the plan's runs (gpubench/plan_runs.py) and a legacy import (gpubench/services/legacy.py)
stamp their documents with these.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from scenarios.config import Config, ScenarioConfig

REPO_DIR = Path(__file__).resolve().parent.parent


def scenario_record(s: ScenarioConfig, config: Config) -> dict:
    """The scenario as the document stores it (plain data; results/ never sees config)."""
    details: dict[str, Any] = {}
    if s.proxy is not None:
        details["proxy"] = {"preload": s.proxy.preload, "env": dict(s.proxy.env),
                            "host_path": s.proxy.host_path, "mount_path": s.proxy.mount_path}
    if s.hypervisor is not None:
        details["hypervisor"] = {"runtime_class": s.hypervisor.runtime_class,
                                 "require_detected": s.hypervisor.require_detected}
    if s.mps is not None:
        details["mps"] = {"thread_percentage": s.mps.thread_percentage,
                          "pinned_memory_limit": s.mps.pinned_memory_limit,
                          "control": s.mps.control}
    if s.env:
        details["env"] = dict(s.env)
    if s.launcher == "k8s" and s.cluster in config.clusters:
        c = config.clusters[s.cluster]
        details["cluster"] = {"name": c.name, "namespace": c.namespace, "image": c.image,
                              "context": c.context}
        if s.node_selector:
            details["node_selector"] = dict(s.node_selector)
    if s.launcher == "ssh" and s.host in config.hosts:
        details["address"] = config.hosts[s.host].address
    details["gpus"] = s.gpus
    if s.gpu_select is not None:
        details["gpu_select"] = s.gpu_select
    return {"name": s.name, "title": s.title, "launcher": s.launcher,
            "host": s.host if s.launcher != "k8s" else None, "cluster": s.cluster,
            "target": s.target, "target_pct": s.target_pct, "baseline": s.baseline,
            "details": details}


def git_commit(repo: Path = REPO_DIR) -> str | None:
    """HEAD of the checkout gpubench runs from; None outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) >= 7 else None
