"""Numba CPU fused gated feed-forward: `down(act(gate x) * up x)`.

Weights are [F, E] (gate, up) and [E, F] (down), float32. One token (decode) runs as
fused GEMVs: each parallel row computes its gate and up dot products in the same pass
over x and applies the activation in-register, so the [F] hidden vector is written once.
Several tokens run the three products as sgemm (`np.dot`) with the activation and gating
fused into one parallel pass over the hidden matrix.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

ACT_SILU, ACT_GELU = 0, 1


@nb.njit(fastmath=True, cache=True, inline="always")
def _act(v: float, act: int) -> float:
    if act == ACT_SILU:
        return v / (1.0 + math.exp(-v))
    return 0.5 * v * (1.0 + math.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))


@nb.njit(parallel=True, fastmath=True, cache=True)
def _ffn_decode(x: np.ndarray, wg: np.ndarray, wu: np.ndarray, wd: np.ndarray, act: int,
                out: np.ndarray) -> None:
    f, e = wg.shape
    hidden = np.empty(f, np.float32)
    for i in nb.prange(f):
        g = np.float32(0.0)
        u = np.float32(0.0)
        for j in range(e):
            g += wg[i, j] * x[j]
            u += wu[i, j] * x[j]
        hidden[i] = np.float32(_act(g, act)) * u
    for r in nb.prange(e):
        acc = np.float32(0.0)
        for i in range(f):
            acc += wd[r, i] * hidden[i]
        out[r] = acc


@nb.njit(parallel=True, fastmath=True, cache=True)
def _gate(g: np.ndarray, u: np.ndarray, act: int) -> None:
    rows, cols = g.shape
    for r in nb.prange(rows):
        for c in range(cols):
            g[r, c] = np.float32(_act(g[r, c], act)) * u[r, c]


@nb.njit(cache=True)
def _ffn_prefill(x: np.ndarray, wg: np.ndarray, wu: np.ndarray, wd: np.ndarray, act: int,
                 out: np.ndarray) -> None:
    g = np.dot(x, wg.T)
    u = np.dot(x, wu.T)
    _gate(g, u, act)
    out[:, :] = np.dot(g, wd.T)


def feed_forward_f32(x: np.ndarray, wg: np.ndarray, wu: np.ndarray, wd: np.ndarray,
                     act: int, out: np.ndarray) -> None:
    """x, out [T, E]; wg, wu [F, E]; wd [E, F]; act ACT_SILU or ACT_GELU."""
    if x.shape[0] == 1:
        _ffn_decode(x[0], wg, wu, wd, act, out[0])
    else:
        _ffn_prefill(x, wg, wu, wd, act, out)
