"""`gpubench fleet`: one plan on many hosts at once, then a per-host table with outliers.

    gpubench fleet                                  # every enabled ssh host in config.toml
    gpubench fleet --hosts gpu-1,gpu-2,gpu-3        # these [hosts] (or ~/.ssh/config aliases)
    gpubench fleet --label rack-7 --workloads roundtrip,h2d --duration 2
    gpubench fleet --scenario bare-metal --scenario bare-metal-proxy   # overhead across the fleet

Each host runs the engine through its own SSH launcher (scenarios/fleet_run bounds the
connects and sessions, isolates failures, times out hung hosts). The figures are compared
across hosts with results/fleet_analysis.py: side by side, robust outliers (median/MAD) with the
likely cause, hosts of another GPU model left out of the statistics, and — with two or
more --scenario — each candidate's overhead against its baseline, per host, across the fleet.
Exit code: 0 when every host completed, 1 when some did not, 2 on a usage/config error,
3 with --fail-on-outlier when a host is a slow outlier.
"""
from __future__ import annotations

import argparse

from gpubench.plan_flags import add_plan_flags


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fleet", help="run one plan on many hosts at once; per-host table with outliers",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sel = p.add_argument_group("hosts")
    sel.add_argument("--hosts", help="comma-separated [hosts] names (names not in config.toml are "
                                     "used as ssh addresses / ~/.ssh/config aliases)")
    sel.add_argument("--label", help="only hosts whose `labels` include this one")
    plan = p.add_argument_group("plan (defaults from config.toml [defaults])")
    plan.add_argument("--scenario", action="append", default=[],
                      help="apply this scenario's layers (env, proxy preload); repeat to compare: "
                           "the first (or the scenario's baseline) is the baseline")
    add_plan_flags(plan, defaults={"trials": 1},
                   help_text={"trials": "rounds over the fleet (scenarios interleaved)",
                              "duration": "measured seconds per workload and repeat",
                              "repeats": "results per workload per host"})
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-connects", type=int, default=64, help="SSH handshakes in flight (default 64)")
    lim.add_argument("--max-per-address", type=int, default=8,
                     help="handshakes in flight to one address, under sshd MaxStartups (default 8)")
    lim.add_argument("--max-sessions", type=int, default=2048, help="engine sessions at once (default 2048)")
    lim.add_argument("--timeout", type=float, default=60.0,
                     help="seconds without output before a host is stopped as incomplete (default 60)")
    lim.add_argument("--start-timeout", type=float, default=60.0, help="seconds to connect and start")
    out = p.add_argument_group("output")
    out.add_argument("--metrics", type=int, default=4, help="metric columns in the table (default 4)")
    out.add_argument("--json", metavar="PATH", help="write the fleet report(s) as JSON")
    out.add_argument("--no-save", action="store_true", help="do not save per-host runs to the store")
    out.add_argument("--fail-on-outlier", action="store_true", help="exit 3 when a host is a slow outlier")
    out.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config) -> int:
    # loaded when the command runs: every gpubench start registers every command, and the
    # fleet's SSH connections, statistics and tables would cost each of them its import
    from gpubench.fleet import run_fleet_command
    return run_fleet_command(args, config)
