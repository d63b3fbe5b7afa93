"""`gpubench run`: a plan of scenarios × trials, interleaved, one saved run per scenario.
Progress goes to stderr, the saved run ids to stdout."""
from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from gpubench.cli.base import EXIT_GATE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError, \
    csv_list, err, open_store
from gpubench.plan_flags import add_plan_flags
from gpubench.interrupts import drop_output, stop_on_signals
from gpubench.plan_events import (PlanFinished, PlanStarted, RunNotSaved, RunSaved, SaveFailed,
                                  TrialEvent, TrialFinished, TrialStarted)
from gpubench.services.runs import check_scenario
from engine.vocabulary import WORKLOADS
from scenarios.config import check_gpu_select
from results.format import fmt_num
from results.labels import backend_cell, backend_mark
from results.rates import rate_of
from scenarios.events import Hello, Sample

if TYPE_CHECKING:
    from gpubench.runner import PlanOptions


def register(subparsers) -> None:
    r = subparsers.add_parser("run", help="run scenarios (trials interleaved) and save one run "
                              "each")
    r.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="configured scenarios (default: every enabled one)")
    add_plan_flags(r)
    r.add_argument("--enable", action="store_true",
                   help="run the named scenarios even where config.toml disables them")
    r.add_argument("--seed", type=int, help="seed of the interleaved order (random if unset)")
    r.add_argument("--label", help="label stored with the runs")
    r.add_argument("--notes", help="free-text notes stored with the runs")
    r.add_argument("--gpus", metavar="SEL",
                   help="multi-GPU hosts: all, 0,2 or GPU UUIDs: one engine per GPU, results "
                        "tagged per GPU (local/ssh scenarios; overrides gpu_select)")
    r.add_argument("--gpus-sequential", action="store_true",
                   help="with --gpus: one GPU after the other instead of concurrently")
    r.set_defaults(func=cmd_run)


def plan_options(args, config, names: list[str]) -> PlanOptions:
    """The plan the flags ask for; UsageError for a workload or GPU selection that is not."""
    from gpubench.runner import PlanOptions   # the plan runner: see cmd_run
    workloads = csv_list(args.workloads)
    if workloads:
        bad = [w for w in workloads if w not in WORKLOADS]
        if bad:
            raise UsageError(f"unknown workload {bad[0]!r}; choose from {', '.join(WORKLOADS)}")
    gpus = None
    if args.gpus is not None:
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
    return PlanOptions(trials=args.trials, seed=args.seed, label=args.label or "",
                       notes=args.notes or "", backend=args.backend, workloads=workloads,
                       duration_s=args.duration, repeats=args.repeats, warmup_s=args.warmup,
                       gpus=gpus, gpus_sequential=True if args.gpus_sequential else None)


def chosen_scenarios(args, config) -> list[str]:
    """The scenarios named (each configured, and enabled unless --enable), else every enabled
    one; UsageError for a disabled one, before anything starts or is saved."""
    names = [check_scenario(config, n) for n in args.scenarios]
    off = [n for n in names if not config.scenarios[n].enabled]
    if off and not args.enable:
        raise UsageError(f"scenario {off[0]!r} is disabled (enabled = false in "
                         f"{config.path or 'the built-in defaults'}): set it up there, or "
                         f"pass --enable to run it anyway")
    names = names or [s.name for s in config.enabled_scenarios()]
    if not names:
        raise UsageError("no scenario is enabled: name one (with --enable) or enable one in "
                         f"{config.path or 'config.toml (`gpubench init` writes one)'}")
    return names


CLEAR_TO_EOL = "\x1b[K"


class ProgressPrinter:
    """The plan's progress on stderr. In a terminal the running trial has one line, rewritten
    in place and cleared to its end each time, so a shorter line leaves nothing of a longer
    one behind; elsewhere (a pipe, a log) one line per trial start and end. Each line says
    which backend made its figures once the scenario's engine has said it."""

    def __init__(self, names: list[str], total: int) -> None:
        self.names, self.total = names, total
        self.tty = sys.stderr.isatty()
        self.backends: dict[str, str] = {}   # per scenario, from its engine's hello

    def line(self, text: str, *, final: bool = True) -> None:
        if self.tty:
            text = f"\r{text}{CLEAR_TO_EOL}"
        # sys.stderr at each write: drop_output() replaces it when the terminal is gone
        print(text, file=sys.stderr, end="\n" if final or not self.tty else "", flush=True)

    def made_by(self, scenario: str, mark: bool = False) -> str:
        """', CPU (numpy-cpu)' (or the whole mark) once the scenario's engine said its backend."""
        if scenario not in self.backends:
            return ""
        return ", " + (backend_mark if mark else backend_cell)(self.backends[scenario])

    def __call__(self, ev) -> None:
        if isinstance(ev, PlanStarted):
            self.line(f"plan {ev.group_id}: {len(ev.order)} trials of {', '.join(self.names)}, "
                      f"interleaved (seed {ev.seed}); Ctrl-C stops and saves what was measured")
        elif isinstance(ev, TrialStarted):
            self.line(f"[{ev.index + 1}/{ev.total}] {ev.slot.scenario} trial "
                      f"{ev.slot.trial + 1} ...", final=False)
        elif isinstance(ev, TrialEvent) and isinstance(ev.event, Hello):
            self.backends[ev.slot.scenario] = ev.event.data.get("backend")
        elif isinstance(ev, TrialEvent) and self.tty and isinstance(ev.event, Sample):
            s = ev.event
            backend = s.data.get("backend")
            rate = rate_of(s.workload, s.ops_per_s, s.data.get("tokens_per_s"))
            self.line(f"[{ev.index + 1}/{self.total}] {ev.slot.scenario} trial "
                      f"{ev.slot.trial + 1}: {s.workload}/{s.variant} "
                      f"{fmt_num(rate.value, 0, ' ' + rate.unit)}"
                      + (f" {backend_cell(backend)}" if backend else ""), final=False)
        elif isinstance(ev, TrialFinished):
            extra = f": {ev.message}" if ev.message else ""
            layer = f" [INVALID: {'; '.join(ev.layer_reasons)}]" if ev.layer_reasons else ""
            on = f" on GPUs {','.join(map(str, ev.gpus))}" if ev.gpus else ""
            self.line(f"[{ev.index + 1}/{ev.total}] {ev.slot.scenario} trial {ev.slot.trial + 1}"
                      f"{on}: {ev.outcome}, {ev.results} results"
                      f"{self.made_by(ev.slot.scenario)}{extra}{layer}")
        elif isinstance(ev, RunSaved):
            state = "" if ev.complete else ", incomplete"
            self.line(f"saved {ev.run_id} ({ev.scenario}, {ev.validity}{state}"
                      f"{self.made_by(ev.scenario, mark=True)})")
        elif isinstance(ev, SaveFailed):
            err(ev.message)
        elif isinstance(ev, RunNotSaved):
            err(f"{ev.scenario}: {ev.message}")
        elif isinstance(ev, PlanFinished) and not ev.complete:
            self.line("plan interrupted: saved the trials measured so far, marked incomplete")


def cmd_run(args, config) -> int:
    # loaded when the command runs: every gpubench start registers every command, and the
    # plan runner (launchers, sessions, the result document) would cost each of them its import
    from gpubench.runner import PlanRunner
    from scenarios.multigpu import GpuSelectionError
    names = chosen_scenarios(args, config)
    options = plan_options(args, config, names)
    runner = PlanRunner(config, [config.scenarios[n] for n in names], options,
                        open_store(args, config))
    printer = ProgressPrinter(names, len(runner.order))

    def progress(ev) -> None:
        try:
            printer(ev)
        except OSError:  # the terminal or pipe is gone: keep measuring, save, exit cleanly
            drop_output()

    async def go():
        with stop_on_signals(runner.cancel):  # SIGINT, SIGTERM, SIGHUP: stop and save
            if any(runner.gpu_selection(s)[0] for s in runner.scenarios):
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
