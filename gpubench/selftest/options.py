"""The self-test's options, the defaults that fill what they leave open (per design and
backend), and its arms."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from scenarios import limits

from .samples import SAMPLE_AFTER_NS, SAMPLE_BEFORE_NS

WORKLOAD_VARIANTS = {"roundtrip": None, "launch": "sync"}   # primary variant (None: the only one)
DEFAULT_LEVELS = (1.0, 5.0, 10.0)
# The CPU's sessions design compares separate processes, whose p50 a shared machine moves by
# tens of %: it checks the logic at coarse levels, within a wide tolerance.
CPU_SESSION_LEVELS = (50.0, 100.0, 200.0)
CPU_SESSION_TOLERANCE_PP = 15.0
GPU_TOLERANCE_PP = 0.5
# max_trials: after `trials` blocks, one more block at a time while an arm's CI is wider than
# the tolerance, up to this many (experiment.py). A machine that others load at times widens
# one run's CIs, not every run's: more blocks narrow them as 1/sqrt(blocks), where a fixed count
# left such runs NOT RESOLVED.
SLOT_DEFAULTS = {"trials": 4, "max_trials": 8, "duration": 3.0, "warmup": 0.5, "repeats": 3,
                 "calibration_trials": 1, "sample_interval": 0.05, "slot_s": 0.25}
# The CPU's sessions are shorter (a block about 40 s on a 2-core machine, at most 10 blocks) and
# its slots too: on a 2-core KVM guest the engine's per-op level jumped by ~15 % (11.9 <-> 13.6
# us a launch) every 0.1-1 s during a self-test, so a third of 0.25 s pairs held a jump and
# erred by more than 2 pp, and 3 of 10 default runs ended NOT RESOLVED at 10 blocks. Pairs of
# 0.1 s hold fewer jumps and come 20 a session: 10 of 10 default runs there resolved +-1 pp in
# 4-5 blocks (the widest error CI +-0.84 pp).
CPU_SLOT_DEFAULTS = {**SLOT_DEFAULTS, "max_trials": 10, "duration": 2.0, "warmup": 0.3,
                     "repeats": 2, "sample_interval": 0.02, "slot_s": 0.1}
# the GPU's 0.5 pp with some room: others' load on a shared machine widens the CIs (to 2.4 pp
# in one run of a quiet 0.2 pp), and an arm whose CI is wider than this is NOT RESOLVED
CPU_SLOT_TOLERANCE_PP = 1.0
# CPU slots: every call waits this long, on or off, before the delay (engine/cpu_delay.py): long
# enough that what a long wait changes has settled in off-slot calls too. With none, an on-slot
# launch cost 50-90 ns more than its turns (its loop's exit, cooled predictors); with 2 us, an
# on-slot roundtrip still cost 10-20 ns less (its 64 KiB copies' write-backs drain meanwhile):
# both beyond the CIs of a quiet machine (+-0.2 pp)
CPU_BASE_WAIT_NS = 10_000
SESSION_DEFAULTS = {"trials": 10, "max_trials": 10, "duration": 0.5, "warmup": 0.2, "repeats": 2,
                    "calibration_trials": 3, "sample_interval": 0.1}
DELAY_PLACEMENTS = ("sync", "launch", "h2d", "copy")
# every arm is saved as a run of scenario `selftest-<workload>-<arm>`; `gpubench list` keeps
# them apart from measured runs by this prefix
SCENARIO_PREFIX = "selftest-"


def is_selftest_scenario(name: str | None) -> bool:
    return bool(name) and name.startswith(SCENARIO_PREFIX)


class SelftestError(Exception):
    """The self-test could not run; one line for the user."""


@dataclass
class Options:
    backend: str = "auto"                    # auto | cupy | numpy-cpu
    workloads: tuple[str, ...] = ("roundtrip", "launch")
    levels: tuple[float, ...] | None = None  # None: 1,5,10 (50,100,200: CPU sessions design)
    design: str = "auto"                     # auto (slots) | slots | sessions
    trials: int | None = None                # sessions per arm at least (slots 4, sessions 10)
    max_trials: int | None = None            # at most (slots 8, CPU 10; --trials alone: trials)
    calibration_trials: int | None = None    # (slots 1, sessions 3)
    duration: float | None = None            # per window (slots 3.0, CPU 2.0, sessions 0.5)
    warmup: float | None = None              # (slots 0.5, CPU 0.3, sessions 0.2)
    repeats: int | None = None               # (slots 3, CPU 2, sessions 2)
    slot_s: float | None = None              # slots: one on or off slot, s (0.25, CPU 0.1)
    sample_interval: float | None = None     # (slots 0.05, CPU 0.02, sessions 0.1)
    seed: int = 0
    tolerance_pp: float | None = None        # None: 0.5 on GPU, wider on the CPU
    roundtrip_size: str = "64KiB"
    base_wait_ns: int = 0                    # GPU slots: the interposer's wait before each delay
    delay_on: str = "sync"                   # GPU: sync (after it returns) | launch | copy
    python: str | None = None
    save: bool = True
    data_dir: Path | None = None
    n_boot: int = 4000


def resolve_design(design: str) -> str:
    return "slots" if design == "auto" else design


def default_levels(design: str, gpu: bool) -> tuple[float, ...]:
    """The injected overheads (%) when none are asked for: coarse ones for the CPU's sessions
    design."""
    return CPU_SESSION_LEVELS if resolve_design(design) == "sessions" and not gpu \
        else DEFAULT_LEVELS


def levels_text(levels) -> str:
    return "/".join(f"{v:g}" for v in levels) + " %"


def injected_text(opts: Options) -> str:
    """What a self-test with these options will inject, said before it runs (the backend may
    be found only then): its levels, or the defaults of its design on each backend it may use."""
    if opts.levels:
        return levels_text(opts.levels)
    gpus = {"cupy": (True,), "numpy-cpu": (False,)}.get(opts.backend, (True, False))
    texts = {gpu: levels_text(default_levels(opts.design, gpu)) for gpu in gpus}
    if len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return f"{texts[True]} on a GPU, {texts[False]} on the CPU"


def settle(opts: Options, gpu: bool) -> tuple[str, float]:
    """Check the workloads and fill the options left open (None) with the defaults of the
    design and backend, in place; returns the design and the tolerance in pp."""
    design = resolve_design(opts.design)
    for w in opts.workloads:
        if w not in WORKLOAD_VARIANTS:
            raise SelftestError(f"selftest workloads are roundtrip and launch, not {w!r}")
    defaults = SESSION_DEFAULTS if design == "sessions" else \
        SLOT_DEFAULTS if gpu else CPU_SLOT_DEFAULTS
    cpu_sessions = design == "sessions" and not gpu
    if opts.max_trials is None and opts.trials is not None:
        opts.max_trials = opts.trials      # a count asked for is the count run
    if opts.levels is None:
        opts.levels = default_levels(design, gpu)
    for name, value in defaults.items():
        if getattr(opts, name) is None:
            setattr(opts, name, value)
    opts.max_trials = max(opts.max_trials, opts.trials)
    if design == "slots":
        _check_slots(opts.slot_s, opts.sample_interval)
    tol = opts.tolerance_pp if opts.tolerance_pp is not None else \
        GPU_TOLERANCE_PP if gpu else \
        CPU_SESSION_TOLERANCE_PP if cpu_sessions else CPU_SLOT_TOLERANCE_PP
    if not (math.isfinite(tol) and tol > 0):
        raise SelftestError(f"the tolerance must be a positive number of pp, not {tol:g}")
    return design, tol


def _check_slots(slot_s: float, sample_interval: float) -> None:
    """The command line's ranges (for options that did not come through it), then: a slot
    must hold a whole sample, its margins included (samples.sample_span_ns), or no pair could
    be judged."""
    for flag, bounds, value in (("--slot", limits.SELFTEST_SLOT_S, slot_s),
                                ("--sample-interval", limits.SAMPLE_INTERVAL_S, sample_interval)):
        if (problem := bounds.problem(value)) is not None:
            raise SelftestError(f"{flag} {problem}")
    span = sample_interval + (SAMPLE_BEFORE_NS + SAMPLE_AFTER_NS) / 1e9
    if slot_s <= span:
        raise SelftestError(f"a slot of {slot_s:g} s cannot hold a whole {sample_interval:g} s "
                            f"sample (with its margins {span:g} s): use a longer --slot")


@dataclass
class ArmPlan:
    """What a design runs and how it reads the result: its arms, its calibration, the levels it
    skipped, how each session of an arm is prepared, and its judge (the arms' sessions so far
    -> one row per judged arm)."""
    arms: list["Arm"]
    calibration: dict[str, dict]
    skipped: list[dict]
    judge: Callable[[dict[str, list]], list[dict]]
    prepare: Callable[["Arm", int], "Arm"] | None = None


@dataclass
class Arm:
    workload: str
    name: str                 # baseline | aa | L1 | L5 | ...
    level: float | None       # nominal injected %, None for baseline/aa
    delay_ns: int = 0
    env: dict[str, str] = field(default_factory=dict)
    preload: str | None = None
    report_env: str | None = None   # the variable that names the delay report file, if any

    @property
    def key(self) -> str:
        return f"{self.workload}/{self.name}"
