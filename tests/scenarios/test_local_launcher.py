"""The local launcher runs the shipped engine whatever the current folder holds, and its
engines die with the process that started them (kill -9 included)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scenarios.base import LaunchRequest
from scenarios.events import Hello, Result, SessionEnded
from scenarios.local import LocalLauncher

ROOT = Path(__file__).resolve().parents[2]
FAST = ("--backend", "numpy-cpu", "--workloads", "roundtrip", "--duration", "0.2",
        "--warmup", "0", "--repeats", "1", "--telemetry-interval", "0")


def plant(folder: Path, marker: Path) -> None:
    """Packages and modules that, imported from `folder`, write `marker` (and would run as
    the user in a real attack)."""
    payload = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    for package in ("engine", "numpy"):
        (folder / package).mkdir()
        (folder / package / "__init__.py").write_text(payload)
        (folder / package / "__main__.py").write_text(payload)
    for module in ("runpy.py", "ctypes.py", "json.py", "sitecustomize.py"):
        (folder / module).write_text(payload)


async def test_an_engine_package_in_the_current_folder_never_runs(tmp_path, monkeypatch):
    hostile = tmp_path / "cwd"
    hostile.mkdir()
    marker = tmp_path / "pwned"
    plant(hostile, marker)
    monkeypatch.chdir(hostile)
    session = await LocalLauncher().start(LaunchRequest(engine_args=FAST))
    events = [ev async for ev in session.events()]
    ended = events[-1]
    assert isinstance(ended, SessionEnded) and ended.outcome == "completed", \
        (ended, session.stderr_tail)
    hello = next(ev for ev in events if isinstance(ev, Hello))
    assert hello.backend == "numpy-cpu" and any(isinstance(ev, Result) for ev in events)
    assert not marker.exists(), marker.read_text()


def _state(pid: int) -> str | None:
    """The process's state letter, None when it is gone (a zombie counts as gone: it runs
    nothing, and in a container nobody may reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state = stat.rsplit(")", 1)[1].split()[0]
    return None if state in ("Z", "X") else state


def _engine_children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"engine" in cmdline and b"numpy-cpu" in cmdline:
            found.append(int(entry))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_the_cli_leaves_no_engine_running(tmp_path):
    (tmp_path / "config.toml").write_text(
        '[store]\ndata_dir = "data"\n[defaults]\nworkloads = ["roundtrip"]\nduration_s = 30\n'
        'warmup_s = 0\nrepeats = 20\ntrials = 1\nbackend = "numpy-cpu"\n')
    env = dict(os.environ, GPUBENCH_CONFIG=str(tmp_path / "config.toml"), PYTHONPATH=str(ROOT))
    cli = subprocess.Popen([sys.executable, "-c", "import sys; from gpubench.cli import main; "
                            "sys.exit(main())", "run"], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engines: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not engines and time.monotonic() < deadline and cli.poll() is None:
            time.sleep(0.1)
            engines = _engine_children(cli.pid)
        assert engines, "the CLI started no engine"
        time.sleep(1.0)  # the engine is measuring (its window lasts 30 s, 20 times over)
        cli.kill()
        cli.wait(timeout=10)
        deadline = time.monotonic() + 20  # generous: only "gone at all", never "how fast"
        while time.monotonic() < deadline and any(_state(p) for p in engines):
            time.sleep(0.2)
        assert not any(_state(p) for p in engines), "the engine outlived the CLI"
    finally:
        if cli.poll() is None:
            cli.kill()
        for pid in engines:  # on failure, do not leave our own engine running
            if _state(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_an_engine_whose_launcher_died_before_it_started_ends_at_once(tmp_path):
    """The launcher can die between fork and the engine's prctl: the engine then finds its
    named parent gone and stops itself. A live parent that is not ours (a wrapper) is left be."""
    from scenarios.local import PARENT_PID_ENV, module_command
    gone = subprocess.Popen(["true"])
    gone.wait()
    argv = module_command(sys.executable, "engine", FAST)
    orphan = subprocess.run(argv, env=dict(os.environ, **{PARENT_PID_ENV: str(gone.pid)}),
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert orphan.returncode == -signal.SIGTERM and orphan.stdout == ""
    wrapped = subprocess.run(argv, env=dict(os.environ, **{PARENT_PID_ENV: "1"}),
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert wrapped.returncode == 0 and '"type":"done"' in wrapped.stdout
    assert PARENT_PID_ENV not in wrapped.stdout   # dropped before the hello reads the env


def test_a_session_torn_down_with_its_loop_leaves_no_engine_and_no_transport(tmp_path):
    """A task cancelled when its loop ends (asyncio.run's teardown: a view closed mid-run)
    kills the engine and closes its pipes while the loop is open; left to the garbage
    collector, the transport's finaliser ran after the loop had closed and raised."""
    import asyncio
    import gc
    raised: list = []
    hook, sys.unraisablehook = sys.unraisablehook, raised.append
    pids: list[int] = []

    async def start_and_leave() -> None:
        session = await LocalLauncher().start(LaunchRequest(engine_args=(
            "--backend", "numpy-cpu", "--workloads", "launch", "--duration", "30",
            "--warmup", "0", "--repeats", "1", "--telemetry-interval", "0")))
        async for ev in session.events():
            if isinstance(ev, Hello):
                break
        pids.extend(_engine_children(os.getpid()))
    try:
        asyncio.run(start_and_leave())
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert pids, "the engine was never seen running"
    assert [p for p in pids if _state(p) is not None] == []
    assert [r.exc_value for r in raised if "transport" in repr(r.object).lower()
            or isinstance(r.exc_value, RuntimeError)] == []
