"""`gpubench selftest` on the command line: its flags, the options they make, the exit code."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from gpubench.plan_flags import add_plan_flags
from scenarios import limits
from scenarios.limits import cli_number

from .judging import FAILED, NOT_RESOLVED, PASSED
from .options import (CPU_SESSION_LEVELS, DEFAULT_LEVELS, DELAY_PLACEMENTS, Options,
                      SelftestError, levels_text)
from .report import format_summary

# gpubench's codes (0 ok, 1 a gate failed, 2 bad input, 130 interrupted; the values of
# gpubench/cli/base.py, which this module cannot import: gpubench.cli imports it) and 3 for a
# self-test too noisy to decide, as `fleet --fail-on-outlier` uses 3 for what is no failure
EXIT_BY_STATE = {PASSED: 0, FAILED: 1, NOT_RESOLVED: 3}
EXIT_COULD_NOT_RUN, EXIT_INTERRUPTED = 2, 130
EXIT_CODES_TEXT = ("Exit codes: 0 passed (every arm within the tolerance and its CI no wider); "
                   "1 failed (an arm's CI excludes its injected overhead, or a verdict is on "
                   "the wrong side of it); 2 bad input, or the self-test could not run; 3 not "
                   "resolved (no arm failed, but some CI is wider than the tolerance: the last "
                   "line says about how many --trials would resolve it); 130 interrupted.")


def _floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of numbers: {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError("levels must be positive percentages")
    return vals


def _escaped(text: str) -> str:
    """argparse %-formats help texts (a % is written %%); descriptions it prints as they are."""
    return text.replace("%", "%%")


def register(subparsers) -> None:
    gpu, cpu_sessions = levels_text(DEFAULT_LEVELS), levels_text(CPU_SESSION_LEVELS)
    p = subparsers.add_parser(
        "selftest", help=_escaped(f"inject known overheads ({gpu}) and prove they are "
                                  "measured"),
        description=f"Measure a baseline, inject delays sized to {gpu} overhead "
                    f"({cpu_sessions} for the CPU's sessions design) on the roundtrip and launch "
                    "workloads (interposer on the GPU, engine busy-wait on the CPU), run "
                    "interleaved trials and check every measured overhead against the injected "
                    "one.",
        epilog=EXIT_CODES_TEXT)
    add_plan_flags(p, defaults={"backend": "auto", "workloads": "roundtrip,launch"},
                   help_text={"trials": "engine sessions per arm at least (default 4 slots, 10 "
                                        "sessions); alone, exactly this many",
                              "duration": "seconds per window (default 3.0 slots, 2.0 slots on "
                                          "the CPU, 0.5 sessions)"})
    p.add_argument("--max-trials", type=cli_number(int, limits.TRIALS), default=None,
                   help="after --trials, one more session per arm at a time while an arm's CI "
                        "is wider than the tolerance, up to this many (default 8 slots, 10 "
                        "slots on the CPU; with --trials alone, that count)")
    p.add_argument("--levels", type=_floats, default=None,
                   help=_escaped(f"injected overheads and targets in % (default {gpu}; "
                                 f"{cpu_sessions} for the CPU's sessions design)"))
    p.add_argument("--design", default="auto", choices=("auto", "slots", "sessions"),
                   help="slots (default): the delay toggles on and off within each engine "
                        "session; sessions: one delay per session")
    p.add_argument("--calibration-trials", type=int, default=None,
                   help="sessions per calibration point (default 1 slots, 3 sessions)")
    p.add_argument("--slot", type=cli_number(float, limits.SELFTEST_SLOT_S), default=None,
                   help="slots: length of one on or off slot in s (default 0.25, 0.1 on the "
                        "CPU)")
    p.add_argument("--sample-interval", type=cli_number(float, limits.SAMPLE_INTERVAL_S),
                   default=None,
                   help="engine sample interval in s (default 0.05 slots, 0.02 slots on the "
                        "CPU, 0.1 sessions)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the arms' order and of the bootstrap (default 0)")
    p.add_argument("--tolerance-pp", type=float, default=None,
                   help="what an arm must resolve to pass: |measured - injected| and its CI's "
                        "half-width (default 0.5 on the GPU, 1 on the CPU, 15 for the CPU's "
                        "sessions design)")
    p.add_argument("--roundtrip-size", default="64KiB",
                   help="bytes copied each way by the roundtrip workload (default 64KiB)")
    p.add_argument("--delay-on", default="sync", choices=DELAY_PLACEMENTS,
                   help="GPU: the call that carries the delay (default sync: after the stream "
                        "synchronise returns)")
    p.add_argument("--base-wait", type=int, default=0, metavar="NS",
                   help="GPU slots: every delayed call first waits NS, on and off alike, so "
                        "that what a wait lets drain is the same in both (default 0)")
    p.add_argument("--json", dest="json_out", default=None, help="also write the summary here")
    p.add_argument("--no-save", action="store_true", help="do not save the arms in the store")
    p.set_defaults(func=main)


def options_from_args(args, config=None) -> Options:
    workloads = tuple(w.strip() for w in args.workloads.split(",") if w.strip())
    return Options(backend=args.backend, workloads=workloads,
                   levels=tuple(args.levels) if args.levels else None,
                   design=args.design,
                   trials=max(2, args.trials) if args.trials is not None else None,
                   max_trials=max(2, args.max_trials) if args.max_trials is not None else None,
                   calibration_trials=max(1, args.calibration_trials)
                   if args.calibration_trials is not None else None,
                   duration=args.duration, warmup=args.warmup,
                   repeats=max(1, args.repeats) if args.repeats is not None else None,
                   slot_s=args.slot, sample_interval=args.sample_interval,
                   seed=args.seed, tolerance_pp=args.tolerance_pp,
                   roundtrip_size=args.roundtrip_size, delay_on=args.delay_on,
                   base_wait_ns=max(0, args.base_wait),
                   save=not args.no_save,
                   data_dir=getattr(config, "data_dir", None) if config is not None else None)


def main(args, config=None) -> int:
    # loaded when the command runs: every gpubench start registers every command, and the
    # experiment (engine sessions, the interposer, statistics) would cost each of them its import
    from .experiment import Selftest
    try:
        opts = options_from_args(args, config)
        summary = asyncio.run(Selftest(opts).run())
    except SelftestError as exc:
        print(f"gpubench selftest: {exc}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    except KeyboardInterrupt:
        print("gpubench selftest: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(format_summary(summary))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=1, default=str))
    return EXIT_BY_STATE[summary["state"]]
