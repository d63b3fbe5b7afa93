"""How many results (result lines: one per workload, variant and repeat of a trial) of each
metric count, and the run's validity as people read it. The document keeps them under each
workload's "trials" key, the schema's name for result lines; what people read says "results",
as a trial is one engine session (`run --trials`).

A run can be VALID (nothing threatens the run as a whole) while its headline metric has one
result, or none, that counts: its median is then one window and no confidence interval can be
drawn. Every view shows the same words for that, made here from the counts the document
carries (`validity.metrics`, `validity.headline`) or, for documents stored before those
existed, from its results:

    VALID        28/30      the headline metric has enough results that count for a CI
    FEW RESULTS   1/30      VALID, but fewer than MIN_FOR_CI of the headline's results count
    INVALID       0/30      the run is INVALID (its reasons say why)

A result counts when it is valid and carries a finite, positive ops/s: the results the
comparison's statistics take (results/comparison.py; a run that is INVALID as a whole gives
none). Pure Python: History and `list` read this without NumPy.
"""
from __future__ import annotations

from typing import Any, Iterable

from .comparable import usable
from .schema import INVALID, VALID
from .stats import finite_median

FEW_RESULTS = "FEW RESULTS"
MIN_FOR_CI = 2      # the bootstrap CI of a comparison needs two values on each side


def trial_counts(trials: Iterable[dict], run_invalid: bool = False) -> dict:
    """{"counted": results that count, "trials": every trial} of one workload variant."""
    trials = list(trials)
    counted = 0 if run_invalid else sum(
        1 for t in trials if t.get("valid", True) is not False and usable(t.get("ops_per_s")))
    return {"counted": counted, "trials": len(trials)}


def metric_counts(workloads: Iterable[dict], run_invalid: bool = False) -> list[dict]:
    """Per workload variant: {"workload", "variant", "counted", "trials"}, in document order."""
    return [{"workload": wl.get("workload"), "variant": wl.get("variant"),
             **trial_counts(wl.get("trials") or [], run_invalid)} for wl in workloads]


def valid_trials(wl: dict) -> list[dict]:
    """The trials a variant's median is taken from: the valid ones, or all when none is."""
    trials = wl.get("trials") or []
    return [t for t in trials if t.get("valid", True)] or trials


def headline_workload(workloads: Iterable[dict]) -> dict | None:
    """The workload variant a run is known by (History, `list`, reports): of those whose
    trials give an ops/s median, the round trip, else launch, else the first."""
    wls = [w for w in workloads
           if finite_median([t.get("ops_per_s") for t in valid_trials(w)]) is not None]
    for name in ("roundtrip", "launch"):
        for w in wls:
            if w.get("workload") == name:
                return w
    return wls[0] if wls else None


def validity_counts(workloads: list[dict], status: str) -> dict:
    """The `metrics` and `headline` entries of a document's `validity` block."""
    run_invalid = status == INVALID
    metrics = metric_counts(workloads, run_invalid)
    head = headline_workload(workloads) or next((w for w in workloads if w.get("trials")), None)
    headline = None
    if head is not None:
        headline = {"workload": head.get("workload"), "variant": head.get("variant"),
                    **trial_counts(head.get("trials") or [], run_invalid)}
    return {"metrics": metrics, "headline": headline}


def results_headline(results: Iterable[dict]) -> dict | None:
    """The headline counts of a running session's `result` lines so far, with the first
    reason one of its trials was invalid (`reason`, None when none was)."""
    groups: dict[tuple, dict] = {}
    for r in results:
        key = (r.get("workload"), r.get("variant"))
        groups.setdefault(key, {"workload": key[0], "variant": key[1], "trials": []})
        groups[key]["trials"].append(r)
    head = validity_counts(list(groups.values()), VALID)["headline"]
    if head is None:
        return None
    trials = groups[(head["workload"], head["variant"])]["trials"]
    reasons = [x for t in trials if t.get("valid") is False for x in t.get("validity_reasons") or []]
    return {**head, "reason": reasons[0] if reasons else None}


def live_alert(results: Iterable[dict]) -> str | None:
    """The dashboard's warning while a session runs, once a trial of its headline was
    invalid: `FEW RESULTS: roundtrip 1/3 results count (too few for a CI): stall: ...`."""
    head = results_headline(results)
    if head is None or head["counted"] == head["trials"]:
        return None
    word = FEW_RESULTS if head["counted"] < MIN_FOR_CI else "INVALID RESULTS"
    text = f"{word}: {head['workload']} {fraction(head)} results count"
    if head["counted"] < MIN_FOR_CI:
        text += " (too few for a CI)"
    return text + (f": {head['reason']}" if head["reason"] else "")


def doc_counts(doc: dict) -> dict:
    """A document's `validity_counts`, stored or (older documents) worked out now."""
    val = doc.get("validity") or {}
    if isinstance(val.get("metrics"), list) and "headline" in val:
        return {"metrics": val["metrics"], "headline": val["headline"]}
    return validity_counts(doc.get("workloads") or [], val.get("status") or "")


def status_word(status: str | None, headline: dict | None) -> str:
    """VALID, FEW RESULTS or INVALID (or whatever other word `status` is)."""
    if status == VALID and headline is not None and headline.get("counted", 0) < MIN_FOR_CI:
        return FEW_RESULTS
    return status or "?"


def fraction(counts: dict | None) -> str:
    """`28/30`: results that count of every trial; "" without counts."""
    if not counts:
        return ""
    return f"{counts.get('counted', 0)}/{counts.get('trials', 0)}"


def status_short(status: str | None, headline: dict | None) -> str:
    """`VALID 28/30`, `FEW RESULTS 1/30`: the word and the headline's count, for tables."""
    count = fraction(headline)
    word = status_word(status, headline)
    return f"{word} {count}" if count else word


def status_line(status: str | None, headline: dict | None) -> str:
    """The sentence `show` and the reports print: `VALID (1/30 roundtrip results count; too
    few for a CI)`."""
    word = status_word(status, headline)
    if not headline:
        return word
    what = f"{fraction(headline)} {headline.get('workload')} results count"
    if word == FEW_RESULTS:
        return f"{word} ({what}; too few for a CI)"
    return f"{word} ({what})"


def metrics_line(metrics: Iterable[dict[str, Any]]) -> str:
    """`roundtrip/pinned-64KiB 28/30, launch/sync 30/30`: every metric's count, one line."""
    return ", ".join(f"{m.get('workload')}/{m.get('variant')} {fraction(m)}" for m in metrics)
