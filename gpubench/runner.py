"""Run plans: scenarios × trials, interleaved in a seeded random order, saved as documents.

Headless (no Textual): the CLI and the TUI drive it.

    runner = PlanRunner(config, [config.scenarios["bare-metal"], config.scenarios["k8s-pod"]],
                        PlanOptions(trials=10, seed=7), Store(config.data_dir))
    result = await runner.run(progress=print)        # or: async for ev in runner.events(): ...
    PlanRunner(..., read_session=pump)                # who shows sessions reads them (the TUI)
    runner.cancel()                                   # from a signal handler or a button

Each trial is one engine session (scenarios.registry.launcher_for / request_for), or one
per GPU (scenarios.multigpu); its stream is collected (scenarios.collect), its layers
verified from the engine's `hello`, written to the run's journal (gpubench/plan_runs.py),
and at the end one result document per scenario is saved, all sharing a group id that
records the seed and the executed order. Events of the plan (gpubench/plan_events.py) go to
the `progress` callback; the sessions' own events go to the `read_session` hook when there
is one (it reads each session to its end and hands every event to the runner's `take`), or
else to `progress` as TrialEvents. A failed session is recorded, never fatal to the plan; a
cancelled plan saves what was measured, marked incomplete; a scenario none of whose sessions
started saves nothing (RunNotSaved says so).
"""
from __future__ import annotations

import asyncio
import random
import secrets
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from engine.engine_args import EngineArgs
from gpubench.plan_events import (PlanFinished, PlanStarted, RunNotSaved, RunnerEvent,
                                  RunSaved, SaveFailed, TrialEvent, TrialFinished, TrialSession,
                                  TrialStarted)
from gpubench.plan_runs import PlanRuns
from gpubench.trial_order import TrialOrder, TrialSlot, interleave_order
from results.document import SessionRecord, utc_now
from results.schema import CANCELLED, FAILED, ResultError
from results.store import Store
from scenarios.base import Session
from scenarios.collect import Collected, collect
from scenarios.config import BenchDefaults, Config, ScenarioConfig
from scenarios.events import Event
from scenarios.layers import proxy_notes, verify
from scenarios.multigpu import gpu_request, resolve_gpus, start_concurrent
from scenarios.registry import launcher_for, request_for

@dataclass(frozen=True)
class PlanOptions:
    trials: int | None = None              # engine sessions per scenario (config default)
    seed: int | None = None                # interleave order; random (and recorded) if None
    label: str = ""
    notes: str = ""
    backend: str | None = None             # overrides [defaults]
    workloads: tuple[str, ...] | None = None
    duration_s: float | None = None
    warmup_s: float | None = None
    repeats: int | None = None
    gpus: str | None = None                # "all", "0,2", UUIDs: overrides scenario gpu_select
    gpus_sequential: bool | None = None    # None: the scenario's gpus_sequential


@dataclass
class PlanResult:
    group_id: str
    seed: int
    order: TrialOrder
    run_ids: list[str] = field(default_factory=list)
    documents: list[dict] = field(default_factory=list)
    save_errors: list[str] = field(default_factory=list)
    complete: bool = True
    sessions: int = 0
    failed_sessions: int = 0


# ---- plan pieces ----------------------------------------------------------------------------

def engine_args(defaults: BenchDefaults, options: PlanOptions) -> EngineArgs:
    """The engine's options for every session of a plan: the config's defaults with the
    plan's overrides."""
    return replace(
        defaults.engine_args(), backend=options.backend or defaults.backend,
        workloads=options.workloads or defaults.workloads,
        duration=options.duration_s or defaults.duration_s,
        warmup=options.warmup_s if options.warmup_s is not None else defaults.warmup_s,
        repeats=options.repeats or defaults.repeats)


async def _close_all(launchers: dict) -> dict[str, list[str]]:
    """Close each scenario's launcher in turn (one that fails to close does not keep the rest
    open); what each had to say for the record, by scenario."""
    notes: dict[str, list[str]] = {}
    for name, launcher in launchers.items():
        try:
            await launcher.close()
            notes[name] = launcher.close_notes()
        except Exception as exc:
            notes[name] = [f"closing the launcher failed: {type(exc).__name__}: {exc}"]
    return notes


def verify_layers(scenario: ScenarioConfig, hello_data: dict | None) -> tuple[list[str], list[str]]:
    """From `hello`: reasons the scenario's layers (proxy, MPS, hypervisor) were not in effect, and
    notes on what could not be proven of them (a proxy's interception without a driver)."""
    if hello_data is None:
        return [], []
    try:
        return ([str(r) for r in verify(scenario, hello_data)],
                [str(n) for n in proxy_notes(scenario, hello_data)])
    except Exception as exc:  # a verifier bug must not lose the measurements
        return [f"layer verification failed: {type(exc).__name__}: {exc}"], []


LauncherFactory = Callable[[ScenarioConfig, Config], Any]
# Reads one started session to its end, handing each event to the third argument (`take`).
SessionReader = Callable[[Session, TrialSession, Callable[[Event], Any]], Awaitable[Any]]


class PlanRunner:
    def __init__(self, config: Config, scenarios: Sequence[ScenarioConfig],
                 options: PlanOptions | None = None, store: Store | None = None,
                 launcher_factory: LauncherFactory | None = None,
                 read_session: SessionReader | None = None):
        if not scenarios:
            raise ValueError("a plan needs at least one scenario")
        self.config = config
        self.scenarios = list(scenarios)
        self.options = options or PlanOptions()
        self.store = store if store is not None else Store(config.data_dir)
        self._launcher_factory = launcher_factory
        self._read_session = read_session
        self.trials = self.options.trials or config.defaults.trials
        self.seed = self.options.seed if self.options.seed is not None \
            else random.SystemRandom().randrange(2 ** 31)
        self.group_id = f"g-{utc_now().replace(':', '').replace('-', '')}-{secrets.token_hex(3)}"
        self.order = interleave_order([s.name for s in self.scenarios], self.trials, self.seed)
        # every option written out: the group records exactly what the engine was told
        self.args = engine_args(config.defaults, self.options).to_argv(full=True)
        self._cancelled = False
        self._sessions: set[Session] = set()
        self._trial_results = 0                # results the running trial's sessions gave
        self._starting: asyncio.Future | None = None
        self.gpus: dict[str, list] = {}        # scenario -> resolved GPUs (scenarios.multigpu)

    # -- control ----------------------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Stop after the running trial is interrupted (it keeps its partial result)."""
        self._cancelled = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()  # a start that hangs (pod Pending, ssh connect) stops too
        for session in list(self._sessions):
            try:
                asyncio.get_running_loop().create_task(session.cancel())
            except RuntimeError:  # no running loop: called from outside; the loop checks the flag
                pass

    def _launcher(self, scenario: ScenarioConfig, cache: dict) -> Any:
        if scenario.name not in cache:
            factory = self._launcher_factory or launcher_for
            cache[scenario.name] = factory(scenario, self.config)
        return cache[scenario.name]

    # -- GPU selection ----------------------------------------------------------------------
    def gpu_selection(self, scenario: ScenarioConfig) -> tuple[str | None, bool]:
        """(selection, sequential) for a scenario: --gpus beats the scenario's gpu_select."""
        selection = self.options.gpus or scenario.gpu_select
        sequential = self.options.gpus_sequential if self.options.gpus_sequential is not None \
            else scenario.gpus_sequential
        return selection, bool(sequential)

    async def resolve_gpus(self, launchers: dict | None = None) -> dict[str, list]:
        """Resolve every scenario's GPU selection once (the engine's --list-devices through the
        scenario's launcher). Raises scenarios.multigpu.GpuSelectionError (one line)."""
        own = launchers is None
        launchers = {} if launchers is None else launchers
        try:
            for scenario in self.scenarios:
                selection, _ = self.gpu_selection(scenario)
                if selection is None or scenario.name in self.gpus:
                    continue
                launcher = self._launcher(scenario, launchers)
                self.gpus[scenario.name] = await resolve_gpus(
                    launcher, request_for(scenario, self.args, label=self.options.label), selection)
        finally:
            if own:
                await _close_all(launchers)
        return self.gpus

    # -- running ----------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[RunnerEvent]:
        """The plan as an async iterator of events (runs while you iterate)."""
        queue: asyncio.Queue = asyncio.Queue()
        task = asyncio.get_running_loop().create_task(self.run(progress=queue.put_nowait))
        while True:
            get = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({get, task}, return_when=asyncio.FIRST_COMPLETED)
            if get in done:
                ev = get.result()
                yield ev
                if isinstance(ev, PlanFinished):
                    break
            else:
                get.cancel()
                while not queue.empty():
                    yield queue.get_nowait()
                break
        await task

    async def run(self, progress: Callable[[RunnerEvent], Any] | None = None) -> PlanResult:
        emit = progress or (lambda ev: None)
        by_name = {s.name: s for s in self.scenarios}
        records: dict[str, list[SessionRecord]] = {s.name: [] for s in self.scenarios}
        result = PlanResult(self.group_id, self.seed, self.order)
        launchers: dict[str, Any] = {}
        runs = PlanRuns(self)
        emit(PlanStarted(self.group_id, self.seed, self.order))
        executed: list[TrialSlot] = []
        try:
            for index, slot in enumerate(self.order):
                if self._cancelled:
                    break
                scenario = by_name[slot.scenario]
                emit(TrialStarted(index, len(self.order), slot))
                self._trial_results = 0
                if self.gpu_selection(scenario)[0] is not None:
                    recs = await self._per_gpu_trial(index, slot, scenario, launchers, emit)
                else:
                    recs = [await self._one_trial(index, slot, scenario, launchers, emit)]
                records[slot.scenario].extend(recs)
                executed.append(slot)
                try:   # on disk before the next trial begins: a crash loses at most one trial
                    runs.trial_done(slot.scenario, index, recs)
                except ResultError as exc:
                    emit(SaveFailed(slot.scenario, f"{exc}: stopping the plan"))
                    self._cancelled = True
                result.sessions += len(recs)
                result.failed_sessions += sum(1 for r in recs if r.outcome == FAILED)
                outcomes = [r.outcome for r in recs]
                outcome = outcomes[0] if len(set(outcomes)) == 1 else \
                    (FAILED if FAILED in outcomes else "incomplete")
                message = "; ".join(f"GPU {r.gpu['index']}: {r.message}" if r.gpu else r.message
                                    for r in recs if r.message)
                emit(TrialFinished(index, len(self.order), slot, outcome, message,
                                   self._trial_results,
                                   tuple(x for r in recs for x in r.layer_reasons),
                                   tuple(r.gpu["index"] for r in recs if r.gpu)))
        except asyncio.CancelledError:
            self._cancelled = True
        finally:
            closing = await _close_all(launchers)
        for name, notes in closing.items():   # into the saved run, beside its layer notes
            recs = records.get(name)
            if notes and recs:
                recs[-1] = replace(recs[-1], layer_notes=(*recs[-1].layer_notes, *notes))
        result.complete = not self._cancelled and len(executed) == len(self.order)
        try:
            self._save_all(runs, records, executed, result, emit)
        finally:
            runs.close()
        emit(PlanFinished(self.group_id, tuple(result.run_ids), result.complete,
                          result.failed_sessions))
        return result

    async def _one_trial(self, index: int, slot: TrialSlot, scenario: ScenarioConfig,
                         launchers: dict, emit: Callable) -> SessionRecord:
        started = utc_now()
        try:
            launcher = self._launcher(scenario, launchers)
            request = request_for(scenario, self.args, label=self.options.label)
            self._starting = asyncio.ensure_future(launcher.start(request))
            session = await self._starting
        except asyncio.CancelledError:
            if not self._cancelled:
                raise
            return SessionRecord([], outcome=CANCELLED, message="cancelled while starting",
                                 trial=slot.trial, started=started)
        except Exception as exc:  # LaunchError or a misconfigured launcher: record, go on
            message = str(exc) or type(exc).__name__
            return SessionRecord([], outcome=FAILED, message=message, trial=slot.trial,
                                 started=started)
        finally:
            self._starting = None
        return await self._consume(session, index, slot, scenario, emit, started)

    async def _consume(self, session: Session, index: int, slot: TrialSlot,
                       scenario: ScenarioConfig, emit: Callable, started: str | None,
                       gpu: dict | None = None, gpu_mode: str | None = None) -> SessionRecord:
        """Have one session read to its end (by the read_session hook, or here with its events
        going to `emit`) and record it."""
        self._sessions.add(session)
        if self._cancelled:  # cancelled while starting
            await session.cancel()
        got = Collected(session)
        try:
            if self._read_session is not None:
                await self._read_session(session, TrialSession(index, slot, gpu), got.take)
            else:
                await collect(session, lambda ev: emit(TrialEvent(index, slot, ev, gpu)),
                              into=got)
        except asyncio.CancelledError:
            self._cancelled = True
            await session.cancel()
            if got.ended is None:
                got.ended = session.ended
        finally:
            self._sessions.discard(session)
        self._trial_results += len(got.results)
        reasons, notes = verify_layers(scenario, got.hello.data if got.hello else None)
        return SessionRecord(
            got.lines, outcome=got.outcome, message=got.message, exit_code=got.exit_code,
            trial=slot.trial, started=started, warnings=got.warnings, gpu=gpu, gpu_mode=gpu_mode,
            layer_reasons=reasons, layer_notes=notes, details=got.details)

    async def _per_gpu_trial(self, index: int, slot: TrialSlot, scenario: ScenarioConfig,
                             launchers: dict, emit: Callable) -> list[SessionRecord]:
        """One session per selected GPU (scenarios.multigpu), concurrent or sequential."""
        started = utc_now()
        _, sequential = self.gpu_selection(scenario)
        mode = "sequential" if sequential else "concurrent"
        try:
            launcher = self._launcher(scenario, launchers)
            if scenario.name not in self.gpus:
                await self.resolve_gpus(launchers)
            gpus = self.gpus[scenario.name]
            request = request_for(scenario, self.args, label=self.options.label)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # GpuSelectionError, LaunchError: record, go on
            return [SessionRecord([], outcome=FAILED, message=str(exc) or type(exc).__name__,
                                  trial=slot.trial, started=started)]

        def failed(gs) -> SessionRecord:
            return SessionRecord([], outcome=FAILED, message=gs.error or "launch failed",
                                 trial=slot.trial, started=started, gpu=gs.gpu.tag(),
                                 gpu_mode=mode)

        records: list[SessionRecord] = []
        if sequential:  # each GPU once the previous ended; started here so cancel() reaches it
            for i, gpu in enumerate(gpus):
                if self._cancelled:
                    break
                t0 = utc_now()
                try:
                    self._starting = asyncio.ensure_future(
                        launcher.start(gpu_request(request, gpu, first=i == 0)))
                    session = await self._starting
                except asyncio.CancelledError:
                    if not self._cancelled:
                        raise
                    break
                except Exception as exc:
                    records.append(SessionRecord([], outcome=FAILED, message=str(exc), trial=slot.trial,
                                                 started=t0, gpu=gpu.tag(), gpu_mode=mode))
                    continue
                finally:
                    self._starting = None
                records.append(await self._consume(session, index, slot, scenario, emit, t0,
                                                   gpu.tag(), mode))
            return records
        try:
            self._starting = asyncio.ensure_future(start_concurrent(launcher, request, gpus))
            started_sessions = await self._starting
        except asyncio.CancelledError:
            if not self._cancelled:
                raise
            return [SessionRecord([], outcome=CANCELLED, message="cancelled while starting",
                                  trial=slot.trial, started=started)]
        finally:
            self._starting = None
        results = await asyncio.gather(*(
            self._consume(gs.session, index, slot, scenario, emit, started, gs.gpu.tag(), mode)
            if gs.session is not None else _done(failed(gs)) for gs in started_sessions))
        return list(results)

    def _save_all(self, runs, records: dict[str, list[SessionRecord]],
                  executed: list[TrialSlot], result: PlanResult, emit: Callable) -> None:
        for scenario in self.scenarios:
            recs = records[scenario.name]
            if not any(r.lines for r in recs):  # no engine said a word: no run to keep
                runs.drop(scenario.name)
                if recs and result.complete:
                    emit(RunNotSaved(scenario.name, not_started(recs)))
                continue
            try:
                doc, path = runs.save(scenario, recs, executed, result.complete)
            except ResultError as exc:
                result.save_errors.append(str(exc))
                emit(SaveFailed(scenario.name, str(exc)))
                continue
            result.run_ids.append(doc["id"])
            result.documents.append(doc)
            emit(RunSaved(scenario.name, doc["id"], str(path), doc["validity"]["status"],
                          doc["complete"]))


def not_started(recs: Sequence[SessionRecord]) -> str:
    """One line for a scenario none of whose sessions started. Why each did not is its trial's
    own line (the CLI's progress, the app's row): said once, not again here."""
    return f"nothing saved: none of its {len(recs)} session(s) started"


async def _done(value):
    return value
