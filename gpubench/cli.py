"""`gpubench`: the headless command line (run, list, show, compare, import, export, report,
delete, cleanup).

Output is a rich table on a terminal and plain tab-separated text in a pipe. Every
problem the user can cause ends as one line on stderr and a non-zero exit code,
never a traceback (`--debug` shows one for bugs). Exit codes: 0 ok; 1 `compare`
verdict at or worse than --fail-on (a NOT COMPARABLE or INVALID metric always is), or a
`run` whose sessions failed; 2 bad input or configuration; 130 interrupted.

Other modules add subcommands through COMMAND_MODULES: each exposes
`register(subparsers) -> None` and sets `func(args, config) -> int` as the handler.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from engine import __version__

# Modules that add subcommands (register(subparsers)); added here at integration.
COMMAND_MODULES: tuple[str, ...] = ("gpubench.selftest", "gpubench.checks", "gpubench.fleet",
                                     "gpubench.recover")

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (not usage + error) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _err(message: str) -> None:
    print(f"gpubench: {message}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"gpubench: warning: {message}", file=sys.stderr)


def _is_tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None,
                 styles: dict[str, str] | None = None) -> None:
    """A rich table on a terminal; tab-separated lines (header first) in a pipe."""
    if _is_tty():
        from rich.console import Console
        from rich.table import Table
        table = Table(title=title, box=None, header_style="bold", pad_edge=False)
        for i, c in enumerate(columns):
            table.add_column(c, overflow="fold", no_wrap=(i == 0))
        for row in rows:
            cells = []
            for c, v in zip(columns, row):
                text = "" if v is None else str(v)
                style = (styles or {}).get(text)
                cells.append(f"[{style}]{text}[/]" if style else text)
            table.add_row(*cells)
        Console(highlight=False).print(table)
        return
    if title:
        print(f"# {title}")
    print("\t".join(columns))
    for row in rows:  # one line per row, whatever a label or a name holds
        print("\t".join("" if v is None else " ".join(str(v).replace("\t", " ").splitlines())
                         for v in row))


VERDICT_STYLES = {"PASS": "green", "FAIL": "bold red", "INCONCLUSIVE": "yellow",
                  "VALID": "green", "INVALID": "bold red", "NOT COMPARABLE": "bold red",
                  "ENFORCED": "green", "NOT ENFORCED": "bold red", "NOT APPLICABLE": "dim",
                  "MEASURED": "cyan"}


# ---- helpers shared by commands -------------------------------------------------------------

def _store(args, config):
    from results.store import Store
    return Store(Path(args.data_dir) if getattr(args, "data_dir", None) else config.data_dir)


def _resolve(store, ref: str) -> str:
    """A run id, unique prefix, or `@scenario` (that scenario's newest run)."""
    if ref.startswith("@"):
        from results.schema import RunNotFound
        name = ref[1:]
        runs = [r for r in store.list_runs().runs if r.get("scenario") == name]
        if not runs:
            raise RunNotFound(f"no stored run of scenario {name!r}")
        return runs[-1]["id"]
    return store.resolve(ref)


def _load(store, ref: str) -> dict:
    return store.load(_resolve(store, ref))


def _csv_list(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise UsageError("empty list")
    return items


def _iso_date(text: str, end: bool = False) -> str:
    """Accept 2026-11-25, 2026-11-25T10:00, ...; compare as UTC ISO text."""
    t = text.strip()
    try:
        datetime.fromisoformat(t.rstrip("Z"))
    except ValueError:
        raise UsageError(f"not a date: {text!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return t.rstrip("Z")


# ---- run ------------------------------------------------------------------------------------

def cmd_run(args, config) -> int:
    from scenarios.config import WORKLOADS
    from gpubench.interrupts import drop_output, stop_on_signals
    from gpubench.runner import (PlanFinished, PlanOptions, PlanRunner, PlanStarted, RunSaved,
                                 SaveFailed, TrialEvent, TrialFinished, TrialStarted)
    names = args.scenarios or [s.name for s in config.enabled_scenarios()]
    unknown = [n for n in names if n not in config.scenarios]
    if unknown:
        raise UsageError(f"unknown scenario {unknown[0]!r}; configured: "
                         f"{', '.join(config.scenarios)}")
    workloads = _csv_list(args.workloads)
    if workloads:
        bad = [w for w in workloads if w not in WORKLOADS]
        if bad:
            raise UsageError(f"unknown workload {bad[0]!r}; choose from {', '.join(WORKLOADS)}")
    gpus = None
    if args.gpus is not None:
        from scenarios.config import check_gpu_select
        try:
            gpus = check_gpu_select(args.gpus)
        except ValueError as exc:
            raise UsageError(f"--gpus {exc}") from None
        k8s = [n for n in names if config.scenarios[n].launcher == "k8s"]
        if k8s:
            raise UsageError(f"--gpus is for local and ssh scenarios; {k8s[0]!r} is a k8s "
                             f"scenario (set its `gpus` in config.toml)")
    elif args.gpus_sequential and not any(config.scenarios[n].gpu_select for n in names):
        raise UsageError("--gpus-sequential needs --gpus (or a scenario's gpu_select)")
    options = PlanOptions(trials=args.trials, seed=args.seed, label=args.label or "",
                          notes=args.notes or "", backend=args.backend, workloads=workloads,
                          duration_s=args.duration, repeats=args.repeats, warmup_s=args.warmup,
                          gpus=gpus, gpus_sequential=True if args.gpus_sequential else None)
    runner = PlanRunner(config, [config.scenarios[n] for n in names], options,
                        _store(args, config))
    tty = sys.stderr.isatty()

    def progress(ev) -> None:
        try:
            report(ev)
        except OSError:  # the terminal or pipe is gone: keep measuring, save, exit cleanly
            drop_output()

    def report(ev) -> None:
        if isinstance(ev, PlanStarted):
            print(f"plan {ev.group_id}: {len(ev.order)} trials of {', '.join(names)}, "
                  f"interleaved (seed {ev.seed}); Ctrl-C stops and saves what was measured",
                  file=sys.stderr)
        elif isinstance(ev, TrialStarted):
            print(f"[{ev.index + 1}/{ev.total}] {ev.slot.scenario} trial {ev.slot.trial + 1} ...",
                  file=sys.stderr, end="\r" if tty else "\n", flush=True)
        elif isinstance(ev, TrialEvent) and tty and type(ev.event).__name__ == "Sample":
            s = ev.event
            print(f"[{ev.index + 1}/{len(runner.order)}] {ev.slot.scenario} trial "
                  f"{ev.slot.trial + 1}: {s.workload}/{s.variant} {s.ops_per_s:,.0f} ops/s   ",
                  file=sys.stderr, end="\r", flush=True)
        elif isinstance(ev, TrialFinished):
            extra = f": {ev.message}" if ev.message else ""
            layer = f" [INVALID: {'; '.join(ev.layer_reasons)}]" if ev.layer_reasons else ""
            on = f" on GPUs {','.join(map(str, ev.gpus))}" if ev.gpus else ""
            print(f"[{ev.index + 1}/{ev.total}] {ev.slot.scenario} trial {ev.slot.trial + 1}"
                  f"{on}: {ev.outcome}, {ev.results} results{extra}{layer}" + " " * 20,
                  file=sys.stderr)
        elif isinstance(ev, RunSaved):
            state = "" if ev.complete else ", incomplete"
            print(f"saved {ev.run_id} ({ev.scenario}, {ev.validity}{state})", file=sys.stderr)
        elif isinstance(ev, SaveFailed):
            _err(ev.message)
        elif isinstance(ev, PlanFinished) and not ev.complete:
            print("plan interrupted: saved the trials measured so far, marked incomplete",
                  file=sys.stderr)

    async def go():
        with stop_on_signals(runner.cancel):  # SIGINT, SIGTERM, SIGHUP: stop and save
            if any(runner.gpu_selection(s)[0] for s in runner.scenarios):
                from scenarios.multigpu import GpuSelectionError
                try:
                    resolved = await runner.resolve_gpus()
                except GpuSelectionError as exc:
                    raise UsageError(str(exc)) from None
                except Exception as exc:  # the engine could not list the GPUs
                    raise UsageError(f"cannot list the GPUs: {exc}") from None
                for name, gs in resolved.items():
                    mode = "one after the other" if runner.gpu_selection(
                        config.scenarios[name])[1] else "concurrently"
                    print(f"{name}: {len(gs)} GPU(s) {mode}: "
                          f"{'; '.join(g.describe() for g in gs)}", file=sys.stderr)
            return await runner.run(progress)

    result = asyncio.run(go())
    try:
        for run_id in result.run_ids:
            print(run_id)
        if len(result.run_ids) >= 2:
            print(f"compare with: gpubench compare {result.run_ids[0]} "
                  f"{' '.join(result.run_ids[1:])}", file=sys.stderr)
    except OSError:
        drop_output()
    if result.save_errors:
        return EXIT_USAGE
    if not result.complete:
        return EXIT_INTERRUPTED
    return EXIT_GATE if result.failed_sessions else EXIT_OK


# ---- list / show ----------------------------------------------------------------------------

def cmd_list(args, config) -> int:
    from results.store import filter_runs, summary_flags
    store = _store(args, config)
    listing = store.list_runs()
    for w in listing.warnings:
        _warn(w)
    filters = dict(scenario=args.scenario, host=args.host, label=args.label,
                   since=_iso_date(args.since) if args.since else None,
                   until=_iso_date(args.until, end=True) if args.until else None)
    runs = filter_runs(listing.runs, **filters)
    unfinished = filter_runs(listing.unfinished, **filters)   # journal, no document yet
    if args.format == "json":
        print(json.dumps(runs + unfinished, indent=2, ensure_ascii=False))
        return EXIT_OK
    rows = []
    for r in runs + unfinished:
        ops = (r.get("headline") or {}).get("ops_per_s")
        rows.append([r["id"], r.get("created"), r.get("scenario"), r.get("host") or "",
                     r.get("label") or "", r.get("trials"), r.get("validity") or "",
                     f"{ops:,.0f}" if isinstance(ops, (int, float)) else "",
                     ", ".join(summary_flags(r))])
    if not rows and _is_tty():
        print("no stored runs match" if listing.runs else
              f"no stored runs in {store.dir} (start with `gpubench run`)", file=sys.stderr)
        return EXIT_OK
    _print_table(("id", "created (UTC)", "scenario", "host", "label", "trials", "validity",
                  "headline ops/s", "flags"), rows, styles=VERDICT_STYLES)
    return EXIT_OK


def _device_line(doc: dict) -> str:
    dev = (doc.get("hello") or {}).get("device") or {}
    if doc.get("backend") == "numpy-cpu":
        return f"{dev.get('name')} (CPU backend numpy-cpu: not a GPU figure)"
    from results.comparison import cuda_version_text
    return (f"{dev.get('name')} (driver {dev.get('driver') or '?'}, CUDA "
            f"{cuda_version_text(dev.get('cuda_driver')) or '?'}, backend {doc.get('backend')})")


def _show_rows(workloads: list, gpu: str) -> list[list]:
    """`show` rows (workload, variant, gpu, valid/trials, ops/s, mean, p99, GB/s, CV, outliers)."""
    from results.format import EMPTY, fmt_value
    from results.stats import cv_pct, finite_median, mad_outliers
    rows = []
    for wl in workloads:
        trials = wl.get("trials") or []
        valid = [t for t in trials if t.get("valid", True)]
        shown = f"{len(valid)}/{len(trials)}"
        if not valid and trials:  # all invalid: show their figures, marked
            valid, shown = trials, f"0/{len(trials)} (figures of invalid trials)"
        ops = [t.get("ops_per_s") for t in valid if t.get("ops_per_s")]
        cv = cv_pct(ops) if len(ops) >= 2 else None
        rows.append([wl["workload"], wl.get("variant"), gpu, shown,
                     fmt_value(finite_median(ops)),
                     fmt_value(finite_median([(t.get("latency_us") or {}).get("mean")
                                              for t in valid])),
                     fmt_value(finite_median([(t.get("latency_us") or {}).get("p99")
                                              for t in valid])),
                     fmt_value(finite_median([t.get("gbps") for t in valid])),
                     EMPTY if cv is None else f"{cv:.1f}%",
                     len(mad_outliers(ops)) if len(ops) >= 3 else 0])
    return rows


STARTUP_STEPS = (("to_running_s", "Running"), ("to_hello_s", "engine hello"),
                 ("to_first_sample_s", "first sample"))


def _startup_lines(sessions: list, launcher: str | None) -> list[tuple[str, str]]:
    """`show` lines for the sessions' start-up timings (sessions[].details.startup, k8s):
    from the pod's creation to Running, the engine's hello and its first sample; the median
    and range when there are several sessions; the nodes the pods ran on."""
    from results.stats import median
    startups = [((s.get("details") or {}).get("startup") or {}) for s in sessions]
    startups = [st for st in startups if isinstance(st, dict) and st]
    out: list[tuple[str, str]] = []
    if startups:
        origin = "pod creation" if launcher == "k8s" else "launch"
        parts, last = [], None
        for key, name in STARTUP_STEPS:
            vals = sorted(v for v in (st.get(key) for st in startups)
                          if isinstance(v, (int, float)) and not isinstance(v, bool))
            if vals:
                parts.append(f"{name} {median(vals):.2f} s")
                last = (name, vals)
        if parts:
            text = f"{origin} → " + " → ".join(parts)
            if len(startups) > 1 and last is not None:
                name, vals = last
                text += (f" (medians of {len(vals)} sessions; {name} "
                         f"{vals[0]:.2f}–{vals[-1]:.2f} s)")
            out.append(("startup", text))
    nodes: dict[str, int] = {}
    for s in sessions:
        node = (s.get("details") or {}).get("node")
        if node:
            nodes[str(node)] = nodes.get(str(node), 0) + 1
    if nodes:
        out.append(("nodes", ", ".join(f"{n} ({c} session{'s' if c > 1 else ''})"
                                       for n, c in nodes.items())))
    return out


def cmd_show(args, config) -> int:
    from results.format import EMPTY, fmt_value
    store = _store(args, config)
    doc = _load(store, args.run)
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return EXIT_OK
    scen = doc.get("scenario") or {}
    hello = doc.get("hello") or {}
    dev = hello.get("device") or {}
    host = hello.get("host") or {}
    val = doc.get("validity") or {}
    tool = doc.get("tool") or {}
    group = doc.get("group") or {}
    lines = [
        ("run", doc["id"]), ("created", doc.get("created")),
        ("scenario", f"{scen.get('name')} — {scen.get('title') or ''} "
                     f"(launcher {scen.get('launcher')}, target {scen.get('target')}"
                     + (f" < {scen['target_pct']:g}%" if scen.get("target_pct") is not None else "")
                     + ")"),
        ("host", host.get("hostname") or scen.get("host") or scen.get("cluster") or EMPTY),
        ("device", _device_line(doc) if hello else "unknown (imported)"),
        ("tool", f"gpubench {tool.get('version')}, engine {tool.get('engine_version')}, "
                 f"commit {(tool.get('git_commit') or 'unknown')[:12]}"),
        ("group", f"{group.get('id')} (seed {group.get('seed')}, "
                  f"{group.get('executed')}/{group.get('planned', len(group.get('order') or []))}"
                  f" trials run)"
         if group else EMPTY),
        ("outcome", f"{doc.get('outcome')}" + (
            f", incomplete: {doc['incomplete_reason']}" if doc.get("incomplete_reason") else
            ", plan interrupted" if doc.get("complete") is False else "")),
        ("validity", val.get("status") + (": " + "; ".join(val.get("reasons") or [])
                                          if val.get("reasons") else "")),
        ("label", doc.get("label") or EMPTY), ("notes", doc.get("notes") or EMPTY),
    ]
    if doc.get("imported"):
        lines.append(("imported", f"yes, from {doc.get('source') or 'legacy text'}"))
    for note in val.get("notes") or []:
        lines.append(("note", note))
    sessions = doc.get("sessions") or []
    if sessions:
        counts: dict[str, int] = {}
        for s in sessions:
            counts[s.get("outcome")] = counts.get(s.get("outcome"), 0) + 1
        lines.append(("sessions", ", ".join(f"{n} {o}" for o, n in counts.items())))
        for s in sessions:
            if s.get("outcome") != "completed" and s.get("message"):
                lines.append((f"session {s['index']}", f"{s['outcome']}: {s['message']}"))
        lines += _startup_lines(sessions, scen.get("launcher"))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")
    print()
    from results.per_gpu import aggregate_workloads, doc_gpus, gpu_workloads, is_per_gpu
    if is_per_gpu(doc):
        gpus = doc_gpus(doc)
        print(f"GPUs: {len(gpus)}, run {doc.get('gpu_mode') or 'concurrently'}: "
              + "; ".join(f"{i} {g.get('uuid') or ''} ({g.get('name') or '?'}"
                          + (", MIG instance" if g.get("mig_instance") else "") + ")"
                          for i, g in gpus.items()))
        part = doc.get("partition") or {}
        if part.get("kind"):
            print(f"partition: {part['kind']}, {part.get('visible_gpus')} GPU(s) visible"
                  + (f", NVML sees {part['nvml_gpus']}" if part.get("nvml_gpus") else ""))
        rows = []
        for i in gpus:
            rows += _show_rows(gpu_workloads(doc, i), str(i))
        rows += _show_rows(aggregate_workloads(doc), "all")
        _print_table(("workload", "variant", "gpu", "valid/trials", "ops/s", "mean µs",
                      "p99 µs", "GB/s", "CV", "outliers"),
                     sorted(rows, key=lambda r: (r[0], r[1], r[2] == "all", r[2])))
        print("gpu all: ops/s and GB/s summed across GPUs run concurrently (— when run one "
              "after the other), latency the median across GPUs")
    else:
        _print_table(("workload", "variant", "valid/trials", "ops/s", "mean µs", "p99 µs", "GB/s",
                      "CV", "outliers"), [r[:2] + r[3:] for r in _show_rows(
                          doc.get("workloads") or [], "")])
    from results.check_verdicts import CHECK_COLUMNS, check_rows, check_table
    checks = check_rows(doc)
    if checks:
        print()
        _print_table(CHECK_COLUMNS[2:], [r[2:] for r in check_table(checks)],
                     title="isolation checks", styles=VERDICT_STYLES)
    tel = doc.get("telemetry") or {}
    if tel.get("count"):
        print()
        rows = [[name, fmt_value(r.get("min")), fmt_value(r.get("mean")), fmt_value(r.get("max"))]
                for name, r in (tel.get("readings") or {}).items()]
        _print_table(("telemetry", "min", "mean", "max"), rows)
        if tel.get("throttle_event_count"):
            names = sorted({n for e in tel.get("throttle_events") or [] for n in e["names"]})
            print(f"throttle events: {tel['throttle_event_count']} ({', '.join(names)})")
    return EXIT_OK


# ---- compare / report -----------------------------------------------------------------------

def _comparisons(args, config, store) -> list:
    from results.check_verdicts import comparison_checks, latest_check_run
    from results.comparison import compare_runs
    base = _load(store, args.base)
    comps = []
    runs = None
    for ref in args.candidates:
        cand = _load(store, ref)
        comp = compare_runs(base, cand, target_pct=args.target,
                            include_invalid=args.include_invalid, force=args.force,
                            seed=args.seed, metrics=_csv_list(args.metrics))
        if runs is None:
            runs = store.list_runs().runs
        scenario = (cand.get("scenario") or {}).get("name") or ""
        comp.checks = comparison_checks(base, cand, latest_check_run(store, scenario, runs))
        comps.append(comp)
    return comps


def cmd_compare(args, config) -> int:
    from results import report
    from results.stats import VERDICT_RANK
    store = _store(args, config)
    comps = _comparisons(args, config, store)
    fmt = args.format
    if fmt == "md":
        sys.stdout.write(report.to_markdown(comps))
    elif fmt == "json":
        sys.stdout.write(report.to_json(comps))
    elif fmt == "csv":
        sys.stdout.write(report.to_csv(comps))
    elif _is_tty():
        for comp in comps:
            for line in report.header_lines(comp):
                print(line)
            _print_table(report.columns_for(comp), report.comparison_table(comp),
                         styles=VERDICT_STYLES)
            if comp.checks:
                from results.check_verdicts import CHECK_COLUMNS, check_table
                _print_table(CHECK_COLUMNS, check_table(comp.checks),
                             title=report.CHECKS_TITLE, styles=VERDICT_STYLES)
            for w in comp.warnings:
                _warn(w)
            print()
    else:
        sys.stdout.write(report.to_tsv(comps))
    if fmt != "table" or not _is_tty():
        for comp in comps:
            for w in comp.warnings:
                _warn(w)
    gate = VERDICT_RANK[args.fail_on]
    failing = [c for c in comps if VERDICT_RANK.get(c.verdict, 0) >= gate]
    if failing:
        print(f"gate: {len(failing)} of {len(comps)} comparisons at or worse than "
              f"{args.fail_on} ({', '.join(f'{c.cand_id}: {c.verdict}' for c in failing)})",
              file=sys.stderr)
        return EXIT_GATE
    return EXIT_OK


def cmd_report(args, config) -> int:
    from results.report import ReportScenario, comparison_report
    from results.comparison import compare_runs
    store = _store(args, config)
    listing = store.list_runs()
    for w in listing.warnings:
        _warn(w)
    latest: dict[str, dict | None] = {}
    for name in config.scenarios:
        runs = [r for r in listing.runs if r.get("scenario") == name]
        latest[name] = None
        for summary in reversed(runs):  # newest readable one
            try:
                latest[name] = store.load(summary["id"])
                break
            except Exception as exc:
                _warn(f"skipped {summary['id']}: {exc}")
    scen = [ReportScenario(s.name, s.title, s.target_pct, s.baseline)
            for s in config.scenarios.values()]

    def compare(base, cand, sc):
        return compare_runs(base, cand, target_pct=sc.target_pct,
                            include_invalid=args.include_invalid, force=args.force,
                            seed=args.seed)

    from results.check_verdicts import latest_check_run
    checks = {name: latest_check_run(store, name, listing.runs) for name in config.scenarios}
    text = comparison_report(scen, latest, compare,
                             generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                             tool_version=__version__, checks=checks)
    if args.out == "-":
        sys.stdout.write(text)
        return EXIT_OK
    from results.store import atomic_write
    out = Path(args.out)
    try:
        atomic_write(out, text.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    print(f"wrote {out} ({sum(1 for d in latest.values() if d)} of {len(latest)} scenarios "
          f"have runs)", file=sys.stderr)
    return EXIT_OK


# ---- import / export / delete ---------------------------------------------------------------

def cmd_import(args, config) -> int:
    from gpubench.runner import scenario_record
    from results.legacy import import_legacy
    if args.scenario not in config.scenarios:
        raise UsageError(f"unknown scenario {args.scenario!r}; configured: "
                         f"{', '.join(config.scenarios)}")
    path = Path(args.file)
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    text = raw.decode("utf-8", errors="replace")
    doc = import_legacy(text, scenario_record(config.scenarios[args.scenario], config),
                        source=path.name if args.file != "-" else "stdin",
                        label=args.label or "", notes=args.notes or "")
    store = _store(args, config)
    store.save(doc, [])
    print(doc["id"])
    trials = doc["workloads"][0]["trials"]
    print(f"imported {len(trials)} throughput figure(s) from {path.name} as scenario "
          f"{args.scenario}", file=sys.stderr)
    return EXIT_OK


EXPORT_SUFFIX = {"text": ".txt", "json": ".json", "csv": ".csv"}


def cmd_export(args, config) -> int:
    from results.legacy import export_csv, export_json, export_text
    store = _store(args, config)
    run_id = _resolve(store, args.run)
    doc = store.load(run_id)
    text = {"text": export_text, "json": export_json, "csv": export_csv}[args.format](doc)
    if args.out and args.out != "-":
        from results.files import atomic_write, path_in, safe_file_name
        out = Path(args.out)
        if out.is_dir():  # a folder: the file is named after the run id, and stays in it
            out = path_in(out, safe_file_name(run_id, EXPORT_SUFFIX[args.format]))
        try:
            atomic_write(out, text.encode("utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror}") from None
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def confirm(question: str) -> bool:
    """Ask on the terminal; refuses (UsageError) without one: pass --yes."""
    if not sys.stdin.isatty():
        raise UsageError(f"refusing to {question.rstrip('?')} without confirmation: no "
                         f"terminal to ask on (pass --yes)")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() in ("y", "yes"):
        return True
    print("kept", file=sys.stderr)
    return False


def cmd_delete(args, config) -> int:
    store = _store(args, config)
    run_id = _resolve(store, args.run)
    if not args.yes and not confirm(f"delete run {run_id} and its raw stream?"):
        return EXIT_GATE
    store.delete(run_id)
    print(f"deleted {run_id}", file=sys.stderr)
    return EXIT_OK


def cmd_cleanup(args, config) -> int:
    names = [args.cluster] if args.cluster else [c.name for c in config.clusters.values()
                                                 if c.enabled]
    if args.cluster and args.cluster not in config.clusters:
        raise UsageError(f"unknown cluster {args.cluster!r}; configured: "
                         f"{', '.join(config.clusters) or 'none'}")
    if not names:
        print("no enabled cluster in the configuration: nothing to clean", file=sys.stderr)
        return EXIT_OK
    try:
        from scenarios.k8s.cleanup import cleanup_leftovers
    except ImportError as exc:
        raise UsageError(f"cleanup needs the Kubernetes launcher: {exc}") from None
    for name in names:
        report = cleanup_leftovers(config.clusters[name], everything=args.all,
                                   dry_run=args.dry_run)
        for line in report.kept:
            print(f"{name}: {line}", file=sys.stderr)
        for item in report.removed:
            print(f"{name}\t{item}")
        print(f"{name}: {'would remove' if args.dry_run else 'removed'} {len(report.removed)} "
              f"leftover object(s), kept {report.kept_objects}", file=sys.stderr)
    return EXIT_OK


# ---- parser ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from scenarios import limits
    from scenarios.limits import cli_number
    p = _Parser(prog="gpubench", description="Measure what GPU isolation costs: run benchmark "
                "scenarios, store results, compare them with confidence intervals and verdicts.",
                epilog="A RUN is a run id, a unique prefix of one, or @SCENARIO (its newest run). "
                "Exit codes: 0 ok; 1 a compare verdict at/worse than --fail-on, or failed "
                "sessions in a run; 2 bad input or configuration; 130 interrupted.")
    p.add_argument("--version", action="version", version=f"gpubench {__version__}")
    p.add_argument("--config", metavar="PATH", help="config.toml (default: $GPUBENCH_CONFIG, "
                   "./config.toml, ~/.config/gpubench/config.toml)")
    p.add_argument("--data-dir", metavar="DIR", help="result store (default: [store] data_dir)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    r = sub.add_parser("run", help="run scenarios (trials interleaved) and save one run each")
    r.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="configured scenarios (default: every enabled one)")
    r.add_argument("--trials", type=cli_number(int, limits.TRIALS),
                   help="engine sessions per scenario ([defaults] trials)")
    r.add_argument("--seed", type=int, help="seed of the interleaved order (random if unset)")
    r.add_argument("--label", help="label stored with the runs")
    r.add_argument("--notes", help="free-text notes stored with the runs")
    r.add_argument("--backend", choices=("auto", "cupy", "numpy-cpu"))
    r.add_argument("--workloads", metavar="W1,W2", help="comma-separated workloads")
    r.add_argument("--duration", type=cli_number(float, limits.DURATION_S), metavar="S",
                   help="measured seconds per repeat")
    r.add_argument("--warmup", type=cli_number(float, limits.WARMUP_S), metavar="S",
                   help="warm-up seconds")
    r.add_argument("--repeats", type=cli_number(int, limits.REPEATS),
                   help="result lines per workload per session")
    r.add_argument("--gpus", metavar="SEL",
                   help="multi-GPU hosts: all, 0,2 or GPU UUIDs: one engine per GPU, results "
                        "tagged per GPU (local/ssh scenarios; overrides gpu_select)")
    r.add_argument("--gpus-sequential", action="store_true",
                   help="with --gpus: one GPU after the other instead of concurrently")
    r.set_defaults(func=cmd_run)

    ls = sub.add_parser("list", help="list stored runs")
    ls.add_argument("--scenario")
    ls.add_argument("--host", help="substring of the host name")
    ls.add_argument("--label", help="substring of the label")
    ls.add_argument("--since", metavar="DATE", help="created at or after (UTC, YYYY-MM-DD[THH:MM])")
    ls.add_argument("--until", metavar="DATE", help="created at or before (UTC; a day is inclusive)")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(func=cmd_list)

    sh = sub.add_parser("show", help="show one run (id, unique prefix or @scenario)")
    sh.add_argument("run")
    sh.add_argument("--json", action="store_true", help="print the whole document")
    sh.set_defaults(func=cmd_show)

    c = sub.add_parser("compare", help="overhead of candidates vs a baseline, with verdicts")
    c.add_argument("base", metavar="BASE", help="baseline run")
    c.add_argument("candidates", nargs="+", metavar="CAND", help="candidate run(s)")
    c.add_argument("--format", choices=("table", "md", "json", "csv"), default="table")
    c.add_argument("--fail-on", choices=("FAIL", "INCONCLUSIVE"), default="FAIL",
                   help="exit 1 when a verdict is at or worse than this (default FAIL); a "
                        "metric that is NOT COMPARABLE or INVALID always fails")
    c.add_argument("--force", action="store_true",
                   help="compare runs from different GPUs/drivers/CUDA/engine (stamped)")
    c.add_argument("--include-invalid", action="store_true", help="use INVALID runs and trials")
    c.add_argument("--target", type=cli_number(float, limits.TARGET_PCT), metavar="PCT",
                   help="overhead target in %% (default: the candidate scenario's)")
    c.add_argument("--metrics", metavar="M1,M2",
                   help="ops_per_s,gbps,tflops,lat_mean,lat_p99 (default: all)")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    c.set_defaults(func=cmd_compare)

    im = sub.add_parser("import", help="import a seed-format text result or kubectl log")
    im.add_argument("file", metavar="FILE", help="text file ('-' for stdin)")
    im.add_argument("--scenario", required=True, help="configured scenario it belongs to")
    im.add_argument("--label")
    im.add_argument("--notes")
    im.set_defaults(func=cmd_import)

    ex = sub.add_parser("export", help="export a run as seed-format text, JSON or CSV")
    ex.add_argument("run")
    ex.add_argument("--format", choices=("text", "json", "csv"), default="text")
    ex.add_argument("--out", metavar="PATH", help="write this file (or into this folder, "
                    "named <run id>.txt|json|csv) instead of stdout")
    ex.set_defaults(func=cmd_export)

    rp = sub.add_parser("report", help="write comparison.md over the configured scenarios")
    rp.add_argument("--out", default="comparison.md", metavar="FILE", help="'-' for stdout")
    rp.add_argument("--force", action="store_true")
    rp.add_argument("--include-invalid", action="store_true")
    rp.add_argument("--seed", type=int, default=0)
    rp.set_defaults(func=cmd_report)

    d = sub.add_parser("delete", help="delete a stored run (asks first)")
    d.add_argument("run")
    d.add_argument("--yes", "-y", action="store_true", help="do not ask")
    d.set_defaults(func=cmd_delete)

    cl = sub.add_parser("cleanup", help="remove gpubench pods/ConfigMaps left on clusters by "
                        "runs that are gone (a live run's are kept)")
    cl.add_argument("--cluster", help="one configured cluster (default: every enabled one)")
    cl.add_argument("--all", action="store_true", help="remove every gpubench object, also "
                    "those of live runs and those whose run cannot be told alive or gone")
    cl.add_argument("--dry-run", action="store_true", help="say what would be removed; remove "
                    "nothing")
    cl.set_defaults(func=cmd_cleanup)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        return _main(argv)
    except KeyboardInterrupt:
        _err("interrupted")
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
        _err(f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)")
        return EXIT_USAGE


def _main(argv: list[str]) -> int:
    from scenarios.config import ConfigError, load_config
    from results.schema import ResultError
    from scenarios.base import LaunchError
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args, config) or 0)
    except (UsageError, ResultError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except LaunchError as exc:  # a host, cluster or engine that could not be reached or started
        _err(str(exc))
        return EXIT_GATE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
