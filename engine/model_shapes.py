"""The transformer shapes the decode and prefill workloads run, and their exact FLOP counts.

Standard library only: the plan (engine/plan.py) checks `--model-shape` against SHAPES and
the orchestrators import the plan without NumPy; the arrays live in engine/workloads/
transformer.py.

A shape is one decoder block as real models size it (grouped-query attention: `kv_heads`
key/value heads shared by `heads // kv_heads` query heads each, a gated SiLU MLP). `layers`
is how many blocks one step runs by default: fewer than the real model, so that a decode step
on an H100 takes about a millisecond and a 1 s window holds several hundred steps (enough for
a p99; the p99.9 of a few hundred steps is close to their maximum). The figures of a block
are the same whatever the depth; the depth only scales them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelShape:
    name: str
    hidden: int
    heads: int
    head_dim: int
    kv_heads: int
    mlp: int
    dtype: str                      # on the GPU; NumPy has no fp16 BLAS, the CPU runs fp32
    layers: int                     # blocks per step unless --layers says otherwise
    kv_len: int                     # KV cache length (context) of a decode step by default
    prefill_tokens: tuple[int, ...]  # prompt lengths of the prefill variants by default

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.heads // self.kv_heads


SHAPES = {
    # Llama-3-8B-class: hidden 4096, 32 heads x 128, 8 KV heads, MLP 14336 (32 layers in the
    # model; 4 here: ~1.7 GB of fp16 weights read per decode step, about 1 ms on an H100)
    "8b": ModelShape("8b", 4096, 32, 128, 8, 14336, "fp16", 4, 2048, (128, 512, 2048)),
    # Llama-3.2-1B-class: hidden 2048, 32 heads x 64, 8 KV heads, MLP 8192 (16 layers)
    "1b": ModelShape("1b", 2048, 32, 64, 8, 8192, "fp16", 4, 2048, (128, 512, 2048)),
    # the CPU backend's default: the same block scaled down (hidden, heads, MLP ÷ 32, the
    # KV cache ÷ 16) so that a NumPy step takes a millisecond or so
    "small": ModelShape("small", 128, 4, 32, 2, 448, "fp32", 2, 128, (16, 64)),
}
GPU_DEFAULT_SHAPE, CPU_DEFAULT_SHAPE = "8b", "small"


def step_dtype(shape: ModelShape, backend: str) -> str:
    """The shape's dtype on the GPU; fp32 on the CPU (NumPy has no fp16 BLAS)."""
    return shape.dtype if backend == "cupy" else "fp32"


def layer_flops(s: ModelShape, tokens: int, context: int) -> int:
    """Floating-point operations of one block on `tokens` tokens that each attend over
    `context` positions: every matrix product at 2·m·n·k (the convention GEMM rates use);
    the elementwise work (norms, softmax, SiLU, residuals) is left out, as it is there.

    QKV projection, scores q·Kᵀ and the weighted sum p·V (per query head), output
    projection, gate + up and down projections of the MLP."""
    qkv = 2 * tokens * s.hidden * (s.q_dim + 2 * s.kv_dim)
    attention = 2 * 2 * tokens * s.heads * s.head_dim * context
    out = 2 * tokens * s.q_dim * s.hidden
    mlp = 2 * tokens * s.hidden * 2 * s.mlp + 2 * tokens * s.mlp * s.hidden
    return qkv + attention + out + mlp


def decode_flops(s: ModelShape, layers: int, batch: int, kv_len: int) -> int:
    """One decode step: one new token for each of `batch` sequences over a `kv_len` cache."""
    return layers * layer_flops(s, batch, kv_len)


def prefill_flops(s: ModelShape, layers: int, tokens: int) -> int:
    """One prefill step: a prompt of `tokens` tokens; the causal attention is computed as the
    full tokens × tokens square and masked (what an eager framework's matmul does)."""
    return layers * layer_flops(s, tokens, tokens)


def weight_count(s: ModelShape, layers: int) -> int:
    """Parameters of `layers` blocks (two norm vectors each)."""
    per = (s.hidden * (s.q_dim + 2 * s.kv_dim) + s.q_dim * s.hidden
           + s.hidden * 2 * s.mlp + s.mlp * s.hidden + 2 * s.hidden)
    return layers * per
