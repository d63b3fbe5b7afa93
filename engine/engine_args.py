"""The engine's command line as a value: what every orchestrator builds instead of strings.

    args = EngineArgs(backend="numpy-cpu", workloads=("roundtrip", "h2d"), duration=2)
    LaunchRequest(engine_args=tuple(args.to_argv()))       # ["--backend", "numpy-cpu", ...]
    EngineArgs.from_argv(request.engine_args)              # and back, through the engine's parser

The options are declared once, in the engine's argparse parser (engine/plan.py
`build_parser`); each field here is one of its options under the same name and with the same
default (tests/engine/test_engine_args.py holds the two together). `from_argv` reads with that
parser, so it accepts exactly what the engine accepts: types and choices are checked, the
ranges the engine checks later (engine/plan.py `parse_args`) are not. Comma lists are tuples
of their items, sizes stay text ("64KiB") as the engine reads them. Standard library only:
it ships with the engine and orchestrators import it without NumPy.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

from .plan import DEFAULT_WORKLOADS, DRIFT_LIMIT_PCT, STALL_LIMIT_PCT, read_argv, split_list

# Fields that are comma lists on the command line.
LIST_FIELDS = frozenset({"workloads", "sizes", "memory", "launch_modes", "init_procs",
                         "decode_batches", "decode_modes"})


@dataclass(frozen=True)
class EngineArgs:
    """Every option of `python -m engine`; the field order is the order `to_argv` writes."""
    backend: str = "auto"
    workloads: tuple[str, ...] = DEFAULT_WORKLOADS
    duration: float = 1.0
    warmup: float = 0.3
    repeats: int = 3
    telemetry_interval: float = 0.5
    roundtrip_size: str = "64KiB"
    sizes: tuple[str, ...] = ("4KiB", "1MiB", "256MiB")
    cpus: str | None = None
    memory: tuple[str, ...] = ("pinned", "pageable")
    launch_modes: tuple[str, ...] = ("sync", "async")
    min_window: float = 0.5
    stall_limit: float = STALL_LIMIT_PCT
    drift_limit: float = DRIFT_LIMIT_PCT
    cv_limit: float | None = None
    gemm_size: int | None = None
    init_procs: tuple[str, ...] = ("1", "8", "32")
    model_shape: str | None = None
    layers: int | None = None
    kv_len: int | None = None
    decode_batches: tuple[str, ...] = ("1", "8", "64")
    decode_modes: tuple[str, ...] = ("eager",)
    prefill_tokens: str | None = None
    seed: int = 0
    device: str | None = None
    list_devices: bool = False
    sample_interval: float = 0.25
    init_child: bool = False

    def __post_init__(self) -> None:
        # a comma list may be given as "a,b" or any sequence: always kept as a tuple of text
        for name in LIST_FIELDS:
            value = getattr(self, name)
            items = split_list(value) if isinstance(value, str) else [str(v) for v in value]
            object.__setattr__(self, name, tuple(items))

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> "EngineArgs":
        """Read a command line with the engine's own parser; engine.plan.UsageError (one line,
        the engine's words) for an unknown option or a value of the wrong type."""
        ns = read_argv(argv)
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls)})

    def to_argv(self, full: bool = False) -> list[str]:
        """The command line: the options that differ from the engine's defaults, or with
        `full` every option that has a value (None and off flags are never written)."""
        out: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value is False or (not full and value == f.default):
                continue
            option = "--" + f.name.replace("_", "-")
            if value is True:
                out.append(option)
                continue
            text = _text(value)
            # "--device=-x" keeps a value that begins with "-" from reading as an option
            out += [f"{option}={text}"] if text.startswith("-") else [option, text]
        return out


def _text(value) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float):
        short = f"{value:g}"            # "2", "0.3": what people write and read
        return short if float(short) == value else repr(value)
    return str(value)
