"""`gpubench compare`: the overhead of candidate runs against a baseline, metric by metric with
confidence intervals and verdicts, the isolation-check verdicts beside them; exit 1 at or
worse than --fail-on."""
from __future__ import annotations

import sys

from gpubench.cli.base import EXIT_GATE, EXIT_OK, csv_list, load_run, open_store, warn
from gpubench.cli import tables
from gpubench.cli.tables import VERDICT_STYLES, print_table
from results.check_verdicts import CHECK_COLUMNS, check_table
from results.matrix_table import matrix_tables, row_matrices
from scenarios import limits
from scenarios.limits import cli_number


def register(subparsers) -> None:
    c = subparsers.add_parser("compare", help="overhead of candidates vs a baseline, with "
                              "verdicts")
    c.add_argument("base", metavar="BASE", help="baseline run")
    c.add_argument("candidates", nargs="+", metavar="CAND", help="candidate run(s)")
    c.add_argument("--format", choices=("table", "md", "json", "csv"), default="table",
                   help="a table (default), markdown, JSON or CSV")
    c.add_argument("--fail-on", choices=("FAIL", "INCONCLUSIVE"), default="FAIL",
                   help="exit 1 when a verdict is at or worse than this (default FAIL); a "
                        "metric that is NOT COMPARABLE or INVALID always fails")
    c.add_argument("--force", action="store_true",
                   help="compare runs from different GPUs/drivers/CUDA/engine (stamped)")
    c.add_argument("--include-invalid", action="store_true", help="use INVALID runs and trials")
    c.add_argument("--target", type=cli_number(float, limits.TARGET_PCT), metavar="PCT",
                   help="overhead target in %% (default: the candidate scenario's)")
    c.add_argument("--metrics", metavar="M1,M2",
                   help="ops_per_s,gbps,tflops,lat_mean,lat_p99 (default: all; ops_per_s "
                        "is a decode/prefill variant's tokens/s)")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    c.set_defaults(func=cmd_compare)


def cmd_compare(args, config) -> int:
    # the statistics import NumPy (~0.1 s): here, so the commands that never compare start
    # without it
    from gpubench.services.comparison import compare_with_checks
    from results import report
    from results.stats import VERDICT_RANK
    store = open_store(args, config)
    base = load_run(store, args.base)
    comps = compare_with_checks(
        store, base, (load_run(store, ref) for ref in args.candidates), target_pct=args.target,
        include_invalid=args.include_invalid, force=args.force, seed=args.seed,
        metrics=csv_list(args.metrics))
    fmt = args.format
    if fmt == "md":
        sys.stdout.write(report.to_markdown(comps))
    elif fmt == "json":
        sys.stdout.write(report.to_json(comps))
    elif fmt == "csv":
        sys.stdout.write(report.to_csv(comps))
    elif tables.is_tty():
        for comp in comps:
            for line in report.header_lines(comp):
                print(line)
            print_table(report.columns_for(comp), report.comparison_table(comp),
                        styles=VERDICT_STYLES)
            if comp.checks:
                print_table(CHECK_COLUMNS, check_table(comp.checks),
                            title=report.CHECKS_TITLE, styles=VERDICT_STYLES)
            for role, m in row_matrices(comp.checks):
                for title, columns, rows in matrix_tables(m):
                    print_table(columns, rows, title=f"{title} ({role})")
            for w in comp.warnings:
                warn(w)
            print()
    else:
        sys.stdout.write(report.to_tsv(comps))
    if fmt != "table" or not tables.is_tty():
        for comp in comps:
            for w in comp.warnings:
                warn(w)
    gate = VERDICT_RANK[args.fail_on]
    failing = [c for c in comps if VERDICT_RANK.get(c.verdict, 0) >= gate]
    if failing:
        print(f"gate: {len(failing)} of {len(comps)} comparisons at or worse than "
              f"{args.fail_on} ({', '.join(f'{c.cand_id}: {c.verdict}' for c in failing)})",
              file=sys.stderr)
        return EXIT_GATE
    return EXIT_OK
