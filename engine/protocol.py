"""Stream protocol v1: one JSON object per line on the engine's stdout.

This module is the single definition of the wire format. The engine writes
lines with `Emitter`; readers (scenarios/, tests) check them with
`validate_line`. It depends on the standard library only, so it can be
shipped with the engine and imported by readers without pulling in NumPy.

Every line carries: v (protocol version), type, t (monotonic seconds since
the engine started) and backend ("cupy" | "numpy-cpu") so that a CPU figure
can never be mistaken for a GPU one. See DESIGN.md for each type's fields.
"""
from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import Any, TextIO

PROTOCOL_VERSION = 1
BACKENDS = ("cupy", "numpy-cpu")
MESSAGE_TYPES = ("hello", "sample", "telemetry", "result", "error", "done")

# Fields each type must carry (beyond v/type/t/backend) and their JSON types.
# None in a tuple of types means the field may be null.
_NUM = (int, float)
REQUIRED_FIELDS: dict[str, dict[str, tuple]] = {
    "hello": {"engine_version": (str,), "device": (dict,), "host": (dict,), "plan": (dict,)},
    "sample": {"workload": (str,), "variant": (str,), "interval_ops": (int,),
               "ops_per_s": _NUM, "latency_us": (dict,)},
    "telemetry": {"readings": (dict,)},
    "result": {"workload": (str,), "variant": (str,), "repeat": (int,), "ops": (int,),
               "duration_s": _NUM, "ops_per_s": _NUM, "latency_us": (dict,),
               "valid": (bool,), "validity_reasons": (list,), "interrupted": (bool,),
               "params": (dict,)},
    "error": {"code": (str,), "message": (str,), "fatal": (bool,)},
    "done": {"status": (str,), "exit_code": (int,), "counts": (dict,)},
}
DONE_STATUSES = ("ok", "error", "interrupted")
LATENCY_KEYS = ("mean", "p50", "p90", "p99", "p999", "min", "max")


class ProtocolError(ValueError):
    """A line that does not follow protocol v1."""


def finite(value: Any) -> Any:
    """JSON has no NaN/inf: turn them into null so every reader can parse us."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


class Emitter:
    """Writes protocol lines; thread-safe (the telemetry thread shares it).

    Readers refuse a stream that contradicts itself (engine/plausibility.py), so the emitter
    makes ours consistent by construction: `done` carries the counts of the lines written
    before it, taken under the lock, and nothing is written after it (a telemetry reading
    that races the end is dropped)."""

    def __init__(self, backend: str, out: TextIO | None = None, t0: float | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}")
        self.backend = backend
        self._out = out if out is not None else sys.stdout
        self._t0 = time.monotonic() if t0 is None else t0
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {t: 0 for t in MESSAGE_TYPES}
        self.done = False

    def emit(self, msg_type: str, **fields: Any) -> dict:
        line = {"v": PROTOCOL_VERSION, "type": msg_type,
                "t": round(time.monotonic() - self._t0, 6), "backend": self.backend}
        line.update(finite(fields))
        text = None if msg_type == "done" else json.dumps(line, separators=(",", ":"), default=str)
        with self._lock:
            if self.done:
                return line
            if text is None:
                line["counts"] = dict(self.counts)
                text = json.dumps(line, separators=(",", ":"), default=str)
                self.done = True
            self.counts[msg_type] = self.counts.get(msg_type, 0) + 1
            try:
                self._out.write(text + "\n")
                self._out.flush()
            except BrokenPipeError:  # reader went away; nothing useful to do
                pass
        return line


# REQUIRED_FIELDS as exact types, for the fast check of a line as a JSON decoder makes it
# (plain dict, str, int, float, bool, list: a bool is never taken for an int here).
_EXACT_FIELDS: dict[str, tuple[tuple[str, frozenset], ...]] = {
    t: tuple((name, frozenset(types)) for name, types in fields.items())
    for t, fields in REQUIRED_FIELDS.items()}
_EXACT_NUM = frozenset(_NUM)
_LATENCY_OK = frozenset((int, float, type(None)))


def _plainly_valid(line: Any) -> bool:
    """True when a decoded line is valid on exact types alone (the common case, ~3x cheaper
    than validate_line's checks: a fleet reads thousands of lines a second); False sends it
    through the full checks, which accept or explain it."""
    if type(line) is not dict or line.get("v") != PROTOCOL_VERSION:
        return False
    msg_type = line.get("type")
    fields = _EXACT_FIELDS.get(msg_type) if type(msg_type) is str else None
    if fields is None or type(line.get("t")) not in _EXACT_NUM or line.get("backend") not in BACKENDS:
        return False
    for name, allowed in fields:
        if type(line.get(name)) not in allowed:
            return False
    if msg_type == "sample" or msg_type == "result":
        lat = line["latency_us"]
        for key in LATENCY_KEYS:
            if type(lat.get(key)) not in _LATENCY_OK:
                return False
    elif msg_type == "done" and line["status"] not in DONE_STATUSES:
        return False
    return True


def validate_line(line: dict) -> dict:
    """Check one decoded line against protocol v1; return it or raise ProtocolError.

    Unknown fields are allowed (forward compatibility). Unknown types raise
    ProtocolError with `unknown_type` set so readers can skip with a warning.
    """
    if _plainly_valid(line):
        return line
    if not isinstance(line, dict):
        raise ProtocolError("line is not a JSON object")
    if line.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {line.get('v')!r}")
    msg_type = line.get("type")
    if not isinstance(msg_type, str) or msg_type not in REQUIRED_FIELDS:
        err = ProtocolError(f"unknown message type {msg_type!r}")
        err.unknown_type = True  # type: ignore[attr-defined]
        raise err
    if not isinstance(line.get("t"), _NUM) or isinstance(line.get("t"), bool):
        raise ProtocolError(f"{msg_type}: field 't' must be a number")
    if line.get("backend") not in BACKENDS:
        raise ProtocolError(f"{msg_type}: field 'backend' must be one of {BACKENDS}")
    for name, types in REQUIRED_FIELDS[msg_type].items():
        if name not in line:
            raise ProtocolError(f"{msg_type}: missing field {name!r}")
        value = line[name]
        if isinstance(value, bool) and bool not in types:
            raise ProtocolError(f"{msg_type}: field {name!r} must not be a boolean")
        if not isinstance(value, types):
            raise ProtocolError(f"{msg_type}: field {name!r} has type {type(value).__name__}")
    if msg_type in ("sample", "result"):
        lat = line["latency_us"]
        for key in LATENCY_KEYS:
            if key in lat and lat[key] is not None and not isinstance(lat[key], _NUM):
                raise ProtocolError(f"{msg_type}: latency_us.{key} must be a number or null")
    if msg_type == "done" and line["status"] not in DONE_STATUSES:
        raise ProtocolError(f"done: status must be one of {DONE_STATUSES}")
    return line


def parse_line(text: str) -> dict:
    """Decode and validate one line of text."""
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    return validate_line(decoded)
