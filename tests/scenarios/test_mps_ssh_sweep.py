"""A remote MPS daemon whose run is gone is stopped by the next start on that host; a live run's
never is: the real ssh launcher against the sshd fixture, the MPS stand-in as control program.

The run's owner on the host is its holder (scenarios/mps_control.py `hold`), the start script
kept running on a channel of the run's connection: these tests kill what really dies (the
gpubench process with SIGKILL, or one connection) and look at what the host then does.
"""
from __future__ import annotations

import signal
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from scenarios import mps
from scenarios.mps import MpsLayer
from scenarios.mps_control import OWNER_FILE
from tests.scenarios.test_mps_launchers import (STANDIN_SERVERS, alive, daemon_pids, gone,
                                                run_session, ssh_launcher, write_standin)
from tests.support.sshd import REMOTE_PYTHON, REPO
from tests.support.waiting import wait_for

pytestmark = STANDIN_SERVERS

# A gpubench run in a process of its own: it starts the host's daemon, says where, and runs on
# until it is killed. Its holder lingers half a second, not two minutes, once its run is gone.
KILLED_RUN = """
import asyncio, sys
from types import SimpleNamespace
from scenarios.mps import MpsLayer
from tests.scenarios.test_mps_launchers import ssh_launcher

port, user, key, known, cache, control = sys.argv[1:]
server = SimpleNamespace(port=int(port), user=user, user_key=key, known_hosts=known)

async def main():
    launcher = ssh_launcher(server, cache, MpsLayer(control=control))
    launcher.mps.linger_s = 0.5
    env = await launcher.mps.client_env()
    print(env["CUDA_MPS_PIPE_DIRECTORY"], flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def owner(folder: Path) -> int:
    return int((folder / OWNER_FILE).read_text())


@pytest.mark.sshd
async def test_a_daemon_whose_run_was_killed_is_stopped_by_the_next_start_on_the_host(
        sshd, tmp_path):
    control = str(write_standin(tmp_path / "bin"))
    run = subprocess.Popen(
        [REMOTE_PYTHON, "-c", KILLED_RUN, str(sshd.port), sshd.user, str(sshd.user_key),
         str(sshd.known_hosts), str(tmp_path / "engine-cache"), control],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        pipe = run.stdout.readline().strip()
        assert pipe, "the run never started its daemon"
        folder = Path(pipe).parent
        daemons, holder = daemon_pids(pipe), owner(folder)
        run.send_signal(signal.SIGKILL)           # no handler of the run sees this
        run.wait()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    # its connection closed with the process: the holder ends after its linger; the daemon runs
    assert await wait_for(lambda: not alive(holder), 30.0), "the holder outlived its run's connection"
    assert all(alive(p) for p in daemons) and folder.exists()
    launcher = ssh_launcher(sshd, tmp_path / "engine-cache", MpsLayer(control=control))
    try:
        await launcher.mps.client_env()
        assert f"ssh testhost: MPS: stopped a daemon left by a run that was killed ({folder})" \
            in launcher.mps.notes
    finally:
        await launcher.close()
    assert await gone(daemons) == []
    assert not folder.exists()


@pytest.mark.sshd
async def test_a_live_runs_daemon_is_kept_even_when_its_holders_connection_drops(sshd, tmp_path):
    layer = MpsLayer(control=str(write_standin(tmp_path / "bin")))
    live = ssh_launcher(sshd, tmp_path / "engine-cache", layer)
    try:
        pipe = (await live.mps.client_env())["CUDA_MPS_PIPE_DIRECTORY"]
        folder = Path(pipe).parent
        daemons, holder = daemon_pids(pipe), owner(folder)
        assert alive(holder)
        other = ssh_launcher(sshd, tmp_path / "engine-cache", layer)
        try:
            await other.mps.client_env()          # another run's start: the live one is kept
        finally:
            await other.close()
        assert not [n for n in other.mps.notes if str(folder) in n]
        assert all(alive(p) for p in daemons)
        # the live run loses the connection its holder ran on: it holds the folder again
        [slot] = live.conns
        slot.conn.abort()
        assert await wait_for(lambda: owner(folder) != holder and alive(owner(folder)), 30.0), \
            "the live run did not hold its folder again"
        assert await gone([holder]) == []         # replaced: the old holder ended at once
        other = ssh_launcher(sshd, tmp_path / "engine-cache", layer)
        try:
            await other.mps.client_env()
        finally:
            await other.close()
        assert not [n for n in other.mps.notes if str(folder) in n]
        assert all(alive(p) for p in daemons)
        hello, ended = await run_session(live)    # and the run goes on under its daemon
        assert ended.outcome == "completed", ended
        assert hello["host"]["mps"]["pipe_directory"] == pipe
        holder = owner(folder)
    finally:
        await live.close()
    assert await gone(daemons) == []
    assert not folder.exists()
    assert await gone([holder]) == []             # a stopped run leaves no holder behind


@pytest.mark.sshd
async def test_what_the_host_prints_before_the_answer_is_passed_over(sshd, tmp_path):
    """A login script or a python wrapper that prints on stdout first: the holder's answer is
    its marked line, as with every other MPS command."""
    chatty = tmp_path / "chatty-python"
    chatty.write_text(f"#!/bin/sh\necho 'Welcome to the cluster'\n"
                      f"exec {shlex.quote(REMOTE_PYTHON)} \"$@\"\n")
    chatty.chmod(0o755)
    launcher = ssh_launcher(sshd, tmp_path / "engine-cache",
                            MpsLayer(control=str(write_standin(tmp_path / "bin"))))
    launcher.host = replace(launcher.host, python=str(chatty))
    try:
        pipe = (await launcher.mps.client_env())["CUDA_MPS_PIPE_DIRECTORY"]
        daemons, holder = daemon_pids(pipe), owner(Path(pipe).parent)
        assert alive(holder)
    finally:
        await launcher.close()
    assert await gone([*daemons, holder]) == []

def test_a_folder_whose_daemon_is_gone_is_not_held_again(tmp_path):
    """A run cut off for longer than the linger finds its folder swept: `hold` says so at once
    (one line, the script ends) rather than holding a folder with no daemon."""
    folder = tmp_path / "gpubench-mps-gone"
    (folder / "pipe").mkdir(parents=True)
    proc = subprocess.run([REMOTE_PYTHON, "-S", "-c", mps.CONTROL_SCRIPT, "hold", str(folder),
                           "120"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    reply = mps.read_reply("ssh h", "hold", proc.returncode, proc.stdout, proc.stderr)
    assert reply == {"ok": False, "error": f"the MPS daemon of {folder} is gone"}
    assert not (folder / OWNER_FILE).exists()
