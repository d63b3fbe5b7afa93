"""What the `matrix` check runs (MatrixSettings) and its `gpubench check` flags. Standard
library only: every gpubench start registers the check command and its flags."""
from __future__ import annotations

from dataclasses import dataclass

from engine.plan import MAX_DECODE_BATCH

from .settings import HAMI_LIBRARY, CheckError

VICTIMS = ("decode", "roundtrip", "launch")
AGGRESSORS = ("gemm", "d2d", "h2d", "alloc", "launch", "decode")
LAYERS = ("none", "mps", "proxy", "hami")


@dataclass
class MatrixSettings:
    victims: tuple[str, ...] = ("decode",)
    aggressors: tuple[str, ...] = ("gemm", "d2d", "alloc", "launch", "decode")
    layers: tuple[str, ...] = LAYERS
    # the decode victim's batch (the aggressor's is 8). At 64 an eager 8B step keeps the GPU
    # busy: on an H100 its p50 moved 1 % between four engine processes, where a batch of 1
    # (host-bound between kernels) moved 75 % and made the victim alone unstable by itself
    victim_batch: int = 64
    windows: int = 6                      # victim windows per run: the CI's sample
    window_s: float = 0.5
    thread_percentage: int = 50           # MPS active threads; HAMi-core's SM limit
    mps_control: str | None = None        # None: scenarios.mps's default program
    hami_library: str = HAMI_LIBRARY


def parse_names(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """A comma list of names from `allowed`; CheckError (one line) for another."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise CheckError(f"matrix: unknown {what} {', '.join(bad) or '(none given)'}; "
                         f"choose from {', '.join(allowed)}")
    return names


def add_matrix_flags(p) -> None:
    d = MatrixSettings()
    p.add_argument("--victims", default=",".join(d.victims),
                   help=f"matrix: victim workloads, from {', '.join(VICTIMS)}")
    p.add_argument("--aggressors", default=",".join(d.aggressors),
                   help=f"matrix: aggressor workloads, from {', '.join(AGGRESSORS)}")
    p.add_argument("--layers", default=",".join(d.layers),
                   help=f"matrix: isolation layers, from {', '.join(LAYERS)} (a layer this "
                        "host lacks is listed NOT AVAILABLE with why)")
    p.add_argument("--victim-batch", type=int, default=d.victim_batch,
                   help=f"matrix: the decode victim's batch (default {d.victim_batch}: it "
                        "keeps the GPU busy; an eager step on a batch of 1 waits on the host "
                        "between kernels, and its speed moves from one process to the next)")
    p.add_argument("--windows", type=int, default=d.windows,
                   help=f"matrix: victim windows per run (default {d.windows})")
    p.add_argument("--window-s", type=float, default=d.window_s,
                   help=f"matrix: seconds per window (default {d.window_s:g})")
    p.add_argument("--thread-percentage", type=int, default=None,
                   help="matrix: MPS active thread percentage and HAMi-core SM limit (default: "
                        f"the --scenario's [mps] thread_percentage, else {d.thread_percentage})")


def matrix_settings(args, scenario=None) -> MatrixSettings:
    """MatrixSettings from the parsed flags and the --scenario (its `[mps]` table gives the
    MPS layer's control program and thread percentage unless a flag says otherwise);
    CheckError (one line) for a bad flag."""
    mps = getattr(scenario, "mps", None)
    pct = args.thread_percentage
    if pct is None:
        pct = (mps.thread_percentage if mps is not None and mps.thread_percentage is not None
               else MatrixSettings.thread_percentage)
    if args.windows < 2:
        raise CheckError(f"matrix: --windows must be at least 2 (got {args.windows})")
    if not args.window_s > 0:
        raise CheckError(f"matrix: --window-s must be positive (got {args.window_s:g})")
    if not 1 <= args.victim_batch <= MAX_DECODE_BATCH:
        raise CheckError(f"matrix: --victim-batch must be 1-{MAX_DECODE_BATCH} "
                         f"(got {args.victim_batch})")
    if not 1 <= pct <= 100:
        raise CheckError(f"matrix: --thread-percentage must be 1-100 (got {pct})")
    return MatrixSettings(victims=parse_names(args.victims, VICTIMS, "victim"),
                          aggressors=parse_names(args.aggressors, AGGRESSORS, "aggressor"),
                          layers=parse_names(args.layers, LAYERS, "layer"),
                          victim_batch=args.victim_batch,
                          windows=args.windows, window_s=args.window_s,
                          thread_percentage=pct,
                          mps_control=mps.control if mps is not None else None)
