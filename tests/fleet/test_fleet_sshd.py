"""The fleet through a real OpenSSH sshd on 127.0.0.1 (private config, TEST-FACTS recipe):
the product's real check, SFTP deployment and remote supervisor; the remote "python" is a
wrapper that replays a stream (tests/support/sim_engine.py) instead of spinning an engine."""
from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scenarios.base import LaunchRequest
from scenarios.events import CANCELLED, COMPLETED
from scenarios.fleet_run.close import close_launchers
from scenarios.fleet_run.hosts import FleetTarget
from scenarios.fleet_run.run import FleetRun
from scenarios.ssh.launcher import SshLauncher
from tests.support.farm import write_keys
from tests.support.sshd import SSHD, OpenSshServer
from tests.support.sshd_hosts import FLEET_SSHD_OPTIONS, host_python, sshd_host_configs

pytestmark = [pytest.mark.sshd,
              pytest.mark.skipif(not os.path.exists(SSHD),
                                 reason="needs openssh-server (apt-get install -y openssh-server)"),
              pytest.mark.skipif(os.geteuid() != 0, reason="the private sshd runs as root")]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sshd")
    keys = write_keys(folder / "keys")
    server = OpenSshServer.start(folder / "sshd", client_key=keys["client_key"], options=FLEET_SSHD_OPTIONS)
    yield server, folder
    server.stop()


def hosts(sshd, names, rate=4.0, python=None):
    server, folder = sshd
    return sshd_host_configs(server, names, folder, python=python, rate=rate)


def remote_processes(token: str) -> list[int]:
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if token.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                    pids.append(int(pid))
            except OSError:
                pass
    return pids


async def run(fleet_hosts, args, cancel_after=None):
    targets = [FleetTarget.for_host(h, SshLauncher(h, ssh_config=[])) for n, h in fleet_hosts.items()]
    fleet = FleetRun(targets, LaunchRequest(engine_args=args), inactivity_timeout_s=10)
    task = asyncio.create_task(fleet.run())
    if cancel_after is not None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(s.samples for s in fleet.statuses.values()):
            await asyncio.sleep(0.05)
        cancel_after()
        await fleet.cancel()
    try:
        return await asyncio.wait_for(task, 60)
    finally:
        await close_launchers((t.launcher for t in targets), timeout_s=5)


def test_hosts_behind_a_real_sshd_complete(sshd):
    fleet_hosts = hosts(sshd, [f"sshd-{i}" for i in range(4)])
    result = asyncio.run(run(fleet_hosts, ("--workloads", "roundtrip", "--duration", "0.5", "--repeats", "2")))
    assert {n: s.state for n, s in result.statuses.items()} == {n: COMPLETED for n in fleet_hosts}, \
        {n: s.message for n, s in result.statuses.items()}
    for s in result.statuses.values():
        assert s.results == 2 and s.samples >= 3
        assert s.hello["host"]["hostname"] == s.name          # each host's own stream


def test_bare_host_python_sees_numpy_and_nothing_of_this_project(sshd, tmp_path):
    """fleet_scale.py's sshd hosts run a bare venv with numpy linked in (as on a GPU host):
    the product's check finds numpy there, and the project's own packages are not importable."""
    py = host_python(tmp_path)
    assert py != sys.executable and Path(py).parent.parent == tmp_path / "host-python"
    probe = subprocess.run([py, "-c", "import numpy, importlib.util as u; "
                            "print(numpy.__version__, u.find_spec('scenarios'), u.find_spec('asyncssh'))"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    version, scenarios_spec, asyncssh_spec = probe.stdout.split()
    assert (scenarios_spec, asyncssh_spec) == ("None", "None") and version[0].isdigit()
    assert host_python(tmp_path) == py                        # made once per folder
    fleet_hosts = hosts(sshd, ["bare-0", "bare-1"], python=py)
    result = asyncio.run(run(fleet_hosts, ("--workloads", "roundtrip", "--duration", "0.5", "--repeats", "1")))
    assert {s.state for s in result.statuses.values()} == {COMPLETED}, \
        {n: s.message for n, s in result.statuses.items()}


def test_cancel_through_a_real_sshd_stops_the_remote_processes(sshd):
    token = f"c{secrets.token_hex(3)}"
    fleet_hosts = hosts(sshd, [f"{token}-{i}" for i in range(3)])
    running: list[int] = []
    result = asyncio.run(run(fleet_hosts, ("--workloads", "roundtrip", "--duration", "30", "--repeats", "1"),
                             cancel_after=lambda: running.extend(remote_processes(f"GPUBENCH_SIM_NAME={token}"))))
    assert len(running) >= 3                                  # one replaying "engine" per host was running
    assert {s.state for s in result.statuses.values()} == {CANCELLED}
    deadline = time.monotonic() + 5
    while remote_processes(f"GPUBENCH_SIM_NAME={token}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert remote_processes(f"GPUBENCH_SIM_NAME={token}") == []
