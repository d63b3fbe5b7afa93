"""What the engine can see of CUDA MPS, for `hello` (host.mps).

A CUDA client runs under MPS when the driver finds a control daemon's pipe in
CUDA_MPS_PIPE_DIRECTORY (default /tmp/nvidia-mps) at initialisation; the daemon then starts an
`nvidia-cuda-mps-server`, which holds the GPU for all its clients. So the evidence is: the
variable, the daemon's `control` pipe in that folder (and its pid file), a server process, and
the limits this process asked for (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE,
CUDA_MPS_PINNED_DEVICE_MEM_LIMIT). The server is found by its argv[0] in /proc (its 15-character
comm cannot tell it from the control daemon). Nothing here raises: a missing or unreadable source
is no evidence.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

DEFAULT_PIPE_DIRECTORY = "/tmp/nvidia-mps"
SERVER_NAME = "nvidia-cuda-mps-server"
PID_FILE = "nvidia-cuda-mps-control.pid"
MAX_SERVERS = 16        # listed in hello; more would only repeat the same answer


def server_pids(proc: str | os.PathLike = "/proc") -> list[int]:
    """PIDs of the nvidia-cuda-mps-server processes this process can see."""
    found: list[int] = []
    try:
        entries = os.listdir(proc)
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            argv0 = (Path(proc) / entry / "cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if os.path.basename(argv0.decode("utf-8", "replace")) == SERVER_NAME:
            found.append(int(entry))
            if len(found) >= MAX_SERVERS:
                break
    return sorted(found)


def daemon_pid(pipe: str) -> int | None:
    """The control daemon's PID from the pid file it writes in its pipe folder."""
    try:
        with open(os.path.join(pipe, PID_FILE)) as fh:
            pid = int(fh.read(32).strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def mps_facts(env: Mapping[str, str] | None = None, proc: str | os.PathLike = "/proc") -> dict:
    """{pipe_directory, pipe_directory_set, control, daemon_pid, servers,
    active_thread_percentage, pinned_device_mem_limit}. /proc is only searched where a control
    pipe is there to find."""
    env = os.environ if env is None else env
    given = env.get("CUDA_MPS_PIPE_DIRECTORY") or None
    pipe = given or DEFAULT_PIPE_DIRECTORY
    control = os.path.exists(os.path.join(pipe, "control"))
    return {
        "pipe_directory": pipe,
        "pipe_directory_set": given is not None,
        "control": control,
        "daemon_pid": daemon_pid(pipe) if control else None,
        "servers": server_pids(proc) if control else [],
        "active_thread_percentage": env.get("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"),
        "pinned_device_mem_limit": env.get("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"),
    }
