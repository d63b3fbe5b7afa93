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
     "validity": {"status": "VALID" | "INVALID", "reasons": [...]},
     "gpus": [{"index", "uuid", "name", "mig_instance"}] | null,   # per-GPU runs (--gpus)
     "gpu_mode": "concurrent" | "sequential" | null,               # trials then carry "gpu"
     "partition": {"kind": "full-gpu" | "mig-instance" | "cpu", "visible_gpus", ...},
     "complete": bool, "outcome": "completed" | "incomplete" | "failed" | "cancelled",
     "label": "", "notes": "", "imported": false, "source": null, "raw": "<id>.jsonl.gz" | null,
     "checks": [...], "checks_summary": {check: verdict}, "checks_proxy": {...}}  # check runs

Readers accept any document whose `schema_version` is a known one and refuse
newer ones with a one-line message (never guess at a format they do not know).
"""
from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1
KNOWN_VERSIONS = (1,)

VALID, INVALID = "VALID", "INVALID"
# How a run (or one of its engine sessions) ended; same words as scenarios.events.
COMPLETED, FAILED, INCOMPLETE, CANCELLED = "completed", "failed", "incomplete", "cancelled"
OUTCOMES = (COMPLETED, FAILED, INCOMPLETE, CANCELLED)

REQUIRED_KEYS: dict[str, type | tuple] = {
    "schema_version": int, "id": str, "created": str, "scenario": dict,
    "workloads": list, "validity": dict,
}


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
    """Return `doc` if a reader of this version can use it, else raise DocumentError."""
    if not isinstance(doc, dict):
        raise DocumentError(f"{where}: not a result document (top level is not an object)")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise DocumentError(f"{where}: not a result document (no schema_version)")
    if version not in KNOWN_VERSIONS:
        newest = max(KNOWN_VERSIONS)
        if version > newest:
            raise DocumentError(f"{where}: schema version {version} is newer than this gpubench "
                                f"reads (up to {newest}); upgrade gpubench")
        raise DocumentError(f"{where}: unknown schema version {version}")
    for key, kind in REQUIRED_KEYS.items():
        if not isinstance(doc.get(key), kind):
            raise DocumentError(f"{where}: field {key!r} is missing or malformed")
    if not isinstance(doc["scenario"].get("name"), str):
        raise DocumentError(f"{where}: field 'scenario.name' is missing")
    for i, wl in enumerate(doc["workloads"]):
        if not isinstance(wl, dict) or not isinstance(wl.get("trials"), list) \
                or not isinstance(wl.get("workload"), str):
            raise DocumentError(f"{where}: workloads[{i}] is malformed")
    return doc
