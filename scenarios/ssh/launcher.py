"""`ssh`: the engine on a remote host, over asyncssh.

    launcher = SshLauncher.from_config(host)        # a [hosts.X] table with kind = "ssh"
    session = await launcher.start(LaunchRequest(engine_args=(...)))
    ...
    await launcher.close()                          # cancels live sessions, closes connections

What happens on `start()`:
1. Connect (or reuse a connection to the same host): connection.py, host keys in host_keys.py.
2. Once per connection: check the remote Python (>= 3.9), numpy (fatal when missing),
   cupy and nvidia-ml-py (reported with the exact pip command; without cupy the engine
   falls back to numpy-cpu unless `--backend cupy` was asked, which then fails here):
   remote_check.py on the host, check_reply.py here.
3. Deploy the engine bundle (bundle.py) over SFTP into ~/.cache/gpubench/engine-<hash>
   (deploy.py): skipped when the check found exactly this bundle there (the cache folder
   private and ours, the digest of the files on disk equal to ours).
4. Run `<python> gpubench_supervise.py -u PYTHONSAFEPATH -- NAME=value ... -- <python>
   -m engine ARGS` in the bundle, through the remote check (remote_cmd.py), which verifies
   the bundle again in the process that then execs it: the supervisor leads its own
   process group, reports it on stderr and stops the engine if the connection drops. The
   proxy layer's LD_PRELOAD and env are on that command line (for the engine only), every
   value one quoted word. stdout lines are fed to the parser as they arrive (session.py).

With an MPS layer (scenarios/mps.py) the first start() runs the MPS control script over the
connection (`hold_script`, quoted like every remote command) to start a private daemon on the
host, and keeps that script running on its channel as the folder's owner there, so that a later
start on the host sweeps the daemon once this run's connection is gone; its folder's variables
and the layer's limits join the engine's environment, and close() stops the daemon (`run_script`)
before the connections close.
"""
from __future__ import annotations

import asyncio
import sys
import weakref
from dataclasses import replace
from typing import Any, Sequence

from scenarios.aio import within
from scenarios.base import LaunchError, LaunchRequest, Launcher, Session
from scenarios.config import HostConfig
from scenarios.descriptors import raise_nofile_limit
from scenarios.mps import Held, MpsDaemon, MpsLayer

from .asyncssh_import import asyncssh
from .bundle import Bundle, current_bundle
from .check_reply import (CHECK_MARK, RemoteCheck, cupy_refusal, judge_check, no_check_reply, started,
                          wants_cupy)
from .connection import (CONNECT_TIMEOUT_S, CONNECTS_TOTAL, KEEPALIVE_S, Connection, Connector,
                         loop_semaphore, reason)
from .deploy import CACHE_ROOT, Deployment, deploy
from .options import set_login_name
from .remote_check import one_line
from .remote_cmd import check_command, engine_argv, exec_command, script_command
from .session import SshSession


class SshLauncher(Connector, Launcher):
    """The connections to one host (Connector) and the engines started over them."""
    name = "ssh"
    _nofile_raised = False

    def __init__(self, host: HostConfig, *, ssh_config: Any = (), cache_root: str = CACHE_ROOT,
                 connect_timeout: float = CONNECT_TIMEOUT_S, keepalive_s: float = KEEPALIVE_S,
                 max_connects_total: int | None = CONNECTS_TOTAL, mps: MpsLayer | None = None):
        super().__init__(host, ssh_config=ssh_config, connect_timeout=connect_timeout,
                         keepalive_s=keepalive_s, max_connects_total=max_connects_total)
        self.cache_root = cache_root
        self.sessions: "weakref.WeakSet[SshSession]" = weakref.WeakSet()
        self.messages: list[str] = []         # what happened, for the Hosts view and the logs
        self.check_at_start = False           # a fleet's prepare() only connects (start() checks)
        self.mps = (MpsDaemon(mps, f"ssh {host.name}", self.run_script,
                              hold_script=self.hold_script) if mps is not None else None)
        if not SshLauncher._nofile_raised:    # each session holds a descriptor
            SshLauncher._nofile_raised = True
            raise_nofile_limit()
            set_login_name()

    @classmethod
    def from_config(cls, host: HostConfig, mps: MpsLayer | None = None) -> "SshLauncher":
        if not host.address:
            raise LaunchError(f"hosts.{host.name}: an ssh host needs an address")
        return cls(host, mps=mps)

    def use_fleet_settings(self, *, max_connects: int | None = None,
                           keepalive_s: float | None = None) -> None:
        """A fleet bounds its connects itself: its limit replaces the process-wide
        CONNECTS_TOTAL (per-host limits and MaxStartups retries stay); and its keepalive
        (the fleet's default is 60 s) replaces the single-host 15 s. prepare() then only
        connects: the remote check travels with each engine's start (one command per host)."""
        if max_connects is not None:
            self.max_connects_total = max(1, int(max_connects))
        if keepalive_s is not None:
            self.keepalive_s = keepalive_s
        self.check_at_start = True

    # -- preparing the remote ---------------------------------------------------------------
    def _check_command(self, bundle: Bundle | None, start: list[str] | None = None,
                       need_cupy: bool = False) -> str:
        """The remote check (with `bundle`: and that bundle's state in the cache; with `start`:
        then the engine), see remote_cmd.check_command."""
        # ~15 KB, the same for every host of a fleet with one python and plan, and held by the
        # session and its channel while the engine runs: one shared copy (interned strings are
        # freed with their last user).
        return sys.intern(check_command(self.host.python, self.cache_root, bundle, start, need_cupy))

    async def check_remote(self, slot: Connection, bundle: Bundle | None = None) -> RemoteCheck:
        """Run the check script; with `bundle` it also says whether the cache holds exactly that
        bundle (a bad one is set aside there; a cache folder that is not safe is a LaunchError),
        so a cache hit costs no SFTP session."""
        py = self.host.python
        name = f"ssh {self.host.name}"
        try:
            res = await asyncio.wait_for(slot.conn.run(self._check_command(bundle), check=False),
                                         timeout=60)
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
            raise LaunchError(f"{name}: cannot run {py} on the host: {reason(exc)}") from None
        out = str(res.stdout or "")
        line = next((ln for ln in out.splitlines() if ln.startswith(CHECK_MARK)), None)
        if line is None:
            raise no_check_reply(self.host, res.exit_status, str(res.stderr or ""))
        return judge_check(self.host, line.split(" ", 1)[1])

    async def _prepare(self, slot: Connection) -> None:
        async with slot.prepare_lock:
            bundle = current_bundle()
            if slot.checked is None:
                self._record_check(slot, await self.check_remote(slot, bundle), bundle)
            if slot.deployment is None:
                try:
                    async with self._deploy_limit():
                        slot.deployment = await deploy(slot.conn, bundle, self.cache_root)
                except (asyncssh.Error, OSError) as exc:
                    raise LaunchError(f"ssh {self.host.name}: cannot deploy the engine into "
                                      f"~/{self.cache_root}: {reason(exc)}") from None
                d = slot.deployment
                slot.notes.append(f"ssh {self.host.name}: engine {bundle.short} "
                                  + (f"uploaded ({d.files} files, {d.bytes // 1024} KiB)"
                                     if d.uploaded else "already deployed (cache hit)")
                                  + f" in {one_line(d.path)}")

    def _record_check(self, slot: Connection, check: RemoteCheck, bundle: Bundle) -> None:
        if slot.checked is not None:      # two sessions checked the same connection at once
            return
        slot.checked = check
        slot.notes.extend(check.notes)
        if check.deployed and slot.deployment is None:  # cache hit: no SFTP
            slot.deployment = Deployment(check.deployed, False, bundle)
            slot.notes.append(f"ssh {self.host.name}: engine {bundle.short} already "
                              f"deployed (cache hit) in {one_line(slot.deployment.path)}")

    def _deploy_limit(self) -> Any:
        """Uploads in flight from this process (a cold fleet starts thousands of hosts at once)."""
        limit = self.max_connects_total or CONNECTS_TOTAL
        return loop_semaphore(("deploy", limit), limit)

    def engine_argv(self, request: LaunchRequest) -> list[str]:
        """The supervisor, then env + the engine (see remote_cmd.engine_argv); LaunchError for an
        environment variable name that env could read as something else."""
        try:
            return engine_argv(self.host.python, request.env, request.preload, request.engine_args)
        except ValueError as exc:
            raise LaunchError(f"ssh {self.host.name}: {exc}") from None

    def command(self, argv: list[str], deployment: Deployment) -> str:
        """The remote command line once deployed: argv runs only in the bundle as verified by the
        process that execs it (the remote check in --exec mode)."""
        return exec_command(self.host.python, self.cache_root, deployment.bundle, argv)

    # -- the Launcher interface --------------------------------------------------------------
    async def prepare(self) -> list[str]:
        """Connect, check the remote and deploy the engine now (the Hosts view's "check").

        Returns what was learnt (host key trusted, packages missing, upload or cache hit);
        raises LaunchError with one line when the host cannot run the engine. In a fleet
        (`use_fleet_settings`) it only connects: the check then travels with the engine's
        start, one command per host (see start()).
        """
        slot = await self._slot()
        try:
            if not self.check_at_start:
                await self._prepare(slot)
        finally:
            slot.sessions -= 1
        self.messages.extend(n for n in slot.notes if n not in self.messages)
        return list(slot.notes)

    async def start(self, request: LaunchRequest) -> Session:
        """Start the engine. On a connection not checked yet, one command checks the remote and,
        when the engine can run there and its bundle is deployed, becomes the engine (no
        separate check round trip); otherwise the check's verdict is acted on as in prepare()
        (a one-line error, or an upload and then the engine)."""
        if self.mps is not None:
            request = replace(request, env={**request.env, **await self.mps.client_env()})
        argv = self.engine_argv(request)      # a bad variable name: refused before anything runs
        slot = await self._slot()
        session: SshSession | None = None
        if slot.checked is None and slot.deployment is None:
            session = await self._start_checked(slot, request, argv)   # releases the slot on error
        if session is None:
            try:
                await self._prepare(slot)
                assert slot.checked is not None and slot.deployment is not None
                if wants_cupy(request.engine_args) and not slot.checked.has("cupy"):
                    raise LaunchError(cupy_refusal(slot.checked))
                session = SshSession(self.host.name, request, slot, self.command(argv, slot.deployment))
            except BaseException:
                slot.sessions -= 1
                raise
            self._starting(session, slot)
            await session._spawn()
        else:
            self._starting(session, slot)
        self.sessions.add(session)
        session._begin()
        return session

    def _starting(self, session: "SshSession", slot: Connection) -> None:
        for note in slot.notes:
            session._status(note)
        session._status(f"ssh {self.host.name}: engine starting on {self.target}")
        self.messages.extend(n for n in slot.notes if n not in self.messages)

    async def _start_checked(self, slot: Connection, request: LaunchRequest,
                             argv: list[str]) -> "SshSession | None":
        """Check and start in one command. Returns the running session; None when the engine
        did not start but may after an upload (the check is recorded on the slot); raises
        LaunchError when the host cannot run it. The slot's session count is released on error
        and on None it is still held."""
        bundle = current_bundle()
        want_cupy = wants_cupy(request.engine_args)
        cmd = self._check_command(bundle, argv, need_cupy=want_cupy)
        session = SshSession(self.host.name, request, slot, cmd, checked_start=True)
        await session._spawn()            # releases the slot itself when it fails
        handed_over = False
        try:
            try:
                text = await within(asyncio.shield(session._check), 60)
            except asyncio.TimeoutError:
                raise LaunchError(f"ssh {self.host.name}: no answer from {self.host.python} "
                                  f"on the host within 60 s") from None
            if text is None:      # the channel ended without a verdict: python missing, ...
                await session._channel_closed(5.0)
                raise no_check_reply(self.host, session._exit_status(), "\n".join(session.stderr_tail))
            handed_over = started(text)
            check = judge_check(self.host, text)
            if handed_over and want_cupy and not check.has("cupy"):   # cannot happen: the script
                raise LaunchError(cupy_refusal(check))               # decides the same way
        except BaseException:
            if handed_over:
                await session._stop_quietly()
            else:
                await session._finish_channel()
            slot.sessions -= 1
            raise
        self._record_check(slot, check, bundle)
        if handed_over:
            if slot.deployment is None:
                slot.deployment = Deployment(check.deployed or "", False, bundle)
            return session
        await session._finish_channel()   # the script exits: not deployed (or no cupy)
        if want_cupy and not check.has("cupy"):
            slot.sessions -= 1
            raise LaunchError(cupy_refusal(check))
        return None

    async def run_script(self, script: str, args: Sequence[str],
                         timeout: float) -> tuple[int | None, str, str]:
        """`python -S -c script args...` on the host: (exit code, stdout, stderr);
        asyncio.TimeoutError after `timeout`, LaunchError when the host cannot be reached."""
        slot = await self._slot()
        try:
            res = await within(slot.conn.run(script_command(self.host.python, script, args),
                                             check=False), timeout)
        except (asyncssh.Error, OSError) as exc:
            raise self._cannot_run(exc) from None
        finally:
            slot.sessions -= 1
        return res.exit_status, str(res.stdout or ""), str(res.stderr or "")

    def _cannot_run(self, exc: BaseException) -> LaunchError:
        return LaunchError(f"ssh {self.host.name}: cannot run {self.host.python} on the host: "
                           f"{reason(exc)}")

    async def hold_script(self, script: str, args: Sequence[str], timeout: float,
                          answer_mark: str) -> Held:
        """`python -S -c script args...` on the host, returned at its stdout line that starts
        with `answer_mark` (or its end) and left running on its channel, which holds a session
        of the connection until it closes; asyncio.TimeoutError after `timeout`, LaunchError
        when the host cannot be reached."""
        slot = await self._slot()
        started: list[Any] = []

        async def answer() -> tuple[Any, str, int | None, str]:
            proc = await slot.conn.create_process(
                script_command(self.host.python, script, args), encoding="utf-8",
                errors="replace")
            started.append(proc)
            out = ""
            while True:     # a login script may print before it
                line = str(await proc.stdout.readline())
                out += line
                if not line or line.startswith(answer_mark):
                    break
            if line:
                return proc, out, None, ""
            await proc.wait_closed()    # it ended without answering: exit status, stderr say why
            return proc, out, proc.exit_status, str(await proc.stderr.read())
        try:
            proc, out, code, err = await within(answer(), timeout)
        except BaseException as exc:
            for opened in started:
                opened.close()
            slot.sessions -= 1
            if isinstance(exc, (asyncssh.Error, OSError)):
                raise self._cannot_run(exc) from None
            raise

        async def closed() -> None:
            try:
                await proc.wait_closed()
            finally:
                slot.sessions -= 1
        return Held(code, out, err, asyncio.ensure_future(closed()), proc.close)

    def close_notes(self) -> list[str]:
        return list(self.mps.notes) if self.mps is not None else []

    async def close(self) -> None:
        live = [s for s in list(self.sessions) if s.ended is None]
        if live:
            await asyncio.gather(*(s.cancel() for s in live), return_exceptions=True)
        if self.mps is not None:
            await self.mps.stop()
        await self._close_connections()
