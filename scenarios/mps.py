"""MPS as an isolation layer: `[scenarios.X.mps]` and a private MPS control daemon per run.

    [scenarios.mps-25]
    launcher = "local"                       # or "ssh" (a k8s pod gets no MPS layer)
    [scenarios.mps-25.mps]
    thread_percentage = 25                   # CUDA_MPS_ACTIVE_THREAD_PERCENTAGE (1-100)
    pinned_memory_limit = "0=8G"             # CUDA_MPS_PINNED_DEVICE_MEM_LIMIT, optional
    control = "nvidia-cuda-mps-control"      # the control program (default: found on PATH)

A launcher with an MPS layer owns one `MpsDaemon`: its first session starts the daemon on the
target (scenarios/mps_control.py, run by the launcher's `run_script`: a local subprocess; over
ssh by its `hold_script`, the same words on a channel of their own), in a private folder with
pipe/ and log/; every session's engine gets that folder's CUDA_MPS_PIPE_DIRECTORY /
CUDA_MPS_LOG_DIRECTORY and the layer's limits; the launcher's close() (the plan's end, its
cancel, an error, Ctrl-C) sends `quit` and removes the folder. A gpubench killed with SIGKILL
stops nothing itself, so every start first stops the daemons whose run is gone (mps_control.py
`sweep`), judged by the folder's owner process on the target: locally the gpubench process;
over ssh the holder, the start script left running on its channel, which ends when the
connection does (a live run whose holder's connection drops holds the folder again). A daemon
that cannot start is one LaunchError line, the same for every later session (only a failed
connection is tried again): nothing runs without the layer it was asked for. Whether the
engine really ran under MPS is judged from its `hello` (scenarios/layers.py), not assumed from
having started it.
"""
from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence

from scenarios.k8s.heartbeat import HEARTBEAT_TTL_S
from scenarios.limits import Range, shown

from .base import LaunchError

if TYPE_CHECKING:  # the reader is config.py's; config.py imports this module
    from scenarios.config import _Reader

CONTROL_SCRIPT = (Path(__file__).parent / "mps_control.py").read_text()
REPLY_MARK = "GPUBENCH_MPS "
DEFAULT_CONTROL = "nvidia-cuda-mps-control"
THREAD_PERCENTAGE_VAR = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"
THREAD_PERCENTAGE = Range(1, 100)
START_TIMEOUT_S = 10.0        # the daemon's control pipe appears within a second where it works
STOP_TIMEOUT_S = 10.0
# A remote holder whose connection ended keeps the folder this long, for a live run to hold it
# again; past it the run counts as gone, as a k8s object whose heartbeat is this old does.
LINGER_S = float(HEARTBEAT_TTL_S)
REHOLD_EVERY_S = 5.0
# CUDA_MPS_PINNED_DEVICE_MEM_LIMIT: comma-separated `<device ordinal>=<limit>`, e.g. "0=1G,1=512M"
_PINNED_ENTRY = re.compile(r"[0-9]{1,3}=[1-9][0-9]{0,8}[MG]B?")


@dataclass(frozen=True)
class MpsLayer:
    thread_percentage: int | None = None     # None: no compute limit (MPS alone)
    pinned_memory_limit: str | None = None
    control: str = DEFAULT_CONTROL

    def client_env(self) -> dict[str, str]:
        """The layer's limits as the engine's environment (the folder's two come on start)."""
        env = {}
        if self.thread_percentage is not None:
            env[THREAD_PERCENTAGE_VAR] = str(self.thread_percentage)
        if self.pinned_memory_limit is not None:
            env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = self.pinned_memory_limit
        return env


def parse_mps(r: "_Reader", launcher: str | None) -> MpsLayer | None:
    """`[scenarios.X.mps]` of the scenario table `r`, or None; ConfigError (one line) for a bad
    value."""
    m = r.sub("mps")
    if m is None:
        return None
    if launcher == "k8s":
        raise r.fail("mps", "is for local and ssh scenarios (the control daemon runs on the host)")
    pct = m.get("thread_percentage", int, None, bounds=THREAD_PERCENTAGE)
    pinned = m.get("pinned_memory_limit", str, None)
    if pinned is not None and not all(_PINNED_ENTRY.fullmatch(e) for e in pinned.split(",")):
        raise m.fail("pinned_memory_limit", f"must be device=limit entries like \"0=1G\" or "
                                            f"\"0=1G,1=512M\" (got {shown(pinned)})")
    control = m.get("control", str, DEFAULT_CONTROL)
    if not control.strip() or control != control.strip():
        raise m.fail("control", f"must name the control program (got {shown(control)})")
    m.reject_unknown()
    return MpsLayer(thread_percentage=pct, pinned_memory_limit=pinned, control=control)


# Runs `python -S -c SCRIPT ARGS...` on the target within a time limit:
# (exit code, stdout, stderr); asyncio.TimeoutError past it, LaunchError when it cannot run.
ScriptRunner = Callable[[str, Sequence[str], float], Awaitable[tuple]]


@dataclass
class Held:
    """A script left running on the target once it has answered (a remote holder): its reply
    so far, `ended` (done when its channel has closed: released, or the connection lost), and
    `release()`, which closes the channel."""
    code: int | None
    out: str
    err: str
    ended: "asyncio.Future[None]"
    release: Callable[[], None]


# Runs the script like a ScriptRunner, but returns at its stdout line that starts with the mark
# (its answer) and leaves it running.
HoldRunner = Callable[[str, Sequence[str], float, str], Awaitable[Held]]


def read_reply(where: str, what: str, code: int | None, out: str, err: str) -> dict:
    """The script's `GPUBENCH_MPS {json}` line, or LaunchError naming what went wrong."""
    line = next((ln for ln in out.splitlines() if ln.startswith(REPLY_MARK)), None)
    if line is None:
        tail = [ln.strip() for ln in (err or out).splitlines() if ln.strip()]
        detail = tail[-1][:200] if tail else f"exit code {code}"
        raise LaunchError(f"{where}: MPS: cannot {what}: {detail}")
    try:
        reply = json.loads(line[len(REPLY_MARK):])
    except ValueError:
        raise LaunchError(f"{where}: MPS: cannot {what}: unreadable reply") from None
    return reply if isinstance(reply, dict) else {"ok": False, "error": "unreadable reply"}


class MpsRefused(LaunchError):
    """The target said no (no control program, no daemon, one already there): final for the
    run, unlike a transport failure, which the next session tries again."""


class MpsDaemon:
    """The private control daemon of one launcher: started by the first session, stopped by
    stop(). `where` names the target in messages ("local", "ssh gpu1")."""

    def __init__(self, layer: MpsLayer, where: str, run_script: ScriptRunner,
                 owner: int | None = None, hold_script: HoldRunner | None = None):
        self.layer = layer
        # who the folder's owner is: `owner`, the local gpubench process; or, through
        # `hold_script` (remote), the start script itself, held open on its own channel
        self.owner = owner
        self.where = where
        self._run = run_script
        self._hold = hold_script
        self.linger_s = LINGER_S
        self._held: Held | None = None
        self._keeping: asyncio.Future | None = None
        self._lock: asyncio.Lock | None = None
        self._starting: asyncio.Future | None = None
        self.folder: str | None = None
        self._env: dict[str, str] | None = None
        self._failed: str | None = None
        self.notes: list[str] = []            # what the stop had to say (a daemon killed, ...)

    async def client_env(self) -> dict[str, str]:
        """The engine's MPS environment, starting the daemon at the first call; LaunchError
        (one line) when it cannot start: when the target refused, the same line at every later
        call."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._failed is not None:
                raise LaunchError(self._failed)
            if self._env is None:
                # shielded: a session cancelled while the daemon starts (Ctrl-C) must not
                # leave a daemon that stop() never hears of; stop() waits for this instead
                if self._starting is None:
                    self._starting = asyncio.ensure_future(self._start())
                try:
                    self._env = await asyncio.shield(self._starting)
                except MpsRefused as exc:
                    self._failed = str(exc)
                    raise
                except LaunchError:
                    self._starting = None
                    raise
            return dict(self._env)

    async def _start(self) -> dict[str, str]:
        what = "start the control daemon"
        args = ["start", self.layer.control, f"{START_TIMEOUT_S:g}"]
        held = None
        if self._hold is not None:
            held = await self._call_hold(what, [*args, "hold", f"{self.linger_s:g}"],
                                         START_TIMEOUT_S * 4 + 10)
            code, out, err = held.code, held.out, held.err
        else:
            if self.owner is not None:
                args.append(str(self.owner))
            code, out, err = await self._call(what, args, START_TIMEOUT_S * 4 + 10)
        try:
            reply = read_reply(self.where, what, code, out, err)
            if not reply.get("ok"):
                raise MpsRefused(f"{self.where}: MPS: {reply.get('error') or 'did not start'}")
        except BaseException:
            if held is not None:
                held.release()
            raise
        for folder in reply.get("swept") or []:
            self.notes.append(f"{self.where}: MPS: stopped a daemon left by a run that was "
                              f"killed ({folder})")
        self.folder = str(reply["folder"])
        if held is not None:
            self._held = held
            self._keeping = asyncio.ensure_future(self._keep_held(self.folder))
        return {"CUDA_MPS_PIPE_DIRECTORY": str(reply["pipe"]),
                "CUDA_MPS_LOG_DIRECTORY": str(reply["log"]), **self.layer.client_env()}

    async def _keep_held(self, folder: str) -> None:
        """While the run goes on, its remote folder stays held: a holder whose connection
        dropped is replaced (on a connection that works, made if need be) before its linger
        ends, or a later start would take the live daemon for a leftover."""
        loop = asyncio.get_running_loop()
        while self._held is not None:
            await asyncio.shield(self._held.ended)
            self._held = None
            deadline = loop.time() + self.linger_s
            what = "hold the control daemon's folder again"
            while self._held is None:
                held = None
                try:
                    held = await self._call_hold(what, ["hold", folder, f"{self.linger_s:g}"],
                                                 START_TIMEOUT_S * 2)
                    reply = read_reply(self.where, what, held.code, held.out, held.err)
                except LaunchError as exc:
                    if held is not None:
                        held.release()
                    if loop.time() + REHOLD_EVERY_S < deadline:
                        await asyncio.sleep(REHOLD_EVERY_S)
                        continue
                    self.notes.append(f"{exc} (a later start on the host may stop it)")
                    return
                if not reply.get("ok"):
                    held.release()
                    self.notes.append(f"{self.where}: MPS: {reply.get('error')}")
                    return
                self._held = held

    async def _call_hold(self, what: str, args: list[str], timeout: float) -> Held:
        assert self._hold is not None
        try:
            return await self._hold(CONTROL_SCRIPT, args, timeout, REPLY_MARK)
        except asyncio.TimeoutError:
            raise LaunchError(f"{self.where}: MPS: cannot {what}: no answer in "
                              f"{timeout:g} s") from None

    async def _call(self, what: str, args: list[str], timeout: float) -> tuple:
        try:
            return await self._run(CONTROL_SCRIPT, args, timeout)
        except asyncio.TimeoutError:
            raise LaunchError(f"{self.where}: MPS: cannot {what}: no answer in "
                              f"{timeout:g} s") from None

    async def stop(self) -> None:
        """`quit` to the daemon and its folder removed; a no-op when none was started. Never
        raises: what went wrong is kept in `notes`."""
        starting, self._starting = self._starting, None
        if starting is not None:
            await asyncio.wait([starting])      # bounded by the start's own time limit
            if not starting.cancelled():
                starting.exception()            # its failure was told to its session
        folder, self.folder, self._env = self.folder, None, None
        keeping, self._keeping = self._keeping, None
        if keeping is not None:
            keeping.cancel()
            await asyncio.wait([keeping])
            if not keeping.cancelled() and keeping.exception() is not None:
                exc = keeping.exception()
                self.notes.append(f"{self.where}: MPS: cannot hold the control daemon's folder "
                                  f"again: {type(exc).__name__}: {exc}")
        try:
            await self._stop(folder)
        finally:
            # after the stop removed the folder: the holder then ends at once
            held, self._held = self._held, None
            if held is not None:
                held.release()

    async def _stop(self, folder: str | None) -> None:
        if folder is None:
            return
        what = "stop the control daemon"
        try:
            code, out, err = await self._call(
                what, ["stop", folder, self.layer.control, f"{STOP_TIMEOUT_S:g}"],
                STOP_TIMEOUT_S * 3 + 10)
            reply = read_reply(self.where, what, code, out, err)
            if not reply.get("ok"):
                self.notes.append(f"{self.where}: MPS: {reply.get('error')}")
        except LaunchError as exc:
            self.notes.append(str(exc))
        except Exception as exc:  # a dropped connection: say so, the launcher closes anyway
            self.notes.append(f"{self.where}: MPS: cannot {what}: {type(exc).__name__}: {exc}")
