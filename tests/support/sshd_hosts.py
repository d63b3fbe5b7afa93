"""Simulated hosts behind a real OpenSSH sshd (tests/support/sshd.py): the product's real
check, SFTP deployment and remote supervisor, with a remote "python" that replays a stream
(sim_engine.py) when asked for `-m engine`.

    server = OpenSshServer.start(folder / "sshd", client_key=keys["client_key"], options=FLEET_SSHD_OPTIONS)
    hosts = sshd_host_configs(server, ["sshd-00", "sshd-01"], folder, rate=2.0)
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Iterable

from scenarios.config import HostConfig
from tests.support.sshd import OpenSshServer

SIM_ENGINE = Path(__file__).resolve().with_name("sim_engine.py")
# sshd options for simulated hosts: the engine's environment is accepted as on a GPU host,
# and little is logged at fleet scale.
FLEET_SSHD_OPTIONS = {
    "MaxSessions": "100", "AcceptEnv": "GPUBENCH_* CUDA_* LD_PRELOAD", "PermitUserEnvironment": "no",
    "PermitRootLogin": "yes", "LogLevel": "ERROR",
    # bash runs ~/.bashrc for a command from sshd when it is the top shell (SHLVL < 2):
    # this machine's root .bashrc (pyenv init: ~0.15 s of CPU) would then run for every
    # command at full weight on the farm's core (the session's new autogroup), where a
    # real host's would run on that host. Sessions start as if from a shell instead.
    "SetEnv": "SHLVL=1",
}


def sshd_host_configs(server: OpenSshServer, names: Iterable[str], folder: str | os.PathLike, *,
                      python: str | None = None, rate: float = 2.0, telemetry_every: int = 4,
                      nice: int | None = None) -> dict[str, HostConfig]:
    """[hosts.X]-style HostConfigs, all on `server`, each with its own emulating "python"."""
    return {name: HostConfig(name=name, kind="ssh", address="127.0.0.1", port=server.port,
                             user=server.user, identity_file=str(server.user_key),
                             known_hosts=str(server.known_hosts),
                             python=str(emulator_python(folder, python=python, name=name, rate=rate,
                                                        telemetry_every=telemetry_every, nice=nice)))
            for name in names}


def host_python(folder: str | os.PathLike) -> str:
    """An interpreter like a GPU host's for the sshd hosts' remote side: this Python's base
    interpreter in a bare venv that sees numpy (linked from here) and nothing else. This
    machine's own venv also loads the project's editable-install finder at every start
    (~25 ms of CPU by itself, 40 ms in all against 17 here), which no GPU host has, and each
    sshd host starts Python for the check. Falls back to this interpreter if no venv can be made."""
    target = Path(folder) / "host-python"
    py = target / "bin" / "python"
    if py.exists():
        return str(py)
    try:
        import numpy   # only to find its files; a farm without numpy runs this interpreter
        venv.EnvBuilder(symlinks=True, with_pip=False).create(target)
        site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   capture_output=True, text=True, check=True).stdout.strip())
        where = Path(numpy.__file__).resolve().parent.parent
        for entry in glob.glob(str(where / "numpy")) + glob.glob(str(where / "numpy.libs")) + \
                glob.glob(str(where / "numpy-*.dist-info")):
            (site / Path(entry).name).symlink_to(entry)
    except (ImportError, OSError, subprocess.CalledProcessError):
        return sys.executable
    return str(py)


def emulator_python(folder: str | os.PathLike, python: str | None = None, name: str | None = None,
                    rate: float = 2.0, telemetry_every: int = 4, nice: int | None = None) -> Path:
    """A wrapper script to configure as the remote `python` of a host behind the private sshd.

    `nice`: the session's scheduling weight, as nice does, where Linux groups tasks by session
    (sched_autogroup_enabled): sshd starts each session in a session of its own, and there a
    process's own nice value counts only against the session's other processes, so the wrapper
    sets its session's (/proc/self/autogroup) too."""
    path = Path(folder) / (f"sim-python-{name}" if name else "sim-python")
    env = f"GPUBENCH_SIM_RATE={rate} GPUBENCH_SIM_TELEMETRY_EVERY={telemetry_every} "
    if name:
        env += f"GPUBENCH_SIM_NAME={name} "
    py = python or sys.executable
    # Only the engine is emulated (standard library only: no site packages to scan); the
    # check script and the supervisor run on the real interpreter directly (one Python start
    # each, as on a real host). One BLAS thread: a check on its own imports numpy, and these hosts'
    # processes share the app's machine.
    renice = (f"echo {int(nice)} > /proc/self/autogroup 2>/dev/null\n" if nice is not None else "")
    path.write_text(f"#!/bin/sh\n{renice}export {env}OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1\n"
                    f"if [ \"$1\" = -m ] && [ \"$2\" = engine ]; then\n"
                    f"  exec {py} -S {SIM_ENGINE} \"$@\"\nfi\n"
                    f"exec {py} \"$@\"\n")
    path.chmod(0o755)
    return path
