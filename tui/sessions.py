"""The one way a session reaches the dashboard: `watch` puts it in the pump.

Quick tests and replays start their sessions here (`run_session`); a plan run's sessions
are started by gpubench.runner.PlanRunner and handed over by tui/plan_feed.py. Either way
one pump takes every session's queued events in: samples and telemetry go straight into
the LiveBoard (plain stores, no message per sample); everything else becomes a small
message from tui/messages.py. No widget is touched here. Sessions come from launchers
(scenarios/), so the same code serves local, ssh, k8s and replayed runs.
"""
from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any, Callable

from scenarios.base import LaunchError, LaunchRequest, Launcher, Session
from scenarios.events import (FAILED, Done, EngineError, Event, Hello, Result, Sample,
                              SessionEnded, Status, StreamWarning, Telemetry)

from . import messages as m
from .live import HostState, LiveBoard

if TYPE_CHECKING:
    from textual.app import App


PUMP_HZ = 20.0     # how often queued events are taken in (samples are shown at 10 Hz anyway)


class _Active:
    __slots__ = ("state", "session", "done", "take")

    def __init__(self, state: HostState, session: Session, done: asyncio.Future,
                 take: Callable[[Event], Any] | None) -> None:
        # One pump drains the sessions that have events with Session.drain_nowait(),
        # instead of one task wake-up per sample per session (see benchmarks/tui_load.py).
        self.state, self.session, self.done, self.take = state, session, done, take


class SessionManager:
    def __init__(self, app: "App", board: LiveBoard) -> None:
        self.app = app
        self.board = board
        self.sessions: dict[str, Session] = {}     # the sessions run_session started
        self._active: dict[str, _Active] = {}
        self._serial = itertools.count(1)
        self._pump_task: asyncio.Task | None = None
        self._ready: set[str] = set()     # keys of sessions with events queued since the last pump

    def new_key(self, scenario: str, host: str) -> str:
        return f"{scenario}@{host}#{next(self._serial)}"

    async def run_session(self, key: str, host: str, scenario: str, launcher: Launcher,
                          request: LaunchRequest) -> tuple[Session | None, SessionEnded]:
        """Start one session and wait until it has ended (call from a worker)."""
        state = self.board.add(HostState(key=key, host=host, scenario=scenario))
        try:
            session = await launcher.start(request)
        except LaunchError as exc:
            return None, self.fail(state, str(exc))
        except Exception as exc:  # a launcher bug must not take the app down
            return None, self.fail(state, f"{host}: {type(exc).__name__}: {exc}")
        self.sessions[key] = session
        try:
            return session, await self.watch(state, session)
        finally:
            self.sessions.pop(key, None)

    async def watch(self, state: HostState, session: Session,
                    take: Callable[[Event], Any] | None = None) -> SessionEnded:
        """Take a started session's events into `state` (its row) through the pump until it
        has ended; each event also goes to `take` (a plan's runner records the session).
        Cancelling the session is its owner's: run_session's or the plan's runner."""
        key = state.key
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        self._active[key] = _Active(state, session, done, take)
        try:
            self._ready.add(key)          # whatever was queued before the listener
            session.add_listener(lambda _event, k=key: self._ready.add(k))
            self._ensure_pump()
            return await done
        finally:
            self._active.pop(key, None)

    def _ensure_pump(self) -> None:
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        """Take in every active session's queued events, PUMP_HZ times a second."""
        period = 1.0 / PUMP_HZ
        while self._active:
            self.pump_once()
            await asyncio.sleep(period)
        self.pump_once()

    def pump_once(self) -> None:
        ready, self._ready = self._ready, set()
        for key in ready:                 # only sessions that received events: cheap at 2,000 hosts
            active = self._active.get(key)
            if active is None:
                continue
            for ev in active.session.drain_nowait():
                if active.take is not None:
                    active.take(ev)
                if self._handle(active.state, ev):
                    if not active.done.done():
                        active.done.set_result(ev)
                    break

    def fail(self, state: HostState, message: str, outcome: str = FAILED) -> SessionEnded:
        """A row whose session never started (the launch failed, or was cancelled)."""
        state.status, state.message = outcome, message
        self.board.dirty.add(state.key)
        if outcome == FAILED:
            self.app.post_message(m.LaunchFailed(state.key, state.host, message))
        return SessionEnded(outcome, message)

    def _handle(self, state: HostState, ev) -> bool:
        """Apply one event; True when it is the session's last (SessionEnded)."""
        key = state.key
        if isinstance(ev, Sample):
            state.on_sample(ev.workload, ev.variant, ev.ops_per_s, ev.latency_us, ev.gbps, ev.t,
                            ev.data.get("tokens_per_s"))
            self.board.dirty.add(key)
        elif isinstance(ev, Telemetry):
            state.on_telemetry(ev.readings, ev.t)
            self.board.dirty.add(key)
        elif isinstance(ev, Hello):
            state.on_hello(ev.data)
            self.board.dirty.add(key)
            self.app.post_message(m.HelloReceived(key, ev.data))
        elif isinstance(ev, Result):
            state.on_result(ev.data)
            self.board.dirty.add(key)
        elif isinstance(ev, EngineError):
            state.warnings.append(f"{ev.code}: {ev.message}")
            self.app.post_message(m.EngineErrorReceived(key, ev.code, ev.message, ev.fatal))
        elif isinstance(ev, Status):
            state.message = ev.message
            self.board.dirty.add(key)
        elif isinstance(ev, StreamWarning):
            state.warnings.append(ev.message)
        elif isinstance(ev, Done):
            pass
        elif isinstance(ev, SessionEnded):
            state.status = ev.outcome
            state.message = ev.message
            state.show_headline()
            self.board.dirty.add(key)
            self.app.post_message(m.SessionFinished(key, ev.outcome, ev.message))
            return True
        return False

    async def cancel_all(self) -> None:
        sessions = list(self.sessions.values())
        if sessions:
            await asyncio.gather(*(s.cancel() for s in sessions), return_exceptions=True)
        self.pump_once()
