"""Numba CUDA row kernels: RMSNorm, LayerNorm, softmax (row-wise, numerically stable)
and RoPE (half-split pairing, as reference.rope).

The norms and softmax give each row one block: threads stride along the row (coalesced),
each keeps a partial, warps reduce with shuffles and the warps' results meet in shared
memory. A row is read from global memory once per pass (two passes for the norms: the
statistic, then the scaled write; three for softmax: max, sum, write), which for the
widths of a model (a few thousand) hits in L1/L2 after the first pass.

RoPE gives each thread one rotated pair. The angle `pos * theta^(-2i/D)` is formed and
its sine and cosine taken in float64: positions run into the thousands, where a float32
angle would already be off by ~1e-4 radians.

No fastmath here: softmax rows may hold -inf (masked scores).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor_kernels.cuda_support import cuda

cu = cuda()
THREADS = 256
WARPS = 8  # THREADS / 32, spelled out: shared array sizes must be literals


@cu.jit(device=True, inline=True)
def block_sum(v: Any, red: Any) -> Any:
    """Sum of `v` over the block; every thread gets it. `red` is shared [WARPS]."""
    for off in (16, 8, 4, 2, 1):
        v += cu.shfl_xor_sync(0xFFFFFFFF, v, off)
    if cu.threadIdx.x & 31 == 0:
        red[cu.threadIdx.x >> 5] = v
    cu.syncthreads()
    t = np.float32(0.0)
    for w in range(WARPS):
        t += red[w]
    cu.syncthreads()  # `red` is reused by the next reduction
    return t


@cu.jit(device=True, inline=True)
def block_max(v: Any, red: Any) -> Any:
    for off in (16, 8, 4, 2, 1):
        v = max(v, cu.shfl_xor_sync(0xFFFFFFFF, v, off))
    if cu.threadIdx.x & 31 == 0:
        red[cu.threadIdx.x >> 5] = v
    cu.syncthreads()
    t = red[0]
    for w in range(1, WARPS):
        t = max(t, red[w])
    cu.syncthreads()
    return t


@cu.jit
def rmsnorm_kernel(x: Any, w: Any, eps: float, out: Any) -> None:
    """x, out [R, C] f32, w [C]: one block per row."""
    r = cu.blockIdx.x
    cols = x.shape[1]
    red = cu.shared.array(WARPS, np.float32)
    ss = np.float32(0.0)
    for c in range(cu.threadIdx.x, cols, THREADS):
        v = x[r, c]
        ss += v * v
    ss = block_sum(ss, red)
    inv = np.float32(1.0) / math.sqrt(ss / cols + np.float32(eps))
    for c in range(cu.threadIdx.x, cols, THREADS):
        out[r, c] = x[r, c] * inv * np.float32(w[c])


@cu.jit
def layernorm_kernel(x: Any, w: Any, b: Any, eps: float, out: Any) -> None:
    """x, out [R, C] f32, w, b [C]: (x - mean) / sqrt(var + eps) * w + b per row. The
    variance is taken around the mean (two passes), not as E[x^2] - mean^2, which
    cancels catastrophically for rows far from zero."""
    r = cu.blockIdx.x
    cols = x.shape[1]
    red = cu.shared.array(WARPS, np.float32)
    s = np.float32(0.0)
    for c in range(cu.threadIdx.x, cols, THREADS):
        s += x[r, c]
    mean = block_sum(s, red) / cols
    s = np.float32(0.0)
    for c in range(cu.threadIdx.x, cols, THREADS):
        dv = x[r, c] - mean
        s += dv * dv
    inv = np.float32(1.0) / math.sqrt(block_sum(s, red) / cols + np.float32(eps))
    for c in range(cu.threadIdx.x, cols, THREADS):
        out[r, c] = (x[r, c] - mean) * inv * np.float32(w[c]) + np.float32(b[c])


@cu.jit
def softmax_kernel(x: Any, out: Any) -> None:
    """Row-wise softmax of x [R, C] f32: subtract the row max before exp, so large
    scores can not overflow. A row of only -inf gives NaN, as NumPy does."""
    r = cu.blockIdx.x
    cols = x.shape[1]
    red = cu.shared.array(WARPS, np.float32)
    m = np.float32(-np.inf)
    for c in range(cu.threadIdx.x, cols, THREADS):
        m = max(m, x[r, c])
    m = block_max(m, red)
    s = np.float32(0.0)
    for c in range(cu.threadIdx.x, cols, THREADS):
        s += math.exp(x[r, c] - m)
    inv = np.float32(1.0) / block_sum(s, red)
    for c in range(cu.threadIdx.x, cols, THREADS):
        out[r, c] = math.exp(x[r, c] - m) * inv


@cu.jit
def rope_kernel(x: Any, positions: Any, theta: float, out: Any) -> None:
    """x, out [B, T, D] f32 (D even), positions [T] int64; a thread per (b, t, i) pair
    rotating element i of the first half with element i of the second half."""
    nb, t, d = x.shape
    half = d // 2
    i = cu.grid(1)
    while i < nb * t * half:
        k = i % half
        row = i // half
        tt = row % t
        bb = row // t
        ang = np.float64(positions[tt]) * theta ** (-2.0 * k / d)
        c, s = math.cos(ang), math.sin(ang)
        x1, x2 = np.float64(x[bb, tt, k]), np.float64(x[bb, tt, k + half])
        out[bb, tt, k] = x1 * c - x2 * s
        out[bb, tt, k + half] = x1 * s + x2 * c
        i += cu.gridsize(1)


def rmsnorm(x: Any, w: Any, eps: float, out: Any) -> None:
    """x, out device [R, C] f32; w [C] f32."""
    if x.shape[0]:
        rmsnorm_kernel[x.shape[0], THREADS](x, w, np.float32(eps), out)


def layernorm(x: Any, w: Any, b: Any, eps: float, out: Any) -> None:
    if x.shape[0]:
        layernorm_kernel[x.shape[0], THREADS](x, w, b, np.float32(eps), out)


def softmax(x: Any, out: Any) -> None:
    if x.shape[0]:
        softmax_kernel[x.shape[0], THREADS](x, out)


def rope(x: Any, positions: Any, theta: float, out: Any) -> None:
    """x, out device [B, T, D] f32; positions device [T] int64."""
    pairs = x.shape[0] * x.shape[1] * (x.shape[2] // 2)
    if pairs:
        blocks = max(1, min(132 * 16, math.ceil(pairs / THREADS)))
        rope_kernel[blocks, THREADS](x, positions, np.float64(theta), out)
