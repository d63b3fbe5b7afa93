"""The launcher interface every scenario kind implements.

    launcher = LocalLauncher(...)                # or SshLauncher, K8sLauncher
    session = await launcher.start(LaunchRequest(engine_args=("--workloads", "roundtrip")))
    async for event in session.events():         # Hello, Sample, ..., always SessionEnded last
        ...
    await session.cancel()                       # from anywhere; leaves nothing running

A Session subclass implements `_run()` (start the engine, feed each stdout
line to `self._line()`, return the exit code) and `_terminate()` (stop the
engine and everything it started). The base class owns the event queue, the
parser and the rules that turn how the stream ended into an outcome.
"""
from __future__ import annotations

import asyncio
import collections
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Callable

from engine.vocabulary import CANCELLED, COMPLETED, FAILED, INCOMPLETE

from .events import Event, SessionEnded, Status
from .stream import StreamParser

ENGINE_DIR = Path(__file__).resolve().parent.parent / "engine"  # shipped as source


class LaunchError(Exception):
    """The engine could not be started; the message is one line for the user."""


@dataclass(frozen=True)
class LaunchRequest:
    engine_args: tuple[str, ...] = ()        # after `python -m engine`
    env: dict[str, str] = field(default_factory=dict)  # proxy env, CUDA_VISIBLE_DEVICES, ...
    preload: str | None = None               # LD_PRELOAD library on the target
    label: str = ""


class Session(ABC):
    def __init__(self, request: LaunchRequest, name: str):
        self.request = request
        self.name = name
        self.parser = StreamParser()
        self.ended: SessionEnded | None = None
        self._stderr_tail: collections.deque[str] | None = None   # made at the first line
        # Events not taken yet, and the consumers waiting for one: a deque made when the first
        # event is queued and dropped when drained, instead of an asyncio.Queue (~3 KB with its
        # deques and Event, per session, for the life of the session: a fleet holds thousands).
        self._pending: collections.deque[Event] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._cancelled = False
        self._task: asyncio.Task | None = None
        self._listeners: list[tuple[Callable[[Event], None], bool]] = []
        self._queue_events = True
        self.listener_errors: list[str] = []   # the last 20 errors listeners raised

    # -- for consumers -------------------------------------------------------
    @property
    def stderr_tail(self) -> "collections.deque[str] | tuple[()]":
        """The last 20 stderr lines that were not protocol (empty until there is one)."""
        return self._stderr_tail if self._stderr_tail is not None else ()

    @property
    def raw_lines(self) -> list[str]:
        """The validated protocol lines received so far (archived with the result)."""
        return self.parser.raw_lines

    async def events(self) -> AsyncIterator[Event]:
        while True:
            event = await self._get()
            yield event
            if isinstance(event, SessionEnded):
                return

    async def _get(self) -> Event:
        """The next queued event, waiting for one (FIFO among waiting consumers)."""
        while not self._pending:
            waiter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._getters:
                    self._getters.remove(waiter)
                elif self._pending:     # woken, then cancelled: pass the event on
                    self._wake_one()
                raise
        return self._pending.popleft()

    def _enqueue(self, event: Event) -> None:
        if self._pending is None:
            self._pending = collections.deque()
        self._pending.append(event)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    def drain_nowait(self) -> list[Event]:
        """Every event queued so far, without waiting (SessionEnded, if present, is last).

        Lets one consumer take in many sessions' events in a single pass instead of
        one task wake-up per event per session (the TUI's pump does this).
        """
        drained = list(self._pending) if self._pending else []
        self._pending = None
        return drained

    def add_listener(self, callback: Callable[[Event], None], *, queue_events: bool = True) -> None:
        """Call `callback(event)` synchronously for every event from now on, as it is put
        (SessionEnded included, last); no task wake-up per event.

        A listener's exception never reaches the session: it is recorded in
        `listener_errors` and the session goes on. With `queue_events=False` the listener
        is the session's consumer: later events are no longer queued for `events()` /
        `drain_nowait()` (so nothing piles up unread), except SessionEnded, which still is,
        so `wait()` and `events()` still end. Take what was queued before with
        `drain_nowait()` first.
        """
        self._listeners.append((callback, queue_events))
        if not queue_events:
            self._queue_events = False

    def _notify(self, event: Event) -> None:
        for callback, _ in self._listeners:
            try:
                callback(event)
            except Exception as exc:  # a subscriber's bug must not end the session
                self.listener_errors.append(f"{type(exc).__name__}: {exc}")
                del self.listener_errors[:-20]

    async def wait(self) -> SessionEnded:
        """Drain the events and return how the session ended."""
        async for event in self.events():
            if isinstance(event, SessionEnded):
                return event
        raise AssertionError("unreachable: events() always ends with SessionEnded")

    async def wait_ended(self, poll_s: float = 0.02) -> SessionEnded:
        """Wait until the session has ended without taking its events (another consumer
        reads them); scenarios/multigpu.py starts the next sequential GPU after this."""
        if self._task is not None and self.ended is None:
            try:
                await asyncio.shield(self._task)
            except Exception:
                pass
        while self.ended is None:
            await asyncio.sleep(poll_s)
        return self.ended

    async def cancel(self) -> None:
        if self.ended is not None:
            return
        self._cancelled = True
        try:
            await self._terminate()
        finally:
            if self._task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(self._task), timeout=15)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    self._task.cancel()
            if self.ended is None:
                self._end(CANCELLED, "cancelled")

    # -- for subclasses ------------------------------------------------------
    def _begin(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._main())

    @abstractmethod
    async def _run(self) -> int | None:
        """Run the engine to its end; feed lines to _line(); return its exit code."""

    @abstractmethod
    async def _terminate(self) -> None:
        """Stop the engine (interrupt first so it emits a partial result), leave nothing."""

    def _status(self, message: str) -> None:
        self._put(Status(message))

    def _line(self, text: str) -> None:
        event = self.parser.feed(text)
        if event is not None:
            self._put(event)

    def _stderr(self, text: str) -> None:
        if text.strip():
            if self._stderr_tail is None:
                self._stderr_tail = collections.deque(maxlen=20)
            self._stderr_tail.append(text.rstrip())

    def _put(self, event: Event) -> None:
        if self.ended is None:
            if self._queue_events:
                self._enqueue(event)
            if self._listeners:
                self._notify(event)

    def _end(self, outcome: str, message: str = "", exit_code: int | None = None,
             **details) -> None:
        if self.ended is not None:
            return
        self.ended = SessionEnded(outcome, message, exit_code, details)
        self._enqueue(self.ended)
        if self._listeners:
            self._notify(self.ended)

    async def _main(self) -> None:
        try:
            exit_code = await self._run()
        except asyncio.CancelledError:
            self._end(CANCELLED, "cancelled")
            raise
        except LaunchError as exc:
            self._end(INCOMPLETE if self.parser.hello else FAILED, str(exc))
        except Exception as exc:  # a launcher bug or transport failure: report, don't crash views
            self._end(INCOMPLETE if self.parser.hello else FAILED,
                      f"{self.name}: {type(exc).__name__}: {exc}")
        else:
            self._end(*self._judge(exit_code))

    def _judge(self, exit_code: int | None) -> tuple[str, str, int | None]:
        """How did the stream end? Cancel beats everything; then the engine's own word, unless
        the stream contradicts itself (engine/plausibility.py): then it never completed."""
        done, fatal = self.parser.done, self.parser.fatal_error
        if self._cancelled:
            return CANCELLED, "cancelled", exit_code
        if fatal is not None:
            return FAILED, f"{fatal.code}: {fatal.message}", exit_code
        problems = self.parser.judge.end(exit_code)
        if problems:
            return INCOMPLETE, f"stream contradicts itself: {'; '.join(problems)}", exit_code
        if done is not None:
            if done.status == "ok":
                return COMPLETED, "", exit_code
            if done.status == "interrupted":
                return INCOMPLETE, "engine was interrupted", exit_code
            return FAILED, f"engine ended with status {done.status}", exit_code
        detail = self.stderr_tail[-1] if self.stderr_tail else "no further output"
        if self.parser.hello is None:
            return FAILED, f"engine exited with code {exit_code} before starting: {detail}", exit_code
        return INCOMPLETE, f"stream ended before 'done' (exit code {exit_code}): {detail}", exit_code


class Launcher(ABC):
    """Starts engine sessions on one target (this machine, an SSH host, a cluster)."""

    name: str = "launcher"

    @abstractmethod
    async def start(self, request: LaunchRequest) -> Session:
        """Start the engine and return its running Session; raise LaunchError on failure."""

    async def prepare(self) -> list[str]:
        """Get the target ready to start sessions quickly (connect, check, deploy), if the
        launcher has such a step; returns notes for the user. The default does nothing."""
        return []

    def use_fleet_settings(self, *, max_connects: int | None = None,
                           keepalive_s: float | None = None) -> None:
        """A fleet (scenarios/fleet_run) bounds connects itself and holds many connections:
        launchers with their own limits or keepalives adopt these. The default ignores them."""

    def close_notes(self) -> list[str]:
        """What close() had to say for the record (a layer's daemon that would not stop and
        was terminated); [] by default."""
        return []

    async def close(self) -> None:
        """Release connections held for reuse across sessions."""
