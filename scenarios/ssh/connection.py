"""Connections to one SSH host: options built once per attempt (~/.ssh/config honoured: alias →
HostName, User, Port, IdentityFile, ProxyJump, and the [hosts.X] keys override it), host keys
judged (host_keys.py), connects limited per host and per process and retried when the server
throttles them (OpenSSH MaxStartups drops the connection), and one connection reused by up to
SESSIONS_PER_CONNECTION sessions.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import socket
import weakref
from pathlib import Path
from typing import Any

from scenarios.base import LaunchError
from scenarios.config import HostConfig
from scenarios.descriptors import out_of_descriptors, soft_limit

from .asyncssh_import import asyncssh
from .check_reply import RemoteCheck
from .deploy import Deployment
from .host_keys import HostKeyJudge, known_hosts_path, shared_known_hosts
from .lean import TEMPLATES_FIT, drop_handshake_state, no_ssh_config, open_connection, options_from_template
from .options import preferred_ciphers, shared_client_keys

CONNECT_TIMEOUT_S = 15.0
CONNECT_ATTEMPTS = 6          # throttled connects (MaxStartups) are retried this often
CONNECTS_PER_HOST = 4         # simultaneous handshakes to one host
CONNECTS_TOTAL = 32           # simultaneous handshakes from this process (max_connects_total;
                              # a fleet sets its own: SshLauncher.use_fleet_settings)
KEEPALIVE_S = 15.0            # one launcher's keepalive; a fleet sets its own
SESSIONS_PER_CONNECTION = 8   # OpenSSH's MaxSessions is 10; SFTP and kill use channels too


def reason(exc: BaseException | None) -> str:
    """An asyncssh or OS error in a few words."""
    if exc is None:
        return "unknown"
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def too_many_files(host_name: str) -> str:
    return (f"ssh {host_name}: too many open files (limit {soft_limit()}; one per session): "
            f"raise it with `ulimit -n` or run fewer sessions at once")


def loop_semaphore(key: Any, limit: int) -> asyncio.Semaphore:
    """One semaphore per key and event loop, shared by every launcher of this process."""
    per_loop = _LIMITS.setdefault(asyncio.get_running_loop(), {})
    if key not in per_loop:
        per_loop[key] = asyncio.Semaphore(limit)
    return per_loop[key]


_LIMITS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class Connection:
    """One SSH connection, shared by up to SESSIONS_PER_CONNECTION sessions, with what was
    learnt about the host on it (the remote check, the deployed bundle, notes for the user)."""

    def __init__(self, conn: asyncssh.SSHClientConnection, client: HostKeyJudge):
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


class Connector:
    """The connections to one [hosts.X] host; SshLauncher is one."""

    def __init__(self, host: HostConfig, *, ssh_config: Any = (),
                 connect_timeout: float = CONNECT_TIMEOUT_S, keepalive_s: float = KEEPALIVE_S,
                 max_connects_total: int | None = CONNECTS_TOTAL):
        self.host = host
        self.ssh_config = ssh_config          # () = ~/.ssh/config; a list of paths; [] = none
        self.connect_timeout = connect_timeout
        self.keepalive_s = keepalive_s        # 0: none
        self.max_connects_total = max_connects_total   # None: no process-wide cap here
        self.conns: list[Connection] = []
        self._connect_lock: asyncio.Lock | None = None
        self._kh_path: Path | None = None
        self.target = host.address or host.name   # user@host:port once resolved

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
                kwargs["client_keys"] = shared_client_keys(path)
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
                raise LaunchError(too_many_files(self.host.name)) from None
            raise LaunchError(f"ssh {self.host.name}: bad ssh settings: {reason(exc)}") from None
        except (asyncssh.Error, ValueError) as exc:
            # asyncssh reports descriptor exhaustion as "Unknown local username" (getpass fails)
            if "Unknown local username" in str(exc) and out_of_descriptors():
                raise LaunchError(too_many_files(self.host.name)) from None
            raise LaunchError(f"ssh {self.host.name}: bad ssh settings: {reason(exc)}") from None

    async def _connect_options(self, judge: HostKeyJudge) -> asyncssh.SSHClientConnectionOptions:
        """This attempt's options, known_hosts, host key judge and cipher order included, built
        once: AES-GCM first unless the ssh config names Ciphers (then built again without)."""
        if self._kh_path is None:    # which known_hosts: the host's own, else the ssh config's
            self._kh_path = known_hosts_path(
                self.host, None if self.host.known_hosts else await self._options())
        judge.path = self._kh_path
        judge.key_first = bool(self.host.identity_file) and no_ssh_config(self.ssh_config)
        try:
            known = shared_known_hosts(self._kh_path)
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                raise LaunchError(too_many_files(self.host.name)) from None
            raise LaunchError(f"ssh {self.host.name}: cannot read {self._kh_path}: "
                              f"{reason(exc)}") from None
        except ValueError as exc:     # asyncssh: "Invalid known hosts entry: ..."
            raise LaunchError(f"ssh {self.host.name}: bad known_hosts file {self._kh_path}: "
                              f"{exc}") from None
        options = await self._options(known_hosts=known, client_factory=lambda: judge,
                                      encryption_algs=preferred_ciphers())
        if options.config.get("Ciphers") is not None:   # honour a Ciphers line in ~/.ssh/config
            options = await self._options(known_hosts=known, client_factory=lambda: judge)
        return options

    async def _connect(self) -> Connection:
        judge = HostKeyJudge(self.host, Path())
        options = await self._connect_options(judge)
        where = f"{options.host}:{options.port}"
        self.target = f"{options.username}@{where}"
        kh_path = judge.path
        host_sem = loop_semaphore((options.host, options.port), CONNECTS_PER_HOST)
        all_sem = (loop_semaphore(("*", self.max_connects_total), self.max_connects_total)
                   if self.max_connects_total else contextlib.nullcontext())
        name = f"ssh {self.host.name} ({self.target})"
        delay = 0.2
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            if attempt > 1:       # options hold their judge and are used up by a connect
                judge = HostKeyJudge(self.host, kh_path)
                options = await self._connect_options(judge)
            try:
                async with host_sem, all_sem:
                    conn = await open_connection(options, self.ssh_config, sign_first=judge.key_first)
                drop_handshake_state(conn)
                slot = Connection(conn, judge)
                if judge.recorded:
                    slot.notes.append(judge.trusted_note(name))
                return slot
            except asyncssh.HostKeyNotVerifiable as exc:
                raise LaunchError(judge.refusal(name, exc)) from None
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
                                      f"handshake ({reason(exc)}) after {attempt} attempt(s)"
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
                    raise LaunchError(too_many_files(self.host.name)) from None
                raise LaunchError(f"{name}: cannot connect to {where}: {reason(exc)}") from None
            except asyncssh.Error as exc:
                raise LaunchError(f"{name}: ssh handshake failed: {reason(exc)}") from None
        raise AssertionError("unreachable")

    async def _slot(self) -> Connection:
        """A connection with room for one more session (counted on it), made when none has."""
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

    async def _close_connections(self) -> None:
        for slot in self.conns:
            slot.conn.close()
        for slot in self.conns:
            try:
                await asyncio.wait_for(slot.conn.wait_closed(), timeout=5)
            except (asyncio.TimeoutError, Exception):
                pass
        self.conns = []
