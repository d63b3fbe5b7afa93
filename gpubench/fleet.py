"""`gpubench fleet` at work (its flags: gpubench/cli/fleet.py): the hosts chosen, one plan run on
all of them through scenarios/fleet_run, the per-host runs saved, the table and the overhead
across the fleet printed."""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from engine.engine_args import EngineArgs
from results.document import SessionRecord, archive_lines, build_document
from results.fleet_analysis import HostSummary, analyze_fleet, fleet_overhead, summarize_host
from results.fleet_table import format_fleet_table, format_overhead_table
from results.store import Store
from scenarios import aio
from scenarios.base import LaunchRequest, Launcher
from scenarios.config import Config, HostConfig, ScenarioConfig
from scenarios.descriptors import raise_nofile_limit
from scenarios.events import COMPLETED
from scenarios.fleet_run.close import close_launchers
from scenarios.fleet_run.failures import FleetError, check_descriptor_budget
from scenarios.fleet_run.hosts import FleetTarget, new_group_id
from scenarios.fleet_run.run import FleetRun
from scenarios.local import LocalLauncher
from scenarios.registry import request_for

PROGRESS_EVERY_S = 5.0


# ---- selection -------------------------------------------------------------------------------

def select_hosts(config: Config, hosts: str | None, label: str | None) -> list[HostConfig]:
    if hosts:
        chosen = []
        for name in [h.strip() for h in hosts.split(",") if h.strip()]:
            chosen.append(config.hosts.get(name) or HostConfig(name=name, kind="ssh", address=name))
    else:
        chosen = [h for h in config.hosts.values() if h.enabled and h.kind == "ssh"]
    if label:
        chosen = [h for h in chosen if label in h.labels]
    return chosen


def engine_args(config: Config, args: argparse.Namespace) -> EngineArgs:
    """The plan every host runs: [defaults] with this command's overrides; sizes and CPU
    pinning stay the engine's own, as hosts of a fleet differ in both."""
    d = config.defaults
    own = EngineArgs()
    return replace(
        d.engine_args(), roundtrip_size=own.roundtrip_size, sizes=own.sizes, cpus=own.cpus,
        backend=args.backend or d.backend,
        workloads=tuple(args.workloads.split(",")) if args.workloads else d.workloads,
        duration=args.duration if args.duration is not None else d.duration_s,
        warmup=args.warmup if args.warmup is not None else d.warmup_s,
        repeats=args.repeats if args.repeats is not None else d.repeats)


def launcher_for_host(host: HostConfig) -> Launcher:
    if host.kind == "local":
        return LocalLauncher()
    from scenarios.ssh.launcher import SshLauncher  # asyncssh: loaded only when a host needs it
    return SshLauncher.from_config(host)


def scenario_requests(config: Config, names: Sequence[str], eargs: list[str]) -> list[tuple[ScenarioConfig | None, LaunchRequest]]:
    if not names:
        return [(None, LaunchRequest(engine_args=tuple(eargs), label="fleet"))]
    out = []
    for name in names:
        if name not in config.scenarios:
            raise FleetError(f"no scenario named {name!r} (have: {', '.join(config.scenarios)})")
        sc = config.scenarios[name]
        if sc.launcher == "k8s":
            raise FleetError(f"scenario {name!r} runs on Kubernetes: its fleet is the cluster's GPU nodes "
                             f"(one pod per node), not an SSH host list")
        out.append((sc, request_for(sc, eargs)))
    return out


# ---- running ---------------------------------------------------------------------------------

async def run_fleet(targets: list[FleetTarget], plans: list[tuple[str, LaunchRequest]], *,
                    group: str, trials: int = 1, seed: int = 0, progress: bool = True,
                    **fleet_kw) -> dict[str, dict[str, dict]]:
    """Run every plan on every host, `trials` rounds, plans in a shuffled order each round.

    Returns {plan name: {host: {"outcome", "message", "lines": [...], "sessions": [...]}}}."""
    rng = random.Random(seed)
    collected: dict[str, dict[str, dict]] = {name: {t.name: {"outcome": None, "message": "", "lines": [],
                                                              "sessions": []} for t in targets}
                                             for name, _ in plans}
    for trial in range(trials):
        order = list(plans)
        rng.shuffle(order)
        for name, request in order:
            fleet = FleetRun(targets, request, group=group, **fleet_kw)
            ticker = asyncio.create_task(_progress(fleet, f"{name} trial {trial + 1}/{trials}")) if progress else None
            try:
                result = await fleet.run()
            finally:
                if ticker is not None:
                    ticker.cancel()
            if result.descriptor_exhausted:
                print("gpubench fleet: some hosts failed because this process ran out of file "
                      "descriptors: raise `ulimit -n` or lower --max-sessions", file=sys.stderr)
            for host, st in result.statuses.items():
                rec = collected[name][host]
                rec["sessions"].append({"trial": trial, "outcome": st.state, "message": st.message,
                                        "exit_code": st.ended.exit_code if st.ended else None,
                                        "lines": st.raw_lines})
                rec["lines"].extend(st.raw_lines)
                if rec["outcome"] in (None, COMPLETED):  # the worst outcome sticks
                    rec["outcome"], rec["message"] = st.state, st.message
    return collected


async def _progress(fleet: FleetRun, what: str) -> None:
    start = time.monotonic()
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        counts = fleet.counts()
        text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        print(f"[{time.monotonic() - start:5.0f}s] {what}: {text}", file=sys.stderr, flush=True)


def summaries_of(per_host: dict[str, dict]) -> list[HostSummary]:
    out = []
    for host, rec in per_host.items():
        lines = []
        for text in rec["lines"]:
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue
        out.append(summarize_host(host, rec["outcome"] or "cancelled", lines, rec["message"]))
    return out


def save_runs(config: Config, group: str, scenario: ScenarioConfig | None, name: str,
              per_host: dict[str, dict], hosts: dict[str, HostConfig]
              ) -> tuple[int, list[str], str | None]:
    """Each host's sessions as one run document in the store, all with the fleet's group id:
    (runs saved, hosts whose engine never said a word (never connected or never started),
    for which nothing is saved, the problem that stopped the saving)."""
    store = Store(config.data_dir)
    saved = 0
    silent = [host for host, rec in per_host.items() if not rec["lines"]]
    for host, rec in per_host.items():
        if host in silent:
            continue
        sessions = [SessionRecord(lines=s["lines"], outcome=s["outcome"], message=s["message"],
                                  exit_code=s["exit_code"], trial=s["trial"]) for s in rec["sessions"]]
        scen = {"name": scenario.name if scenario else name, "title": scenario.title if scenario else name,
                "launcher": "ssh" if hosts[host].kind == "ssh" else hosts[host].kind, "host": host,
                "target": scenario.target if scenario else "none",
                "target_pct": scenario.target_pct if scenario else None,
                "baseline": scenario.baseline if scenario else None,
                "details": {"fleet": True}}
        try:
            doc = build_document(sessions, scen, group={"id": group, "kind": "fleet", "hosts": len(per_host)},
                                 label=f"fleet {group}")
            store.save(doc, raw_lines=archive_lines(sessions))
            saved += 1
        except Exception as exc:  # a full disk must not lose the table
            return saved, silent, f"runs not saved after {saved}: {type(exc).__name__}: {exc}"
    return saved, silent, None


def run_fleet_command(args: argparse.Namespace, config: Config) -> int:
    soft, hard = raise_nofile_limit()
    hosts = select_hosts(config, args.hosts, args.label)
    if not hosts:
        where = f"with label {args.label!r}" if args.label else "(no enabled ssh hosts in config.toml)"
        print(f"gpubench fleet: no hosts {where}; name them with --hosts a,b,c", file=sys.stderr)
        return 2
    eargs = engine_args(config, args).to_argv()
    try:
        check_descriptor_budget(len(hosts), args.max_sessions)
        plans = scenario_requests(config, args.scenario, eargs)
        launchers = {h.name: launcher_for_host(h) for h in hosts}
    except FleetError as exc:
        print(f"gpubench fleet: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a launcher refusing its configuration (missing key file, ...)
        print(f"gpubench fleet: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    targets = [FleetTarget.for_host(h, launchers[h.name]) for h in hosts]
    group = new_group_id()
    names = [sc.name if sc else "fleet" for sc, _ in plans]
    if not args.quiet:
        print(f"gpubench fleet: {len(hosts)} hosts, run group {group}, open-files limit {soft}",
              file=sys.stderr)

    async def go():
        try:
            return await run_fleet(targets, [(n, req) for n, (_, req) in zip(names, plans)], group=group,
                                   trials=max(1, args.trials), progress=not args.quiet,
                                   max_connects=args.max_connects, max_connects_per_address=args.max_per_address,
                                   max_sessions=args.max_sessions, inactivity_timeout_s=args.timeout,
                                   start_timeout_s=args.start_timeout)
        finally:
            await close_launchers(launchers.values())

    try:
        collected = aio.run(go())
    except KeyboardInterrupt:
        print("gpubench fleet: interrupted", file=sys.stderr)
        return 130
    reports = {}
    any_slow = False
    for (sc, _), name in zip(plans, names):
        summaries = summaries_of(collected[name])
        report = analyze_fleet(summaries, group=group)
        reports[name] = (summaries, report)
        any_slow = any_slow or any(o.direction == "slow" for o in report.outliers)
        if len(plans) > 1:
            print(f"\n== {sc.title if sc else name} ==")
        print(format_fleet_table(report, max_metrics=args.metrics))
    overheads = {}
    for sc, _ in plans[1:] if len(plans) > 1 else []:
        base_name = sc.baseline if sc.baseline in reports else names[0]
        if base_name == sc.name:
            continue
        rows = fleet_overhead(reports[base_name][0], reports[sc.name][0], target_pct=sc.target_pct)
        overheads[sc.name] = rows
        print()
        print(format_overhead_table(rows, base_name, sc.name, sc.target_pct))
    if not args.no_save:
        hosts_by_name = {h.name: h for h in hosts}
        for (sc, _), name in zip(plans, names):
            saved, silent, problem = save_runs(config, group, sc, name, collected[name],
                                               hosts_by_name)
            if silent:
                print(f"gpubench fleet: nothing saved for {len(silent)} host(s) that never "
                      f"started {name}: {', '.join(silent)}", file=sys.stderr)
            if problem:
                print(f"gpubench fleet: {problem}", file=sys.stderr)
            elif not args.quiet:
                print(f"saved {saved} runs of {name} in {config.data_dir} (group {group})", file=sys.stderr)
    if args.json:
        doc = {"group": group, "engine_args": eargs,
               "reports": {n: r.to_dict() for n, (_, r) in reports.items()},
               "overhead": {n: [row.__dict__ for row in rows] for n, rows in overheads.items()}}
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str))
    all_done = all(rec["outcome"] == COMPLETED for per in collected.values() for rec in per.values())
    if args.fail_on_outlier and any_slow:
        return 3
    return 0 if all_done else 1
