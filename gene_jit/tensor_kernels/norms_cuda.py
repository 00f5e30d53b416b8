"""Numba CUDA row kernels: RMSNorm, LayerNorm, softmax (row-wise, numerically stable)
and RoPE (half-split pairing, as reference.rope).

The norms and softmax give each row one block: threads stride along the row (coalesced),
each keeps a partial, warps reduce with shuffles and the warps' results meet in shared
memory. A row is read from global memory once per pass (two passes for the norms: the
statistic, then the scaled write; three for softmax: max, sum, write), which for the
widths of a model (a few thousand) hits in L1/L2 after the first pass.

Rows of f32 whose width is a multiple of 4 and at most `MAX_PER * 4 * THREADS` (and
16-byte aligned) take the register kernels instead (`row_kernel`): each thread loads
its share of the row once, as 16-byte vectors (`vector_cuda.ld4`), keeps it in registers
across the reductions and writes the result with 16-byte stores. The row then crosses
HBM once each way, where the plain kernels read it two or three times (through L1/L2),
and softmax takes each exp once. The number of vectors per thread is a compile-time
constant of the generated kernel (so the per-thread array stays in registers); a launch
picks the smallest variant that covers the row.

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
from gene_jit.tensor_kernels.vector_cuda import aligned, ld4, st4

cu = cuda()
THREADS = 256
WARPS = 8  # THREADS / 32, spelled out: shared array sizes must be literals
MAX_PER = 8  # 16-byte vectors per thread in the register kernels: rows up to 8192
RMS, LAYER, SOFTMAX = 0, 1, 2


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


@cu.jit(device=True, inline=True)
def _row_sum(vals: Any, nv: int, per: int, shift: float, square: bool) -> Any:
    """This thread's part of sum(v - shift) (or of its squares) over its live vectors."""
    s = np.float32(0.0)
    for p in range(per):
        if cu.threadIdx.x + p * THREADS < nv:
            for e in range(4):
                dv = vals[p, e] - shift
                s += dv * dv if square else dv
    return s


@cu.jit(device=True, inline=True)
def _norm_stats(kind: int, vals: Any, nv: int, per: int, cols: int, eps: float, red: Any) -> tuple[Any, Any]:
    """(shift, scale) of a norm's row: (0, 1 / rms) or (mean, 1 / std), with the plain
    kernels' arithmetic."""
    if kind == RMS:
        ss = block_sum(_row_sum(vals, nv, per, np.float32(0.0), True), red)
        return np.float64(0.0), np.float64(1.0) / math.sqrt(ss / cols + np.float32(eps))
    mean = block_sum(_row_sum(vals, nv, per, np.float32(0.0), False), red) / cols
    var = block_sum(_row_sum(vals, nv, per, mean, True), red) / cols
    return mean, np.float64(1.0) / math.sqrt(var + np.float32(eps))


def _make_row_kernel(kind: int, per: int) -> Any:
    """The register kernel for one op (RMS, LAYER or SOFTMAX) with `per` 16-byte vectors
    per thread: one block per row of x, out flat [R * cols]; w, b [cols] (unused by
    softmax, b unused by RMS). Same arithmetic as the plain kernels, one read of the row."""

    @cu.jit
    def row_kernel(x: Any, w: Any, b: Any, eps: float, cols: int, out: Any) -> None:
        red = cu.shared.array(WARPS, np.float32)
        base = cu.blockIdx.x * cols
        nv = cols >> 2
        vals = cu.local.array((per, 4), np.float32)
        m = np.float32(-np.inf)
        for p in range(per):
            v = cu.threadIdx.x + p * THREADS
            if v < nv:
                t = ld4(x, base + 4 * v)
                for e in range(4):
                    vals[p, e] = t[e]
                    m = max(m, t[e])
        if kind == SOFTMAX:
            m = block_max(m, red)
            for p in range(per):
                if cu.threadIdx.x + p * THREADS < nv:
                    for e in range(4):
                        vals[p, e] = math.exp(vals[p, e] - m)
            inv = np.float32(1.0) / block_sum(_row_sum(vals, nv, per, np.float32(0.0), False), red)
            for p in range(per):
                v = cu.threadIdx.x + p * THREADS
                if v < nv:
                    st4(out, base + 4 * v, vals[p, 0] * inv, vals[p, 1] * inv, vals[p, 2] * inv, vals[p, 3] * inv)
            return
        shift, scale = _norm_stats(kind, vals, nv, per, cols, eps, red)
        r = cu.local.array(4, np.float32)
        for p in range(per):
            v = cu.threadIdx.x + p * THREADS
            if v < nv:
                wv = ld4(w, 4 * v)
                if kind == LAYER:
                    bv = ld4(b, 4 * v)
                    for e in range(4):
                        r[e] = (vals[p, e] - shift) * scale * wv[e] + bv[e]
                else:
                    for e in range(4):
                        r[e] = vals[p, e] * scale * wv[e]
                st4(out, base + 4 * v, r[0], r[1], r[2], r[3])

    return row_kernel


_row_kernels: dict[tuple[int, int], Any] = {}


def row_kernel(kind: int, per: int) -> Any:
    if (kind, per) not in _row_kernels:
        _row_kernels[(kind, per)] = _make_row_kernel(kind, per)
    return _row_kernels[(kind, per)]


def _per(x: Any, *params: Any) -> int:
    """Vectors per thread for the register kernel on rows of x [R, C], or 0 when the
    plain kernel must run (ragged or too wide rows, unaligned or non-f32 arrays)."""
    cols = x.shape[1]
    if cols % 4 or cols > MAX_PER * 4 * THREADS or x.dtype != np.float32:
        return 0
    if not all(a.dtype == np.float32 and aligned(a) for a in (x, *params)):
        return 0
    per = 1
    while per * 4 * THREADS < cols:
        per *= 2
    return per


def _flat(a: Any) -> Any:
    return a.reshape(a.size)


def rmsnorm(x: Any, w: Any, eps: float, out: Any) -> None:
    """x, out device [R, C] f32; w [C] f32."""
    if not x.shape[0]:
        return
    per = _per(x, w, out)
    if per:
        row_kernel(RMS, per)[x.shape[0], THREADS](_flat(x), w, w, np.float32(eps), x.shape[1], _flat(out))
        return
    rmsnorm_kernel[x.shape[0], THREADS](x, w, np.float32(eps), out)


def layernorm(x: Any, w: Any, b: Any, eps: float, out: Any) -> None:
    if not x.shape[0]:
        return
    per = _per(x, w, b, out)
    if per:
        row_kernel(LAYER, per)[x.shape[0], THREADS](_flat(x), w, b, np.float32(eps), x.shape[1], _flat(out))
        return
    layernorm_kernel[x.shape[0], THREADS](x, w, b, np.float32(eps), out)


def softmax(x: Any, out: Any) -> None:
    if not x.shape[0]:
        return
    per = _per(x, out)
    if per:
        flat = _flat(x)
        row_kernel(SOFTMAX, per)[x.shape[0], THREADS](flat, flat, flat, np.float32(0.0), x.shape[1], _flat(out))
        return
    softmax_kernel[x.shape[0], THREADS](x, out)


def rope(x: Any, positions: Any, theta: float, out: Any) -> None:
    """x, out device [B, T, D] f32; positions device [T] int64."""
    pairs = x.shape[0] * x.shape[1] * (x.shape[2] // 2)
    if pairs:
        blocks = max(1, min(132 * 16, math.ceil(pairs / THREADS)))
        rope_kernel[blocks, THREADS](x, positions, np.float64(theta), out)
