"""Read one session to its end: what it said (hello, results, engine errors) and how it ended.

    got = await collect(session, on_event=print)     # every event also goes to on_event
    got.hello.host, got.results, got.outcome, got.message, got.lines

Every orchestrator that runs the engine reads its sessions through here (plans, the GPU
listing, the self-test, the checks), so "what did this session say" is answered one way.
A consumer that takes events in itself (the TUI's pump drains many sessions in one pass)
keeps a `Collected` and hands it each event with `take()`.

When the reading is cancelled (Ctrl-C, a timeout around it), the session is cancelled too,
so no engine is left running, and the CancelledError goes on to the caller; pass your own
`Collected` as `into` to keep what was read before that.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from engine.vocabulary import CANCELLED

from .base import Session
from .events import EngineError, Event, Hello, Result, SessionEnded


@dataclass
class Collected:
    """What one session said and how it ended (the session's own records beside)."""
    session: Session
    hello: Hello | None = None
    results: list[Result] = field(default_factory=list)
    errors: list[EngineError] = field(default_factory=list)
    ended: SessionEnded | None = None

    def take(self, event: Event) -> bool:
        """Record one event; True when it is the session's last (SessionEnded)."""
        if isinstance(event, Result):
            self.results.append(event)
        elif isinstance(event, Hello):
            self.hello = event
        elif isinstance(event, EngineError):
            self.errors.append(event)
        elif isinstance(event, SessionEnded):
            self.ended = event
            return True
        return False

    @property
    def outcome(self) -> str:
        """engine.vocabulary's outcome; a session not read to its end counts as cancelled."""
        return self.ended.outcome if self.ended is not None else CANCELLED

    @property
    def message(self) -> str:
        return self.ended.message if self.ended is not None else "cancelled"

    @property
    def exit_code(self) -> int | None:
        return self.ended.exit_code if self.ended is not None else None

    @property
    def details(self) -> dict[str, Any] | None:
        return dict(self.ended.details or {}) if self.ended is not None else None

    @property
    def lines(self) -> list[str]:
        """The validated protocol lines (what the store archives), a copy."""
        return list(self.session.raw_lines)

    @property
    def stderr_tail(self) -> list[str]:
        return list(self.session.stderr_tail)

    @property
    def warnings(self) -> list[str]:
        """Lines the stream parser skipped, one message each."""
        return [w.message for w in self.session.parser.warnings]


async def collect(session: Session, on_event: Callable[[Event], Any] | None = None, *,
                  into: Collected | None = None) -> Collected:
    """Read `session` to its end; each event goes to `on_event` after it is recorded."""
    got = into if into is not None else Collected(session)
    try:
        async for event in session.events():
            got.take(event)
            if on_event is not None:
                on_event(event)
    except BaseException:
        # cancelled or a consumer's error: end the engine too, even while being cancelled
        await asyncio.shield(session.cancel())
        if got.ended is None:
            got.ended = session.ended
        raise
    return got
