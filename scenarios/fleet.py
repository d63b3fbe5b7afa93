"""Run one plan on many hosts at once: bounded, isolated per host, one run group.

    fleet = FleetRun([FleetTarget("gpu-1", SshLauncher(...)), ...], LaunchRequest(engine_args=...))
    fleet.add_listener(lambda host, event: ...)      # every event of every host, as it arrives
    result = await fleet.run()                       # returns when every host has ended
    result.statuses["gpu-1"].outcome                 # completed | failed | incomplete | cancelled

Each host goes pending → queued → connecting → running → its outcome. Two semaphores
bound the work: `max_connects` launches (SSH handshakes, remote check, engine deployment) in
flight at once — and `max_connects_per_address` against one address, below OpenSSH's
MaxStartups — and `max_sessions` engine sessions running at once. When every host fits in
`max_sessions` (and `prepare_first`, the default), the fleet first prepares every host
(`Launcher.prepare()`: for SSH connect, check the remote and deploy or find the engine) and
then starts all engines together, so the hosts measure over the same time span and the
handshake storm is over before the first sample (a host still retrying holds the others back
for at most `start_timeout_s`); otherwise each host prepares right before its session. Each launcher gets the fleet's settings (`Launcher.use_fleet_settings`): the
fleet's connect limit replaces the SSH launcher's process-wide one, and the SSH keepalive is
`keepalive_s` (60 s: at 15 s, 2,000 hosts make ~130 round trips a second). A failure
(refused, unreachable, bad key, engine crash) ends only its own host; a transient connect
failure (connection reset or lost during the handshake, as sshd's MaxStartups throttling
does) is retried with back-off. A host that sends nothing for `inactivity_timeout_s` is
cancelled and ends `incomplete` while the others go on. `group` ties the hosts' results
together.

One watchdog task checks every host's last-event time once a second, so the timeout
costs nothing per event. Events go from each session's parser straight to the fleet's
bookkeeping and listeners through `Session.add_listener(..., queue_events=False)` (no queue
hop, no task wake-up per sample: about 20 % less CPU per sample at 1,000 hosts);
`direct_events=False` reads `Session.events()` instead. Each session keeps holding one file
descriptor (its connection): `raise_nofile_limit()` lifts the soft RLIMIT_NOFILE to the hard
limit, and `check_descriptor_budget()` refuses a fleet that cannot fit, with a plain message
instead of the misleading errors asyncssh raises when descriptors run out ("Unknown local
username": getpwuid cannot open /etc/passwd).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as _dt
import errno
import gc
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from .aio import within
from .base import LaunchError, LaunchRequest, Launcher, Session
from .events import (CANCELLED, COMPLETED, FAILED, INCOMPLETE, Event, Hello, Result, Sample,
                     SessionEnded, Status, Telemetry)
from .stream import hello_facts

try:  # not on Windows
    import resource
except ImportError:  # pragma: no cover
    resource = None  # type: ignore[assignment]

# Host states before an outcome.
PENDING, QUEUED, CONNECTING, RUNNING = "pending", "queued", "connecting", "running"
OUTCOMES = (COMPLETED, FAILED, INCOMPLETE, CANCELLED)

FD_PER_SESSION = 1           # one TCP connection per SSH host
FLEET_KEEPALIVE_S = 60.0     # SSH keepalive for a fleet's connections (one host alone: 15 s)
# From this many hosts on, once every host is running the objects alive then (connections,
# sessions, hellos: ~1.5 M at 2,000 hosts) are moved out of the cyclic GC's reach
# (gc.freeze) until the run ends: otherwise each full collection walks them all, 250-350 ms
# with the event loop stopped, a few times a minute (delivery p99 ~70 ms, ~10 % of the CPU).
FREEZE_GC_HOSTS = 256
# ... and while they connect, no automatic full (generation 2) collection: each walks every
# object of the hosts connected so far (up to ~200 ms at 2,000 hosts, five of them during one
# connect-all) with the event loop stopped. Young collections go on; the one full collection
# before the freeze frees what the handshakes left.
CONNECT_GC_THRESHOLD2 = 1_000_000
FD_RESERVE = 64              # stdio, event loop, logs, store writes, sshd pipes


_FAILED = object()
_NO_LIMIT = contextlib.nullcontext()            # _attempt(): the host has been finished as failed or cancelled


class FleetError(Exception):
    """The fleet as a whole cannot run (e.g. not enough file descriptors); one line for the user."""


# ---- file descriptors ---------------------------------------------------------------------

def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft open-files limit to the hard limit; return (soft, hard) afterwards."""
    if resource is None:  # pragma: no cover
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard


def open_descriptors() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def descriptors_needed(hosts: int) -> int:
    return hosts * FD_PER_SESSION + FD_RESERVE


def check_descriptor_budget(hosts: int, max_sessions: int | None = None) -> None:
    """Raise FleetError when this many concurrent sessions cannot get a descriptor each."""
    if resource is None:  # pragma: no cover
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    concurrent = min(hosts, max_sessions or hosts)
    in_use = open_descriptors() or 0
    need = descriptors_needed(concurrent) + in_use
    if need > soft:
        raise FleetError(
            f"{concurrent} concurrent host sessions need about {need} open files, but the limit is "
            f"{soft} (hard limit {hard}): raise it (e.g. `ulimit -n {max(need, 4096)}`, or "
            f"LimitNOFILE= for a service) or lower --max-sessions to about {max(1, soft - in_use - FD_RESERVE)}")


def is_descriptor_exhaustion(exc: BaseException) -> bool:
    """True when an error (or anything in its cause chain) comes from running out of files."""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 10:
        if isinstance(e, OSError) and e.errno in (errno.EMFILE, errno.ENFILE):
            return True
        text = str(e)
        if "Too many open files" in text:
            return True
        if "Unknown local username" in text and _near_descriptor_limit():
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


def _near_descriptor_limit(margin: int = 16) -> bool:
    if resource is None:  # pragma: no cover
        return False
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = open_descriptors()
    return n is not None and soft != resource.RLIM_INFINITY and n >= soft - margin


def descriptor_message() -> str:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0] if resource is not None else "?"
    return (f"out of file descriptors (open-files limit {soft}, {open_descriptors()} open): "
            f"raise `ulimit -n` or lower --max-sessions")


# ---- transient connect failures ------------------------------------------------------------

_TRANSIENT_TEXT = ("connection lost", "connection reset", "reset by peer", "maxstartups",
                   "kex_exchange_identification", "timed out", "timeout", "broken pipe",
                   "temporarily unavailable")
_PERMANENT_TEXT = ("refused", "host key", "permission denied", "auth", "no route",
                   "name or service not known", "not known", "unreachable")


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: dropped during the handshake, not refused or rejected."""
    e: BaseException | None = exc
    texts = []
    depth = 0
    while e is not None and depth < 10:
        if isinstance(e, (ConnectionResetError, BrokenPipeError)):
            return True
        if isinstance(e, ConnectionRefusedError):
            return False
        texts.append(f"{type(e).__name__}: {e}".lower())
        e = e.__cause__ or e.__context__
        depth += 1
    joined = " | ".join(texts)
    if any(word in joined for word in _PERMANENT_TEXT):
        return False
    return any(word in joined for word in _TRANSIENT_TEXT)


# ---- per-host state ------------------------------------------------------------------------

@dataclass
class FleetTarget:
    name: str
    launcher: Launcher
    request: LaunchRequest | None = None      # per-host override of the fleet's request
    address: str | None = None                # "host:port" of the sshd, for the per-address connect limit
    labels: tuple[str, ...] = ()

    @classmethod
    def for_host(cls, host, launcher: Launcher, request: LaunchRequest | None = None) -> "FleetTarget":
        """A target for a config.toml [hosts.X] (scenarios.config.HostConfig)."""
        address = f"{host.address}:{host.port or 22}" if getattr(host, "address", None) else None
        return cls(host.name, launcher, request, address, tuple(getattr(host, "labels", ()) or ()))


@dataclass(slots=True)
class HostStatus:
    """One host's state in a fleet. `hello` holds the hello's facts a fleet needs
    (scenarios.stream.hello_facts: backend, engine version, device name/uuid/PCIe link,
    hostname), not the whole line: that is in `raw_lines` with the rest of the stream."""
    name: str
    state: str = PENDING
    message: str = ""
    attempts: int = 0
    queued_at: float | None = None
    connect_started: float | None = None
    running_since: float | None = None
    ended_at: float | None = None
    last_event_at: float | None = None
    samples: int = 0
    telemetry: int = 0
    results: int = 0
    hello: dict | None = None
    last_ops_per_s: float | None = None
    ended: SessionEnded | None = None
    raw_lines: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str | None:
        return self.state if self.state in OUTCOMES else None

    @property
    def gpu_model(self) -> str | None:
        return (self.hello or {}).get("device", {}).get("name") if self.hello else None


@dataclass
class FleetResult:
    group: str
    started_at: float
    ended_at: float
    statuses: dict[str, HostStatus]
    descriptor_exhausted: bool = False

    def counts(self) -> dict[str, int]:
        return dict(collections.Counter(s.state for s in self.statuses.values()))

    @property
    def ok(self) -> bool:
        return all(s.state == COMPLETED for s in self.statuses.values())


def new_group_id(prefix: str = "fleet") -> str:
    """A run group id: time-sortable and unique, e.g. fleet-20261125T203112Z-3f9a2c."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}-{secrets.token_hex(3)}"


Listener = Callable[[str, Event], None]


class FleetRun:
    def __init__(self, targets: Sequence[FleetTarget], request: LaunchRequest, *,
                 group: str | None = None, max_connects: int = 64,
                 max_connects_per_address: int = 8, max_sessions: int = 4096,
                 inactivity_timeout_s: float = 60.0, start_timeout_s: float = 60.0,
                 connect_retries: int = 3, retry_backoff_s: float = 0.5,
                 cancel_timeout_s: float = 10.0, keep_lines: bool = True,
                 watchdog_interval_s: float = 1.0, direct_events: bool = True,
                 prepare_first: bool = True, keepalive_s: float | None = FLEET_KEEPALIVE_S,
                 freeze_gc: bool | None = None):
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"host {dup!r} appears twice in the fleet")
        self.targets = list(targets)
        self.request = request
        self.group = group or new_group_id()
        self.max_connects = max(1, max_connects)
        self.max_connects_per_address = max(1, max_connects_per_address)
        self.max_sessions = max(1, max_sessions)
        self.inactivity_timeout_s = inactivity_timeout_s
        self.start_timeout_s = start_timeout_s
        self.connect_retries = max(0, connect_retries)
        self.retry_backoff_s = retry_backoff_s
        self.cancel_timeout_s = cancel_timeout_s
        self.keep_lines = keep_lines
        self.watchdog_interval_s = watchdog_interval_s
        self.direct_events = direct_events
        self.prepare_first = prepare_first
        self.freeze_gc = len(targets) >= FREEZE_GC_HOSTS if freeze_gc is None else freeze_gc
        self._settled: set[str] = set()      # hosts running or ended
        self._frozen = False
        self._gc_threshold: tuple[int, int, int] | None = None   # held while connecting
        self.keepalive_s = keepalive_s
        self.statuses: dict[str, HostStatus] = {t.name: HostStatus(t.name) for t in self.targets}
        self.sessions: dict[str, Session] = {}
        self.descriptor_exhausted = False
        self._listeners: list[Listener] = []
        self._status_listeners: list[Callable[[HostStatus], None]] = []
        self._tasks: dict[str, asyncio.Task] = {}
        self._timed_out: set[str] = set()
        self._cleanup: set[asyncio.Task] = set()
        self._cancelling = False
        self._connect_sem: asyncio.Semaphore | None = None
        self._session_sem: asyncio.Semaphore | None = None
        self._address_sems: dict[str, asyncio.Semaphore] = {}
        self._two_phase = False
        self._preparing = 0
        self._all_prepared: asyncio.Event | None = None
        self.started_at = 0.0
        self.prepared_at: float | None = None     # when the last host finished preparing

    # -- subscribers ---------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Called as `listener(host, event)` for each event of each host, in the event loop."""
        self._listeners.append(listener)

    def add_status_listener(self, listener: Callable[[HostStatus], None]) -> None:
        """Called with the HostStatus whenever a host changes state."""
        self._status_listeners.append(listener)

    def counts(self) -> dict[str, int]:
        return dict(collections.Counter(s.state for s in self.statuses.values()))

    # -- running ---------------------------------------------------------------------------
    async def run(self) -> FleetResult:
        self._connect_sem = asyncio.Semaphore(self.max_connects)
        self._session_sem = asyncio.Semaphore(self.max_sessions)
        self.started_at = time.monotonic()
        for t in self.targets:
            try:
                t.launcher.use_fleet_settings(max_connects=self.max_connects,
                                              keepalive_s=self.keepalive_s)
            except AttributeError:   # a launcher that is not a scenarios.base.Launcher
                pass
        # Connect and prepare every host first (all fit in max_sessions), then start all engines
        # together; otherwise each host prepares right before its session starts.
        self._two_phase = self.prepare_first and len(self.targets) <= self.max_sessions
        self._preparing = len(self.targets)
        self._all_prepared = asyncio.Event()
        if not self.targets:
            self._all_prepared.set()
        if self.freeze_gc and self._gc_threshold is None and self.targets:
            self._gc_threshold = gc.get_threshold()
            gc.set_threshold(self._gc_threshold[0], self._gc_threshold[1],
                             max(self._gc_threshold[2], CONNECT_GC_THRESHOLD2))
        for t in self.targets:
            self._set(self.statuses[t.name], QUEUED)
        watchdog = asyncio.create_task(self._watchdog(), name="fleet-watchdog")
        self._tasks = {t.name: asyncio.create_task(self._host(t), name=f"fleet-{t.name}")
                       for t in self.targets}
        try:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        except asyncio.CancelledError:
            await self.cancel()
            raise
        finally:
            watchdog.cancel()
            self._restore_gc_threshold()
            if self._frozen:
                gc.unfreeze()
                self._frozen = False
        for name, task in self._tasks.items():  # a bug in one host's task still ends that host
            status = self.statuses[name]
            if status.state not in OUTCOMES:
                exc = task.exception() if task.done() and not task.cancelled() else None
                self._finish(status, FAILED if exc else CANCELLED,
                             f"internal error: {type(exc).__name__}: {exc}" if exc else "cancelled")
        return FleetResult(self.group, self.started_at, time.monotonic(), self.statuses,
                           self.descriptor_exhausted)

    async def cancel(self) -> None:
        """Stop every host: running engines are interrupted, queued hosts never start."""
        self._cancelling = True
        await asyncio.gather(*(self._stop_session(name, None) for name in list(self.sessions)),
                             return_exceptions=True)
        for task in self._tasks.values():
            if not task.done():
                task.cancel()

    async def _host(self, target: FleetTarget) -> None:
        status = self.statuses[target.name]
        request = target.request or self.request
        assert self._session_sem is not None and self._connect_sem is not None
        if self._two_phase:
            try:
                prepared = await self._attempt(target, status, "preparing", target.launcher.prepare)
            finally:
                self._prepared_one()
            if prepared is _FAILED:
                return
            assert self._all_prepared is not None
            if not self._all_prepared.is_set():
                # A host that is still retrying (hung mid-handshake, say) does not hold the rest
                # back for longer than one start timeout.
                try:
                    await within(self._all_prepared.wait(), self.start_timeout_s)
                except asyncio.TimeoutError:
                    pass
        async with self._session_sem:
            if self._cancelling:
                self._finish(status, CANCELLED, "cancelled before it started")
                return
            if not self._two_phase:
                if await self._attempt(target, status, "preparing",
                                       target.launcher.prepare) is _FAILED:
                    return
            session = await self._start(target, status, request)
            if session is None:
                return
            self.sessions[target.name] = session
            status.running_since = status.last_event_at = time.monotonic()
            self._set(status, RUNNING)
            try:
                await self._consume(target.name, status, session)
            finally:
                self.sessions.pop(target.name, None)
                if self.keep_lines:
                    status.raw_lines = list(session.raw_lines)

    def _prepared_one(self) -> None:
        self._preparing -= 1
        if self._preparing <= 0 and self._all_prepared is not None and not self._all_prepared.is_set():
            self.prepared_at = time.monotonic()
            self._all_prepared.set()

    async def _start(self, target: FleetTarget, status: HostStatus,
                     request: LaunchRequest) -> Session | None:
        # After the prepare phase a start is a channel on a held connection, not a handshake:
        # no connect limits (a launcher that must reconnect applies its own).
        session = await self._attempt(target, status, "starting",
                                      lambda: target.launcher.start(request),
                                      limited=not self._two_phase)
        return None if session is _FAILED else session

    async def _attempt(self, target: FleetTarget, status: HostStatus, what: str, op,
                       limited: bool = True):
        """`await op()` under the connect limits, retried on transient failures; on a final
        failure the host is finished (FAILED or CANCELLED) and _FAILED is returned."""
        addr_sem = None
        if target.address and limited:
            addr_sem = self._address_sems.setdefault(
                target.address, asyncio.Semaphore(self.max_connects_per_address))
        last_error = ""
        for attempt in range(self.connect_retries + 1):
            if attempt:
                await asyncio.sleep(self.retry_backoff_s * (2 ** (attempt - 1)))
            if self._cancelling:
                self._finish(status, CANCELLED, "cancelled before it started")
                return _FAILED
            status.attempts = attempt + 1
            async with (self._connect_sem if limited else _NO_LIMIT):  # type: ignore[attr-defined]
                if addr_sem is not None:
                    await addr_sem.acquire()
                try:
                    if self._cancelling:
                        self._finish(status, CANCELLED, "cancelled before it started")
                        return _FAILED
                    if status.connect_started is None:
                        status.connect_started = time.monotonic()
                    self._set(status, CONNECTING, f"attempt {attempt + 1}" if attempt else "")
                    return await within(op(), self.start_timeout_s)
                except asyncio.TimeoutError:
                    last_error = f"no answer within {self.start_timeout_s:g} s while {what}"
                    transient = True
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # LaunchError and anything a transport raises
                    if is_descriptor_exhaustion(exc):
                        self.descriptor_exhausted = True
                        self._finish(status, FAILED, descriptor_message())
                        return _FAILED
                    last_error = str(exc) if isinstance(exc, LaunchError) else f"{type(exc).__name__}: {exc}"
                    transient = is_transient(exc)
                finally:
                    if addr_sem is not None:
                        addr_sem.release()
            if not transient:
                break
        tries = f" (after {status.attempts} attempts)" if status.attempts > 1 else ""
        self._finish(status, FAILED, f"{last_error}{tries}")
        return _FAILED

    async def _consume(self, name: str, status: HostStatus, session: Session) -> None:
        with contextlib.suppress(AttributeError):   # a fleet keeps the hello's facts, not the line
            session.parser.keep_hello_facts_only()
        if self.direct_events and isinstance(session, Session):
            # Events already queued (launcher status notes), then every later event straight from
            # the session's parser into _on_event through Session.add_listener: no queue hop and
            # no task wake-up per sample. Only SessionEnded still goes through the queue too,
            # which ends session.wait().
            for event in session.drain_nowait():
                self._on_event(name, status, event)
                if isinstance(event, SessionEnded):
                    return
            session.add_listener(lambda event: self._on_event(name, status, event),
                                 queue_events=False)
            await session.wait()
            return
        async for event in session.events():
            self._on_event(name, status, event)

    def _on_event(self, name: str, status: HostStatus, event: Event) -> None:
        status.last_event_at = time.monotonic()
        kind = type(event)
        if kind is Sample:
            status.samples += 1
            status.last_ops_per_s = event.ops_per_s
        elif kind is Telemetry:
            status.telemetry += 1
        elif kind is Result:
            status.results += 1
        elif kind is Hello:
            # the session's parser keeps the same facts (keep_hello_facts_only): one copy
            held = getattr(getattr(self.sessions.get(name), "parser", None), "hello", None)
            status.hello = (held.data if held is not None and held.data is not event.data
                            else hello_facts(event.data))
        elif kind is Status:
            status.message = event.message
        elif kind is SessionEnded:
            if name in self._timed_out:
                self._finish(status, INCOMPLETE,
                             f"no output for {self.inactivity_timeout_s:g} s: host hung or "
                             f"unreachable mid-stream (stopped)", event)
            else:
                self._finish(status, event.outcome, event.message, event)
        for listener in self._listeners:
            try:
                listener(name, event)
            except Exception:  # a subscriber's bug must not end a host
                pass

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.watchdog_interval_s)
            now = time.monotonic()
            for name, session in list(self.sessions.items()):
                status = self.statuses[name]
                if (name not in self._timed_out and status.state == RUNNING
                        and status.last_event_at is not None
                        and now - status.last_event_at > self.inactivity_timeout_s):
                    self._timed_out.add(name)
                    # The host is over for the fleet now; stopping it goes on in the background.
                    self._finish(status, INCOMPLETE,
                                 f"no output for {self.inactivity_timeout_s:g} s: host hung or "
                                 f"unreachable mid-stream (stopped)")
                    self._background(self._stop_session(name, session))

    def _background(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)
        return task

    async def _stop_session(self, name: str, session: Session | None) -> None:
        """cancel() the session; if it has not ended within cancel_timeout_s, stop waiting for it.

        Session.cancel() is not promptly cancellable (it waits for the engine's grace
        periods), so it runs as its own task and is abandoned, not cancelled."""
        session = session or self.sessions.get(name)
        if session is None:
            return
        stopper = self._background(session.cancel())
        await asyncio.wait({stopper}, timeout=self.cancel_timeout_s)
        status = self.statuses[name]
        task = self._tasks.get(name)
        if not stopper.done() and task is not None and not task.done():
            if status.state not in OUTCOMES:
                self._finish(status, CANCELLED, f"did not stop within {self.cancel_timeout_s:g} s")
            if self.keep_lines:
                status.raw_lines = list(session.raw_lines)
            task.cancel()

    # -- bookkeeping ---------------------------------------------------------------------------
    def _set(self, status: HostStatus, state: str, message: str | None = None) -> None:
        status.state = state
        if (state == RUNNING or state in OUTCOMES) and status.name not in self._settled:
            self._settled.add(status.name)
            if len(self._settled) == len(self.targets):
                # After this status has reached the listeners (the host is running now; the
                # collection, ~0.2 s at 2,000 hosts, is no part of starting it).
                try:
                    asyncio.get_running_loop().call_soon(self._all_settled)
                except RuntimeError:
                    self._all_settled()
        if state == QUEUED:
            status.queued_at = time.monotonic()
        if message is not None:
            status.message = message
        for listener in self._status_listeners:
            try:
                listener(status)
            except Exception:
                pass

    def _all_settled(self) -> None:
        if self.freeze_gc and not self._frozen and self._gc_threshold is not None:
            # Collect first: the handshakes' garbage cycles would otherwise be frozen with
            # the live objects and never freed; collected, their memory is reused (by the
            # archived stream lines) instead of growing the process.
            gc.collect()
            gc.freeze()
            self._frozen = True
        self._restore_gc_threshold()

    def _restore_gc_threshold(self) -> None:
        if self._gc_threshold is not None:
            gc.set_threshold(*self._gc_threshold)
            self._gc_threshold = None

    def _finish(self, status: HostStatus, outcome: str, message: str,
                ended: SessionEnded | None = None) -> None:
        if status.state in OUTCOMES:
            return
        status.ended = ended or SessionEnded(outcome, message)
        status.ended_at = time.monotonic()
        self._set(status, outcome, message)


def labelled(targets: Iterable[FleetTarget], label: str | None) -> list[FleetTarget]:
    return [t for t in targets if label is None or label in t.labels]


async def close_launchers(launchers: Iterable[Launcher], timeout_s: float = 10.0) -> None:
    """Close every launcher's connections concurrently; a slow one cannot hold the rest.

    A launcher whose close() has not finished after `timeout_s` (its sessions' cancel waits
    for grace periods on a hung host) gets its connections aborted."""
    launchers = list(launchers)

    async def one(launcher: Launcher) -> None:
        try:
            await launcher.close()
        except Exception:
            pass
    tasks = {asyncio.create_task(one(launcher)): launcher for launcher in launchers}
    if not tasks:
        return
    _, pending = await asyncio.wait(set(tasks), timeout=timeout_s)
    for task in pending:
        for slot in list(getattr(tasks[task], "conns", ()) or ()):
            conn = getattr(slot, "conn", slot)
            try:
                conn.abort()
            except Exception:
                pass
    if pending:
        await asyncio.wait(pending, timeout=2.0)
