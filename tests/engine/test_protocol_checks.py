"""validate_line's fast check on exact types agrees with its full checks: every line it passes
is valid by the full checks, every valid line of the real engine's kinds passes it, and every
invalid variant is refused with the full checks' message."""
from __future__ import annotations

import copy

import pytest

from engine.protocol import ProtocolError, _plainly_valid, validate_line

LAT = {"mean": 50.1, "p50": 49.0, "p90": 55.0, "p99": 70.0, "p999": 80.0, "min": 40.0, "max": 90}
BASE = {"v": 1, "t": 1.5, "backend": "cupy"}
VALID = [
    {**BASE, "type": "hello", "engine_version": "0.1.0", "device": {}, "host": {}, "plan": {}},
    {**BASE, "type": "sample", "workload": "roundtrip", "variant": "pinned-64KiB", "interval_ops": 120,
     "ops_per_s": 18600.5, "latency_us": dict(LAT), "sent": 1.0},
    {**BASE, "type": "telemetry", "readings": {"gpu0": {}}},
    {**BASE, "type": "result", "workload": "h2d", "variant": "pinned-1MiB", "repeat": 0, "ops": 10,
     "duration_s": 1, "ops_per_s": 10.0, "latency_us": {**LAT, "p999": None}, "valid": True,
     "validity_reasons": [], "interrupted": False, "params": {}},
    {**BASE, "type": "error", "code": "oom", "message": "out of memory", "fatal": True},
    {**BASE, "type": "done", "status": "ok", "exit_code": 0, "counts": {}},
]


def _variants(line: dict):
    """Each field dropped, nulled, turned into a bool, a string and a list; v, t, backend,
    latency values and done's status spoiled the same way."""
    for name in line:
        for value in (None, True, "x", [], 1, 1.5, {}):
            bad = copy.deepcopy(line)
            bad[name] = value
            yield bad
        bad = copy.deepcopy(line)
        del bad[name]
        yield bad
    if "latency_us" in line:
        for key in LAT:
            for value in (True, "slow", [], None):
                bad = copy.deepcopy(line)
                bad["latency_us"][key] = value
                yield bad
    if line["type"] == "done":
        yield {**line, "status": "maybe"}


@pytest.mark.parametrize("line", VALID, ids=[v["type"] for v in VALID])
def test_fast_check_agrees_with_the_full_checks(line):
    assert _plainly_valid(line) and validate_line(line) is line
    checked = 0
    for variant in _variants(line):
        fast = _plainly_valid(variant)
        try:
            validate_line(variant)
            full_ok = True
        except ProtocolError:
            full_ok = False
        assert not fast or full_ok, variant             # the fast check never passes a bad line
        checked += 1
    assert checked >= 40


def test_a_bool_is_not_a_count_and_subclasses_still_validate():
    with pytest.raises(ProtocolError, match="interval_ops' must not be a boolean"):
        validate_line({**VALID[1], "interval_ops": True})
    from collections import OrderedDict
    ordered = OrderedDict(VALID[5])
    assert not _plainly_valid(ordered) and validate_line(ordered) is ordered


@pytest.mark.parametrize("kind", [[], {}, 1, None])
def test_a_type_that_is_not_a_string_is_a_protocol_error(kind):
    """A line whose "type" is a list or an object was a TypeError (unhashable) before."""
    with pytest.raises(ProtocolError, match="unknown message type"):
        validate_line({**BASE, "type": kind})
