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
for at most `start_timeout_s`); otherwise each host prepares right before its session. Each
launcher gets the fleet's settings (`Launcher.use_fleet_settings`): the
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
descriptor (its connection): scenarios.descriptors lifts the open-files limit, and
failures.check_descriptor_budget() refuses a fleet that cannot fit, with a plain message
instead of the misleading errors asyncssh raises when descriptors run out; a host that runs
out mid-run ends with descriptor_message(). Large fleets hold the garbage collector back
(gc_pause.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Callable, Sequence

from scenarios.aio import within
from scenarios.base import LaunchError, LaunchRequest, Session
from scenarios.descriptors import descriptor_message, is_descriptor_exhaustion
from scenarios.events import (CANCELLED, FAILED, INCOMPLETE, Event, Hello, Result, Sample,
                              SessionEnded, Status, Telemetry)
from scenarios.stream import hello_facts

from .failures import is_transient
from .gc_pause import FREEZE_GC_HOSTS, GcPause
from .hosts import (CONNECTING, OUTCOMES, QUEUED, RUNNING, FleetResult, FleetTarget, HostStatus,
                    new_group_id, state_counts)

FLEET_KEEPALIVE_S = 60.0     # SSH keepalive for a fleet's connections (one host alone: 15 s)

_FAILED = object()           # _attempt(): the host has been finished as failed or cancelled
_NO_LIMIT = contextlib.nullcontext()


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
        self._gc = GcPause()
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
        return state_counts(self.statuses)

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
        if self.freeze_gc and self.targets:
            self._gc.hold()
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
            self._gc.end()
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
                    asyncio.get_running_loop().call_soon(self._gc.settle)
                except RuntimeError:
                    self._gc.settle()
        if state == QUEUED:
            status.queued_at = time.monotonic()
        if message is not None:
            status.message = message
        for listener in self._status_listeners:
            try:
                listener(status)
            except Exception:
                pass

    def _finish(self, status: HostStatus, outcome: str, message: str,
                ended: SessionEnded | None = None) -> None:
        if status.state in OUTCOMES:
            return
        status.ended = ended or SessionEnded(outcome, message)
        status.ended_at = time.monotonic()
        self._set(status, outcome, message)
