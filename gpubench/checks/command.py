"""`gpubench check` on the command line: its flags, the proxy and settings they make, the text
it prints and the run it saves."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from gpubench.plan_flags import add_plan_flags
from results.check_verdicts import ENFORCED
from results.check_tables import check_detail_tables
from scenarios.bench_defaults import parse_size
from scenarios.config import load_config

from .matrix_settings import add_matrix_flags, matrix_settings
from .settings import CHECKS, DEFAULT_TOLERANCE, HAMI_POLICIES, CheckError, Settings


def format_checks(summary: dict) -> str:
    out = [f"gpubench check: {summary['proxy']['name']} on {summary['backend']} "
           f"({summary['elapsed_s']:.0f} s)"]
    for c in summary["checks"]:
        out.append(f"  {c['check']:<13}{c['verdict']}")
        reasons = list(c.get("reasons", []))
        if c["check"] == "memory" and c.get("paths"):   # a row per path; why, where not ENFORCED
            for p in c["paths"]:
                label = p.get("label") or p["path"]
                out.append(f"      {label:<48}{p['verdict']:<15}{p['observed']}")
            shown = {p["summary"] for p in c["paths"] if p["verdict"] == ENFORCED}
            reasons = [r for r in reasons if r not in shown]
        for r in reasons:
            out.append(f"      {r}")
        for title, columns, rows in check_detail_tables(c):
            out.append(f"    {title}")
            out += ["      " + "\t".join(cells) for cells in [list(columns), *rows]]
    return "\n".join(out)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "check", help="isolation checks: memory/compute limit enforced? init cost? interference?",
        description="Verdicts ENFORCED / NOT ENFORCED / NOT APPLICABLE for a GPU proxy's memory "
                    "and compute limits, plus init contention and interference figures.")
    p.add_argument("--checks", default="memory,compute,interference,init",
                   help=f"comma list of {', '.join(CHECKS)}")
    p.add_argument("--scenario", default=None,
                   help="a local scenario with a proxy layer (its preload, env and limits)")
    p.add_argument("--proxy", default="interposer", choices=("interposer", "hami"),
                   help="without --scenario: gpubench's interposer as the stand-in proxy "
                        "(default), or HAMi-core (libvgpu.so) given the limits below")
    p.add_argument("--proxy-lib", default=None,
                   help="hami: the HAMi-core library (default /usr/local/vgpu/libvgpu.so)")
    p.add_argument("--hami-policy", default=None, choices=HAMI_POLICIES,
                   help="hami: GPU_CORE_UTILIZATION_POLICY (unset: HAMi's default, which "
                        "leaves a lone process unthrottled)")
    p.add_argument("--caps", default="on", choices=("on", "off"),
                   help="interposer: apply the limits (on) or only claim them (off)")
    p.add_argument("--unhook", default=None,
                   help="interposer: leave these entry points unhooked (e.g. cuLaunchKernelEx) "
                        "to see the checks catch a proxy that misses one")
    p.add_argument("--mem-limit", default=None, help="memory limit to check, e.g. 4G")
    p.add_argument("--launch-rate", type=float, default=None, help="launch cap to check (/s)")
    p.add_argument("--compute-fraction", type=float, default=None,
                   help="expected fraction of unlimited throughput (e.g. 0.5 for SM limit 50)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="compute: how far the achieved fraction may be from the configured "
                        f"one and still count as enforced; matrix: how far NVML's per-process "
                        f"split may be from the measured one (default {DEFAULT_TOLERANCE:g})")
    add_plan_flags(p, flags=("backend", "duration", "repeats"),
                   defaults={"backend": "auto", "duration": 1.0, "repeats": 2})
    p.add_argument("--libcuda", default="libcuda.so.1", help="driver library the probes load")
    p.add_argument("--seconds", type=float, default=Settings.seconds,
                   help=f"compute: seconds each load runs (default {Settings.seconds:g})")
    p.add_argument("--interval", type=float, default=None,
                   help="compute: the achieved share is recorded per interval of this many "
                        f"seconds (default {Settings.interval:g}, or a quarter of --seconds "
                        "when that is shorter)")
    p.add_argument("--streams", type=int, default=Settings.streams,
                   help=f"compute on a GPU: streams of the saturating load (default "
                        f"{Settings.streams})")
    p.add_argument("--kernel-ms", type=float, default=Settings.kernel_ms,
                   help="compute on a GPU: one spin kernel lasts about this long unlimited "
                        f"(default {Settings.kernel_ms:g})")
    p.add_argument("--kernel", default=Settings.kernel, choices=("auto", "spin", "empty"),
                   help="compute: the kernel the loads launch; auto: the spin kernel on a GPU "
                        "under an SM share, the empty kernel for a launch-rate cap")
    p.add_argument("--tenant-limits", default=Settings.tenant_limits,
                   help="compute: two tenants at once with these limits (launches/s for a rate "
                        "cap, %% or a fraction for an SM share), 'auto' (c and 3c; 25 and 75 %%) "
                        "or 'none'")
    p.add_argument("--gemm-n", type=int, default=4096,
                   help="interference: GEMM matrix size N (N x N, default 4096)")
    p.add_argument("--mem-step", default="256M",
                   help="memory probe: allocate in steps of this size (default 256M)")
    p.add_argument("--instances", type=int, default=2, help="interference: engines at once")
    p.add_argument("--interference-workloads", default="launch,gemm",
                   help="interference: the workloads the engines run at once (default "
                        "launch,gemm)")
    p.add_argument("--init-procs", default="1,8,32",
                   help="init: how many processes start a GPU context at once, per step "
                        "(default 1,8,32)")
    add_matrix_flags(p)
    p.add_argument("--json", dest="json_out", default=None, help="also write the summary here")
    p.add_argument("--no-save", action="store_true", help="do not save the checks as a run")
    p.set_defaults(func=main)


def main(args, config=None) -> int:
    # loaded when the command runs: every gpubench start registers every command, and the
    # proxy, driver probe and engine sessions would cost each of them its import
    from .proxy import Limits, hami_proxy, interposer_proxy, scenario_proxy
    from .mps_layer import run_under_mps
    from .suite import run_checks, save_checks
    try:
        overrides = Limits(mem_bytes=parse_size(args.mem_limit) if args.mem_limit else None,
                           compute_fraction=args.compute_fraction, launch_rate=args.launch_rate)
        scenario = None
        if args.scenario:
            if config is None or args.scenario not in config.scenarios:
                raise CheckError(f"no scenario named {args.scenario!r} in the configuration")
            scenario = config.scenarios[args.scenario]
            proxy = scenario_proxy(scenario, overrides)
        elif args.proxy == "hami":
            proxy = hami_proxy(overrides, args.proxy_lib, args.hami_policy)
        else:
            proxy = interposer_proxy(overrides, caps_on=args.caps == "on", unhook=args.unhook)
        interval = args.interval or min(Settings.interval, args.seconds / 4)
        if args.seconds <= 0 or not 0 < interval <= args.seconds or args.streams < 1 \
                or args.kernel_ms <= 0:
            raise CheckError("--seconds, --interval, --streams and --kernel-ms must be positive, "
                             "the interval no longer than the seconds")
        settings = Settings(backend=args.backend, libcuda=args.libcuda, seconds=args.seconds,
                            interval=interval, streams=args.streams,
                            kernel_ms=args.kernel_ms, kernel=args.kernel,
                            tenant_limits=args.tenant_limits,
                            gemm_n=args.gemm_n, mem_step=parse_size(args.mem_step),
                            tolerance=args.tolerance, instances=args.instances,
                            interference_workloads=args.interference_workloads,
                            init_procs=args.init_procs, duration=args.duration,
                            repeats=args.repeats)
        checks = [c.strip() for c in args.checks.split(",") if c.strip()]
        matrix = matrix_settings(args, scenario)
        if scenario is not None and scenario.mps is not None and checks != ["matrix"]:
            # the probes run as clients of the scenario's own MPS daemon, as its engines do
            summary, notes = run_under_mps(scenario.mps, lambda mps_env: run_checks(
                checks, replace(proxy, env={**proxy.env, **mps_env}), settings, matrix=matrix))
            for note in notes:
                print(f"gpubench check: {note}", file=sys.stderr)
        else:
            summary = run_checks(checks, proxy, settings, matrix=matrix)
    except (CheckError, ValueError) as exc:
        print(f"gpubench check: {exc}", file=sys.stderr)
        return 2
    print(format_checks(summary))
    if not args.no_save:
        data_dir = config.data_dir if config is not None else None
        if data_dir is None:
            data_dir = load_config().data_dir
        run_id = save_checks(summary, Path(data_dir), args.scenario or "interposer")
        print(f"saved run {run_id}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {k: v for k, v in summary.items() if not k.startswith("_")}, indent=1, default=str))
    return 0
