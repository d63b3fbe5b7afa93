"""The MPS layer's daemon lifecycle through the real local launcher, the real CLI and the real
ssh launcher against the sshd fixture, with the real engine (numpy-cpu).

The control program is tests/support/mps_standin.py, a stand-in for NVIDIA's
nvidia-cuda-mps-control (no GPU here): it behaves as the real program's interface does (`-d`
forks a daemon that makes the pipe folder's `control` and a pid file; `quit` on stdin stops
it) and runs a process named nvidia-cuda-mps-server, so the engine's hello can show MPS. The
real daemon is tested in tests/gpu/test_mps_gpu.py.
"""
from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scenarios.base import LaunchError, LaunchRequest
from scenarios.config import HostConfig, ScenarioConfig
from scenarios.events import Hello, SessionEnded
from scenarios.layers import verify
from scenarios import mps
from scenarios.local import LocalLauncher
from scenarios.mps import MpsLayer
from scenarios.ssh.launcher import SshLauncher
from tests.support.cli_env import BARE_METAL_CONFIG, run, use_config
from tests.support.sshd import REMOTE_PYTHON, REPO

STANDIN = REPO / "tests" / "support" / "mps_standin.py"
FAST = ("--backend", "numpy-cpu", "--workloads", "roundtrip", "--duration", "0.2",
        "--warmup", "0", "--repeats", "1", "--telemetry-interval", "0")
LONG = ("--backend", "numpy-cpu", "--workloads", "roundtrip", "--duration", "60",
        "--warmup", "0", "--repeats", "1", "--telemetry-interval", "0")

# The stand-in daemon starts a process named nvidia-cuda-mps-server, and an engine's hello
# counts every such process on the machine (engine/mps_facts.py), as it must for the real one.
# Tests that start stand-ins therefore share one xdist worker (`make test` runs --dist
# loadgroup): another worker's stand-in server would show MPS to an engine run without it.
STANDIN_SERVERS = pytest.mark.xdist_group("mps-standin")
pytestmark = STANDIN_SERVERS


def write_standin(folder: Path, mode: str = "", pipe: str | None = None) -> Path:
    """An executable `nvidia-cuda-mps-control` in `folder` that runs the stand-in; `mode` and
    `pipe` (a fixed CUDA_MPS_PIPE_DIRECTORY) as its environment."""
    folder.mkdir(parents=True, exist_ok=True)
    env = "".join(f"{k}={shlex.quote(v)} " for k, v in
                  (("MPS_STANDIN_MODE", mode), ("CUDA_MPS_PIPE_DIRECTORY", pipe or "")) if v)
    path = folder / "nvidia-cuda-mps-control"
    path.write_text(f"#!/bin/sh\n{env}exec {shlex.quote(REMOTE_PYTHON)} -S "
                    f"{shlex.quote(str(STANDIN))} \"$@\"\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def tmpdir_env(tmp_path, monkeypatch) -> Path:
    """TMPDIR of this process (and so of the local control script): the daemon's folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def gone(pids, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


def daemon_pids(pipe: str) -> list[int]:
    """The stand-in daemon (its pid file) and its server (the daemon's child)."""
    pid = int(Path(pipe, "nvidia-cuda-mps-control.pid").read_text())
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def scenario(layer: MpsLayer, launcher: str = "local") -> ScenarioConfig:
    return ScenarioConfig(name="mps", title="MPS", launcher=launcher, mps=layer)


async def run_session(launcher, args=FAST) -> tuple[dict, SessionEnded]:
    session = await launcher.start(LaunchRequest(engine_args=args))
    events = [ev async for ev in session.events()]
    hello = next(ev for ev in events if isinstance(ev, Hello))
    return hello.data, events[-1]


# -- local -----------------------------------------------------------------------------------

async def test_local_sessions_run_under_one_private_daemon_stopped_at_close(tmp_path, tmpdir_env):
    layer = MpsLayer(thread_percentage=25, control=str(write_standin(tmp_path / "bin")))
    launcher = LocalLauncher(mps=layer)
    first, ended = await run_session(launcher)
    assert ended.outcome == "completed", ended
    facts = first["host"]["mps"]
    pipe = facts["pipe_directory"]
    folder = Path(pipe).parent
    assert folder.parent == tmpdir_env and folder.name.startswith("gpubench-mps-")
    assert folder.stat().st_mode & 0o777 == 0o700
    assert facts["pipe_directory_set"] and facts["control"] and facts["servers"]
    assert facts["active_thread_percentage"] == "25"
    assert verify(scenario(layer), first) == []
    pids = daemon_pids(pipe)
    assert facts["daemon_pid"] == pids[0] and set(facts["servers"]) <= set(pids[1:])
    second, _ = await run_session(launcher)          # the same daemon for the whole run
    assert second["host"]["mps"]["pipe_directory"] == pipe
    await launcher.close()
    assert await gone(pids) == []
    assert not folder.exists()


async def test_a_daemon_left_by_a_killed_run_is_stopped_at_the_next_local_start(
        tmp_path, tmpdir_env):
    """kill -9 of gpubench stops nothing itself: the next local start stops every private
    daemon whose owner process has gone, and says so; one whose owner lives is left alone."""
    control = str(write_standin(tmp_path / "bin"))
    dead = subprocess.Popen(["true"])
    dead.wait()                                       # a pid whose process has gone
    started = {}
    # the live owner's first: a start with an owner sweeps what a dead owner left
    for who, owner in (("alive", os.getpid()), ("killed", dead.pid)):
        proc = subprocess.run([REMOTE_PYTHON, "-S", "-c", mps.CONTROL_SCRIPT, "start", control,
                               "10", str(owner)], capture_output=True, text=True, timeout=60)
        started[who] = mps.read_reply("local", "start", proc.returncode, proc.stdout,
                                      proc.stderr)
        assert started[who]["ok"], started[who]
    left = daemon_pids(started["killed"]["pipe"])
    launcher = LocalLauncher(mps=MpsLayer(control=control))
    await launcher.mps.client_env()
    assert await gone(left) == [] and not Path(started["killed"]["folder"]).exists()
    assert launcher.mps.notes == [f"local: MPS: stopped a daemon left by a run that was "
                                  f"killed ({started['killed']['folder']})"]
    assert Path(started["alive"]["pipe"], "control").exists()     # its owner lives: kept
    await launcher.close()
    proc = subprocess.run([REMOTE_PYTHON, "-S", "-c", mps.CONTROL_SCRIPT, "stop",
                           started["alive"]["folder"], control, "10"],
                          capture_output=True, text=True, timeout=60)
    assert mps.read_reply("local", "stop", proc.returncode, proc.stdout, proc.stderr)["ok"]


async def test_a_missing_control_program_is_one_line_and_nothing_runs(tmp_path, tmpdir_env):
    launcher = LocalLauncher(mps=MpsLayer(control=str(tmp_path / "no-such-control")))
    with pytest.raises(LaunchError) as first:
        await launcher.start(LaunchRequest(engine_args=FAST))
    message = str(first.value)
    assert message.startswith(f"local: MPS: {tmp_path / 'no-such-control'} not found")
    assert "\n" not in message
    with pytest.raises(LaunchError) as again:       # every later session: the same line
        await launcher.start(LaunchRequest(engine_args=FAST))
    assert str(again.value) == message
    await launcher.close()
    assert list(tmpdir_env.iterdir()) == []


async def test_a_target_that_could_not_be_reached_is_tried_again(tmp_path, tmpdir_env):
    launcher = LocalLauncher(mps=MpsLayer(control=str(write_standin(tmp_path / "bin"))))
    python, launcher.python = launcher.python, str(tmp_path / "no-python")
    with pytest.raises(LaunchError) as err:
        await launcher.start(LaunchRequest(engine_args=FAST))
    assert str(err.value).startswith(f"local: cannot start {tmp_path / 'no-python'}")
    launcher.python = python          # the target is back: the next session starts the daemon
    try:
        hello, ended = await run_session(launcher)
    finally:
        await launcher.close()
    assert ended.outcome == "completed" and hello["host"]["mps"]["control"] is True
    assert list(tmpdir_env.iterdir()) == []


async def test_a_daemon_that_never_comes_up_is_one_line_and_leaves_nothing(
        tmp_path, tmpdir_env, monkeypatch):
    monkeypatch.setattr("scenarios.mps.START_TIMEOUT_S", 1.0)
    control = write_standin(tmp_path / "bin", mode="never-up")
    launcher = LocalLauncher(mps=MpsLayer(control=str(control)))
    with pytest.raises(LaunchError) as err:
        await launcher.start(LaunchRequest(engine_args=FAST))
    assert str(err.value) == ("local: MPS: the MPS control daemon did not come up: no control "
                              "pipe after 1 s")
    await launcher.close()
    assert list(tmpdir_env.iterdir()) == []


async def test_a_daemon_already_running_on_the_pipe_is_one_line(tmp_path, tmpdir_env):
    taken = tmp_path / "system-pipe"
    taken.mkdir()
    (taken / "control").write_text("")    # the pipe of a daemon that runs there already
    control = write_standin(tmp_path / "bin", pipe=str(taken))
    launcher = LocalLauncher(mps=MpsLayer(control=str(control)))
    with pytest.raises(LaunchError) as err:
        await launcher.start(LaunchRequest(engine_args=FAST))
    assert str(err.value) == (f"local: MPS: {control} -d failed: An instance of this daemon is "
                              f"already running")
    await launcher.close()
    assert list(tmpdir_env.iterdir()) == []


async def test_a_daemon_without_a_server_makes_the_run_invalid(tmp_path, tmpdir_env):
    layer = MpsLayer(thread_percentage=50, control=str(write_standin(tmp_path / "bin",
                                                                     mode="no-server")))
    launcher = LocalLauncher(mps=layer)
    try:
        hello, ended = await run_session(launcher)
    finally:
        await launcher.close()
    assert ended.outcome == "completed"
    assert verify(scenario(layer), hello) == [
        "MPS not active: no nvidia-cuda-mps-server process seen by the engine"]


async def test_a_cancelled_session_still_stops_the_daemon(tmp_path, tmpdir_env):
    launcher = LocalLauncher(mps=MpsLayer(control=str(write_standin(tmp_path / "bin"))))
    session = await launcher.start(LaunchRequest(engine_args=LONG))
    async for event in session.events():
        if isinstance(event, Hello):
            pipe = event.data["host"]["mps"]["pipe_directory"]
            break
    pids = daemon_pids(pipe)
    await session.cancel()
    assert session.ended.outcome == "cancelled"
    await launcher.close()
    assert await gone(pids) == []
    assert list(tmpdir_env.iterdir()) == []


async def test_a_start_cancelled_while_the_daemon_starts_leaves_no_daemon(tmp_path, tmpdir_env):
    launcher = LocalLauncher(mps=MpsLayer(control=str(write_standin(tmp_path / "bin",
                                                                     mode="slow"))))
    start = asyncio.ensure_future(launcher.start(LaunchRequest(engine_args=FAST)))
    await asyncio.sleep(0.3)           # the stand-in's `-d` takes a second
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    await launcher.close()             # waits for the start it was not told of, then stops
    assert list(tmpdir_env.iterdir()) == []
    assert await gone(_standin_daemons()) == []


# -- the CLI: a plan's sessions fail, or it is interrupted -----------------------------------

def mps_config(control: Path, extra: str = "") -> str:
    return BARE_METAL_CONFIG + f"""{extra}
[scenarios.mps-25]
launcher = "local"
[scenarios.mps-25.mps]
thread_percentage = 25
control = "{control}"
"""


def test_the_daemon_is_stopped_when_every_session_fails(tmp_path, tmpdir_env, monkeypatch,
                                                        capsys):
    control = write_standin(tmp_path / "bin")
    # no CPU 4095 anywhere: the engine refuses to start, under MPS, in every session
    config = mps_config(control).replace('workloads = ["roundtrip"]',
                                         'workloads = ["roundtrip"]\ncpus = "4095"')
    use_config(tmp_path, monkeypatch, config)
    code, out, err = run(capsys, "run", "mps-25", "--trials", "2", "--backend", "numpy-cpu",
                         "--duration", "0.1", "--warmup", "0", "--repeats", "1")
    assert code != 0
    assert "cannot pin the engine there" in out + err
    assert "(mps-25, INVALID" in out + err          # its failed sessions are what was measured
    assert list(tmpdir_env.iterdir()) == []          # daemon stopped, folder removed
    assert not [p for p in _standin_daemons() if alive(p)]


def test_a_run_whose_engines_do_not_see_mps_is_saved_invalid(tmp_path, tmpdir_env, monkeypatch,
                                                             capsys):
    control = write_standin(tmp_path / "bin", mode="no-server")
    store = use_config(tmp_path, monkeypatch, mps_config(control))
    code, out, err = run(capsys, "run", "mps-25", "--trials", "1", "--backend", "numpy-cpu",
                         "--duration", "0.1", "--warmup", "0", "--repeats", "1")
    assert "[INVALID: MPS not active: no nvidia-cuda-mps-server process seen by the " \
           "engine]" in out + err
    assert "(mps-25, INVALID" in out + err
    assert len(store.list_runs().runs) == 1 and list(tmpdir_env.iterdir()) == []


def test_a_missing_control_program_fails_the_run_with_its_line(tmp_path, tmpdir_env,
                                                               monkeypatch, capsys):
    use_config(tmp_path, monkeypatch, mps_config(tmp_path / "nope"))
    code, out, err = run(capsys, "run", "mps-25", "--trials", "1", "--backend", "numpy-cpu",
                         "--duration", "0.1", "--warmup", "0", "--repeats", "1")
    assert code != 0
    assert f"local: MPS: {tmp_path / 'nope'} not found" in out + err
    assert "nothing saved" in out + err
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").rglob("*.json"))


def test_ctrl_c_stops_the_plan_and_the_daemon(tmp_path):
    control = write_standin(tmp_path / "bin")
    (tmp_path / "config.toml").write_text(mps_config(control))
    folder = tmp_path / "tmp"
    folder.mkdir()
    env = {**os.environ, "TMPDIR": str(folder), "GPUBENCH_CONFIG": str(tmp_path / "config.toml")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "gpubench"), "run", "mps-25", "--trials", "1",
         "--backend", "numpy-cpu", "--duration", "60", "--warmup", "0", "--repeats", "1"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        pipe = None
        while time.monotonic() < deadline and pipe is None:
            found = list(folder.glob("gpubench-mps-*/pipe/nvidia-cuda-mps-control.pid"))
            if found:
                pipe = found[0].parent
            time.sleep(0.1)
        assert pipe is not None, "the daemon never started"
        time.sleep(1.0)       # the engine is running under it
        pids = daemon_pids(str(pipe))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert asyncio.run(gone(pids)) == [], out
    assert list(folder.iterdir()) == [], out


def _standin_daemons() -> list[int]:
    """PIDs of running stand-in daemons (their argv names the stand-in and -d)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if str(STANDIN).encode() in cmdline and b"-d" in cmdline.split(b"\0"):
                found.append(int(entry))
    return found


# -- ssh: the same lifecycle over the connection ---------------------------------------------

def ssh_launcher(server, cache: Path, layer: MpsLayer):
    host = HostConfig(name="testhost", kind="ssh", address="127.0.0.1", port=server.port,
                      user=server.user, identity_file=str(server.user_key),
                      known_hosts=str(server.known_hosts), python=REMOTE_PYTHON)
    return SshLauncher(host, cache_root=str(cache), mps=layer)


@pytest.mark.sshd
async def test_ssh_sessions_run_under_a_daemon_started_and_stopped_over_the_connection(
        sshd, tmp_path):
    # every value reaches the remote shell as one quoted word: this folder name runs nothing
    hostile = tmp_path / "it's $(touch pwned) here"
    layer = MpsLayer(thread_percentage=25, pinned_memory_limit="0=1G",
                     control=str(write_standin(hostile)))
    launcher = ssh_launcher(sshd, tmp_path / "engine-cache", layer)
    try:
        hello, ended = await run_session(launcher)
        assert ended.outcome == "completed", ended
        facts = hello["host"]["mps"]
        assert facts["control"] and facts["servers"] and facts["active_thread_percentage"] == "25"
        assert facts["pinned_device_mem_limit"] == "0=1G"
        assert verify(scenario(layer, "ssh"), hello) == []
        pids = daemon_pids(facts["pipe_directory"])
        folder = Path(facts["pipe_directory"]).parent
    finally:
        await launcher.close()
    assert await gone(pids) == []
    assert not folder.exists()
    assert not list(tmp_path.rglob("pwned")) and not Path("pwned").exists()


@pytest.mark.sshd
async def test_ssh_a_missing_control_program_is_one_line(sshd, tmp_path):
    launcher = ssh_launcher(sshd, tmp_path / "engine-cache",
                            MpsLayer(control="no-such-mps-control"))
    try:
        with pytest.raises(LaunchError) as err:
            await launcher.start(LaunchRequest(engine_args=FAST))
    finally:
        await launcher.close()
    assert str(err.value).startswith("ssh testhost: MPS: no-such-mps-control not found")


def test_a_daemon_that_will_not_quit_is_terminated_and_the_run_says_so(
        tmp_path, tmpdir_env, monkeypatch, capsys):
    """`quit` ignored: the stop terminates the daemon after its bound, and the saved run keeps
    that as a layer note (its figures stand: the daemon's end came after the last session)."""
    monkeypatch.setattr(mps, "STOP_TIMEOUT_S", 1.0)
    control = write_standin(tmp_path / "bin", mode="deaf")
    store = use_config(tmp_path, monkeypatch, mps_config(control))
    code, out, err = run(capsys, "run", "mps-25", "--trials", "1", "--backend", "numpy-cpu",
                         "--duration", "0.1", "--warmup", "0", "--repeats", "1")
    assert "(mps-25, " in out + err, out + err
    [listed] = store.list_runs().runs
    doc = store.load(listed["id"])
    notes = [n for n in doc["validity"]["notes"] if n.startswith("layer: local: MPS: ")]
    assert len(notes) == 1 and notes[0].endswith("did not quit: terminated"), \
        doc["validity"]["notes"]
    assert doc["sessions"][-1]["layer_notes"] == [notes[0].removeprefix("layer: ")]
    assert list(tmpdir_env.iterdir()) == [] and not [p for p in _standin_daemons() if alive(p)]
