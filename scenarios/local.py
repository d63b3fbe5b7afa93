"""`local`: the engine as a subprocess of this machine (the embedded default host).

The engine is the shipped one whatever the current folder holds: `python -m engine` would put
the current folder first on sys.path, so an `engine/` (or `numpy/`, `runpy.py`) there would run
as the user. `module_command` starts Python with `-c` instead, and the first thing that code
does, before any import, is swap the current-folder entry of sys.path for the folder that holds
the shipped packages; the rest of sys.path (the venv's numpy/cupy, PYTHONPATH) is untouched.

The engine dies with us: GPUBENCH_PARENT_PID names this process, and the engine asks Linux for
SIGTERM when its parent dies (engine/signals.py, die_with_parent), so a CLI killed with -9
leaves no engine running.

With an MPS layer (scenarios/mps.py) the first session starts a private MPS control daemon
through `run_script`, every engine runs as its client, and close() stops it.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import replace
from typing import Sequence

from .aio import within
from .base import ENGINE_DIR, LaunchError, LaunchRequest, Launcher, Session
from .mps import MpsDaemon, MpsLayer

INTERRUPT_GRACE_S = 5.0   # time the engine gets to emit its partial result after SIGINT
PACKAGES_DIR = str(ENGINE_DIR.parent)      # holds the shipped engine/ (and gpubench/, ...)
PARENT_PID_ENV = "GPUBENCH_PARENT_PID"     # read (and dropped) by engine.signals.die_with_parent
_BOOTSTRAP = ("import sys; sys.path[:] = [sys.argv.pop(1)] + [p for p in sys.path if p]; "
              "import runpy; runpy.run_module(sys.argv.pop(1), run_name='__main__', "
              "alter_sys=True)")


def module_command(python: str, module: str, args: Sequence[str] = ()) -> list[str]:
    """argv of `python -m module args` that imports `module` (and everything it imports) from
    the shipped packages, never from the current folder."""
    return [python, "-c", _BOOTSTRAP, PACKAGES_DIR, module, *args]


def engine_environment(request: LaunchRequest, base: dict[str, str] | None = None) -> dict[str, str]:
    """The engine's environment: ours, plus the request's env and LD_PRELOAD (prepended)."""
    env = dict(os.environ if base is None else base)
    env.update(request.env)
    env["PYTHONUNBUFFERED"] = "1"
    if request.preload:
        existing = env.get("LD_PRELOAD", "")
        env["LD_PRELOAD"] = f"{request.preload}:{existing}" if existing else request.preload
    return env


def _signal_group(pid: int, sig: int) -> bool:
    """Send `sig` to the engine's process group; False when the group is gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


class LocalSession(Session):
    def __init__(self, request: LaunchRequest, python: str):
        super().__init__(request, "local")
        self._python = python
        self._proc: asyncio.subprocess.Process | None = None

    async def _spawn(self) -> None:
        env = engine_environment(self.request)
        env[PARENT_PID_ENV] = str(os.getpid())
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *module_command(self._python, "engine", self.request.engine_args),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
                limit=1 << 21)
        except OSError as exc:
            raise LaunchError(f"local: cannot start {self._python}: {exc.strerror}") from None

    async def _run(self) -> int | None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None

        async def pump_stderr() -> None:
            async for raw in proc.stderr:
                self._stderr(raw.decode("utf-8", "replace"))

        stderr_task = asyncio.create_task(pump_stderr())
        try:
            while True:
                try:
                    raw = await proc.stdout.readline()
                except ValueError:  # line over the reader's limit: skip it, keep going
                    self._line("<overlong line>")
                    continue
                if not raw:
                    break
                self._line(raw.decode("utf-8", "replace"))
            await stderr_task
            return await proc.wait()
        finally:
            stderr_task.cancel()
            self._release(proc)

    @staticmethod
    def _release(proc: asyncio.subprocess.Process) -> None:
        """The engine's end, however the read ended: a read cancelled mid-run (a task torn
        down with its loop) must not leave the engine running, and the pipes' transport is
        closed now, while its loop is open; left to the garbage collector it closes after the
        loop has, which raises in its finaliser."""
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGKILL)
        transport = getattr(proc, "_transport", None)   # Process has no public close()
        if transport is not None:
            transport.close()

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        for sig, grace in ((signal.SIGINT, INTERRUPT_GRACE_S), (signal.SIGTERM, 2.0),
                           (signal.SIGKILL, 2.0)):
            if not _signal_group(proc.pid, sig):
                return
            try:
                await asyncio.wait_for(proc.wait(), timeout=grace)
                break
            except asyncio.TimeoutError:
                continue
        # anything the engine left in its group (preload helpers, workers)
        _signal_group(proc.pid, signal.SIGKILL)


class LocalLauncher(Launcher):
    name = "local"

    def __init__(self, python: str | None = None, mps: MpsLayer | None = None):
        self.python = python or sys.executable
        self.mps = (MpsDaemon(mps, "local", self.run_script, owner=os.getpid())
                    if mps is not None else None)

    async def start(self, request: LaunchRequest) -> Session:
        if self.mps is not None:
            request = replace(request, env={**request.env, **await self.mps.client_env()})
        session = LocalSession(request, self.python)
        await session._spawn()
        session._begin()
        return session

    async def run_script(self, script: str, args: Sequence[str],
                         timeout: float) -> tuple[int | None, str, str]:
        """`python -S -c script args...` here: (exit code, stdout, stderr); asyncio.TimeoutError
        after `timeout` (the process is killed)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                self.python, "-S", "-c", script, *args, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise LaunchError(f"local: cannot start {self.python}: {exc.strerror}") from None
        try:
            out, err = await within(proc.communicate(), timeout)
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def close_notes(self) -> list[str]:
        return list(self.mps.notes) if self.mps is not None else []

    async def close(self) -> None:
        if self.mps is not None:
            await self.mps.stop()
