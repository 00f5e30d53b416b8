"""Numba CPU fused gated feed-forward: `down(act(gate x) * up x)`.

Weights are [F, E] (gate, up) and [E, F] (down), float32. One token (decode) runs as
fused GEMVs: each parallel row computes its gate and up dot products in the same pass
over x and applies the activation in-register, so the [F] hidden vector is written once.
Several tokens run the three products as sgemm (`np.dot`), transposed: `h^T = W x^T`
with the weight on the left is OpenBLAS's no-transpose case, several times faster than
`x W^T` for these shapes (few tokens, wide weights). The activation and gating run as
one parallel pass over the [F, T] hidden matrix, with the vectorisable exp of norms_cpu.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

import gene_jit.tensor_kernels.kernel_cache  # noqa: F401  (cache stamp, before decorating)
from gene_jit.tensor_kernels.norms_cpu import exp_parts

ACT_SILU, ACT_GELU = 0, 1


@nb.njit(fastmath=True, cache=True, inline="always")
def _act(v: float | np.float32, act: int) -> float | np.float32:
    if act == ACT_SILU:
        return v / (1.0 + math.exp(-v))
    return 0.5 * v * (1.0 + math.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))


@nb.njit(parallel=True, fastmath=True, cache=True)
def _ffn_decode(
    x: np.ndarray, wg: np.ndarray, wu: np.ndarray, wd: np.ndarray, act: int, out: np.ndarray
) -> None:
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
    """g = act(g) * u in place, row by row; SiLU is g / (1 + e^-g), GELU's tanh is
    1 - 2 / (e^2y + 1); both exps vectorise through exp_parts."""
    rows, cols = g.shape
    for r in nb.prange(rows):
        e = np.empty(cols, np.float32)
        bits = np.empty(cols, np.int32)
        pow2 = bits.view(np.float32)
        if act == ACT_SILU:
            for c in range(cols):
                e[c], bits[c] = exp_parts(-g[r, c])
            for c in range(cols):
                g[r, c] = g[r, c] / (np.float32(1.0) + e[c] * pow2[c]) * u[r, c]
        else:
            for c in range(cols):
                v = g[r, c]
                y = np.float32(0.7978845608028654) * (v + np.float32(0.044715) * v * v * v)
                e[c], bits[c] = exp_parts(np.float32(2.0) * y)
            for c in range(cols):
                th = np.float32(1.0) - np.float32(2.0) / (e[c] * pow2[c] + np.float32(1.0))
                g[r, c] = np.float32(0.5) * g[r, c] * (np.float32(1.0) + th) * u[r, c]


@nb.njit(cache=True)
def _ffn_prefill(
    x: np.ndarray, wg: np.ndarray, wu: np.ndarray, wd: np.ndarray, act: int, out: np.ndarray
) -> None:
    xt = np.ascontiguousarray(x.T)  # [E, T]
    g = np.dot(wg, xt)  # [F, T]
    u = np.dot(wu, xt)
    _gate(g, u, act)
    out[:, :] = np.dot(wd, g).T  # [E, T] -> [T, E]


@nb.njit(cache=True)
def ffn_f32(
    x: np.ndarray, wg: np.ndarray, wu: np.ndarray, wd: np.ndarray, act: int, out: np.ndarray
) -> None:
    """x, out [T, E]; wg, wu [F, E]; wd [E, F]; act ACT_SILU or ACT_GELU."""
    if x.shape[0] == 1:
        _ffn_decode(x[0], wg, wu, wd, act, out[0])
    elif x.shape[0] > 1:
        _ffn_prefill(x, wg, wu, wd, act, out)


def feed_forward_f32(
    x: np.ndarray, wg: np.ndarray, wu: np.ndarray, wd: np.ndarray, act: int, out: np.ndarray
) -> None:
    """x, out [T, E]; wg, wu [F, E]; wd [E, F]; act ACT_SILU or ACT_GELU."""
    ffn_f32(x, wg, wu, wd, act, out)
