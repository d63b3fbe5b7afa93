"""Typed events a Session yields: engine lines parsed, plus session-level news.

Each engine event keeps its validated protocol line in `data` (what the store
archives); the typed fields are what views read. No Textual here: the TUI turns
these into its own messages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

# SessionEnded.outcome is one of these (engine/vocabulary.py defines them for every layer)
from engine.vocabulary import CANCELLED, COMPLETED, FAILED, INCOMPLETE  # noqa: F401


@dataclass(frozen=True)
class Hello:
    data: dict[str, Any]

    @property
    def backend(self) -> str:
        return self.data["backend"]

    @property
    def device(self) -> dict[str, Any]:
        return self.data["device"]

    @property
    def host(self) -> dict[str, Any]:
        return self.data["host"]


@dataclass(frozen=True)
class Sample:
    workload: str
    variant: str
    ops_per_s: float
    latency_us: dict[str, Any]
    gbps: float | None
    t: float
    data: dict[str, Any]


@dataclass(frozen=True)
class Telemetry:
    readings: dict[str, Any]
    t: float
    data: dict[str, Any]


@dataclass(frozen=True)
class Result:
    workload: str
    variant: str
    repeat: int
    ops_per_s: float
    latency_us: dict[str, Any]
    valid: bool
    validity_reasons: list[str]
    data: dict[str, Any]


@dataclass(frozen=True)
class EngineError:
    code: str
    message: str
    fatal: bool
    data: dict[str, Any]


@dataclass(frozen=True)
class Done:
    status: str
    exit_code: int
    data: dict[str, Any]


@dataclass(frozen=True)
class Status:
    """Progress of the launch itself: 'connecting', 'deploying engine', 'pod Pending'."""
    message: str


@dataclass(frozen=True)
class StreamWarning:
    """A line that was skipped: malformed JSON, wrong protocol, unknown type."""
    line_no: int
    message: str


@dataclass(frozen=True)
class SessionEnded:
    """Always the last event of a session."""
    outcome: str                  # engine.vocabulary: COMPLETED, FAILED, INCOMPLETE, CANCELLED
    message: str = ""
    exit_code: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


EngineEvent = Union[Hello, Sample, Telemetry, Result, EngineError, Done]
Event = Union[Hello, Sample, Telemetry, Result, EngineError, Done, Status, StreamWarning,
              SessionEnded]


def event_from_line(line: dict[str, Any]) -> EngineEvent:
    """Build the typed event for an already validated protocol line."""
    kind = line["type"]
    if kind == "hello":
        return Hello(line)
    if kind == "sample":
        return Sample(line["workload"], line["variant"], float(line["ops_per_s"]),
                      line["latency_us"], line.get("gbps"), float(line["t"]), line)
    if kind == "telemetry":
        return Telemetry(line["readings"], float(line["t"]), line)
    if kind == "result":
        return Result(line["workload"], line["variant"], line["repeat"], float(line["ops_per_s"]),
                      line["latency_us"], line["valid"], list(line["validity_reasons"]), line)
    if kind == "error":
        return EngineError(line["code"], line["message"], line["fatal"], line)
    if kind == "done":
        return Done(line["status"], line["exit_code"], line)
    raise ValueError(f"no event for message type {kind!r}")
