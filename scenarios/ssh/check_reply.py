"""The remote check's reply (remote_check.py's `GPUBENCH_CHECK {json}`) read on the client: what
the remote Python has, the notes for the user (cupy or nvidia-ml-py missing, with the exact pip
command), and one-line refusals when the engine cannot run there (Python < 3.9, no numpy, an
unsafe cache folder, `--backend cupy` without cupy).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from scenarios.base import LaunchError
from scenarios.config import HostConfig

from .remote_check import one_line

MIN_PYTHON = (3, 9)
CHECK_MARK = "GPUBENCH_CHECK "     # the line that carries the check's JSON


@dataclass
class RemoteCheck:
    """What the remote interpreter has; `notes` are the lines to show the user."""
    python: str
    executable: str
    packages: dict[str, dict[str, Any]]
    driver_version: str | None
    notes: list[str] = field(default_factory=list)
    deployed: str | None = None     # the engine bundle's remote folder, when already there

    def has(self, module: str) -> bool:
        return bool(self.packages.get(module, {}).get("ok"))


def cupy_package(driver_version: str | None) -> str:
    """The CuPy wheel that matches the NVIDIA driver (CUDA 13 needs driver >= 580)."""
    try:
        major = int((driver_version or "").split(".")[0])
    except ValueError:
        major = 0
    return "cupy-cuda13x" if major >= 580 else "cupy-cuda12x"


def driver_from(text: str | None) -> str | None:
    """The driver version in /proc/driver/nvidia/version's text."""
    m = re.search(r"Kernel Module(?: for [^ ]+)?\s+([0-9]+\.[0-9.]+)", text or "")
    return m.group(1) if m else None


def wants_cupy(args: tuple[str, ...]) -> bool:
    """Whether the engine arguments ask for `--backend cupy`."""
    for i, a in enumerate(args):
        if a == "--backend" and i + 1 < len(args) and args[i + 1] == "cupy":
            return True
        if a == "--backend=cupy":
            return True
    return False


def started(text: str) -> bool:
    """Did the check script (--start mode) hand over to the engine?"""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("started") is True


def no_check_reply(host: HostConfig, exit_status: int | None, stderr: str) -> LaunchError:
    """The error for a check that wrote no verdict: the python is missing or failed."""
    py = host.python
    name = f"ssh {host.name}"
    err = (stderr.strip().splitlines() or ["no output"])[-1]
    if exit_status == 127:
        return LaunchError(f"{name}: remote python {py!r} not found ({err}); set "
                           f"python = \"/path/to/python3\" under [hosts.{host.name}]")
    return LaunchError(f"{name}: remote python {py!r} failed the check (exit "
                       f"{exit_status}): {err}")


def judge_check(host: HostConfig, text: str) -> RemoteCheck:
    """The check script's JSON → RemoteCheck with the notes for the user; LaunchError (one
    line saying exactly what is missing) when the engine cannot run there."""
    py = host.python
    name = f"ssh {host.name}"
    try:
        data = json.loads(text)
        check = RemoteCheck(str(data["python"]), data.get("executable") or py,
                            dict(data["packages"]), driver_from(data.get("driver")))
        version = tuple(int(x) for x in check.python.split(".")[:2])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise LaunchError(f"{name}: remote python {py!r} gave an unreadable check reply: "
                          f"{text[:80]!r}") from None
    deployed = data.get("deployed")
    check.deployed = deployed if isinstance(deployed, str) and deployed.startswith("/") else None
    replaced = data.get("replaced")
    if isinstance(replaced, str):
        check.notes.append(f"{name}: {one_line(replaced)}; uploading a fresh copy")
    if version < MIN_PYTHON:
        raise LaunchError(f"{name}: remote {py} is Python {check.python}; the engine needs "
                          f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer: set python = under "
                          f"[hosts.{host.name}]")
    pip = f"{py} -m pip install"
    if not check.has("numpy"):
        why = check.packages.get("numpy", {}).get("error", "")
        raise LaunchError(f"{name}: numpy is missing on the host ({why}); install it with: "
                          f"{pip} numpy")
    if data.get("cache_error"):
        raise LaunchError(f"{name}: {one_line(str(data['cache_error']))}")
    if not check.has("cupy"):
        if check.driver_version:
            check.notes.append(f"{name}: cupy missing (NVIDIA driver {check.driver_version}): "
                               f"the engine will use the numpy-cpu backend; install it with: "
                               f"{pip} {cupy_package(check.driver_version)}")
        else:
            check.notes.append(f"{name}: cupy missing and no NVIDIA driver found: the engine "
                               f"will use the numpy-cpu backend; on a GPU host install it "
                               f"with: {pip} cupy-cuda12x (driver < 580) or cupy-cuda13x")
    if not check.has("pynvml"):
        check.notes.append(f"{name}: nvidia-ml-py missing: no GPU telemetry; install it "
                           f"with: {pip} nvidia-ml-py")
    return check


def cupy_refusal(check: RemoteCheck) -> str:
    """The one line for `--backend cupy` on a host without cupy."""
    return (next(n for n in check.notes if "cupy" in n)
            .replace("the engine will use the numpy-cpu backend", "--backend cupy cannot run"))
