"""`gpubench list` and `gpubench show`: the stored runs, and one of them in full."""
from __future__ import annotations

import json
import sys

from gpubench.cli.base import EXIT_OK, iso_date, load_run, open_store, warn
from gpubench.cli import tables
from gpubench.cli.tables import VERDICT_STYLES, print_table
from gpubench.selftest.options import is_selftest_scenario
from results.format import EMPTY
from results.labels import CPU_CELL, backend_cell, summary_counts
from results.rates import line_rate
from results.store import filter_runs, summary_flags
from results.trial_counts import fraction, status_word


def register(subparsers) -> None:
    ls = subparsers.add_parser("list", help="list stored runs")
    ls.add_argument("--scenario", help="only runs of this scenario")
    ls.add_argument("--host", help="substring of the host name")
    ls.add_argument("--label", help="substring of the label")
    ls.add_argument("--since", metavar="DATE",
                    help="created at or after (UTC, YYYY-MM-DD[THH:MM])")
    ls.add_argument("--until", metavar="DATE",
                    help="created at or before (UTC; a day is inclusive)")
    ls.add_argument("--selftest", action="store_true",
                    help="also list the self-test's runs (scenarios selftest-*), which are "
                         "left out otherwise")
    ls.add_argument("--format", choices=("table", "json"), default="table",
                    help="a table (default) or the runs' summaries as JSON")
    ls.set_defaults(func=cmd_list)

    sh = subparsers.add_parser("show", help="show one run (id, unique prefix or @scenario)")
    sh.add_argument("run", metavar="RUN", help="a run id, a unique prefix of one, or @SCENARIO "
                    "(its newest run)")
    sh.add_argument("--json", action="store_true", help="print the whole document")
    sh.set_defaults(func=cmd_show)


def cmd_list(args, config) -> int:
    store = open_store(args, config)
    listing = store.list_runs()
    for w in listing.warnings:
        warn(w)
    filters = dict(scenario=args.scenario, host=args.host, label=args.label,
                   since=iso_date(args.since) if args.since else None,
                   until=iso_date(args.until) if args.until else None)
    runs = filter_runs(listing.runs, **filters)
    unfinished = filter_runs(listing.unfinished, **filters)   # journal, no document yet
    if not args.selftest and not is_selftest_scenario(args.scenario):
        # one self-test saves a run per arm: they would bury the measured runs
        kept = [r for r in runs if not is_selftest_scenario(r.get("scenario"))]
        if len(kept) < len(runs):
            print(f"{len(runs) - len(kept)} self-test run(s) not listed (gpubench list "
                  f"--selftest lists them)", file=sys.stderr)
        runs = kept
    if args.format == "json":
        print(json.dumps(runs + unfinished, indent=2, ensure_ascii=False))
        return EXIT_OK
    rows = []
    for r in runs + unfinished:
        trials, results = summary_counts(r)
        rows.append([r["id"], r.get("created"), r.get("scenario"), r.get("host") or "",
                     backend_cell(r.get("backend")), r.get("label") or "",
                     EMPTY if trials is None else trials, EMPTY if results is None else results,
                     status_word(r.get("validity"), r.get("counted")) if r.get("validity") else "",
                     fraction(r.get("counted")),
                     line_rate(r["headline"]).text() if r.get("headline") else "",
                     ", ".join(summary_flags(r))])
    if not rows and tables.is_tty():
        print("no stored runs match" if listing.runs else
              f"no stored runs in {store.dir} (start with `gpubench run`)", file=sys.stderr)
        return EXIT_OK
    print_table(("id", "created (UTC)", "scenario", "host", "backend", "label", "trials",
                 "results", "validity", "counted", "headline", "flags"), rows,
                styles={**VERDICT_STYLES, CPU_CELL: "yellow"})
    return EXIT_OK


def cmd_show(args, config) -> int:
    doc = load_run(open_store(args, config), args.run)
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return EXIT_OK
    # the view's statistics import NumPy (~0.1 s), which `list` and `show --json` never need
    from gpubench.cli.run_view import print_run
    print_run(doc)
    return EXIT_OK
