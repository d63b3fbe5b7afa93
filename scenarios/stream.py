"""Engine stdout → typed events, for every launcher.

Launchers feed text lines (from a pipe, an SSH channel or a pod log) into a
`StreamParser`; it validates each against protocol v1, archives the good ones
in `raw_lines` (the replayable stream the store keeps) and returns events.
A malformed or unknown line becomes a StreamWarning naming its line number;
the session goes on.

The stream is not trusted (engine/plausibility.py): a `result` whose figures cannot be
true, or that stands where no result can (before `hello`, after `done`), comes out as a
Result with `valid` False and the reasons added. A second `hello` or any line after `done`
becomes a StreamWarning instead of its event (the first hello and done stay the session's),
and is still archived so that the saved document is judged the same way.
"""
from __future__ import annotations

import json

try:  # about 4x faster than json.loads per line: the fleet path decodes thousands of lines/s
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a dependency; stay correct without it
    _loads = json.loads

from engine.plausibility import StreamJudge
from engine.protocol import ProtocolError, validate_line

from .events import Done, EngineError, Event, Hello, Result, StreamWarning, event_from_line

MAX_LINE_CHARS = 1 << 20  # a line longer than this is garbage, not a protocol line

# The hello facts a holder of many sessions keeps (hello_facts); the full line stays in raw_lines.
HELLO_KEYS = ("v", "type", "t", "backend", "engine_version")
HELLO_DEVICE_KEYS = ("name", "uuid", "index", "backend", "pcie")
HELLO_HOST_KEYS = ("hostname", "cpu_affinity")


def hello_facts(data: dict) -> dict:
    """A hello line cut down to what a fleet keeps per host: protocol, backend, engine version,
    the device's name, uuid, index and PCIe link, the host's name and CPU affinity (~1/6 of the
    parsed line's memory; the whole line is archived in raw_lines)."""
    facts = {k: data[k] for k in HELLO_KEYS if k in data}
    device, host = data.get("device"), data.get("host")
    if isinstance(device, dict):
        facts["device"] = {k: device[k] for k in HELLO_DEVICE_KEYS if k in device}
    if isinstance(host, dict):
        facts["host"] = {k: host[k] for k in HELLO_HOST_KEYS if k in host}
    return facts


class StreamParser:
    """`archive=True` reads a store archive (sessions one after another, each from its own
    hello): a hello right after a done starts the next session instead of contradicting."""

    def __init__(self, archive: bool = False) -> None:
        self.judge = StreamJudge(archive=archive)
        self.line_no = 0
        self.raw_lines: list[str] = []      # validated lines, as received
        self.hello: Hello | None = None
        self.hello_facts_only = False       # keep_hello_facts_only()
        self.done: Done | None = None
        self.fatal_error: EngineError | None = None
        self.warnings: list[StreamWarning] = []

    def feed(self, text: str) -> Event | None:
        """Parse one line (without its newline). Blank lines return None."""
        self.line_no += 1
        text = text.rstrip("\r\n")
        if not text or text.isspace():      # no stripped copy of every line just to test it
            return None
        if len(text) > MAX_LINE_CHARS:
            return self._warn(f"line of {len(text)} characters skipped (too long)")
        try:
            line = validate_line(_loads(text))
        except json.JSONDecodeError as exc:
            return self._warn(f"not JSON ({exc.msg} at column {exc.colno}): {text[:80]!r}")
        except ProtocolError as exc:
            return self._warn(str(exc))
        self.raw_lines.append(text)
        first_hello = line["type"] == "hello" and not self.judge.hellos
        after_done = self.judge.done is not None
        problems = self.judge.line(line, self.line_no)
        if problems and (after_done or (line["type"] == "hello" and not first_hello)):
            return self._warn(f"stream contradicts itself: {problems[0]}")
        event = event_from_line(line)
        if isinstance(event, Result) and problems:
            event = Result(event.workload, event.variant, event.repeat, event.ops_per_s,
                           event.latency_us, False, event.validity_reasons + problems, line)
        elif isinstance(event, Hello):
            self.hello = Hello(hello_facts(event.data)) if self.hello_facts_only else event
        elif isinstance(event, Done):
            self.done = event
        elif isinstance(event, EngineError) and event.fatal:
            self.fatal_error = event
        return event

    def keep_hello_facts_only(self) -> None:
        """From now on `hello` holds only hello_facts() of the hello line (the event passed on
        is whole): for a process holding thousands of sessions (scenarios/fleet_run)."""
        self.hello_facts_only = True
        if self.hello is not None:
            self.hello = Hello(hello_facts(self.hello.data))

    def _warn(self, message: str) -> StreamWarning:
        warning = StreamWarning(self.line_no, f"engine output line {self.line_no}: {message}")
        self.warnings.append(warning)
        return warning


class LineSplitter:
    """Split a stream of text chunks into lines; bounded so garbage cannot eat memory."""
    __slots__ = ("_buf", "_max")

    def __init__(self, max_chars: int = MAX_LINE_CHARS):
        self._buf = ""
        self._max = max_chars

    def push(self, chunk: str) -> list[str]:
        self._buf += chunk
        *lines, self._buf = self._buf.split("\n")
        if len(self._buf) > self._max:  # keep the overlong line's marker, drop its bulk
            lines.append(self._buf[: self._max + 1])
            self._buf = ""
        return lines

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, ""
        return [rest] if rest else []
