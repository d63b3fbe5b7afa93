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

from scenarios.config import Config, ScenarioConfig


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
    incomplete: bool = False    # cut off, interrupted, or sessions cut off (flags say why)
    flags: tuple[str, ...] = ()  # results.store.summary_flags


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
    # isolation-check verdicts beside the overheads (results.check_verdicts.check_rows): the runs'
    # own and the newest `gpubench check` run of the candidate's scenario
    checks: list[dict] = field(default_factory=list)


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
        self.warnings: list[str] = []     # one line per result file that was skipped
        self.unfinished: list[RunSummary] = []   # journals without a document (recover)
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
        self.unfinished = [_summary(s) for s in listing.unfinished]
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
    def backend_store(self):
        """The results.store.Store the runner saves into (the same data directory)."""
        if self._store is None:
            raise RuntimeError("results store not available")
        return self._store

    def delete(self, run_id: str) -> None:
        if self._store is None:
            raise RuntimeError("results store not available")
        self._store.delete(run_id)
        self._cache = None

    def set_label(self, run_id: str, label: str) -> None:
        if self._store is None:
            raise RuntimeError("results store not available")
        doc = self._store.load(run_id)   # its id is its file name (the store checks)
        doc["label"] = label
        self._store.save(doc)       # the raw stream beside it stays as it is
        self._cache = None

    def import_legacy(self, path: Path, scenario: str | None = None) -> list[str]:
        legacy = _import("results.legacy")
        if self._store is None or legacy is None:
            raise RuntimeError("legacy import (results/legacy.py) is not available")
        docs = _legacy_docs(legacy, path, self.config, scenario)
        ids = []
        for doc in docs:
            self._store.save(doc, [])
            ids.append(doc["id"])
        self._cache = None
        return ids

    # -- comparing ------------------------------------------------------------------------
    def compare(self, baseline_id: str, candidate_id: str) -> ComparisonView:
        stats = _import("results.comparison")
        if stats is None or self._store is None:
            return ComparisonView(baseline_id, candidate_id,
                                  warnings=["statistics (results/comparison.py) not available yet"])
        base, cand = self._store.load(baseline_id), self._store.load(candidate_id)
        view = _compare(stats, base, cand, self.config)
        view.baseline, view.candidate = baseline_id, candidate_id   # names, not content
        view.checks = self.comparison_checks(base, cand)
        if view.raw is not None:
            view.raw.checks = list(view.checks)      # exports show them too
        return view

    def comparison_checks(self, base: dict, cand: dict) -> list[dict]:
        checks = _import("results.check_verdicts")
        if checks is None or self._store is None:
            return []
        try:
            scenario = (cand.get("scenario") or {}).get("name") or ""
            return checks.comparison_checks(base, cand,
                                            checks.latest_check_run(self._store, scenario))
        except Exception as exc:          # a broken check run must not hide the comparison
            self.warnings.append(f"isolation checks unavailable: {exc}")
            return []

    def export(self, views: list[ComparisonView], fmt: str, folder: Path | None = None) -> Path:
        """Write a comparison export into `folder` (default: the data directory) under a
        name made from the baseline's run id, never a path taken from a document."""
        return _export(views, fmt, Path(folder or self.data_dir), self)


def _summary(s: dict) -> RunSummary:
    from results.store import summary_flags
    headline = s.get("headline") or {}
    flags = tuple(summary_flags(s))
    return RunSummary(
        id=str(s.get("id")), created=str(s.get("created") or "").replace("T", " ").rstrip("Z"),
        scenario=str(s.get("scenario") or ""), host=str(s.get("host") or ""),
        backend=str(s.get("backend") or "?"), device=str(s.get("device") or ""),
        label=str(s.get("label") or ""),
        validity="IMPORTED" if s.get("imported") else str(s.get("validity") or "?"),
        headline=headline.get("ops_per_s"),
        headline_name=f"{headline.get('workload')}/{headline.get('variant')}" if headline else "",
        trials=int(s.get("trials") or 0), imported=bool(s.get("imported")),
        incomplete=any(not f.startswith("imported") for f in flags), flags=flags)


def legacy_scenario_for(path: Path, config: Config, explicit: str | None = None) -> str:
    """The scenario a legacy file belongs to: given, or the one whose legacy_file matches."""
    if explicit:
        if explicit not in config.scenarios:
            raise ValueError(f"unknown scenario {explicit!r}; configured: "
                             f"{', '.join(config.scenarios)}")
        return explicit
    for s in config.scenarios.values():
        if s.legacy_file and s.legacy_file == path.name:
            return s.name
    raise ValueError(f"no scenario has legacy_file = {path.name!r}: type the path, a space "
                     f"and the scenario name ({', '.join(config.scenarios)})")


def _legacy_docs(legacy, path: Path, config: Config, scenario: str | None = None) -> list[dict]:
    from gpubench.runner import scenario_record
    name = legacy_scenario_for(path, config, scenario)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    return [legacy.import_legacy(text, scenario_record(config.scenarios[name], config),
                                 source=path.name)]


def _gpu_suffix(gpu: str) -> str:
    """Per-GPU comparison rows: ' @gpu0', ' @all GPUs'."""
    if not gpu:
        return ""
    return " @all GPUs" if gpu == "all" else f" @gpu{gpu}"


def _compare(stats, base: dict, cand: dict, config: Config) -> ComparisonView:
    from results.schema import NotComparable
    view = ComparisonView(base["id"], cand["id"])
    scen = config.scenarios.get((cand.get("scenario") or {}).get("name") or "")
    target = scen.target_pct if scen is not None else None
    try:
        comp = stats.compare_runs(base, cand, target_pct=target)
    except NotComparable as exc:
        view.not_comparable = [str(exc).removeprefix("not comparable: ")]
        return view
    view.raw = comp
    view.warnings = list(comp.warnings)
    report = _import("results.report")
    for r in comp.rows:
        note = report.row_note(r) if report is not None else ""
        view.rows.append(ComparisonRow(
            metric=f"{r.workload}/{r.variant}{_gpu_suffix(getattr(r, 'gpu', ''))} {r.label}",
            baseline=r.base_median,
            candidate=r.cand_median, overhead_pct=r.overhead_pct, ci_low=r.ci_low,
            ci_high=r.ci_high, target_pct=r.target_pct, verdict=r.verdict, note=note))
    return view


EXPORT_SUFFIX = {"md": ".md", "csv": ".csv"}


def export_name(views: list[ComparisonView], fmt: str) -> str:
    """`comparison-<baseline run id>.md|csv`, or `comparison.md` for the whole report."""
    from results.files import safe_file_name
    if fmt == "comparison.md":
        return "comparison.md"
    if fmt not in EXPORT_SUFFIX:
        raise ValueError(f"unknown export format {fmt!r}")
    return safe_file_name(f"comparison-{views[0].baseline}", EXPORT_SUFFIX[fmt])


def _export(views: list[ComparisonView], fmt: str, folder: Path, store: "RunStore") -> Path:
    report = _import("results.report")
    if report is None:
        raise RuntimeError("results/report.py is not available")
    from results.files import path_in
    from results.store import atomic_write
    path = path_in(folder, export_name(views, fmt)) if views else path_in(folder, "comparison.md")
    comps = [v.raw for v in views if v.raw is not None]
    if fmt == "md":
        text = report.to_markdown(comps)
    elif fmt == "csv":
        text = report.to_csv(comps)
    elif fmt == "comparison.md":
        text = _comparison_md(report, store)
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    if fmt != "comparison.md" and not comps:
        raise RuntimeError("no comparable pair to export")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode("utf-8"))
    return path


def _comparison_md(report, store: "RunStore") -> str:
    """comparison.md over the configured scenarios, as `gpubench report` writes it."""
    from datetime import datetime, timezone

    from results.comparison import compare_runs
    config = store.config
    runs = store._store.list_runs().runs
    latest: dict[str, dict | None] = {}
    for name in config.scenarios:
        latest[name] = None
        for summary in reversed([r for r in runs if r.get("scenario") == name]):
            try:
                latest[name] = store._store.load(summary["id"])
                break
            except Exception:
                continue
    scen = [report.ReportScenario(s.name, s.title, s.target_pct, s.baseline)
            for s in config.scenarios.values()]
    try:
        from engine import __version__ as version
    except Exception:
        version = None
    from results.check_verdicts import latest_check_run
    checks = {name: latest_check_run(store._store, name, runs) for name in config.scenarios}
    return report.comparison_report(
        scen, latest, lambda b, c, sc: compare_runs(b, c, target_pct=sc.target_pct),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        tool_version=version, checks=checks)


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
