"""The app's view of saved runs: a thin adapter over the results store and statistics.

Screens call only this class, so the store's API is used in one place. Every
method is safe to call when the store is not installed (it returns nothing and
`available` is False) so the app still runs live sessions.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from gpubench.config import Config, ScenarioConfig


@dataclass(frozen=True)
class RunSummary:
    id: str
    created: str
    scenario: str
    host: str
    backend: str
    device: str
    label: str
    validity: str               # VALID | INVALID | IMPORTED | ...
    headline: float | None      # ops/s of the first workload (for the table)
    headline_name: str = ""
    trials: int = 0
    imported: bool = False
    reasons: tuple[str, ...] = ()


@dataclass
class ComparisonRow:
    metric: str
    baseline: float | None
    candidate: float | None
    overhead_pct: float | None
    ci_low: float | None
    ci_high: float | None
    target_pct: float | None
    verdict: str                # PASS | FAIL | INCONCLUSIVE | NOT COMPARABLE | ...
    note: str = ""


@dataclass
class ComparisonView:
    baseline: str
    candidate: str
    rows: list[ComparisonRow] = field(default_factory=list)
    not_comparable: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    raw: Any = None             # the stats module's own object, for exports


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class RunStore:
    def __init__(self, config: Config, data_dir: Path | None = None) -> None:
        self.config = config
        self.data_dir = Path(data_dir or config.data_dir)
        self._store_mod = _import("results.store")
        self._doc_mod = _import("results.document")
        self._store = self._store_mod.Store(self.data_dir) if self._store_mod else None
        self.warnings: list[str] = []
        self._cache: list[RunSummary] | None = None

    @property
    def available(self) -> bool:
        return self._store is not None

    # -- reading ------------------------------------------------------------------------
    def list_runs(self) -> list[RunSummary]:
        if self._store is None:
            return []
        listing = self._store.list_runs()
        self.warnings = list(listing.warnings)
        self._cache = [_summary(s) for s in listing.runs]
        return list(self._cache)

    def summary(self, run_id: str) -> RunSummary | None:
        for r in self._cache if self._cache is not None else self.list_runs():
            if r.id == run_id:
                return r
        return None

    def load(self, run_id: str) -> dict:
        if self._store is None:
            raise RuntimeError("results store not available")
        return self._store.load(run_id)

    def raw_lines(self, run_id: str) -> list[str]:
        if self._store is None:
            return []
        try:
            return self._store.raw_lines(run_id)
        except Exception:
            return []

    def last_hellos(self) -> Iterable[tuple[str, dict]]:
        """Per configured host (scenario host or k8s:cluster), the newest saved hello."""
        if self._store is None:
            return ()
        try:
            runs = self._store.list_runs().runs
        except Exception:
            return ()
        seen: dict[str, dict] = {}
        for s in reversed(runs):            # newest first
            scen = self.config.scenarios.get(s.get("scenario") or "")
            if scen is None:
                continue
            key = f"k8s:{scen.cluster}" if scen.launcher == "k8s" else (scen.host or "local")
            if key in seen:
                continue
            try:
                hello = (self._store.load(s["id"]).get("hello") or {})
            except Exception:
                continue
            if hello:
                seen[key] = hello
        return seen.items()

    # -- writing ------------------------------------------------------------------------
    def save_runs(self, records: dict[str, list], scenarios: dict[str, ScenarioConfig],
                  group: dict | None, complete: bool) -> list[str]:
        """One document per scenario from its sessions (SessionRecord list); returns ids."""
        if self._store is None or self._doc_mod is None:
            return []
        doc_mod = self._doc_mod
        ids = []
        for name, recs in records.items():
            if not recs:
                continue
            sc = scenarios[name]
            scen = {"name": sc.name, "title": sc.title, "launcher": sc.launcher, "host": sc.host,
                    "cluster": sc.cluster, "target": sc.target, "target_pct": sc.target_pct,
                    "baseline": sc.baseline, "details": {}}
            doc = doc_mod.build_document(recs, scen, group=group, complete=complete)
            self._store.save(doc, raw_lines=doc_mod.archive_lines(recs))
            ids.append(doc["id"])
        self._cache = None
        return ids

    def session_record(self, session, ended, trial: int, started: str | None = None):
        if self._doc_mod is None:
            return None
        return self._doc_mod.SessionRecord(
            lines=list(session.raw_lines), outcome=ended.outcome, message=ended.message,
            exit_code=ended.exit_code, trial=trial, started=started,
            warnings=[w.message for w in getattr(session.parser, "warnings", [])])

    def delete(self, run_id: str) -> None:
        if self._store is None:
            raise RuntimeError("results store not available")
        self._store.delete(run_id)
        self._cache = None

    def set_label(self, run_id: str, label: str) -> None:
        if self._store is None:
            raise RuntimeError("results store not available")
        doc = self._store.load(run_id)
        doc["label"] = label
        self._store.save(doc)       # the raw stream beside it stays as it is
        self._cache = None

    def import_legacy(self, path: Path) -> list[str]:
        legacy = _import("results.legacy")
        if self._store is None or legacy is None:
            raise RuntimeError("legacy import (results/legacy.py) is not available yet")
        docs = _legacy_docs(legacy, path, self.config)
        ids = []
        for doc in docs:
            self._store.save(doc)
            ids.append(doc["id"])
        self._cache = None
        return ids

    # -- comparing ------------------------------------------------------------------------
    def compare(self, baseline_id: str, candidate_id: str) -> ComparisonView:
        stats = _import("results.stats")
        if stats is None or self._store is None:
            return ComparisonView(baseline_id, candidate_id,
                                  warnings=["statistics (results/stats.py) not available yet"])
        base, cand = self._store.load(baseline_id), self._store.load(candidate_id)
        return _compare(stats, base, cand, self.config)

    def export(self, views: list[ComparisonView], fmt: str, path: Path) -> Path:
        return _export(views, fmt, path)


def _summary(s: dict) -> RunSummary:
    headline = s.get("headline") or {}
    return RunSummary(
        id=str(s.get("id")), created=str(s.get("created") or "").replace("T", " ").rstrip("Z"),
        scenario=str(s.get("scenario") or ""), host=str(s.get("host") or ""),
        backend=str(s.get("backend") or "?"), device=str(s.get("device") or ""),
        label=str(s.get("label") or ""),
        validity="IMPORTED" if s.get("imported") else str(s.get("validity") or "?"),
        headline=headline.get("ops_per_s"),
        headline_name=f"{headline.get('workload')}/{headline.get('variant')}" if headline else "",
        trials=int(s.get("trials") or 0), imported=bool(s.get("imported")))


def _legacy_docs(legacy, path: Path, config: Config) -> list[dict]:
    raise RuntimeError("legacy import: adapter not written yet")


def _compare(stats, base: dict, cand: dict, config: Config) -> ComparisonView:
    raise RuntimeError("comparison: adapter not written yet")


def _export(views: list[ComparisonView], fmt: str, path: Path) -> Path:
    raise RuntimeError("export: adapter not written yet")


class CompareSelection:
    """Which saved runs the Compare screen shows: one baseline, any candidates."""

    def __init__(self) -> None:
        self.baseline: str | None = None
        self.candidates: list[str] = []
        self.version = 0

    def set_baseline(self, run_id: str) -> None:
        self.baseline = run_id
        if run_id in self.candidates:
            self.candidates.remove(run_id)
        self.version += 1

    def toggle_candidate(self, run_id: str) -> bool:
        self.version += 1
        if run_id in self.candidates:
            self.candidates.remove(run_id)
            return False
        if run_id == self.baseline:
            return False
        self.candidates.append(run_id)
        return True

    def clear(self) -> None:
        self.baseline, self.candidates = None, []
        self.version += 1
