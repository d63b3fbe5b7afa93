"""The `gpubench` console script: one parser with every command, then the command's exit code,
with every error the user can cause turned into one line on stderr."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from engine import __version__
from gpubench.checks import command as check_command
from gpubench.cli import compare, fleet, init, recover, remove, report, run, show, transfer
from gpubench.selftest import command as selftest_command
from gpubench.cli.base import EXIT_GATE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Parser, \
    UsageError, err
from gpubench.services.runs import ServiceError
from results.schema import ResultError
from scenarios.base import LaunchError
from scenarios.config import ConfigError, load_config

# Each adds its subcommands (`register(subparsers)`) and sets `func(args, config) -> int` on
# them; in this order they are listed in --help.
COMMANDS = (run.register, show.register, compare.register, transfer.register, report.register,
            remove.register, selftest_command.register, check_command.register, fleet.register,
            recover.register, init.register)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="gpubench", description="Measure what GPU isolation costs: run benchmark "
               "scenarios, store results, compare them with confidence intervals and verdicts.",
               epilog="A RUN is a run id, a unique prefix of one, or @SCENARIO (its newest run). "
               "Exit codes: 0 ok; 1 a compare verdict at/worse than --fail-on, or failed "
               "sessions in a run, or a failed selftest; 2 bad input or configuration; 3 a "
               "selftest not resolved, or a fleet outlier (--fail-on-outlier); 130 interrupted.")
    p.add_argument("--version", action="version", version=f"gpubench {__version__}")
    p.add_argument("--config", metavar="PATH", help="config.toml (default: $GPUBENCH_CONFIG, "
                   "./config.toml, ~/.config/gpubench/config.toml)")
    p.add_argument("--data-dir", metavar="DIR", help="result store (default: [store] data_dir)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for register in COMMANDS:
        register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        return run_command(argv)
    except KeyboardInterrupt:
        err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `gpubench list | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except Exception as exc:
        if debug:
            raise
        err(f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)")
        return EXIT_USAGE


def run_command(argv: list[str]) -> int:
    """Parse, load the configuration, run the command; the errors we expect become one line
    and their exit code, anything else reaches main()."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        err(str(exc))
        return EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(args.config) if getattr(args, "needs_config", True) else None
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args, config) or 0)
    except (UsageError, ServiceError, ResultError) as exc:
        err(str(exc))
        return EXIT_USAGE
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except LaunchError as exc:  # a host, cluster or engine that could not be reached or started
        err(str(exc))
        return EXIT_GATE
