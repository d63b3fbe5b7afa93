"""`ssh`: the engine on a remote host, over asyncssh.

    launcher = SshLauncher.from_config(host)        # a [hosts.X] table with kind = "ssh"
    session = await launcher.start(LaunchRequest(engine_args=(...)))
    ...
    await launcher.close()                          # cancels live sessions, closes connections

What happens on `start()`:
1. Connect (or reuse a connection to the same host). ~/.ssh/config is honoured
   (alias → HostName, User, Port, IdentityFile, ProxyJump) and the [hosts.X] keys
   override it. Host keys are checked against known_hosts; an unknown or changed key
   is refused with one line naming the host, the key's fingerprint and how to trust
   it, unless `trust_on_first_use = true` (unknown keys only: a changed key is always
   refused), which records the key and says so. Connects per host are limited and
   retried when the server throttles them (OpenSSH MaxStartups drops the connection).
2. Once per connection: check the remote Python (>= 3.9), numpy (fatal when missing),
   cupy and nvidia-ml-py (reported with the exact pip command; without cupy the engine
   falls back to numpy-cpu unless `--backend cupy` was asked, which then fails here).
3. Deploy the engine bundle over SFTP into ~/.cache/gpubench/engine-<hash> (see
   deploy.py): skipped when the check found exactly this bundle there (the cache folder
   private and ours, the digest of the files on disk equal to ours; remote_check.py).
4. Run `<python> gpubench_supervise.py -u PYTHONSAFEPATH -- NAME=value ... -- <python>
   -m engine ARGS` in the bundle, through the remote check (remote_cmd.py), which verifies
   the bundle again in the process that then execs it: the supervisor leads its own
   process group, reports it on stderr and stops the engine if the connection drops. The
   proxy layer's LD_PRELOAD and env are on that command line (for the engine only), every
   value one quoted word. stdout lines are fed to the parser as they arrive.

`cancel()` sends SIGINT to the remote process group (the engine writes its partial
result), then SIGTERM and SIGKILL, through a second channel on the same connection.
A dropped connection ends the session as `incomplete` with the lines received so far.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import random
import socket
import sys
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .asyncssh_import import asyncssh

from scenarios.config import HostConfig

from .aio import within
from .base import LaunchError, LaunchRequest, Launcher, Session
from .deploy import CACHE_ROOT, PID_MARKER, Bundle, Deployment, current_bundle, deploy
from .remote_check import NOT_STARTED, one_line
from .remote_cmd import CHECK_SCRIPT  # noqa: F401  (tests read it from here)
from .remote_cmd import check_command, engine_argv, exec_command
from .ssh_lean import (TEMPLATES_FIT, drop_handshake_state, key_auth_first, no_ssh_config, open_connection,
                       options_from_template, quiet_packet_log)
from .stream import LineSplitter

INTERRUPT_GRACE_S = 5.0       # the engine's time to write its partial result after SIGINT
CONNECT_TIMEOUT_S = 15.0
CONNECT_ATTEMPTS = 6          # throttled connects (MaxStartups) are retried this often
CONNECTS_PER_HOST = 4         # simultaneous handshakes to one host
CONNECTS_TOTAL = 32           # simultaneous handshakes from this process (SshLauncher
                              # max_connects_total; a fleet sets its own: use_fleet_settings)
KEEPALIVE_S = 15.0            # one launcher's keepalive; a fleet's default is FLEET_KEEPALIVE_S
FLEET_KEEPALIVE_S = 60.0      # 2,000 hosts at 15 s would be ~130 round trips a second
# Cipher order when ~/.ssh/config names none: AES-GCM first (AES-NI makes it ~27 % cheaper
# per sample than asyncssh's default chacha20-poly1305 at fleet scale), then asyncssh's own.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
SESSIONS_PER_CONNECTION = 8   # OpenSSH's MaxSessions is 10; SFTP and kill use channels too
MIN_PYTHON = (3, 9)



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


def _driver_from(text: str | None) -> str | None:
    import re
    m = re.search(r"Kernel Module(?: for [^ ]+)?\s+([0-9]+\.[0-9.]+)", text or "")
    return m.group(1) if m else None


def _wants_cupy(args: tuple[str, ...]) -> bool:
    for i, a in enumerate(args):
        if a == "--backend" and i + 1 < len(args) and args[i + 1] == "cupy":
            return True
        if a == "--backend=cupy":
            return True
    return False


def format_known_hosts_line(host: str, port: int, key: asyncssh.SSHKey) -> str:
    name = host if port == 22 else f"[{host}]:{port}"
    algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{name} {algorithm} {blob}\n"


class _HostKeyJudge(asyncssh.SSHClient):
    """Called by asyncssh only for a host key that known_hosts does not trust."""

    def __init__(self, launcher: "SshLauncher", known_hosts_path: Path):
        self.launcher = launcher
        self.path = known_hosts_path
        self.seen: tuple[str, int, asyncssh.SSHKey, list[asyncssh.SSHKey]] | None = None
        self.recorded = False
        self.lost: Exception | None = None
        self.closed = False
        self.key_first = False      # see connection_made

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        if self.key_first:
            key_auth_first(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost, self.closed = exc, True

    def validate_host_public_key(self, host: str, addr: str, port: int,
                                 key: asyncssh.SSHKey) -> bool:
        known: list[asyncssh.SSHKey] = []
        if self.path.is_file():
            try:
                known = list(asyncssh.read_known_hosts(str(self.path)).match(host, addr, port)[0])
            except (OSError, ValueError):
                known = []
        self.seen = (host, port, key, known)
        if known or not self.launcher.host.trust_on_first_use:
            return False
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(format_known_hosts_line(host, port, key))
        self.recorded = True
        return True


def _loop_semaphore(table: "weakref.WeakKeyDictionary", key: Any, limit: int) -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    per_loop = table.setdefault(loop, {})
    if key not in per_loop:
        per_loop[key] = asyncio.Semaphore(limit)
    return per_loop[key]


_HOST_LIMITS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

# Shared by every launcher of this process (a fleet has thousands): parsed known_hosts files
# and loaded client keys, keyed by path and the file's mtime and size, so an edit (or a key
# recorded on first use) is seen at the next connect. Without them each host holds its own
# parsed copies (tens of KB) and re-reads the files twice per connect.
_SHARED_KNOWN_HOSTS: dict[str, tuple[tuple[int, int], Any]] = {}
_SHARED_KEYS: dict[str, tuple[tuple[int, int], Any]] = {}


def _file_stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _shared_known_hosts(path: Path) -> Any:
    key = str(path)
    stamp = _file_stamp(key)
    cached = _SHARED_KNOWN_HOSTS.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    known = asyncssh.read_known_hosts(key) if stamp is not None else asyncssh.import_known_hosts("")
    _SHARED_KNOWN_HOSTS[key] = (stamp, known)
    return known


def _shared_client_keys(path: str) -> Any:
    """The loaded key pair(s) of an identity file; the path itself when they cannot be loaded
    here (asyncssh then tries, and reports, as it always did)."""
    stamp = _file_stamp(path)
    cached = _SHARED_KEYS.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        keys = list(asyncssh.load_keypairs([path]))
    except (asyncssh.Error, ValueError):
        return [path]
    except OSError as exc:
        if exc.errno == errno.EMFILE:
            raise
        return [path]
    if not keys:
        return [path]
    _SHARED_KEYS[path] = (stamp, keys)
    return keys


_CIPHERS: list[str] | None = None


def _preferred_ciphers() -> list[str]:
    global _CIPHERS
    if _CIPHERS is None:
        from asyncssh.encryption import get_default_encryption_algs
        default = [a.decode() for a in get_default_encryption_algs()]
        _CIPHERS = [c for c in PREFERRED_CIPHERS if c in default] + \
            [c for c in default if c not in PREFERRED_CIPHERS]
    return _CIPHERS


class _Conn:
    """One SSH connection, shared by up to SESSIONS_PER_CONNECTION sessions."""

    def __init__(self, conn: asyncssh.SSHClientConnection, client: _HostKeyJudge):
        self.conn = conn
        self.client = client
        self.sessions = 0
        self.checked: RemoteCheck | None = None
        self.deployment: Deployment | None = None
        self.notes: list[str] = []
        self.prepare_lock = asyncio.Lock()

    @property
    def lost(self) -> Exception | None:
        if not self.client.closed:
            return None
        return self.client.lost or ConnectionError("connection closed")

    @property
    def alive(self) -> bool:
        return not self.client.closed and not self.conn.is_closed()


class _EngineChannel(asyncssh.SSHClientSession):
    """The engine's channel, read by callbacks: each stdout chunk is split into lines that go
    straight to the session's parser (no task wake-up per line, no stream buffering); stderr
    lines give the supervisor's process group, the rest is kept as the stderr tail."""

    def __init__(self, session: "SshSession"):
        self.session = session
        self.out = LineSplitter()
        self.err = LineSplitter()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: Exception | None = None

    def data_received(self, data: str, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            for text in self.err.push(data):
                self.session._on_stderr(text)
            return
        line = self.session._line
        for text in self.out.push(data):
            line(text)

    def eof_received(self) -> bool:
        self._flush()
        return True          # keep our side open: closing it is the supervisor's stop signal

    def _flush(self) -> None:
        for text in self.out.flush():
            self.session._line(text)
        for text in self.err.flush():
            self.session._on_stderr(text)

    def connection_lost(self, exc: Exception | None) -> None:
        self._flush()
        self.lost = exc
        self.session._channel_ended()
        if not self.closed.done():
            self.closed.set_result(None)


class SshSession(Session):
    def __init__(self, launcher: "SshLauncher", request: LaunchRequest, slot: _Conn,
                 command: str, checked_start: bool = False):
        super().__init__(request, f"ssh {launcher.host.name}")
        self._launcher = launcher
        self._slot = slot
        self.command = command
        # With checked_start the command is the check script in --start mode: its verdict (the
        # JSON after GPUBENCH_CHECK) comes first on stderr; None when the channel ends without.
        self._check: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        if not checked_start:
            self._check.set_result(None)
        self._chan: asyncssh.SSHClientChannel | None = None
        self._reader: _EngineChannel | None = None
        self._pgid: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.remote_pgid: int | None = None

    async def _spawn(self) -> None:
        try:
            self._chan, self._reader = await self._slot.conn.create_session(
                lambda: _EngineChannel(self), self.command, encoding="utf-8", errors="replace")
            quiet_packet_log(self._chan)    # every streamed line is a packet on this channel
        except (asyncssh.Error, OSError) as exc:
            self._slot.sessions -= 1
            raise LaunchError(f"{self.name}: cannot start the engine: {_reason(exc)}") from None

    def _on_stderr(self, text: str) -> None:
        if not self._check.done() and text.startswith("GPUBENCH_CHECK "):
            self._check.set_result(text.split(" ", 1)[1])
            return
        if not self._pgid.done() and text.startswith(PID_MARKER):
            try:
                self.remote_pgid = int(text.split()[1])
                self._pgid.set_result(self.remote_pgid)
                return
            except (IndexError, ValueError):
                pass
        self._stderr(text)

    def _channel_ended(self) -> None:
        if not self._check.done():
            self._check.set_result(None)

    async def _channel_closed(self, timeout: float) -> None:
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader.closed), timeout=timeout)
            except asyncio.TimeoutError:
                pass

    def _exit_status(self) -> int | None:
        return self._chan.get_exit_status() if self._chan is not None else None

    def _close_channel(self) -> None:
        if self._chan is not None:
            self._chan.close()

    async def _finish_channel(self, timeout: float = 5.0) -> None:
        """Let a command that is exiting end its channel itself, then close our side."""
        await self._channel_closed(timeout)
        self._close_channel()

    async def _stop_quietly(self) -> None:
        """Stop an engine that started but will not be used (never begun as a session)."""
        self._cancelled = True
        try:
            await self._terminate()
        except Exception:
            self._close_channel()

    async def _run(self) -> int | None:
        chan, reader = self._chan, self._reader
        assert chan is not None and reader is not None
        try:
            await reader.closed
            code = chan.get_exit_status()
            if code is None or code < 0:
                signal = chan.get_exit_signal()
                if signal is not None:
                    return 128 + _signum(signal[0])
                if self._cancelled:
                    return None
                why = (_reason(reader.lost) if reader.lost is not None else
                       _reason(self._slot.lost) if self._slot.lost
                       else "channel closed without an exit status")
                raise LaunchError(f"{self.name}: connection lost mid-run ({why}); "
                                  f"{len(self.raw_lines)} lines kept")
            if code == NOT_STARTED and self.parser.hello is None:
                self._slot.deployment = None    # the bundle failed its check: upload it again
            return code
        finally:
            self._slot.sessions -= 1
            if not self._pgid.done():
                self._pgid.cancel()

    async def _signal_group(self, sig: str) -> bool:
        if self.remote_pgid is None:
            return False
        cmd = f"kill -s {sig} -- -{self.remote_pgid} 2>/dev/null || kill -s {sig} {self.remote_pgid}"
        try:
            await asyncio.wait_for(self._slot.conn.run(cmd, check=False), timeout=10)
            return True
        except (asyncssh.Error, OSError, asyncio.TimeoutError):
            return False

    async def _terminate(self) -> None:
        chan, reader = self._chan, self._reader
        if chan is None or reader is None:
            return
        if self.remote_pgid is None and not self._pgid.done():
            try:  # the first stderr line names the group; it comes within milliseconds
                await asyncio.wait_for(asyncio.shield(self._pgid), timeout=3)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        for sig, grace in (("INT", INTERRUPT_GRACE_S), ("TERM", 2.0), ("KILL", 2.0)):
            if reader.closed.done():
                break
            if not await self._signal_group(sig):
                break
            try:
                await asyncio.wait_for(asyncio.shield(reader.closed), timeout=grace)
                break
            except asyncio.TimeoutError:
                continue
        # Closing the channel closes the supervisor's stdin: it stops the engine if it still runs.
        chan.close()


def _started(text: str) -> bool:
    """Did the check script (--start mode) hand over to the engine?"""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("started") is True


def _signum(name: str) -> int:
    import signal as _signal
    try:
        return int(getattr(_signal, f"SIG{name}"))
    except AttributeError:
        return 0


def _descriptors_exhausted() -> bool:
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
    except OSError as exc:
        return exc.errno == errno.EMFILE
    os.close(fd)
    return False


def _too_many_files(host: str) -> str:
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError):
        soft = "?"
    return (f"ssh {host}: too many open files (limit {soft}; one per session): raise it with "
            f"`ulimit -n` or run fewer sessions at once")


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown"
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def raise_open_file_limit() -> tuple[int, int]:
    """Each session holds a descriptor: lift the soft RLIMIT_NOFILE to the hard limit, once."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, ValueError, OSError):
        return (0, 0)


def _set_login_name() -> None:
    """asyncssh asks getpass.getuser() for every connection's options; with none of LOGNAME,
    USER, LNAME, USERNAME set (services, containers) each call reads the password database
    (~0.3 ms). Set LOGNAME once, as a login would, from the same database."""
    if any(os.environ.get(k) for k in ("LOGNAME", "USER", "LNAME", "USERNAME")):
        return
    try:
        import pwd
        os.environ["LOGNAME"] = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):
        pass      # asyncssh reports an unknown local user itself


class SshLauncher(Launcher):
    name = "ssh"
    _nofile_raised = False

    def __init__(self, host: HostConfig, *, ssh_config: Any = (), cache_root: str = CACHE_ROOT,
                 connect_timeout: float = CONNECT_TIMEOUT_S, keepalive_s: float = KEEPALIVE_S,
                 max_connects_total: int | None = CONNECTS_TOTAL):
        self.host = host
        self.ssh_config = ssh_config          # () = ~/.ssh/config; a list of paths; [] = none
        self.cache_root = cache_root
        self.connect_timeout = connect_timeout
        self.keepalive_s = keepalive_s        # 0: none
        self.max_connects_total = max_connects_total   # None: no process-wide cap here
        self.conns: list[_Conn] = []
        self.sessions: "weakref.WeakSet[SshSession]" = weakref.WeakSet()
        self.messages: list[str] = []         # what happened, for the Hosts view and the logs
        self._connect_lock: asyncio.Lock | None = None
        self.check_at_start = False           # a fleet's prepare() only connects (start() checks)
        self._kh_path: Path | None = None
        self.target = host.address or host.name   # user@host:port once resolved
        if not SshLauncher._nofile_raised:
            SshLauncher._nofile_raised = True
            raise_open_file_limit()
            _set_login_name()

    @classmethod
    def from_config(cls, host: HostConfig) -> "SshLauncher":
        if not host.address:
            raise LaunchError(f"hosts.{host.name}: an ssh host needs an address")
        return cls(host)

    def use_fleet_settings(self, *, max_connects: int | None = None,
                           keepalive_s: float | None = None) -> None:
        """A fleet bounds its connects itself: its limit replaces the process-wide
        CONNECTS_TOTAL (per-host limits and MaxStartups retries stay); and its keepalive
        (default FLEET_KEEPALIVE_S) replaces the single-host 15 s. prepare() then only
        connects: the remote check travels with each engine's start (one command per host)."""
        if max_connects is not None:
            self.max_connects_total = max(1, int(max_connects))
        if keepalive_s is not None:
            self.keepalive_s = keepalive_s
        self.check_at_start = True

    # -- connecting ------------------------------------------------------------------------
    def _known_hosts_path(self, options: asyncssh.SSHClientConnectionOptions) -> Path:
        if self.host.known_hosts:
            return Path(os.path.expanduser(self.host.known_hosts))
        configured = options.known_hosts
        if isinstance(configured, (list, tuple)) and configured and isinstance(configured[0], str):
            return Path(os.path.expanduser(configured[0]))
        return Path.home() / ".ssh" / "known_hosts"

    async def _options(self, **extra: Any) -> asyncssh.SSHClientConnectionOptions:
        """Every connection option in one object (asyncssh builds one per call: ~1 ms each)."""
        kwargs: dict[str, Any] = {**extra, "connect_timeout": self.connect_timeout,
                                  "keepalive_interval": self.keepalive_s or 0,
                                  "keepalive_count_max": 4}
        if self.host.user:
            kwargs["username"] = self.host.user
        if self.host.port:
            kwargs["port"] = self.host.port
        if self.host.proxy_jump:
            kwargs["tunnel"] = self.host.proxy_jump
        try:
            if self.host.identity_file:
                path = os.path.expanduser(self.host.identity_file)
                if not os.path.isfile(path):
                    raise LaunchError(f"ssh {self.host.name}: identity_file {path} does not exist")
                kwargs["client_keys"] = _shared_client_keys(path)
            if no_ssh_config(self.ssh_config):
                # No config file to read: nothing blocks, no executor hop (a fleet makes thousands).
                if TEMPLATES_FIT and "tunnel" not in kwargs and \
                        set(extra) <= {"known_hosts", "client_factory", "encryption_algs"}:
                    return options_from_template(self.host.address, kwargs.pop("port", None), kwargs)
                return asyncssh.SSHClientConnectionOptions(None, config=[], host=self.host.address,
                                                           **kwargs)
            return await asyncssh.SSHClientConnectionOptions.construct(
                None, config=self.ssh_config, host=self.host.address, **kwargs)
        except LaunchError:
            raise
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                raise LaunchError(_too_many_files(self.host.name)) from None
            raise LaunchError(f"ssh {self.host.name}: bad ssh settings: {_reason(exc)}") from None
        except (asyncssh.Error, ValueError) as exc:
            # asyncssh reports descriptor exhaustion as "Unknown local username" (getpass fails)
            if "Unknown local username" in str(exc) and _descriptors_exhausted():
                raise LaunchError(_too_many_files(self.host.name)) from None
            raise LaunchError(f"ssh {self.host.name}: bad ssh settings: {_reason(exc)}") from None

    async def _connect_options(self, judge: _HostKeyJudge) -> asyncssh.SSHClientConnectionOptions:
        """This attempt's options, known_hosts, host key judge and cipher order included, built
        once: AES-GCM first unless the ssh config names Ciphers (then built again without)."""
        if self._kh_path is None:    # which known_hosts: the host's own, else the ssh config's
            self._kh_path = (Path(os.path.expanduser(self.host.known_hosts)) if self.host.known_hosts
                             else self._known_hosts_path(await self._options()))
        judge.path = self._kh_path
        judge.key_first = bool(self.host.identity_file) and no_ssh_config(self.ssh_config)
        try:
            known = _shared_known_hosts(self._kh_path)
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                raise LaunchError(_too_many_files(self.host.name)) from None
            raise LaunchError(f"ssh {self.host.name}: cannot read {self._kh_path}: "
                              f"{_reason(exc)}") from None
        except ValueError as exc:     # asyncssh: "Invalid known hosts entry: ..."
            raise LaunchError(f"ssh {self.host.name}: bad known_hosts file {self._kh_path}: "
                              f"{exc}") from None
        options = await self._options(known_hosts=known, client_factory=lambda: judge,
                                      encryption_algs=_preferred_ciphers())
        if options.config.get("Ciphers") is not None:   # honour a Ciphers line in ~/.ssh/config
            options = await self._options(known_hosts=known, client_factory=lambda: judge)
        return options

    async def _connect(self) -> _Conn:
        judge = _HostKeyJudge(self, Path())
        options = await self._connect_options(judge)
        where = f"{options.host}:{options.port}"
        self.target = f"{options.username}@{where}"
        kh_path = judge.path
        host_sem = _loop_semaphore(_HOST_LIMITS, (options.host, options.port), CONNECTS_PER_HOST)
        all_sem = (_loop_semaphore(_HOST_LIMITS, ("*", self.max_connects_total),
                                   self.max_connects_total)
                   if self.max_connects_total else contextlib.nullcontext())
        name = f"ssh {self.host.name} ({self.target})"
        delay = 0.2
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            if attempt > 1:       # options hold their judge and are used up by a connect
                judge = _HostKeyJudge(self, kh_path)
                options = await self._connect_options(judge)
            try:
                async with host_sem, all_sem:
                    conn = await open_connection(options, self.ssh_config, sign_first=judge.key_first)
                drop_handshake_state(conn)
                slot = _Conn(conn, judge)
                if judge.recorded:
                    assert judge.seen is not None
                    slot.notes.append(f"{name}: trusted new host key "
                                      f"{judge.seen[2].get_fingerprint()} on first use; "
                                      f"recorded in {kh_path}")
                return slot
            except asyncssh.HostKeyNotVerifiable as exc:
                raise LaunchError(self._host_key_message(name, judge, kh_path, exc)) from None
            except asyncssh.PermissionDenied:
                keys = self.host.identity_file or "default keys and agent"
                raise LaunchError(f"{name}: authentication refused for user '{options.username}' "
                                  f"with {keys}: check identity_file/IdentityFile and the "
                                  f"remote ~/.ssh/authorized_keys") from None
            except (asyncssh.ConnectionLost, ConnectionResetError, BrokenPipeError,
                    asyncssh.DisconnectError) as exc:
                # OpenSSH's MaxStartups (and busy servers) drop a connection before the banner.
                retryable = isinstance(exc, (asyncssh.ConnectionLost, ConnectionResetError,
                                             BrokenPipeError)) or \
                    getattr(exc, "code", None) in (asyncssh.DISC_TOO_MANY_CONNECTIONS,
                                                   asyncssh.DISC_CONNECTION_LOST)
                if not retryable or attempt == CONNECT_ATTEMPTS:
                    raise LaunchError(f"{name}: the server closed the connection during the "
                                      f"handshake ({_reason(exc)}) after {attempt} attempt(s)"
                                      ) from None
                await asyncio.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 3.0)
            except asyncio.TimeoutError:
                raise LaunchError(f"{name}: no answer from {where} within "
                                  f"{self.connect_timeout:g} s") from None
            except socket.gaierror as exc:
                raise LaunchError(f"{name}: cannot resolve host name {options.host!r}: "
                                  f"{exc.strerror}") from None
            except ConnectionRefusedError:
                raise LaunchError(f"{name}: connection refused by {where} "
                                  f"(no sshd listening on that port?)") from None
            except OSError as exc:
                if exc.errno == errno.EMFILE:
                    raise LaunchError(_too_many_files(self.host.name)) from None
                raise LaunchError(f"{name}: cannot connect to {where}: {_reason(exc)}") from None
            except asyncssh.Error as exc:
                raise LaunchError(f"{name}: ssh handshake failed: {_reason(exc)}") from None
        raise AssertionError("unreachable")

    def _host_key_message(self, name: str, judge: _HostKeyJudge, kh_path: Path,
                          exc: Exception) -> str:
        if judge.seen is None:  # e.g. no host key algorithm in common with known_hosts
            return (f"{name}: host key not trusted ({exc}); compare the server's key with "
                    f"{kh_path}")
        host, port, key, known = judge.seen
        fp = key.get_fingerprint()
        entry = host if port == 22 else f"[{host}]:{port}"
        if known:
            old = ", ".join(k.get_fingerprint() for k in known)
            return (f"{name}: HOST KEY CHANGED: the server offers {key.get_algorithm()} {fp}, "
                    f"{kh_path} has {old}; refused (if the change is expected, remove the old "
                    f"entry with `ssh-keygen -R '{entry}' -f {kh_path}` and connect again)")
        scan = f"ssh-keyscan -p {port} {host}" if port != 22 else f"ssh-keyscan {host}"
        return (f"{name}: unknown host key {key.get_algorithm()} {fp}; refused. To trust it, "
                f"check the fingerprint and run `{scan} >> {kh_path}`, or set "
                f"trust_on_first_use = true under [hosts.{self.host.name}]")

    async def _slot(self) -> _Conn:
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            self.conns = [c for c in self.conns if c.alive or c.sessions > 0]
            for c in self.conns:
                if c.alive and c.sessions < SESSIONS_PER_CONNECTION:
                    c.sessions += 1
                    return c
            slot = await self._connect()
            self.conns.append(slot)
            slot.sessions += 1
            return slot

    # -- preparing the remote ---------------------------------------------------------------
    def _check_command(self, bundle: Bundle | None, start: list[str] | None = None,
                       need_cupy: bool = False) -> str:
        """The remote check (with `bundle`: and that bundle's state in the cache; with `start`:
        then the engine), see remote_cmd.check_command."""
        # ~15 KB, the same for every host of a fleet with one python and plan, and held by the
        # session and its channel while the engine runs: one shared copy (interned strings are
        # freed with their last user).
        return sys.intern(check_command(self.host.python, self.cache_root, bundle, start, need_cupy))

    def _no_check_reply(self, exit_status: int | None, stderr: str) -> LaunchError:
        py = self.host.python
        name = f"ssh {self.host.name}"
        err = (stderr.strip().splitlines() or ["no output"])[-1]
        if exit_status == 127:
            return LaunchError(f"{name}: remote python {py!r} not found ({err}); set "
                               f"python = \"/path/to/python3\" under [hosts.{self.host.name}]")
        return LaunchError(f"{name}: remote python {py!r} failed the check (exit "
                           f"{exit_status}): {err}")

    async def check_remote(self, slot: _Conn, bundle: Bundle | None = None) -> RemoteCheck:
        """Run the check script; with `bundle` it also says whether the cache holds exactly that
        bundle (a bad one is set aside there; a cache folder that is not safe is a LaunchError),
        so a cache hit costs no SFTP session."""
        py = self.host.python
        name = f"ssh {self.host.name}"
        try:
            res = await asyncio.wait_for(slot.conn.run(self._check_command(bundle), check=False),
                                         timeout=60)
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
            raise LaunchError(f"{name}: cannot run {py} on the host: {_reason(exc)}") from None
        out = str(res.stdout or "")
        line = next((ln for ln in out.splitlines() if ln.startswith("GPUBENCH_CHECK ")), None)
        if line is None:
            raise self._no_check_reply(res.exit_status, str(res.stderr or ""))
        return self._judge_check(line.split(" ", 1)[1])

    def _judge_check(self, text: str) -> RemoteCheck:
        """The check script's JSON → RemoteCheck with the notes for the user; LaunchError (one
        line saying exactly what is missing) when the engine cannot run there."""
        py = self.host.python
        name = f"ssh {self.host.name}"
        try:
            data = json.loads(text)
            check = RemoteCheck(str(data["python"]), data.get("executable") or py,
                                dict(data["packages"]), _driver_from(data.get("driver")))
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
                              f"[hosts.{self.host.name}]")
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

    async def _prepare(self, slot: _Conn) -> None:
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
                                      f"~/{self.cache_root}: {_reason(exc)}") from None
                d = slot.deployment
                slot.notes.append(f"ssh {self.host.name}: engine {bundle.short} "
                           + (f"uploaded ({d.files} files, {d.bytes // 1024} KiB)"
                              if d.uploaded else "already deployed (cache hit)") + f" in {one_line(d.path)}")

    def _record_check(self, slot: _Conn, check: RemoteCheck, bundle: Any) -> None:
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
        return _loop_semaphore(_HOST_LIMITS, ("deploy", limit), limit)

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
        argv = self.engine_argv(request)      # a bad variable name: refused before anything runs
        slot = await self._slot()
        session: SshSession | None = None
        if slot.checked is None and slot.deployment is None:
            session = await self._start_checked(slot, request, argv)   # releases the slot on error
        if session is None:
            try:
                await self._prepare(slot)
                assert slot.checked is not None and slot.deployment is not None
                if _wants_cupy(request.engine_args) and not slot.checked.has("cupy"):
                    raise LaunchError(self._cupy_refusal(slot.checked))
                session = SshSession(self, request, slot, self.command(argv, slot.deployment))
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

    def _starting(self, session: "SshSession", slot: _Conn) -> None:
        for note in slot.notes:
            session._status(note)
        session._status(f"ssh {self.host.name}: engine starting on {self.target}")
        self.messages.extend(n for n in slot.notes if n not in self.messages)

    @staticmethod
    def _cupy_refusal(check: RemoteCheck) -> str:
        return (next(n for n in check.notes if "cupy" in n)
                .replace("the engine will use the numpy-cpu backend", "--backend cupy cannot run"))

    async def _start_checked(self, slot: _Conn, request: LaunchRequest,
                             argv: list[str]) -> "SshSession | None":
        """Check and start in one command. Returns the running session; None when the engine
        did not start but may after an upload (the check is recorded on the slot); raises
        LaunchError when the host cannot run it. The slot's session count is released on error
        and on None it is still held."""
        bundle = current_bundle()
        want_cupy = _wants_cupy(request.engine_args)
        cmd = self._check_command(bundle, argv, need_cupy=want_cupy)
        session = SshSession(self, request, slot, cmd, checked_start=True)
        await session._spawn()            # releases the slot itself when it fails
        started = False
        try:
            try:
                text = await within(asyncio.shield(session._check), 60)
            except asyncio.TimeoutError:
                raise LaunchError(f"ssh {self.host.name}: no answer from {self.host.python} "
                                  f"on the host within 60 s") from None
            if text is None:      # the channel ended without a verdict: python missing, ...
                await session._channel_closed(5.0)
                raise self._no_check_reply(session._exit_status(), "\n".join(session.stderr_tail))
            started = _started(text)
            check = self._judge_check(text)
            if started and want_cupy and not check.has("cupy"):   # cannot happen: the script
                raise LaunchError(self._cupy_refusal(check))        # decides the same way
        except BaseException:
            if started:
                await session._stop_quietly()
            else:
                await session._finish_channel()
            slot.sessions -= 1
            raise
        self._record_check(slot, check, bundle)
        if started:
            if slot.deployment is None:
                slot.deployment = Deployment(check.deployed or "", False, bundle)
            return session
        await session._finish_channel()   # the script exits: not deployed (or no cupy)
        if want_cupy and not check.has("cupy"):
            slot.sessions -= 1
            raise LaunchError(self._cupy_refusal(check))
        return None

    async def close(self) -> None:
        live = [s for s in list(self.sessions) if s.ended is None]
        if live:
            await asyncio.gather(*(s.cancel() for s in live), return_exceptions=True)
        for slot in self.conns:
            slot.conn.close()
        for slot in self.conns:
            try:
                await asyncio.wait_for(slot.conn.wait_closed(), timeout=5)
            except (asyncio.TimeoutError, Exception):
                pass
        self.conns = []
