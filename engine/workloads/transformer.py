"""A stack of decoder blocks built from matrix products and elementwise array operations.

The same code runs on CuPy (cuBLAS for every product) and on NumPy: `xp` is the backend's
array module. One block: RMSNorm, the fused QKV projection, attention of each query head
over the KV cache of its key/value head (grouped-query attention), the output projection
and a residual, RMSNorm, the gated SiLU MLP and a residual. Rotary embeddings and the
vocabulary projection are left out: they are elementwise work and one more GEMM that do not
change what the step measures (see engine/model_shapes.py for the shapes and FLOP counts).

`Step` is one forward pass as a zero-argument call: `sequences` sequences of `queries` new
tokens each, attending over a cache of `context` positions whose last `queries` positions
the step writes. Decode is `Step(sequences=batch, queries=1, context=kv_len)`: every step
overwrites the same cache slot, so every step does the same work. Prefill is
`Step(sequences=1, queries=N, context=N, causal=True)`. Each step starts from the same input
and writes its result into `out`, which is how a captured graph's output is checked.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model_shapes import ModelShape

EPS = 1e-5


def array_module(backend) -> Any:
    return backend.cp if backend.name == "cupy" else np


def _uniform(xp, rng, dims: tuple, std: float, dtype) -> Any:
    """Values of mean 0 and standard deviation `std` (uniform), made in fp32 on the device."""
    a = rng.random(dims, dtype=xp.float32)
    a -= 0.5
    a *= std * math.sqrt(12.0)
    return a.astype(dtype)


class Block:
    """One decoder block's weights."""

    def __init__(self, xp, rng, s: ModelShape, dtype):
        h = s.hidden
        self.norm1 = xp.ones(h, dtype=dtype)
        self.wqkv = _uniform(xp, rng, (h, s.q_dim + 2 * s.kv_dim), 1 / math.sqrt(h), dtype)
        self.wo = _uniform(xp, rng, (s.q_dim, h), 1 / math.sqrt(s.q_dim), dtype)
        self.norm2 = xp.ones(h, dtype=dtype)
        self.wgu = _uniform(xp, rng, (h, 2 * s.mlp), 1 / math.sqrt(h), dtype)
        self.wdown = _uniform(xp, rng, (s.mlp, h), 1 / math.sqrt(s.mlp), dtype)


def rms_norm(xp, x, weight):
    """x / sqrt(mean(x²) + eps) · weight, the mean taken in fp32 as frameworks do."""
    xf = x.astype(xp.float32)
    inv = 1.0 / xp.sqrt((xf * xf).mean(axis=-1, keepdims=True) + EPS)
    return (xf * inv).astype(x.dtype) * weight


def softmax(xp, scores):
    e = xp.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def silu(xp, x):
    return x / (1 + xp.exp(-x))


class Step:
    """One forward step of `layers` blocks over preallocated inputs and KV caches."""

    def __init__(self, xp, s: ModelShape, layers: int, dtype: str, sequences: int,
                 queries: int, context: int, causal: bool = False, seed: int = 0):
        if queries > context:
            raise ValueError(f"{queries} new tokens do not fit a context of {context}")
        self.xp, self.shape, self.layers = xp, s, layers
        self.sequences, self.queries, self.context = sequences, queries, context
        dt = xp.float16 if dtype == "fp16" else xp.float32
        rng = xp.random.default_rng(seed)
        self.blocks = [Block(xp, rng, s, dt) for _ in range(layers)]
        tokens = sequences * queries
        self.x = _uniform(xp, rng, (tokens, s.hidden), 1.0, dt)
        # keys stored transposed (d × positions) so q·Kᵀ is a plain batched product
        self.k_cache = [_uniform(xp, rng, (sequences, s.kv_heads, s.head_dim, context), 1.0, dt)
                        for _ in range(layers)]
        self.v_cache = [_uniform(xp, rng, (sequences, s.kv_heads, context, s.head_dim), 1.0, dt)
                        for _ in range(layers)]
        self.mask = None
        if causal:  # query i (the cache's position context-queries+i) sees positions <= its own
            rows = xp.arange(queries)[:, None] + (context - queries)
            self.mask = xp.zeros((queries, context), dtype=dt)
            self.mask[xp.arange(context)[None, :] > rows] = -xp.inf
        self.scale = dt(1.0 / math.sqrt(s.head_dim))
        self.out = xp.zeros((tokens, s.hidden), dtype=dt)

    @property
    def tokens(self) -> int:
        return self.sequences * self.queries

    def __call__(self) -> None:
        x = self.x
        for block, kc, vc in zip(self.blocks, self.k_cache, self.v_cache):
            x = self._block(block, x, kc, vc)
        self.out[...] = x

    def _block(self, w: Block, x, kc, vc):
        xp, s = self.xp, self.shape
        S, T, L = self.sequences, self.queries, self.context
        kvh, g, d = s.kv_heads, s.group, s.head_dim
        qkv = rms_norm(xp, x, w.norm1) @ w.wqkv                       # (S·T, q + 2 kv)
        q = qkv[:, :s.q_dim].reshape(S, T, kvh, g, d).transpose(0, 2, 3, 1, 4)
        q = q.reshape(S, kvh, g * T, d) * self.scale
        k = qkv[:, s.q_dim:s.q_dim + s.kv_dim].reshape(S, T, kvh, d)
        v = qkv[:, s.q_dim + s.kv_dim:].reshape(S, T, kvh, d)
        kc[:, :, :, L - T:] = k.transpose(0, 2, 3, 1)                  # this step's keys
        vc[:, :, L - T:, :] = v.transpose(0, 2, 1, 3)                  # and values
        scores = xp.matmul(q, kc)                                       # (S, kvh, g·T, L)
        if self.mask is not None:
            scores = (scores.reshape(S, kvh, g, T, L) + self.mask).reshape(S, kvh, g * T, L)
        att = xp.matmul(softmax(xp, scores), vc)                        # (S, kvh, g·T, d)
        att = att.reshape(S, kvh, g, T, d).transpose(0, 3, 1, 2, 4).reshape(S * T, s.q_dim)
        x = x + att @ w.wo
        gate_up = rms_norm(xp, x, w.norm2) @ w.wgu                     # (S·T, 2 mlp)
        return x + (silu(xp, gate_up[:, :s.mlp]) * gate_up[:, s.mlp:]) @ w.wdown

    def checksum(self) -> float:
        """The sum of |out| in fp64, read back to the host: equal for equal work."""
        return float(self.xp.abs(self.out.astype(self.xp.float64)).sum())
