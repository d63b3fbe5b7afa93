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
        self._store = None
        if self._store_mod is not None:
            self._store = self._open_store()

    def _open_store(self):
        mod = self._store_mod
        for name in ("ResultStore", "Store", "RunStore"):
            cls = getattr(mod, name, None)
            if cls is not None:
                return cls(self.data_dir)
        return None

    @property
    def available(self) -> bool:
        return self._store is not None

    # -- reading ------------------------------------------------------------------------
    def list_runs(self) -> list[RunSummary]:
        return []

    def summary(self, run_id: str) -> RunSummary | None:
        for r in self.list_runs():
            if r.id == run_id:
                return r
        return None

    def raw_lines(self, run_id: str) -> list[str]:
        return []

    def last_hellos(self) -> Iterable[tuple[str, dict]]:
        return ()

    # -- writing ------------------------------------------------------------------------
    def save_session(self, scenario: ScenarioConfig, session, ended, trial: int) -> str | None:
        return None

    def delete(self, run_id: str) -> None:
        raise RuntimeError("results store not available")

    def set_label(self, run_id: str, label: str) -> None:
        raise RuntimeError("results store not available")

    def import_legacy(self, path: Path) -> list[str]:
        raise RuntimeError("results store not available")

    # -- comparing ------------------------------------------------------------------------
    def compare(self, baseline_id: str, candidate_id: str) -> ComparisonView:
        return ComparisonView(baseline_id, candidate_id,
                              warnings=["results.stats not available yet"])

    def export(self, views: list[ComparisonView], fmt: str, path: Path) -> Path:
        raise RuntimeError("results.report not available")


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
