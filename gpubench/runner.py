"""Run plans: scenarios × trials, interleaved in a seeded random order, saved as documents.

Headless (no Textual): the CLI drives it and the TUI will too.

    runner = PlanRunner(config, [config.scenarios["bare-metal"], config.scenarios["k8s-pod"]],
                        PlanOptions(trials=10, seed=7), Store(config.data_dir))
    result = await runner.run(progress=print)        # or: async for ev in runner.events(): ...
    runner.cancel()                                   # from a signal handler or a button

Each trial is one engine session (scenarios.registry.launcher_for / request_for);
its stream is collected, its layers verified from the engine's `hello`, and at
the end one result document per scenario is saved, all sharing a group id that
records the seed and the executed order. A failed session is recorded, never
fatal to the plan; a cancelled plan saves what was measured, marked incomplete.
"""
from __future__ import annotations

import asyncio
import random
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence, Union

from engine import __version__ as ENGINE_VERSION
from gpubench.config import BenchDefaults, Config, ScenarioConfig
from results.document import SessionRecord, archive_lines, build_document, utc_now
from results.schema import CANCELLED, COMPLETED, FAILED, ResultError
from results.store import Store

REPO_DIR = Path(__file__).resolve().parent.parent


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
    extra_engine_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrialSlot:
    scenario: str
    trial: int


# ---- events (what progress callbacks and events() receive) ---------------------------------

@dataclass(frozen=True)
class PlanStarted:
    group_id: str
    seed: int
    order: tuple[TrialSlot, ...]


@dataclass(frozen=True)
class TrialStarted:
    index: int            # 0-based position in the plan
    total: int
    slot: TrialSlot


@dataclass(frozen=True)
class TrialEvent:
    """An event of the running session (scenarios.events: Hello, Sample, Result, Status...)."""
    index: int
    slot: TrialSlot
    event: Any


@dataclass(frozen=True)
class TrialFinished:
    index: int
    total: int
    slot: TrialSlot
    outcome: str
    message: str
    results: int
    layer_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunSaved:
    scenario: str
    run_id: str
    path: str
    validity: str
    complete: bool


@dataclass(frozen=True)
class SaveFailed:
    scenario: str
    message: str


@dataclass(frozen=True)
class PlanFinished:
    group_id: str
    run_ids: tuple[str, ...]
    complete: bool
    failed_sessions: int


RunnerEvent = Union[PlanStarted, TrialStarted, TrialEvent, TrialFinished, RunSaved, SaveFailed,
                    PlanFinished]


@dataclass
class PlanResult:
    group_id: str
    seed: int
    order: list[TrialSlot]
    run_ids: list[str] = field(default_factory=list)
    documents: list[dict] = field(default_factory=list)
    save_errors: list[str] = field(default_factory=list)
    complete: bool = True
    sessions: int = 0
    failed_sessions: int = 0


# ---- plan pieces ----------------------------------------------------------------------------

def interleave_order(names: Sequence[str], trials: int, seed: int) -> list[TrialSlot]:
    """Every (scenario, trial) once, shuffled by a seeded RNG: drift over time hits all
    scenarios alike instead of biasing whichever ran last."""
    slots = [TrialSlot(n, t) for t in range(trials) for n in names]
    random.Random(seed).shuffle(slots)
    return slots


def engine_args(defaults: BenchDefaults, options: PlanOptions) -> list[str]:
    """Engine command-line arguments from config defaults and the plan's overrides."""
    workloads = options.workloads or defaults.workloads
    args = ["--backend", options.backend or defaults.backend,
            "--workloads", ",".join(workloads),
            "--duration", f"{options.duration_s or defaults.duration_s:g}",
            "--warmup", f"{options.warmup_s if options.warmup_s is not None else defaults.warmup_s:g}",
            "--repeats", str(options.repeats or defaults.repeats),
            "--telemetry-interval", f"{defaults.telemetry_interval_s:g}",
            "--roundtrip-size", defaults.roundtrip_size,
            "--sizes", ",".join(defaults.copy_sizes)]
    return args + list(options.extra_engine_args)


def scenario_record(s: ScenarioConfig, config: Config) -> dict:
    """The scenario as the document stores it (plain data; results/ never sees config)."""
    details: dict[str, Any] = {}
    if s.proxy is not None:
        details["proxy"] = {"preload": s.proxy.preload, "env": dict(s.proxy.env),
                            "host_path": s.proxy.host_path, "mount_path": s.proxy.mount_path}
    if s.hypervisor is not None:
        details["hypervisor"] = {"runtime_class": s.hypervisor.runtime_class,
                                 "require_detected": s.hypervisor.require_detected}
    if s.env:
        details["env"] = dict(s.env)
    if s.launcher == "k8s" and s.cluster in config.clusters:
        c = config.clusters[s.cluster]
        details["cluster"] = {"name": c.name, "namespace": c.namespace, "image": c.image,
                              "context": c.context}
        if s.node_selector:
            details["node_selector"] = dict(s.node_selector)
    if s.launcher == "ssh" and s.host in config.hosts:
        details["address"] = config.hosts[s.host].address
    details["gpus"] = s.gpus
    return {"name": s.name, "title": s.title, "launcher": s.launcher,
            "host": s.host if s.launcher != "k8s" else None, "cluster": s.cluster,
            "target": s.target, "target_pct": s.target_pct, "baseline": s.baseline,
            "details": details}


def git_commit(repo: Path = REPO_DIR) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) >= 7 else None


def verify_layers(scenario: ScenarioConfig, hello_data: dict | None) -> list[str]:
    """Reasons the scenario's layers (proxy, hypervisor) were not in effect, from `hello`."""
    if hello_data is None:
        return []
    try:
        from scenarios.layers import verify
    except ImportError:  # pragma: no cover - scenarios/layers.py (issue 5) has landed
        # TODO(integration): the guard predates scenarios/layers.py; it can become a plain
        # import now that verify(scenario, hello_data) -> list[str] exists.
        return []
    try:
        return [str(r) for r in verify(scenario, hello_data)]
    except Exception as exc:  # a verifier bug must not lose the measurements
        return [f"layer verification failed: {type(exc).__name__}: {exc}"]


LauncherFactory = Callable[[ScenarioConfig, Config], Any]


class PlanRunner:
    def __init__(self, config: Config, scenarios: Sequence[ScenarioConfig],
                 options: PlanOptions | None = None, store: Store | None = None,
                 launcher_factory: LauncherFactory | None = None):
        if not scenarios:
            raise ValueError("a plan needs at least one scenario")
        self.config = config
        self.scenarios = list(scenarios)
        self.options = options or PlanOptions()
        self.store = store if store is not None else Store(config.data_dir)
        self._launcher_factory = launcher_factory
        self.trials = self.options.trials or config.defaults.trials
        self.seed = self.options.seed if self.options.seed is not None \
            else random.SystemRandom().randrange(2 ** 31)
        self.group_id = f"g-{utc_now().replace(':', '').replace('-', '')}-{secrets.token_hex(3)}"
        self.order = interleave_order([s.name for s in self.scenarios], self.trials, self.seed)
        self.args = engine_args(config.defaults, self.options)
        self._cancelled = False
        self._session: Any = None
        self._starting: asyncio.Future | None = None

    # -- control ----------------------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Stop after the running trial is interrupted (it keeps its partial result)."""
        self._cancelled = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()  # a start that hangs (pod Pending, ssh connect) stops too
        session = self._session
        if session is not None:
            try:
                asyncio.get_running_loop().create_task(session.cancel())
            except RuntimeError:  # no running loop: called from outside; the loop checks the flag
                pass

    def _launcher(self, scenario: ScenarioConfig, cache: dict) -> Any:
        if scenario.name not in cache:
            if self._launcher_factory is not None:
                cache[scenario.name] = self._launcher_factory(scenario, self.config)
            else:
                from scenarios.registry import launcher_for
                cache[scenario.name] = launcher_for(scenario, self.config)
        return cache[scenario.name]

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
        result = PlanResult(self.group_id, self.seed, list(self.order))
        launchers: dict[str, Any] = {}
        emit(PlanStarted(self.group_id, self.seed, tuple(self.order)))
        executed: list[TrialSlot] = []
        try:
            for index, slot in enumerate(self.order):
                if self._cancelled:
                    break
                scenario = by_name[slot.scenario]
                emit(TrialStarted(index, len(self.order), slot))
                rec = await self._one_trial(index, slot, scenario, launchers, emit)
                records[slot.scenario].append(rec)
                executed.append(slot)
                result.sessions += 1
                if rec.outcome == FAILED:
                    result.failed_sessions += 1
                emit(TrialFinished(index, len(self.order), slot, rec.outcome, rec.message,
                                   _count_results(rec), tuple(rec.layer_reasons)))
        except asyncio.CancelledError:
            self._cancelled = True
        finally:
            for launcher in launchers.values():
                try:
                    await launcher.close()
                except Exception:
                    pass
        result.complete = not self._cancelled and len(executed) == len(self.order)
        self._save_all(records, executed, result, emit)
        emit(PlanFinished(self.group_id, tuple(result.run_ids), result.complete,
                          result.failed_sessions))
        return result

    async def _one_trial(self, index: int, slot: TrialSlot, scenario: ScenarioConfig,
                         launchers: dict, emit: Callable) -> SessionRecord:
        started = utc_now()
        try:
            from scenarios.registry import request_for
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
        self._session = session
        if self._cancelled:  # cancelled while starting
            await session.cancel()
        ended = None
        hello = None
        try:
            async for event in session.events():
                emit(TrialEvent(index, slot, event))
                name = type(event).__name__
                if name == "Hello":
                    hello = event.data
                elif name == "SessionEnded":
                    ended = event
        except asyncio.CancelledError:
            self._cancelled = True
            await session.cancel()
            ended = session.ended
        finally:
            self._session = None
        outcome = ended.outcome if ended is not None else CANCELLED
        parser = getattr(session, "parser", None)
        return SessionRecord(
            list(session.raw_lines), outcome=outcome,
            message=ended.message if ended is not None else "cancelled",
            exit_code=ended.exit_code if ended is not None else None, trial=slot.trial,
            layer_reasons=verify_layers(scenario, hello), started=started,
            warnings=[w.message for w in getattr(parser, "warnings", [])])

    def _save_all(self, records: dict[str, list[SessionRecord]], executed: list[TrialSlot],
                  result: PlanResult, emit: Callable) -> None:
        group = {"id": self.group_id, "seed": self.seed,
                 "scenarios": [s.name for s in self.scenarios], "trials": self.trials,
                 "order": [[s.scenario, s.trial] for s in self.order],
                 "executed": len(executed), "engine_args": list(self.args)}
        commit = git_commit()
        for scenario in self.scenarios:
            recs = records[scenario.name]
            if not recs or (not result.complete and not any(r.lines for r in recs)):
                continue  # cancelled before this scenario measured anything
            doc = build_document(recs, scenario_record(scenario, self.config),
                                 tool_version=ENGINE_VERSION, git_commit=commit, group=group,
                                 label=self.options.label, notes=self.options.notes,
                                 complete=result.complete)
            try:
                path = self.store.save(doc, archive_lines(recs))
            except ResultError as exc:
                result.save_errors.append(str(exc))
                emit(SaveFailed(scenario.name, str(exc)))
                continue
            result.run_ids.append(doc["id"])
            result.documents.append(doc)
            emit(RunSaved(scenario.name, doc["id"], str(path), doc["validity"]["status"],
                          doc["complete"]))


def _count_results(rec: SessionRecord) -> int:
    n = 0
    for text in rec.lines:
        if isinstance(text, str) and '"type":"result"' in text.replace(" ", ""):
            n += 1
        elif isinstance(text, dict) and text.get("type") == "result":
            n += 1
    return n
