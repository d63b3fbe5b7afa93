"""config.toml's `[defaults]`: the benchmark plan every `gpubench run` and the TUI start from,
read into `BenchDefaults` and handed to the engine as `EngineArgs` (`engine_args()`).

Every value is checked at load against what the engine itself would accept (its sizes,
workloads, CPU lists, model shapes and step ranges come from engine.plan), so a bad value is
one line naming the key before any engine starts, never a session that fails on every host.
The reader (`r`) is scenarios/config.py's `_Reader`, which names file and key in each error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.engine_args import EngineArgs
from engine.model_shapes import SHAPES
from engine.plan import (DECODE_MODES, MAX_COPY, MAX_DECODE_BATCH, MAX_KV_LEN, MAX_LAYERS,
                         MAX_PREFILL_TOKENS, MIN_COPY, UsageError, format_size, parse_cpu_list)
from engine.plan import parse_size as engine_parse_size
from engine.vocabulary import BACKEND_CHOICES, WORKLOADS
from scenarios import limits
from scenarios.limits import Range, shown

if TYPE_CHECKING:  # the reader is config.py's; config.py imports this module
    from scenarios.config import _Reader

LAYERS = Range(1, MAX_LAYERS)
KV_LEN = Range(1, MAX_KV_LEN)
DECODE_BATCH = Range(1, MAX_DECODE_BATCH)
PREFILL_TOKENS = Range(1, MAX_PREFILL_TOKENS)
# Each entry of decode_batches / prefill_tokens is one variant measured for the whole window
# and every repeat: past this many the list is a typo, not a plan.
MAX_STEP_VARIANTS = 32


@dataclass(frozen=True)
class BenchDefaults:
    workloads: tuple[str, ...] = ("roundtrip", "launch", "h2d", "d2h")
    duration_s: float = 1.0
    warmup_s: float = 0.3
    repeats: int = 5
    trials: int = 10
    backend: str = "auto"
    telemetry_interval_s: float = 0.5
    roundtrip_size: str = "64KiB"
    copy_sizes: tuple[str, ...] = ("4KiB", "1MiB", "256MiB")
    cpus: str | None = None               # engine CPU pinning (taskset list), None: as started
    # decode/prefill (engine/workloads/decode.py); None: the engine's default for the backend
    model_shape: str | None = None        # a name of engine.model_shapes.SHAPES
    layers: int | None = None
    kv_len: int | None = None
    decode_batches: tuple[int, ...] = (1, 8, 64)
    decode_modes: tuple[str, ...] = ("eager",)
    prefill_tokens: tuple[int, ...] | None = None

    def engine_args(self) -> EngineArgs:
        """These defaults as the engine's options; a plan's overrides go on with replace()."""
        return EngineArgs(backend=self.backend, workloads=self.workloads,
                          duration=self.duration_s, warmup=self.warmup_s, repeats=self.repeats,
                          telemetry_interval=self.telemetry_interval_s,
                          roundtrip_size=self.roundtrip_size, sizes=self.copy_sizes,
                          cpus=self.cpus, model_shape=self.model_shape, layers=self.layers,
                          kv_len=self.kv_len, decode_batches=self.decode_batches,
                          decode_modes=self.decode_modes,
                          prefill_tokens=None if self.prefill_tokens is None
                          else ",".join(map(str, self.prefill_tokens)))


def parse_size(text: str) -> int:
    """'64KiB' -> 65536: the engine's size syntax (B, KiB, MiB, GiB, TiB; KB/MB/GB/TB and HAMi's
    k/m/g/t are powers of 1024 too); ValueError with the reason."""
    try:
        return engine_parse_size(str(text))
    except UsageError:
        raise ValueError(f"not a size: {shown(text)} (use e.g. 4KiB, 64KiB, 1MiB, "
                         f"256MiB)") from None


def parse_bench_defaults(r: "_Reader | None") -> BenchDefaults:
    base = BenchDefaults()
    if r is None:
        return base
    d = BenchDefaults(
        workloads=r.str_list("workloads", base.workloads, WORKLOADS),
        duration_s=r.get("duration_s", float, base.duration_s, bounds=limits.DURATION_S),
        warmup_s=r.get("warmup_s", float, base.warmup_s, bounds=limits.WARMUP_S),
        repeats=r.get("repeats", int, base.repeats, bounds=limits.REPEATS),
        trials=r.get("trials", int, base.trials, bounds=limits.TRIALS),
        backend=r.get("backend", str, base.backend, choices=BACKEND_CHOICES),
        telemetry_interval_s=r.get("telemetry_interval_s", float, base.telemetry_interval_s,
                                   bounds=limits.TELEMETRY_INTERVAL_S),
        roundtrip_size=r.get("roundtrip_size", str, base.roundtrip_size),
        copy_sizes=r.str_list("copy_sizes", base.copy_sizes),
        cpus=r.get("cpus", str, base.cpus),
        model_shape=r.get("model_shape", str, base.model_shape, choices=tuple(SHAPES)),
        layers=r.get("layers", int, base.layers, bounds=LAYERS),
        kv_len=r.get("kv_len", int, base.kv_len, bounds=KV_LEN),
        decode_batches=_counts(r, "decode_batches", DECODE_BATCH) or base.decode_batches,
        decode_modes=_modes(r, base.decode_modes),
        prefill_tokens=_counts(r, "prefill_tokens", PREFILL_TOKENS) or base.prefill_tokens,
    )
    if d.cpus is not None:
        try:
            parse_cpu_list(d.cpus)
        except UsageError:
            raise r.fail("cpus", f"must be a CPU list like \"4\" or \"4-7,9\" (got {d.cpus!r})") from None
    sizes = [("roundtrip_size", d.roundtrip_size, 1), *(("copy_sizes", s, MIN_COPY)
                                                       for s in d.copy_sizes)]
    for key, value, smallest in sizes:
        try:
            size = parse_size(value)
        except ValueError as exc:
            raise r.fail(key, str(exc)) from None
        if not smallest <= size <= MAX_COPY:  # the engine refuses these: say so before it runs
            raise r.fail(key, f"{value} is outside "
                              f"{format_size(smallest)}..{format_size(MAX_COPY)}")
    r.reject_unknown()
    return d


def _counts(r: "_Reader", key: str, bounds: Range) -> tuple[int, ...] | None:
    """A list of whole numbers within `bounds` (batch sizes, prompt lengths), each once, in the
    order given; None when the key is absent."""
    value = r.get(key, list, None)
    if value is None:
        return None
    _list_size(r, key, value)
    for item in value:
        if not isinstance(item, int) or isinstance(item, bool):
            raise r.fail(key, f"must be a list of whole numbers (got {shown(item)})")
        if (problem := bounds.problem(item)) is not None:
            raise r.fail(key, f"every entry {problem}")
    return tuple(dict.fromkeys(value))


def _modes(r: "_Reader", default: tuple[str, ...]) -> tuple[str, ...]:
    value = r.str_list("decode_modes", default, DECODE_MODES)
    _list_size(r, "decode_modes", value)
    return tuple(dict.fromkeys(value))


def _list_size(r: "_Reader", key: str, value: list | tuple) -> None:
    if not value:
        raise r.fail(key, "must not be empty (leave the key out for the engine's default)")
    if len(value) > MAX_STEP_VARIANTS:
        raise r.fail(key, f"must have at most {MAX_STEP_VARIANTS} entries (got {len(value)})")
