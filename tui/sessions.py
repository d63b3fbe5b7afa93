"""Runs sessions for the app: one asyncio worker per session consumes its events.

Samples and telemetry go straight into the LiveBoard (plain stores, no message
per sample); everything else becomes a small message from tui/messages.py.
No widget is touched here. Sessions are started from launchers (scenarios/),
so the same code serves local, ssh, k8s and replayed runs.
"""
from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Awaitable, Callable

from scenarios.base import LaunchError, LaunchRequest, Launcher, Session
from scenarios.events import (Done, EngineError, Hello, Result, Sample, SessionEnded, Status,
                              StreamWarning, Telemetry)

from . import messages as m
from .live import HostState, LiveBoard

if TYPE_CHECKING:
    from textual.app import App


class SessionManager:
    def __init__(self, app: "App", board: LiveBoard) -> None:
        self.app = app
        self.board = board
        self.sessions: dict[str, Session] = {}
        self._serial = itertools.count(1)

    def new_key(self, scenario: str, host: str) -> str:
        return f"{scenario}@{host}#{next(self._serial)}"

    async def run_session(self, key: str, host: str, scenario: str, launcher: Launcher,
                          request: LaunchRequest,
                          on_session: Callable[[Session], None] | None = None
                          ) -> tuple[Session | None, SessionEnded]:
        """Start and consume one session to its end (call from a worker)."""
        state = self.board.add(HostState(key=key, host=host, scenario=scenario))
        self.app.post_message(m.SessionStarted(key))
        try:
            session = await launcher.start(request)
        except LaunchError as exc:
            return None, self._fail(state, str(exc))
        except Exception as exc:  # a launcher bug must not take the app down
            return None, self._fail(state, f"{host}: {type(exc).__name__}: {exc}")
        self.sessions[key] = session
        if on_session is not None:
            on_session(session)
        ended = await self.consume(state, session)
        self.sessions.pop(key, None)
        return session, ended

    def _fail(self, state: HostState, message: str) -> SessionEnded:
        state.status, state.message = "failed", message
        self.board.dirty.add(state.key)
        self.app.post_message(m.LaunchFailed(state.key, state.host, message))
        return SessionEnded("failed", message)

    async def consume(self, state: HostState, session: Session) -> SessionEnded:
        board, post, key = self.board, self.app.post_message, state.key
        dirty = board.dirty
        async for ev in session.events():
            if isinstance(ev, Sample):
                state.on_sample(ev.workload, ev.variant, ev.ops_per_s, ev.latency_us, ev.gbps, ev.t)
                dirty.add(key)
            elif isinstance(ev, Telemetry):
                state.on_telemetry(ev.readings, ev.t)
                dirty.add(key)
            elif isinstance(ev, Hello):
                state.on_hello(ev.data)
                dirty.add(key)
                post(m.HelloReceived(key, ev.data))
            elif isinstance(ev, Result):
                state.on_result(ev.data)
                dirty.add(key)
                post(m.ResultReceived(key, ev.data))
            elif isinstance(ev, EngineError):
                state.warnings.append(f"{ev.code}: {ev.message}")
                post(m.EngineErrorReceived(key, ev.code, ev.message, ev.fatal))
            elif isinstance(ev, Status):
                state.message = ev.message
                dirty.add(key)
            elif isinstance(ev, StreamWarning):
                state.warnings.append(ev.message)
            elif isinstance(ev, Done):
                pass
            elif isinstance(ev, SessionEnded):
                state.status = ev.outcome
                state.message = ev.message
                dirty.add(key)
                post(m.SessionFinished(key, ev.outcome, ev.message))
                return ev
        return session.ended or SessionEnded("incomplete", "stream ended")

    async def cancel_all(self) -> None:
        sessions = list(self.sessions.values())
        if sessions:
            await asyncio.gather(*(s.cancel() for s in sessions), return_exceptions=True)
