"""The app's view of saved runs: a thin adapter over the results store, its statistics and
the services the CLI calls too (gpubench.services: legacy import, check verdicts,
comparison.md). Screens call only this module, so the store's API is used in one place.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from gpubench.services.comparison import check_verdicts, comparison_md
from gpubench.services.legacy import import_legacy_text, legacy_scenario_for, read_legacy_file
from results import report
from results.files import atomic_write, path_in, safe_file_name
from results.labels import configured_host, doc_backend, pair_mark, summary_counts
from results.rates import line_rate
from results.schema import NotComparable
from results.comparison import compare_runs
from results.store import INDEX_NAME, Store, summary_flags
from results.trial_counts import fraction, status_word
from scenarios.config import Config


@dataclass(frozen=True)
class RunSummary:
    id: str
    created: str
    scenario: str
    host: str
    backend: str
    device: str
    label: str
    validity: str               # VALID | FEW RESULTS | INVALID | IMPORTED | ...
    headline: float | None      # the headline's rate (results.rates), in headline_unit
    headline_unit: str = "ops/s"  # tokens/s for a decode/prefill headline
    headline_name: str = ""
    trials: int = 0             # engine sessions' trials, as `run --trials` counts them
    results: int = 0            # result lines
    imported: bool = False
    reasons: tuple[str, ...] = ()
    incomplete: bool = False    # cut off, interrupted, or sessions cut off (flags say why)
    flags: tuple[str, ...] = ()  # results.store.summary_flags
    counted: str = ""           # the headline's results that count, "28/30" (results.trial_counts)


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
    counted: str = ""           # results that count, baseline · candidate: "1/30 · 28/30"
    # the metric's parts, for labels shorter than `metric` (the overhead chart)
    workload: str = ""
    variant: str = ""
    gpu: str = ""
    what: str = ""              # throughput, bandwidth, p99 latency, ...


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
    backends: str = ""          # what made the figures (results.labels.pair_mark), MIXED or not
    # decode/prefill: the p99 step-latency overhead with its CI, target and verdict, one line
    # per step variant, worded as `gpubench compare` heads its table (results.report)
    step_tails: list[tuple[str, str]] = field(default_factory=list)    # (line, verdict)


class RunStore:
    def __init__(self, config: Config, data_dir: Path | None = None) -> None:
        self.config = config
        self.data_dir = Path(data_dir or config.data_dir)
        self._store = Store(self.data_dir)
        self.warnings: list[str] = []     # one line per result file that was skipped
        self.unfinished: list[RunSummary] = []   # journals without a document (recover)
        self._cache: list[RunSummary] | None = None

    @property
    def available(self) -> bool:
        """Whether saved runs can be read: the store is part of gpubench, so always."""
        return True

    # -- reading ------------------------------------------------------------------------
    def list_runs(self) -> list[RunSummary]:
        listing = self._store.list_runs()
        self.warnings = list(listing.warnings)
        self.unfinished = [_summary(s) for s in listing.unfinished]
        self._cache = [_summary(s) for s in listing.runs]
        return list(self._cache)

    def stamp(self) -> tuple[int | None, int | None]:
        """What changes when anyone (this app, the CLI) saves, relabels or deletes a run: the
        data directory's mtime (documents arrive by rename) and the index's. Two stat calls;
        no document is read."""
        out: list[int | None] = []
        for path in (self.data_dir, self.data_dir / INDEX_NAME):
            try:
                out.append(os.stat(path).st_mtime_ns)
            except OSError:
                out.append(None)
        return out[0], out[1]

    def summary(self, run_id: str) -> RunSummary | None:
        for r in self._cache if self._cache is not None else self.list_runs():
            if r.id == run_id:
                return r
        return None

    def load(self, run_id: str) -> dict:
        return self._store.load(run_id)

    def raw_lines(self, run_id: str) -> list[str]:
        try:
            return self._store.raw_lines(run_id)
        except Exception:
            return []

    def last_hellos(self) -> Iterable[tuple[str, dict]]:
        """Per configured host (scenario host or k8s:cluster), the newest saved hello."""
        try:
            runs = self._store.list_runs().runs
        except Exception:
            return ()
        seen: dict[str, dict] = {}
        for s in reversed(runs):            # newest first
            scen = self.config.scenarios.get(s.get("scenario") or "")
            if scen is None:
                continue
            key = configured_host(scen.launcher, scen.host, scen.cluster) or "local"
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
    def backend_store(self) -> Store:
        """The results.store.Store the runner saves into (the same data directory)."""
        return self._store

    def delete(self, run_id: str) -> None:
        self._store.delete(run_id)
        self._cache = None

    def set_label(self, run_id: str, label: str) -> None:
        doc = self._store.load(run_id)   # its id is its file name (the store checks)
        doc["label"] = label
        self._store.save(doc)       # the raw stream beside it stays as it is
        self._cache = None

    def import_legacy(self, path: Path, scenario: str | None = None,
                      size: str | None = None) -> list[str]:
        """Import a seed-format text result as a run of `scenario` (or of the scenario whose
        legacy_file is the file's name), its round trip of `size` bytes per copy when given
        (`gpubench import --size`); the new run ids."""
        name = legacy_scenario_for(path, self.config, scenario)
        doc = import_legacy_text(self.config, self._store, name, read_legacy_file(path),
                                 source=path.name, size=size)
        self._cache = None
        return [doc["id"]]

    # -- comparing ------------------------------------------------------------------------
    def compare(self, baseline_id: str, candidate_id: str) -> ComparisonView:
        base, cand = self._store.load(baseline_id), self._store.load(candidate_id)
        view = _compare(base, cand, self.config)
        view.baseline, view.candidate = baseline_id, candidate_id   # names, not content
        view.checks = self.comparison_checks(base, cand)
        if view.raw is not None:
            view.raw.checks = list(view.checks)      # exports show them too
        return view

    def comparison_checks(self, base: dict, cand: dict) -> list[dict]:
        try:
            return check_verdicts(self._store, base, cand)
        except Exception as exc:          # a broken check run must not hide the comparison
            self.warnings.append(f"isolation checks unavailable: {exc}")
            return []

    def export(self, views: list[ComparisonView], fmt: str, folder: Path | None = None) -> Path:
        """Write a comparison export into `folder` (default: the data directory) under a
        name made from the baseline's run id, never a path taken from a document."""
        folder = Path(folder or self.data_dir)
        path = path_in(folder, export_name(views, fmt) if views else "comparison.md")
        comps = [v.raw for v in views if v.raw is not None]
        if fmt == "md":
            text = report.to_markdown(comps)
        elif fmt == "csv":
            text = report.to_csv(comps)
        elif fmt == "comparison.md":
            text = comparison_md(self.config, self._store).text
        else:
            raise ValueError(f"unknown export format {fmt!r}")
        if fmt != "comparison.md" and not comps:
            raise RuntimeError("no comparable pair to export")
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text.encode("utf-8"))
        return path


def _summary(s: dict) -> RunSummary:
    headline = s.get("headline") or {}
    rate = line_rate(headline)
    flags = tuple(summary_flags(s))
    trials, results = summary_counts(s)
    return RunSummary(
        id=str(s.get("id")), created=str(s.get("created") or "").replace("T", " ").rstrip("Z"),
        scenario=str(s.get("scenario") or ""), host=str(s.get("host") or ""),
        backend=str(s.get("backend") or ""), device=str(s.get("device") or ""),
        label=str(s.get("label") or ""),
        validity="IMPORTED" if s.get("imported") else status_word(s.get("validity"),
                                                                  s.get("counted")),
        counted="" if s.get("imported") else fraction(s.get("counted")),
        headline=rate.value, headline_unit=rate.unit,
        headline_name=f"{headline.get('workload')}/{headline.get('variant')}" if headline else "",
        trials=trials or 0, results=results or 0, imported=bool(s.get("imported")),
        incomplete=any(not f.startswith("imported") for f in flags), flags=flags)


def chart_label(row: ComparisonRow, rows: list[ComparisonRow]) -> str:
    """A row's short name on the overhead chart: its workload, and its variant only where the
    workload has several among `rows` (h2d pinned and pageable), else the labels would repeat."""
    variants = {r.variant for r in rows if r.workload == row.workload}
    name = f"{row.workload}/{row.variant}" if len(variants) > 1 else row.workload
    return f"{name}{_gpu_suffix(row.gpu)} {row.what}"


def _gpu_suffix(gpu: str) -> str:
    """Per-GPU comparison rows: ' @gpu0', ' @all GPUs'."""
    if not gpu:
        return ""
    return " @all GPUs" if gpu == "all" else f" @gpu{gpu}"


def _compare(base: dict, cand: dict, config: Config) -> ComparisonView:
    view = ComparisonView(base["id"], cand["id"],
                          backends=pair_mark(doc_backend(base), doc_backend(cand)))
    scen = config.scenarios.get((cand.get("scenario") or {}).get("name") or "")
    target = scen.target_pct if scen is not None else None
    try:
        comp = compare_runs(base, cand, target_pct=target)
    except NotComparable as exc:
        view.not_comparable = [str(exc).removeprefix("not comparable: ")]
        return view
    view.raw = comp
    view.warnings = list(comp.warnings)
    view.step_tails = [(report.step_tail_line(r), r.verdict) for r in report.step_tail_rows(comp)]
    for r in comp.rows:
        view.rows.append(ComparisonRow(
            metric=f"{r.workload}/{r.variant}{_gpu_suffix(r.gpu)} {r.label}",
            baseline=r.base_median,
            candidate=r.cand_median, overhead_pct=r.overhead_pct, ci_low=r.ci_low,
            ci_high=r.ci_high, target_pct=r.target_pct, verdict=r.verdict, note=report.row_note(r),
            counted=report.counted_cell(r),
            workload=r.workload, variant=r.variant, gpu=r.gpu, what=r.label))
    return view


EXPORT_SUFFIX = {"md": ".md", "csv": ".csv"}


def export_name(views: list[ComparisonView], fmt: str) -> str:
    """`comparison-<baseline run id>.md|csv`, or `comparison.md` for the whole report."""
    if fmt == "comparison.md":
        return "comparison.md"
    if fmt not in EXPORT_SUFFIX:
        raise ValueError(f"unknown export format {fmt!r}")
    return safe_file_name(f"comparison-{views[0].baseline}", EXPORT_SUFFIX[fmt])


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
