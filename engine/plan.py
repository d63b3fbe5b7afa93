"""Arguments → a validated run plan → the list of workload variants to measure."""
from __future__ import annotations

import argparse
import math
import re
from dataclasses import asdict, dataclass, field

from .model_shapes import (CPU_DEFAULT_SHAPE, GPU_DEFAULT_SHAPE, SHAPES, decode_flops,
                           prefill_flops, step_dtype)
from .vocabulary import BACKEND_CHOICES, WORKLOADS

LAUNCH_MODES = ("sync", "async")
DECODE_MODES = ("eager", "graph")   # graph: replayed as a CUDA graph where that is honest
# decode/prefill ranges (config.toml's [defaults] refuses the same: scenarios/bench_defaults.py)
MAX_LAYERS, MAX_KV_LEN = 256, 131072
MAX_DECODE_BATCH, MAX_PREFILL_TOKENS = 4096, 32768
# alloc before gemm: cuBLAS keeps a workspace allocated, which turns a cold 1 MiB
# cudaMalloc (a fresh chunk mapped, ~67 us on an H200) into a sub-allocation (~3 us)
DEFAULT_WORKLOADS = ("roundtrip", "launch", "h2d", "d2h", "d2d", "alloc", "gemm")
MEMORY_KINDS = ("pinned", "pageable")
MIN_COPY, MAX_COPY = 4 * 1024, 256 * 1024 * 1024
ASYNC_BATCH = 1000          # launches per synchronise in launch/async
GEMM_SIZE_GPU, GEMM_SIZE_CPU = 8192, 1024
# validity limits of a window (engine/window_checks.py; DESIGN.md "Validity" says why these)
STALL_LIMIT_PCT = 10.0      # 2.6x the 3.8 % trial-to-trial CV of 1 s launch trials
DRIFT_LIMIT_PCT = 25.0      # far above the 14 % range of twenty 1 s trials' ops/s
GEMM_FP16_MAX_CPU = 128     # NumPy has no fp16 BLAS: keep the CPU's fp16 product small
ALLOC_SIZE = 1024 * 1024
MAX_CPU = 65535             # no kernel numbers CPUs past this (NR_CPUS is at most 8192 today)

_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1024, "m": 1024**2, "mib": 1024**2,
          "mb": 1024**2, "g": 1024**3, "gib": 1024**3, "gb": 1024**3,
          "t": 1024**4, "tib": 1024**4, "tb": 1024**4}


class UsageError(Exception):
    """A bad argument; the message is one line for the user."""


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise UsageError(f"bad size {text!r} (use e.g. 4KiB, 1MiB, 256MiB or bytes)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(value):  # hundreds of digits: past any float
        raise UsageError(f"bad size {text!r}: too large")
    if value != int(value) or value < 1:
        raise UsageError(f"bad size {text!r}: not a whole number of bytes")
    return int(value)


def format_size(n: int) -> str:
    for unit, div in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return f"{n}B"


def split_list(text: str) -> list[str]:
    """"a, b,,c" -> ["a", "b", "c"]: how every comma-list option is read."""
    return [p.strip() for p in text.split(",") if p.strip()]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block, no SystemExit
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m engine", description=(
        "gpubench benchmark engine: measures a GPU (or the CPU with --backend numpy-cpu) and "
        "writes protocol v1 JSON lines to stdout; stderr is for humans."))
    p.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                   help=f"comma list of {', '.join(WORKLOADS)} (default %(default)s)")
    p.add_argument("--roundtrip-size", default="64KiB", help="bytes per roundtrip copy (default %(default)s)")
    p.add_argument("--sizes", default="4KiB,1MiB,256MiB",
                   help="copy sizes for h2d/d2h/d2d/p2p, 4KiB..256MiB (default %(default)s)")
    p.add_argument("--memory", default="pinned,pageable", help="host memory kinds for h2d/d2h")
    p.add_argument("--launch-modes", default="sync,async",
                   help="launch variants: sync (launch + synchronise) and/or async (many "
                        "launches, one synchronise) (default %(default)s)")
    p.add_argument("--duration", type=float, default=1.0, help="measured seconds per variant and repeat")
    p.add_argument("--warmup", type=float, default=0.3, help="warm-up seconds per variant (excluded)")
    p.add_argument("--repeats", type=int, default=3, help="results per variant (trials)")
    p.add_argument("--device", default=None, help="CUDA device index (among CUDA_VISIBLE_DEVICES) or UUID")
    p.add_argument("--backend", default="auto", choices=BACKEND_CHOICES)
    p.add_argument("--telemetry-interval", type=float, default=0.5,
                   help="seconds between NVML readings; 0 turns telemetry off")
    p.add_argument("--gemm-size", type=int, default=None,
                   help=f"matrix size n (default {GEMM_SIZE_GPU} on GPU, {GEMM_SIZE_CPU} on CPU)")
    p.add_argument("--min-window", type=float, default=0.5,
                   help="a measured window shorter than this is INVALID (s)")
    p.add_argument("--stall-limit", type=float, default=STALL_LIMIT_PCT,
                   help="a window where one call took more than this percentage of it beyond "
                        "the median call is INVALID; 0 turns the rule off (default %(default)g)")
    p.add_argument("--drift-limit", type=float, default=DRIFT_LIMIT_PCT,
                   help="a window whose quarters' median latencies differ by more than this "
                        "percentage is INVALID; 0 turns the rule off (default %(default)g)")
    p.add_argument("--cv-limit", type=float, default=None,
                   help="also make a window INVALID when its per-op latency CV is above this "
                        "percentage (default: off; the CV is recorded either way)")
    p.add_argument("--init-procs", default="1,8,32", help="process counts for the init workload")
    p.add_argument("--model-shape", default=None, choices=tuple(SHAPES),
                   help=f"decoder shape of decode/prefill (default {GPU_DEFAULT_SHAPE} on GPU, "
                        f"{CPU_DEFAULT_SHAPE} on CPU)")
    p.add_argument("--layers", type=int, default=None,
                   help="decoder blocks per decode/prefill step (default: the shape's, "
                        f"{SHAPES[GPU_DEFAULT_SHAPE].layers} for {GPU_DEFAULT_SHAPE})")
    p.add_argument("--kv-len", type=int, default=None,
                   help="KV cache positions each decode token attends over (default: the "
                        f"shape's, {SHAPES[GPU_DEFAULT_SHAPE].kv_len} for {GPU_DEFAULT_SHAPE})")
    p.add_argument("--decode-batches", default="1,8,64",
                   help="sequences per decode step, one variant each (default %(default)s)")
    p.add_argument("--decode-modes", default="eager",
                   help="decode variants: eager (kernel by kernel) and/or graph (one CUDA "
                        "graph replay, where the graph is shown to do the work) "
                        "(default %(default)s)")
    p.add_argument("--prefill-tokens", default=None,
                   help="prompt lengths of prefill, one variant each (default: the shape's, "
                        + ",".join(map(str, SHAPES[GPU_DEFAULT_SHAPE].prefill_tokens))
                        + f" for {GPU_DEFAULT_SHAPE})")
    p.add_argument("--seed", type=int, default=0, help="seed for buffer and matrix contents")
    p.add_argument("--cpus", default=None,
                   help="pin the engine to these CPUs, e.g. 4 or 4-7,9 (sched_setaffinity, "
                        "like taskset; default: as started)")
    p.add_argument("--list-devices", action="store_true",
                   help="print a hello whose host.gpus lists every visible GPU, then done")
    p.add_argument("--sample-interval", type=float, default=0.25, help=argparse.SUPPRESS)
    p.add_argument("--init-child", action="store_true", help=argparse.SUPPRESS)
    return p


@dataclass
class Plan:
    workloads: list[str]
    roundtrip_size: int
    sizes: list[int]
    memory: list[str]
    duration: float
    warmup: float
    repeats: int
    device: str | None
    backend: str
    telemetry_interval: float
    gemm_size: int | None
    min_window: float
    cv_limit: float | None
    init_procs: list[int]
    seed: int
    sample_interval: float = 0.25
    stall_limit: float = STALL_LIMIT_PCT
    drift_limit: float = DRIFT_LIMIT_PCT
    launch_modes: tuple[str, ...] = LAUNCH_MODES
    cpus: tuple[int, ...] | None = None
    init_child: bool = False
    list_devices: bool = False
    model_shape: str | None = None          # None: the backend's default shape
    layers: int | None = None               # None: the shape's
    kv_len: int | None = None               # None: the shape's
    decode_batches: tuple[int, ...] = (1, 8, 64)
    decode_modes: tuple[str, ...] = ("eager",)
    prefill_tokens: tuple[int, ...] | None = None   # None: the shape's

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("init_child")
        d["sizes_human"] = [format_size(s) for s in self.sizes]
        d["roundtrip_size_human"] = format_size(self.roundtrip_size)
        return d


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """"4-7,9" -> (4, 5, 6, 7, 9): the taskset/cpuset list syntax."""
    cpus: set[int] = set()
    try:
        for part in split_list(text):
            lo, _, hi = part.partition("-")
            first, last = int(lo), int(hi or lo)
            if first < 0 or last < first or last > MAX_CPU:
                raise ValueError
            cpus.update(range(first, last + 1))
    except ValueError:
        raise UsageError(f"--cpus takes a CPU list like 4 or 4-7,9, not {text!r}") from None
    if not cpus:
        raise UsageError("--cpus is empty")
    return tuple(sorted(cpus))


def read_argv(argv: list[str] | tuple[str, ...]) -> argparse.Namespace:
    """The command line as the parser reads it (types and choices checked, nothing more);
    UsageError for an unknown option or a value of the wrong type."""
    ns, extra = build_parser().parse_known_args(list(argv))
    if extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
    return ns


def parse_args(argv: list[str]) -> Plan:
    ns = read_argv(argv)
    workloads = split_list(ns.workloads)
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown or not workloads:
        raise UsageError(f"unknown workload {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(WORKLOADS)}")
    sizes = [parse_size(s) for s in split_list(ns.sizes)]
    if not sizes:
        raise UsageError("--sizes is empty")
    for s in sizes:
        if not MIN_COPY <= s <= MAX_COPY:
            raise UsageError(f"copy size {format_size(s)} outside 4KiB..256MiB")
    memory = split_list(ns.memory)
    if not memory or any(m not in MEMORY_KINDS for m in memory):
        raise UsageError(f"--memory takes pinned and/or pageable, not {ns.memory!r}")
    cpus = parse_cpu_list(ns.cpus) if ns.cpus is not None else None
    launch_modes = split_list(ns.launch_modes)
    if not launch_modes or any(m not in LAUNCH_MODES for m in launch_modes):
        raise UsageError(f"--launch-modes takes sync and/or async, not {ns.launch_modes!r}")
    rt = parse_size(ns.roundtrip_size)
    if rt > MAX_COPY:
        raise UsageError("--roundtrip-size above 256MiB")
    try:
        procs = [int(x) for x in split_list(ns.init_procs)]
    except ValueError:
        raise UsageError(f"--init-procs takes whole numbers, not {ns.init_procs!r}") from None
    if not procs or any(not 1 <= n <= 256 for n in procs):
        raise UsageError("--init-procs values must be 1..256")
    batches = _counts(ns.decode_batches, "--decode-batches", MAX_DECODE_BATCH)
    prefill = None if ns.prefill_tokens is None else \
        _counts(ns.prefill_tokens, "--prefill-tokens", MAX_PREFILL_TOKENS)
    decode_modes = split_list(ns.decode_modes)
    if not decode_modes or any(m not in DECODE_MODES for m in decode_modes):
        raise UsageError(f"--decode-modes takes eager and/or graph, not {ns.decode_modes!r}")
    checks = [
        (ns.duration > 0, "--duration must be > 0"),
        (ns.warmup >= 0, "--warmup must be >= 0"),
        (ns.repeats >= 1, "--repeats must be >= 1"),
        (ns.telemetry_interval == 0 or ns.telemetry_interval >= 0.05,
         "--telemetry-interval must be 0 (off) or >= 0.05"),
        (ns.gemm_size is None or 16 <= ns.gemm_size <= 32768, "--gemm-size must be 16..32768"),
        (ns.min_window >= 0, "--min-window must be >= 0"),
        (ns.cv_limit is None or ns.cv_limit > 0, "--cv-limit must be > 0 (percent)"),
        (ns.stall_limit >= 0, "--stall-limit must be >= 0 (percent; 0 is off)"),
        (ns.drift_limit >= 0, "--drift-limit must be >= 0 (percent; 0 is off)"),
        (ns.sample_interval > 0, "--sample-interval must be > 0"),
        (ns.layers is None or 1 <= ns.layers <= MAX_LAYERS, f"--layers must be 1..{MAX_LAYERS}"),
        (ns.kv_len is None or 1 <= ns.kv_len <= MAX_KV_LEN, f"--kv-len must be 1..{MAX_KV_LEN}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    return Plan(workloads=list(dict.fromkeys(workloads)), roundtrip_size=rt,
                sizes=list(dict.fromkeys(sizes)), memory=list(dict.fromkeys(memory)),
                duration=ns.duration, warmup=ns.warmup, repeats=ns.repeats, device=ns.device,
                backend=ns.backend, telemetry_interval=ns.telemetry_interval,
                gemm_size=ns.gemm_size, min_window=ns.min_window, cv_limit=ns.cv_limit,
                stall_limit=ns.stall_limit, drift_limit=ns.drift_limit,
                init_procs=list(dict.fromkeys(procs)), seed=ns.seed,
                sample_interval=ns.sample_interval,
                launch_modes=tuple(dict.fromkeys(launch_modes)), cpus=cpus,
                init_child=ns.init_child,
                list_devices=ns.list_devices, model_shape=ns.model_shape, layers=ns.layers,
                kv_len=ns.kv_len, decode_batches=batches,
                decode_modes=tuple(dict.fromkeys(decode_modes)), prefill_tokens=prefill)


def _counts(text: str, option: str, most: int) -> tuple[int, ...]:
    """"1, 8,64" -> (1, 8, 64): whole numbers 1..most, each once, in the order given."""
    try:
        values = [int(x) for x in split_list(text)]
    except ValueError:
        raise UsageError(f"{option} takes whole numbers, not {text!r}") from None
    if not values or any(not 1 <= n <= most for n in values):
        raise UsageError(f"{option} values must be 1..{most}")
    return tuple(dict.fromkeys(values))


@dataclass
class Variant:
    """One configuration of one workload: the unit of a `result` line."""
    workload: str
    name: str
    params: dict = field(default_factory=dict)


def build_variants(plan: Plan, backend: str) -> list[Variant]:
    """Every variant the plan asks for, in run order, with its parameters."""
    out: list[Variant] = []
    for w in plan.workloads:
        if w == "roundtrip":
            out.append(Variant(w, f"pinned-{format_size(plan.roundtrip_size)}",
                               {"size_bytes": plan.roundtrip_size, "memory": "pinned"}))
        elif w == "launch":
            for mode in plan.launch_modes:
                batch = 1 if mode == "sync" else ASYNC_BATCH
                out.append(Variant(w, mode, {"kernel": "empty", "launches_per_sync": batch}))
        elif w in ("h2d", "d2h"):
            for mem in plan.memory:
                for size in plan.sizes:
                    out.append(Variant(w, f"{mem}-{format_size(size)}",
                                       {"size_bytes": size, "memory": mem}))
        elif w == "d2d":
            for size in plan.sizes:
                out.append(Variant(w, format_size(size), {"size_bytes": size}))
        elif w == "gemm":
            n = plan.gemm_size or (GEMM_SIZE_CPU if backend == "numpy-cpu" else GEMM_SIZE_GPU)
            for dtype in ("fp32", "fp16"):
                params: dict = {"dtype": dtype, "n": n}
                if backend == "numpy-cpu" and dtype == "fp16" and n > GEMM_FP16_MAX_CPU:
                    params = {"dtype": dtype, "n": GEMM_FP16_MAX_CPU,
                              "note": f"numpy-cpu: fp16 n capped at {GEMM_FP16_MAX_CPU} "
                                      "(NumPy has no fp16 BLAS)"}
                out.append(Variant(w, f"{dtype}-{params['n']}", params))
        elif w == "alloc":
            out.append(Variant(w, format_size(ALLOC_SIZE), {"size_bytes": ALLOC_SIZE}))
            out.append(Variant(w, f"{format_size(ALLOC_SIZE)}-held",
                               {"size_bytes": ALLOC_SIZE, "held_bytes": ALLOC_SIZE}))
        elif w == "init":
            for n in plan.init_procs:
                out.append(Variant(w, f"n{n}", {"n": n}))
        elif w == "p2p":
            out.append(Variant(w, "matrix", {}))  # expanded by the p2p workload itself
        elif w in ("decode", "prefill"):
            out += step_variants(plan, w, backend)
    return out


def step_variants(plan: Plan, workload: str, backend: str) -> list[Variant]:
    """decode: one variant per batch (and mode); prefill: one per prompt length. The name
    says the shape and depth, so only steps of the same work are ever matched."""
    shape = SHAPES[plan.model_shape or (CPU_DEFAULT_SHAPE if backend == "numpy-cpu"
                                        else GPU_DEFAULT_SHAPE)]
    layers = plan.layers or shape.layers
    base = {"shape": shape.name, "layers": layers, "dtype": step_dtype(shape, backend)}
    out = []
    if workload == "decode":
        kv_len = plan.kv_len or shape.kv_len
        for mode in plan.decode_modes:
            for batch in plan.decode_batches:
                name = f"{shape.name}-l{layers}-b{batch}-kv{kv_len}"
                out.append(Variant(workload, name + ("-graph" if mode == "graph" else ""), {
                    **base, "mode": mode, "batch": batch, "kv_len": kv_len,
                    "tokens_per_step": batch,
                    "flops_per_step": decode_flops(shape, layers, batch, kv_len)}))
    else:
        for n in plan.prefill_tokens or shape.prefill_tokens:
            out.append(Variant(workload, f"{shape.name}-l{layers}-n{n}", {
                **base, "mode": "eager", "prompt_tokens": n, "tokens_per_step": n,
                "flops_per_step": prefill_flops(shape, layers, n)}))
    return out
