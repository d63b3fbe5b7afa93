"""The structure of stored result files: the type of every field a reader uses.

A result document is data written by gpubench, but a file in the store may have been
edited, damaged or planted. Readers (`list`, `show`, `compare`, `report`, exports, the
TUI) use fields as `(doc.get("hello") or {}).get("device")`, `f"{x:.2f}"`, `sorted(...)`:
a list where a dict belongs, text where a number belongs, NaN or an integer too large for
a float would make them fail, or worse, compute nonsense. `DOCUMENT.problem(doc)` names the
first field that is not what readers expect, so one bad file is one line and is skipped.

Fields a reader does not use are not checked (`ANY`); fields that may be absent in older
documents are checked only when present. JSON null is accepted wherever readers treat a
missing value and null alike (`Opt`).
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

from .schema import OUTCOMES, RUN_ID_MAX, is_run_id


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=True)
    except (TypeError, ValueError, OverflowError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Spec:
    what = "valid"

    def problem(self, value: Any, path: str) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def wrong(self, value: Any, path: str) -> str:
        return f"{path or 'document'}: {_shown(value)} is not {self.what}"


class _Any(Spec):
    def problem(self, value: Any, path: str) -> str | None:
        return None


class _Number(Spec):
    """A finite JSON number that fits a float (never a bool, NaN or 1e400-sized int)."""
    what = "a number"

    def problem(self, value: Any, path: str) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return self.wrong(value, path)
        try:
            finite = math.isfinite(value)
        except OverflowError:
            finite = False
        return None if finite else f"{path}: {_shown(value)} is not a finite number"


class _Type(Spec):
    def __init__(self, kind: type, what: str) -> None:
        self.kind, self.what = kind, what

    def problem(self, value: Any, path: str) -> str | None:
        if isinstance(value, bool) and self.kind is not bool:
            return self.wrong(value, path)
        return None if isinstance(value, self.kind) else self.wrong(value, path)


class _Integer(_Type):
    def problem(self, value: Any, path: str) -> str | None:
        wrong = super().problem(value, path)
        if wrong is None and abs(value) > 2 ** 53:
            return f"{path}: {_shown(value)} is out of range"
        return wrong


class Opt(Spec):
    """`spec` or null."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    def problem(self, value: Any, path: str) -> str | None:
        return None if value is None else self.spec.problem(value, path)


class OneOf(Spec):
    def __init__(self, *specs: Spec) -> None:
        self.specs = specs
        self.what = " or ".join(s.what for s in specs)

    def problem(self, value: Any, path: str) -> str | None:
        if any(s.problem(value, path) is None for s in self.specs):
            return None
        return self.wrong(value, path)


class Choice(Spec):
    def __init__(self, *words: str) -> None:
        self.words = words
        self.what = "one of " + ", ".join(words)

    def problem(self, value: Any, path: str) -> str | None:
        return None if isinstance(value, str) and value in self.words else \
            self.wrong(value, path)


class ListOf(Spec):
    what = "a list"

    def __init__(self, item: Spec, length: int | None = None) -> None:
        self.item, self.length = item, length
        if length is not None:
            self.what = f"a list of {length}"

    def problem(self, value: Any, path: str) -> str | None:
        if not isinstance(value, list) or (self.length is not None and len(value) != self.length):
            return self.wrong(value, path)
        for i, item in enumerate(value):
            problem = self.item.problem(item, f"{path}[{i}]")
            if problem is not None:
                return problem
        return None


class MapOf(Spec):
    """An object whose every value is `value` (any keys)."""
    what = "an object"

    def __init__(self, value: Spec) -> None:
        self.value = value

    def problem(self, value: Any, path: str) -> str | None:
        if not isinstance(value, dict):
            return self.wrong(value, path)
        for k, v in value.items():
            problem = self.value.problem(v, _key(path, str(k)))
            if problem is not None:
                return problem
        return None


class Obj(Spec):
    """An object: the named fields are checked when present; `required` ones must be."""
    what = "an object"

    def __init__(self, fields: Mapping[str, Spec], required: Sequence[str] = ()) -> None:
        self.fields, self.required = dict(fields), tuple(required)

    def problem(self, value: Any, path: str) -> str | None:
        if not isinstance(value, dict):
            return self.wrong(value, path)
        for name in self.required:
            if name not in value:
                return f"{_key(path, name)}: missing"
        for name, spec in self.fields.items():
            if name in value:
                problem = spec.problem(value[name], _key(path, name))
                if problem is not None:
                    return problem
        return None


class _RunId(Spec):
    what = f"a run id (letters, digits, '.', '_', '-'; at most {RUN_ID_MAX})"

    def problem(self, value: Any, path: str) -> str | None:
        return None if is_run_id(value) else self.wrong(value, path)


ANY = _Any()
NUM = _Number()
INT = _Integer(int, "an integer")
STR = _Type(str, "text")
BOOL = _Type(bool, "true or false")
OBJECT = MapOf(ANY)
TEXTS = Opt(ListOf(STR))
RUN_ID = _RunId()

LATENCY = MapOf(Opt(NUM))
GPU_TAG = Obj({"index": Opt(INT), "uuid": Opt(STR), "name": Opt(STR),
               "mig_instance": Opt(BOOL)})
TRIAL = Obj({"session": Opt(INT), "trial": Opt(INT), "repeat": Opt(INT), "ops": Opt(NUM),
             "duration_s": Opt(NUM), "ops_per_s": Opt(NUM), "latency_us": Opt(LATENCY),
             "gbps": Opt(NUM), "tflops": Opt(NUM), "bytes": Opt(NUM), "valid": BOOL,
             "validity_reasons": TEXTS, "interrupted": Opt(BOOL), "t": Opt(NUM),
             "gpu": Opt(GPU_TAG)})
WORKLOAD = Obj({"workload": STR, "variant": Opt(STR),
                "params": Opt(Obj({"memory": Opt(STR), "size_bytes": Opt(NUM)})),
                "trials": ListOf(TRIAL)}, required=("workload", "trials"))
DEVICE = Obj({"name": Opt(STR), "uuid": Opt(STR), "index": Opt(INT), "driver": Opt(STR),
              "cuda_driver": Opt(OneOf(INT, STR)), "cuda_runtime": Opt(OneOf(INT, STR)),
              "mig_instance": Opt(BOOL), "engine_version": Opt(STR), "backend": Opt(STR),
              "hostname": Opt(STR), "memory_total_mib": Opt(NUM),
              "pcie": Opt(Obj({"gen_current": Opt(INT), "width_current": Opt(INT)}))})
HELLO = Obj({"engine_version": Opt(STR), "backend": Opt(STR), "device": Opt(DEVICE),
             "host": Opt(Obj({"hostname": Opt(STR)})), "plan": Opt(OBJECT)})
SESSION = Obj({"index": INT, "trial": Opt(INT), "outcome": Choice(*OUTCOMES),
               "message": Opt(STR), "exit_code": Opt(INT), "started": Opt(STR),
               "results": Opt(INT),
               "errors": Opt(ListOf(Obj({"code": Opt(STR), "message": Opt(STR),
                                         "fatal": Opt(BOOL)}))),
               "layer_reasons": TEXTS, "done": Opt(STR), "device": Opt(DEVICE),
               "raw_lines": Opt(ListOf(INT, length=2)),
               "details": Opt(Obj({"startup": Opt(MapOf(Opt(NUM))), "node": Opt(STR)})),
               "gpu": Opt(GPU_TAG), "gpu_mode": Opt(STR)}, required=("index", "outcome"))
TELEMETRY = Obj({"count": Opt(INT),
                 "readings": Opt(MapOf(Obj({"min": Opt(NUM), "mean": Opt(NUM),
                                            "max": Opt(NUM), "n": Opt(INT)}))),
                 "throttle_events": Opt(ListOf(Obj({"names": ListOf(STR)},
                                                   required=("names",)))),
                 "throttle_event_count": Opt(INT)})
# isolation checks (results/checks.py formats these figures)
_CHECK_ROW = Obj({"fairness": Opt(NUM), "variant": Opt(STR),
                  "bare": Opt(MapOf(Opt(NUM))), "proxy_over_bare_p50": Opt(NUM)})
CHECK = Obj({"check": Opt(STR), "verdict": Opt(STR), "reasons": TEXTS,
             "configured_bytes": Opt(NUM), "observed_ceiling_bytes": Opt(NUM),
             "probe": Opt(Obj({"allocated": Opt(NUM), "refused": Opt(BOOL)})),
             "configured_fraction": Opt(NUM), "tolerance": Opt(NUM),
             "configured_launch_rate": Opt(NUM),
             "paths": Opt(ListOf(Obj({"path": Opt(STR), "limited_value": Opt(NUM),
                                      "achieved_fraction": Opt(NUM)}))),
             "rows": Opt(ListOf(_CHECK_ROW)), "instances": Opt(INT), "procs": Opt(INT)})

SCENARIO = Obj({"name": STR, "title": Opt(STR), "launcher": Opt(STR), "host": Opt(STR),
                "cluster": Opt(STR), "target": Opt(STR), "target_pct": Opt(NUM),
                "baseline": Opt(STR), "details": Opt(OBJECT)}, required=("name",))
GROUP = Obj({"id": Opt(STR), "seed": Opt(INT), "scenarios": TEXTS, "trials": Opt(INT),
             "order": Opt(ListOf(ANY)), "executed": Opt(INT), "engine_args": TEXTS})

DOCUMENT = Obj({
    "id": RUN_ID, "created": STR,
    "tool": Opt(Obj({"name": Opt(STR), "version": Opt(STR), "engine_version": Opt(STR),
                     "git_commit": Opt(STR)})),
    "scenario": SCENARIO, "group": Opt(GROUP),
    "backend": Opt(STR), "hello": Opt(HELLO),
    "gpus": Opt(ListOf(GPU_TAG)), "gpu_mode": Opt(STR),
    "partition": Opt(Obj({"kind": Opt(STR), "visible_gpus": Opt(INT),
                          "nvml_gpus": Opt(INT)})),
    "sessions": Opt(ListOf(SESSION)), "workloads": ListOf(WORKLOAD),
    "telemetry": Opt(TELEMETRY),
    "validity": Obj({"status": STR, "reasons": TEXTS, "notes": TEXTS,
                     "invalid_trials": Opt(INT), "trials": Opt(INT)}, required=("status",)),
    "stream_warnings": TEXTS, "complete": Opt(BOOL), "outcome": Opt(Choice(*OUTCOMES)),
    "incomplete_reason": Opt(STR),
    "label": Opt(STR), "notes": Opt(STR), "imported": Opt(BOOL), "source": Opt(STR),
    "raw": Opt(STR), "checks": Opt(ListOf(CHECK)), "checks_summary": Opt(MapOf(Opt(STR))),
    "checks_proxy": Opt(Obj({"name": Opt(STR)})), "selftest": Opt(OBJECT),
}, required=("id", "created", "scenario", "workloads", "validity"))

# what the store's index keeps per run (results.document.summary_of)
SUMMARY = Obj({
    "id": RUN_ID, "created": Opt(STR), "scenario": Opt(STR), "title": Opt(STR),
    "launcher": Opt(STR), "host": Opt(STR), "label": Opt(STR), "backend": Opt(STR),
    "device": Opt(STR), "driver": Opt(STR), "validity": Opt(STR),
    "outcome": Opt(Choice(*OUTCOMES)), "complete": Opt(BOOL),
    "incomplete_reason": Opt(STR), "imported": Opt(BOOL), "group": Opt(STR),
    "trials": Opt(INT),
    "headline": Opt(Obj({"workload": Opt(STR), "variant": Opt(STR), "ops_per_s": Opt(NUM)})),
}, required=("id",))

# a run's journal (results/journal.py): its header line, then one line per finished trial
JOURNAL_HEADER = Obj({
    "journal": INT, "run_id": RUN_ID, "created": STR, "scenario": SCENARIO,
    "group": Opt(GROUP), "label": Opt(STR), "notes": Opt(STR), "tool_version": Opt(STR),
    "git_commit": Opt(STR), "trials_planned": INT, "pid": Opt(INT), "hostname": Opt(STR),
}, required=("journal", "run_id", "created", "scenario", "trials_planned"))
JOURNAL_SESSION = Obj({
    "lines": ListOf(STR), "outcome": Choice(*OUTCOMES), "message": Opt(STR),
    "exit_code": Opt(INT), "trial": INT, "layer_reasons": TEXTS, "started": Opt(STR),
    "warnings": TEXTS, "gpu": Opt(GPU_TAG), "gpu_mode": Opt(STR), "details": Opt(OBJECT),
}, required=("lines", "outcome", "trial"))
JOURNAL_TRIAL = Obj({"trial_index": INT, "sessions": ListOf(JOURNAL_SESSION)},
                    required=("trial_index", "sessions"))
