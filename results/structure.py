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
import sys
from typing import Any, Mapping, Optional, Sequence, Tuple

from .schema import OUTCOMES, RUN_ID_MAX, is_run_id


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=True)
    except (TypeError, ValueError, OverflowError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _join(head: str, rel: str) -> str:
    """A field's path from its parent's: `workloads` + `[0].trials` -> `workloads[0].trials`."""
    if not rel:
        return head
    if not head or rel.startswith("["):
        return head + rel
    return f"{head}.{rel}"


Problem = Optional[Tuple[str, str]]    # (path below the spec's value, what is wrong)


class Spec:
    """A check of one value. `_check` returns (relative path, what is wrong) or None; the
    path is built only on the way back from a problem, so a whole valid document costs
    no string work."""
    what = "valid"

    def problem(self, value: Any, root: str = "") -> str | None:
        """The first problem as one line (`root.path: "x" is not a number`), or None."""
        found = self._check(value)
        if found is None:
            return None
        path, text = found
        return f"{_join(root, path) or 'document'}: {text}"

    def _check(self, value: Any) -> Problem:  # pragma: no cover - abstract
        raise NotImplementedError

    def wrong(self, value: Any) -> Problem:
        return "", f"{_shown(value)} is not {self.what}"


class _Any(Spec):
    def _check(self, value: Any) -> Problem:
        return None


class _Number(Spec):
    """A finite JSON number that fits a float (never a bool, NaN or 1e400-sized int)."""
    what = "a number"

    def _check(self, value: Any) -> Problem:
        kind = type(value)
        if kind is float:
            if value - value == 0.0:        # false for NaN and infinities
                return None
        elif kind is int:
            if -FLOAT_MAX <= value <= FLOAT_MAX:
                return None
        else:
            return self.wrong(value)
        return "", f"{_shown(value)} is not a finite number"


FLOAT_MAX = int(sys.float_info.max)


class _Type(Spec):
    def __init__(self, kind: type, what: str) -> None:
        self.kind, self.what = kind, what

    def _check(self, value: Any) -> Problem:
        if type(value) is self.kind:
            return None
        if isinstance(value, bool) and self.kind is not bool:
            return self.wrong(value)
        return None if isinstance(value, self.kind) else self.wrong(value)


class _Integer(_Type):
    def _check(self, value: Any) -> Problem:
        wrong = super()._check(value)
        if wrong is None and abs(value) > 2 ** 53:
            return "", f"{_shown(value)} is out of range"
        return wrong


class Opt(Spec):
    """`spec` or null."""

    def __init__(self, spec: Spec) -> None:
        self.spec, self.inner = spec, spec._check
        self.what = f"{spec.what} or null"

    def _check(self, value: Any) -> Problem:
        return None if value is None else self.inner(value)


class OneOf(Spec):
    def __init__(self, *specs: Spec) -> None:
        self.specs = specs
        self.what = " or ".join(s.what for s in specs)

    def _check(self, value: Any) -> Problem:
        if any(s._check(value) is None for s in self.specs):
            return None
        return self.wrong(value)


class Choice(Spec):
    def __init__(self, *words: str) -> None:
        self.words = words
        self.what = "one of " + ", ".join(words)

    def _check(self, value: Any) -> Problem:
        return None if isinstance(value, str) and value in self.words else self.wrong(value)


class ListOf(Spec):
    what = "a list"

    def __init__(self, item: Spec, length: int | None = None) -> None:
        self.item, self.length = item, length
        if length is not None:
            self.what = f"a list of {length}"

    def _check(self, value: Any) -> Problem:
        if not isinstance(value, list) or (self.length is not None and len(value) != self.length):
            return self.wrong(value)
        check = self.item._check
        for i, item in enumerate(value):
            found = check(item)
            if found is not None:
                return _join(f"[{i}]", found[0]), found[1]
        return None


class MapOf(Spec):
    """An object whose every value is `value` (any keys)."""
    what = "an object"

    def __init__(self, value: Spec) -> None:
        self.value = value

    def _check(self, value: Any) -> Problem:
        if not isinstance(value, dict):
            return self.wrong(value)
        check = self.value._check
        for k, v in value.items():
            found = check(v)
            if found is not None:
                return _join(str(k), found[0]), found[1]
        return None


class Obj(Spec):
    """An object: the named fields are checked when present; `required` ones must be."""
    what = "an object"

    def __init__(self, fields: Mapping[str, Spec], required: Sequence[str] = ()) -> None:
        self.fields, self.required = dict(fields), tuple(required)
        self.checks = tuple((name, spec._check) for name, spec in self.fields.items())

    def _check(self, value: Any) -> Problem:
        if not isinstance(value, dict):
            return self.wrong(value)
        for name in self.required:
            if name not in value:
                return name, "missing"
        get = value.get
        for name, check in self.checks:
            v = get(name, _ABSENT)
            if v is not _ABSENT:
                found = check(v)
                if found is not None:
                    return _join(name, found[0]), found[1]
        return None


_ABSENT = object()


class _RunId(Spec):
    what = f"a run id (letters, digits, '.', '_', '-'; at most {RUN_ID_MAX})"

    def _check(self, value: Any) -> Problem:
        return None if is_run_id(value) else self.wrong(value)


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
             "gpu": Opt(GPU_TAG), "window": Opt(OBJECT), "tokens_per_s": Opt(NUM),
             "jitter": Opt(NUM), "flops_per_step": Opt(NUM),
             "device_latency_us": Opt(LATENCY)})
# how many of a workload variant's results count (results/trial_counts.py)
COUNTS = Obj({"workload": Opt(STR), "variant": Opt(STR), "counted": INT, "trials": INT},
             required=("counted", "trials"))
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
               "layer_reasons": TEXTS, "layer_notes": TEXTS, "done": Opt(STR),
               "device": Opt(DEVICE),
               "raw_lines": Opt(ListOf(INT, length=2)),
               "details": Opt(Obj({"startup": Opt(MapOf(Opt(NUM))), "node": Opt(STR)})),
               "gpu": Opt(GPU_TAG), "gpu_mode": Opt(STR)}, required=("index", "outcome"))
TELEMETRY = Obj({"count": Opt(INT),
                 "readings": Opt(MapOf(Obj({"min": Opt(NUM), "mean": Opt(NUM),
                                            "max": Opt(NUM), "n": Opt(INT)}))),
                 "throttle_events": Opt(ListOf(Obj({"names": ListOf(STR)},
                                                   required=("names",)))),
                 "throttle_event_count": Opt(INT)})
# isolation checks (results/check_verdicts.py formats these figures)
_INIT_SIDE = Opt(Obj({"p50_ms": Opt(NUM), "p99_ms": Opt(NUM), "failed": Opt(INT)}))
_CHECK_ROW = Obj({"fairness": Opt(NUM), "variant": Opt(STR), "bare": _INIT_SIDE,
                  "proxy": _INIT_SIDE, "proxy_over_bare_p50": Opt(NUM),
                  "proxy_over_bare_p99": Opt(NUM)})
# a compute load's row (results/share_series.py: its series and figures)
_NUMS = Opt(ListOf(Opt(NUM)))
_COMPUTE_PATH = Obj({"path": Opt(STR), "label": Opt(STR), "error": Opt(STR),
                     "unit": Opt(STR), "t": _NUMS, "share": _NUMS, "rate": _NUMS,
                     **{k: Opt(NUM) for k in ("steady", "steady_share", "limit", "limit_share",
                                              "overshoot", "overshoot_value", "settle_s",
                                              "interval_s")},
                     "within": Opt(BOOL), "judged": Opt(BOOL)})
# a check's paths: the compute check's series above, or the memory check's allocation paths
_CHECK_PATH = Obj({**_COMPUTE_PATH.fields, "verdict": Opt(STR), "observed": Opt(STR),
                   "summary": Opt(STR), "limited_value": Opt(NUM),
                   "achieved_fraction": Opt(NUM)})
CHECK = Obj({"check": Opt(STR), "verdict": Opt(STR), "reasons": TEXTS,
             "configured_bytes": Opt(NUM), "observed_ceiling_bytes": Opt(NUM),
             "observed": Opt(STR),
             "probe": Opt(Obj({"allocated": Opt(NUM), "refused": Opt(BOOL)})),
             "configured_fraction": Opt(NUM), "tolerance": Opt(NUM),
             "configured_launch_rate": Opt(NUM),
             "paths": Opt(ListOf(_CHECK_PATH)), "interval_s": Opt(NUM),
             "tenants": Opt(Obj({"ratio": Opt(NUM), "configured_ratio": Opt(NUM),
                                 "ratio_within": Opt(BOOL)})),
             "rows": Opt(ListOf(_CHECK_ROW)), "instances": Opt(INT),
             "procs": Opt(OneOf(INT, STR))})

SCENARIO = Obj({"name": STR, "title": Opt(STR), "launcher": Opt(STR), "host": Opt(STR),
                "cluster": Opt(STR), "target": Opt(STR), "target_pct": Opt(NUM),
                "baseline": Opt(STR), "details": Opt(OBJECT)}, required=("name",))
GROUP = Obj({"id": Opt(STR), "seed": Opt(INT), "scenarios": TEXTS, "trials": Opt(INT),
             "order": Opt(ListOf(ANY)), "executed": Opt(INT), "planned": Opt(INT),
             "engine_args": TEXTS})

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
                     "invalid_trials": Opt(INT), "trials": Opt(INT),
                     "metrics": Opt(ListOf(COUNTS)), "headline": Opt(COUNTS)},
                    required=("status",)),
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
    "trials": Opt(INT), "results": Opt(INT),
    # its rate is read through results.rates (tokens/s for a decode/prefill headline)
    "headline": Opt(Obj({"workload": Opt(STR), "variant": Opt(STR), "ops_per_s": Opt(NUM),
                         "tokens_per_s": Opt(NUM)})),
    # the headline's results that count (results/trial_counts.py); required, so that an index
    # written before it existed is read again from the documents
    "counted": Opt(COUNTS),
}, required=("id", "counted"))

# a run's journal (results/journal.py): its header line, then one line per finished trial
JOURNAL_HEADER = Obj({
    "journal": INT, "run_id": RUN_ID, "created": STR, "scenario": SCENARIO,
    "group": Opt(GROUP), "label": Opt(STR), "notes": Opt(STR), "tool_version": Opt(STR),
    "git_commit": Opt(STR), "trials_planned": INT, "pid": Opt(INT), "hostname": Opt(STR),
}, required=("journal", "run_id", "created", "scenario", "trials_planned"))
JOURNAL_SESSION = Obj({
    "lines": ListOf(STR), "outcome": Choice(*OUTCOMES), "message": Opt(STR),
    "exit_code": Opt(INT), "trial": INT, "layer_reasons": TEXTS, "layer_notes": TEXTS,
    "started": Opt(STR),
    "warnings": TEXTS, "gpu": Opt(GPU_TAG), "gpu_mode": Opt(STR), "details": Opt(OBJECT),
}, required=("lines", "outcome", "trial"))
JOURNAL_TRIAL = Obj({"trial_index": INT, "sessions": ListOf(JOURNAL_SESSION)},
                    required=("trial_index", "sessions"))
