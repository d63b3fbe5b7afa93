"""Comparing stored runs: overheads with the isolation-check verdicts beside them, and
comparison.md over the configured scenarios (`gpubench report`, the app's export)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

from engine import __version__
from gpubench.services.runs import newest_readable
from results.check_verdicts import comparison_checks, latest_check_run
from results.report import ReportScenario, comparison_report
from results.comparison import Comparison, compare_runs
from results.store import Store
from scenarios.config import Config


def check_verdicts(store: Store, base: dict, cand: dict,
                   runs: Sequence[dict] | None = None) -> list[dict]:
    """The isolation-check rows shown beside a comparison: the runs' own checks and those of
    the newest `gpubench check` run of the candidate's scenario (`runs`: a store listing
    to reuse)."""
    scenario = (cand.get("scenario") or {}).get("name") or ""
    return comparison_checks(base, cand, latest_check_run(store, scenario, runs))


def compare_with_checks(store: Store, base: dict, candidates: Sequence[dict],
                        **options) -> list[Comparison]:
    """`base` against each candidate (results.stats.compare_runs with `options`), each
    comparison carrying its check verdicts; NotComparable stops at the first pair that is."""
    comps = []
    runs = None
    for cand in candidates:
        comp = compare_runs(base, cand, **options)
        if runs is None:
            runs = store.list_runs().runs
        comp.checks = check_verdicts(store, base, cand, runs)
        comps.append(comp)
    return comps


@dataclass
class Report:
    text: str
    latest: dict[str, dict | None]     # per configured scenario, the run it reports (or None)


def comparison_md(config: Config, store: Store, *, include_invalid: bool = False,
                  force: bool = False, seed: int = 0,
                  warn: Callable[[str], None] | None = None) -> Report:
    """comparison.md over the configured scenarios, each its newest complete readable run
    (services.runs.newest_readable); every unreadable result file, every run skipped on the
    way and every fall-back to an incomplete or older run is told to `warn`."""
    listing = store.list_runs()
    if warn is not None:
        for w in listing.warnings:
            warn(w)
    latest = {name: newest_readable(store, name, listing.runs, warn)
              for name in config.scenarios}
    scenarios = [ReportScenario(s.name, s.title, s.target_pct, s.baseline)
                 for s in config.scenarios.values()]

    def compare(base: dict, cand: dict, sc: ReportScenario) -> Comparison:
        return compare_runs(base, cand, target_pct=sc.target_pct,
                            include_invalid=include_invalid, force=force, seed=seed)

    checks = {name: latest_check_run(store, name, listing.runs) for name in config.scenarios}
    text = comparison_report(scenarios, latest, compare,
                             generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                             tool_version=__version__, checks=checks)
    return Report(text, latest)
