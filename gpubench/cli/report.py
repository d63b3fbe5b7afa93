"""`gpubench report`: comparison.md over the configured scenarios, each its newest complete run."""
from __future__ import annotations

import sys
from pathlib import Path

from gpubench.cli.base import EXIT_OK, UsageError, open_store, warn
from results.files import atomic_write


def register(subparsers) -> None:
    rp = subparsers.add_parser("report", help="write comparison.md over the configured "
                               "scenarios")
    rp.add_argument("--out", default="comparison.md", metavar="FILE", help="'-' for stdout")
    rp.add_argument("--force", action="store_true",
                    help="compare runs from different GPUs/drivers/CUDA/engine (stamped)")
    rp.add_argument("--include-invalid", action="store_true",
                    help="use INVALID runs and trials")
    rp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    rp.set_defaults(func=cmd_report)


def cmd_report(args, config) -> int:
    # the statistics import NumPy (~0.1 s): here, so the commands that never compare start
    # without it
    from gpubench.services.comparison import comparison_md
    report = comparison_md(config, open_store(args, config), include_invalid=args.include_invalid,
                           force=args.force, seed=args.seed, warn=warn)
    if args.out == "-":
        sys.stdout.write(report.text)
        return EXIT_OK
    out = Path(args.out)
    try:
        atomic_write(out, report.text.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    have = sum(1 for doc in report.latest.values() if doc)
    print(f"wrote {out} ({have} of {len(report.latest)} scenarios have runs)", file=sys.stderr)
    return EXIT_OK
