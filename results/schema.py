"""The result document's schema: version, typed errors and the checks every reader runs.

A result document is one JSON object per run (see DESIGN.md, "Result document"):

    {"schema_version": 1, "id": ..., "created": "2026-11-25T20:35:41Z",
     "tool": {"name", "version", "engine_version", "git_commit"},
     "scenario": {"name", "title", "launcher", "host", "cluster", "target", "target_pct",
                  "baseline", "details": {...}},
     "group": {"id", "seed", "order": [[scenario, trial], ...], "scenarios": [...]},
     "backend": "cupy" | "numpy-cpu" | null,
     "hello": {...the first engine hello's device/host/plan facts...},
     "sessions": [{"index", "trial", "outcome", "message", "exit_code", "results",
                   "raw_lines": [start, end], "device": {...identity facts...},
                   "details": {"startup": {"to_running_s", "to_hello_s",   # optional: what
                               "to_first_sample_s"}, "pod", "node", ...}}],  # the launcher said
     "workloads": [{"workload", "variant", "params", "trials": [{...one result line...}]}],
     "telemetry": {"count", "readings": {name: {"min", "mean", "max"}}, "throttle_events": [...]},
     "validity": {"status": "VALID" | "INVALID", "reasons": [...], "notes": [...],
                  "metrics": [{"workload", "variant", "counted", "trials"}],  # trials that
                  "headline": {"workload", "variant", "counted", "trials"}},  # count, per metric
     "gpus": [{"index", "uuid", "name", "mig_instance"}] | null,   # per-GPU runs (--gpus)
     "gpu_mode": "concurrent" | "sequential" | null,               # trials then carry "gpu"
     "partition": {"kind": "full-gpu" | "mig-instance" | "cpu", "visible_gpus", ...},
     "complete": bool, "incomplete_reason": "cut off after 3 of 10 trials" | null,
     "outcome": "completed" | "incomplete" | "failed" | "cancelled",
     "label": "", "notes": "", "imported": false, "source": null, "raw": "<id>.jsonl.gz" | null,
     "checks": [...], "checks_summary": {check: verdict}, "checks_proxy": {...}}  # check runs

Readers accept any document whose `schema_version` is a known one and refuse
newer ones with a one-line message (never guess at a format they do not know);
check_document also checks the type of every field a reader uses (structure.py).
"""
from __future__ import annotations

import re
from typing import Any

SCHEMA_VERSION = 1
KNOWN_VERSIONS = (1,)

VALID, INVALID = "VALID", "INVALID"
# How a run (or one of its engine sessions) ended; same words as scenarios.events.
COMPLETED, FAILED, INCOMPLETE, CANCELLED = "completed", "failed", "incomplete", "cancelled"
OUTCOMES = (COMPLETED, FAILED, INCOMPLETE, CANCELLED)

# A run id is also a file name in the store (`<id>.json`, `<id>.jsonl.gz`, ...): letters,
# digits, '.', '_' and '-', not starting with '.' or '-' (an option to a command), short
# enough for every file made from it.
RUN_ID_MAX = 160
_RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def is_run_id(text: Any) -> bool:
    return isinstance(text, str) and len(text) <= RUN_ID_MAX and \
        _RUN_ID.fullmatch(text) is not None

class ResultError(Exception):
    """Any problem with stored results, already phrased as one line for the user."""


class DocumentError(ResultError):
    """A document that is corrupt, truncated, or of a schema this version cannot read."""


class RunNotFound(ResultError):
    """No stored run matches the id the user gave."""


class StoreError(ResultError):
    """The store could not save or delete (full disk, permissions, ...)."""


class NotComparable(ResultError):
    """Two runs measured on different GPUs, drivers, CUDA or engine versions."""


def check_document(doc: Any, where: str = "document") -> dict:
    """Return `doc` if a reader of this version can use it, else raise DocumentError naming
    the first problem (`where: workloads[0].trials[2].ops_per_s: 'fast' is not a number`).

    Every field a reader uses is checked for its type (results/structure.py), so a
    structurally wrong document is refused here, once, instead of failing in whichever view
    reads it first."""
    def fail(problem: str) -> DocumentError:
        return DocumentError(f"{where}: {problem}" if where else problem)

    if not isinstance(doc, dict):
        raise fail("not a result document (top level is not an object)")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise fail("not a result document (no schema_version)")
    if version not in KNOWN_VERSIONS:
        newest = max(KNOWN_VERSIONS)
        if version > newest:
            raise fail(f"schema version {version} is newer than this gpubench reads (up to "
                       f"{newest}); upgrade gpubench")
        raise fail(f"unknown schema version {version}")
    # structure.py builds on this module (outcomes, run ids): a top-level import would be a cycle
    from .structure import DOCUMENT
    problem = DOCUMENT.problem(doc, "")
    if problem is not None:
        raise fail(problem)
    return doc
