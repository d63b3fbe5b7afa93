"""One module per workload. A loop workload has `prepare(backend, variant, plan) -> Prepared`;
init and p2p drive their own measurements with `run(ctx, variant)`."""
from __future__ import annotations

from . import alloc, copy, decode, gemm, init, launch, p2p, roundtrip

PREPARE = {
    "roundtrip": roundtrip.prepare,
    "launch": launch.prepare,
    "h2d": copy.prepare,
    "d2h": copy.prepare,
    "d2d": copy.prepare,
    "gemm": gemm.prepare,
    "alloc": alloc.prepare,
    "decode": decode.prepare,
    "prefill": decode.prepare,
}
RUN = {
    "init": init.run,
    "p2p": p2p.run,
}
