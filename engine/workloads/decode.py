"""decode and prefill: one forward step of a transformer block stack per operation.

`decode`: one new token for each sequence of a batch against a KV cache of `--kv-len`
positions (variants per batch, `--decode-batches`); `prefill`: a prompt of N tokens with
causal attention (variants per N, `--prefill-tokens`). Both run eagerly, kernel by kernel
as a framework without graphs does (engine/workloads/transformer.py); a decode step can also
be replayed as a CUDA graph (`--decode-modes graph`, engine/workloads/step_graph.py) where the
captured graph is shown to do the step's work.

Per step: latency from the engine's clock (the step and its synchronise, what a serving loop
waits for) and the device time between a pair of CUDA events around it: their sum gives
TFLOP/s, their percentiles `device_latency_us` (the GPU side of the same steps: a neighbour's
time slice shows in both, the host's own delays only in the first). The result adds tokens/s,
jitter (p99 ÷ p50) and the FLOPs of one step. On numpy-cpu the clock is the CPU's
and the figures are CPU figures, labelled so.
"""
from __future__ import annotations

from ..measure import NotApplicable, Prepared
from ..model_shapes import SHAPES
from .step_graph import graph_prepared
from .transformer import Step, array_module


def make_step(b, variant, seed: int) -> Step:
    """The variant's step on backend `b` (weights, caches and input made on the device)."""
    p = variant.params
    s = SHAPES[p["shape"]]
    xp = array_module(b)
    if variant.workload == "decode":
        return Step(xp, s, p["layers"], p["dtype"], sequences=p["batch"], queries=1,
                    context=p["kv_len"], seed=seed)
    n = p["prompt_tokens"]
    return Step(xp, s, p["layers"], p["dtype"], sequences=1, queries=n, context=n,
                causal=True, seed=seed)


def prepare(b, variant, plan) -> Prepared:
    p = variant.params
    if p.get("mode") == "graph" and b.name != "cupy":
        raise NotApplicable(f"{variant.workload} {variant.name}: a CUDA graph needs the cupy "
                            f"backend (this is {b.name})")
    step = make_step(b, variant, plan.seed)
    if p.get("mode") == "graph":
        return graph_prepared(b, step, variant)
    timer = b.timer(per_op=True)
    return Prepared(timer.wrap(step, b.sync_op()), flops_per_op=p["flops_per_step"],
                    tokens_per_op=step.tokens, timer=timer, keep=(step,),
                    timing="perf_counter_ns per step; tflops from cuda events"
                    if b.name == "cupy" else "perf_counter_ns per step")
