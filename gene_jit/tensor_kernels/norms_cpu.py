"""Numba CPU kernels for row-wise and element-wise ops: softmax, RMSNorm, LayerNorm,
RoPE, SiLU, GELU. Inputs are C-contiguous float32; rows run in parallel (`prange`).
Norm statistics accumulate in float64 so that f32 results stay within 1e-5 of the
float64 reference for long rows."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_OPTS = {"parallel": True, "fastmath": True, "cache": True}


@nb.njit(**_OPTS)
def softmax_f32(x: np.ndarray, out: np.ndarray) -> None:
    """x, out [R, C]: softmax of each row."""
    rows, cols = x.shape
    for r in nb.prange(rows):
        m = -np.inf
        for c in range(cols):
            m = max(m, x[r, c])
        s = 0.0
        for c in range(cols):
            e = math.exp(x[r, c] - m)
            out[r, c] = e
            s += e
        inv = np.float32(1.0 / s)
        for c in range(cols):
            out[r, c] *= inv


@nb.njit(**_OPTS)
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


@nb.njit(**_OPTS)
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


@nb.njit(**_OPTS)
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


@nb.njit(**_OPTS)
def silu_f32(x: np.ndarray, out: np.ndarray) -> None:
    """x, out flat [N]."""
    for i in nb.prange(x.shape[0]):
        v = x[i]
        out[i] = v / (np.float32(1.0) + math.exp(-v))


@nb.njit(fastmath=True, cache=True)
def gelu_scalar(v: float) -> float:
    return 0.5 * v * (1.0 + math.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))


@nb.njit(**_OPTS)
def gelu_f32(x: np.ndarray, out: np.ndarray) -> None:
    """x, out flat [N]; tanh approximation."""
    for i in nb.prange(x.shape[0]):
        out[i] = gelu_scalar(x[i])
