"""Numba CPU kernels for row-wise and element-wise ops: softmax, RMSNorm, LayerNorm,
RoPE, SiLU, GELU, and the vectorisable float32 `exp` the other CPU kernels share.
Inputs are C-contiguous float32; rows run in parallel (`prange`). Norm statistics
accumulate in float64 so that f32 results stay within 1e-5 of the float64 reference for
long rows.

Why a hand-written exp: without Intel's SVML, LLVM turns `math.exp` into one libm call
per element, which no loop vectoriser can widen; softmax-heavy kernels (attention,
gated feed-forward) then spend most of their time there. `exp_parts` is the Cephes
float32 polynomial (about 1 ulp) split in two: the mantissa polynomial, and the power
of two as raw float bits. A loop stores both, then a second loop multiplies by the bits
viewed as float32; both loops vectorise.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

import gene_jit.tensor_kernels.kernel_cache  # noqa: F401  (cache stamp, before decorating)

_LOG2E = np.float32(1.4426950408889634)


@nb.njit(fastmath=True, cache=True, inline="always")
def exp_parts(v: Any) -> tuple[Any, Any]:
    """exp(v) for float32 v as (p, bits): exp(v) = p * (bits viewed as float32).
    Below -87 the result is exactly 0 (so masked -inf scores vanish); above 88 it is
    clamped to exp(88) (float32 overflows past 88.7)."""
    x = v
    v = min(max(v, np.float32(-87.0)), np.float32(88.0))
    t = np.floor(v * _LOG2E + np.float32(0.5))
    f = v - t * np.float32(0.693359375) + t * np.float32(2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * f + np.float32(1.3981999507e-3)
    p = p * f + np.float32(8.3334519073e-3)
    p = p * f + np.float32(4.1665795894e-2)
    p = p * f + np.float32(1.6666665459e-1)
    p = p * f + np.float32(5.0000001201e-1)
    bits = (np.int32(t) + np.int32(127)) << np.int32(23) if x > np.float32(-87.0) else np.int32(0)
    return p * f * f + f + np.float32(1.0), bits


@nb.njit(fastmath=True, cache=True)
def exp_f32(x: np.ndarray, out: np.ndarray, bits: np.ndarray) -> None:
    """out[j] = exp(x[j]) for 1-d float32 arrays; `bits` is int32 scratch of x's size."""
    scale = bits.view(np.float32)
    for j in range(x.shape[0]):
        out[j], bits[j] = exp_parts(x[j])
    for j in range(x.shape[0]):
        out[j] *= scale[j]


@nb.njit(parallel=True, fastmath=True, cache=True)
def softmax_f32(x: np.ndarray, out: np.ndarray) -> None:
    """x, out [R, C]: softmax of each row."""
    rows, cols = x.shape
    for r in nb.prange(rows):
        m = np.float32(-np.inf)
        for c in range(cols):
            m = max(m, x[r, c])
        bits = np.empty(cols, np.int32)
        scale = bits.view(np.float32)
        for c in range(cols):
            out[r, c], bits[c] = exp_parts(x[r, c] - m)
        s = 0.0
        for c in range(cols):
            e = out[r, c] * scale[c]
            out[r, c] = e
            s += e
        inv = np.float32(1.0 / s)
        for c in range(cols):
            out[r, c] *= inv


@nb.njit(parallel=True, fastmath=True, cache=True)
def rmsnorm_f32(x: np.ndarray, w: np.ndarray, eps: float, out: np.ndarray) -> None:
    """x, out [R, C], w [C]: x / sqrt(mean(x^2) + eps) * w per row."""
    rows, cols = x.shape
    for r in nb.prange(rows):
        ss = 0.0
        for c in range(cols):
            v = np.float64(x[r, c])
            ss += v * v
        inv = np.float32(1.0 / math.sqrt(ss / cols + eps))
        for c in range(cols):
            out[r, c] = x[r, c] * inv * w[c]


@nb.njit(parallel=True, fastmath=True, cache=True)
def layernorm_f32(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float, out: np.ndarray) -> None:
    """x, out [R, C], w, b [C]: (x - mean) / sqrt(var + eps) * w + b per row."""
    rows, cols = x.shape
    for r in nb.prange(rows):
        s = 0.0
        for c in range(cols):
            s += x[r, c]
        mu = s / cols
        v = 0.0
        for c in range(cols):
            d = x[r, c] - mu
            v += d * d
        inv = 1.0 / math.sqrt(v / cols + eps)
        for c in range(cols):
            out[r, c] = np.float32((x[r, c] - mu) * inv) * w[c] + b[c]


@nb.njit(parallel=True, fastmath=True, cache=True)
def rope_f32(x: np.ndarray, positions: np.ndarray, theta: float, out: np.ndarray) -> None:
    """x, out [B, T, D], positions [T] (int64): half-split rotary embedding."""
    nb_, t_, d = x.shape
    half = d // 2
    for t in nb.prange(t_):
        pos = positions[t]
        for i in range(half):
            ang = pos * theta ** (-2.0 * i / d)
            c, s = np.float32(math.cos(ang)), np.float32(math.sin(ang))
            for b in range(nb_):
                x1, x2 = x[b, t, i], x[b, t, i + half]
                out[b, t, i] = x1 * c - x2 * s
                out[b, t, i + half] = x1 * s + x2 * c


@nb.njit(parallel=True, fastmath=True, cache=True)
def silu_f32(x: np.ndarray, out: np.ndarray) -> None:
    """x, out flat [N]."""
    for i in nb.prange(x.shape[0]):
        v = x[i]
        out[i] = v / (np.float32(1.0) + math.exp(-v))


@nb.njit(fastmath=True, cache=True)
def gelu_scalar(v: float) -> float:
    return 0.5 * v * (1.0 + math.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))


@nb.njit(parallel=True, fastmath=True, cache=True)
def gelu_f32(x: np.ndarray, out: np.ndarray) -> None:
    """x, out flat [N]; tanh approximation."""
    for i in nb.prange(x.shape[0]):
        out[i] = gelu_scalar(x[i])
