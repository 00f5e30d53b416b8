"""Numba CUDA GEMV: `out [N] = w [N, K] @ x [K]`, f32 or f16 weights, f32 accumulate.

Built for bandwidth: one warp per output row, 8 rows per 256-thread block. f16 weights
are read as 32-bit words (two halves each) with consecutive lanes on consecutive words,
so every warp load is one coalesced 128-byte transaction, and each lane keeps four loads
in flight per loop trip. Halves widen with integer ops (no f16 unit needed); the warp
reduces with shuffles and lane 0 writes the row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor_kernels.cuda_support import cuda, simulator

cu = cuda()
ROWS_PER_BLOCK = 8
TWO_112 = np.float32(5.192296858534828e33)

if simulator():

    @cu.jit(device=True)
    def int_as_float(i: Any) -> Any:
        return np.array([i], np.int64).astype(np.uint32).view(np.float32)[0]
else:
    int_as_float = cu.libdevice.int_as_float


@cu.jit(device=True, inline=True)
def half_bits(h: Any) -> Any:
    """f16 bit pattern (low 16 bits of an int) -> float32 (finite inputs). Shifting the
    bits into place gives the value / 2^112, exactly; the multiply restores it before any
    product could fall into the subnormal range that fastmath flushes to zero."""
    return int_as_float(np.int32(((h & 0x7FFF) << 13) | ((h & 0x8000) << 16))) * TWO_112


@cu.jit(device=True, inline=True)
def warp_sum(v: Any) -> Any:
    for off in (16, 8, 4, 2, 1):
        v += cu.shfl_xor_sync(0xFFFFFFFF, v, off)
    return v


@cu.jit(fastmath=True)
def gemv_f16w_kernel(w_words: Any, x: Any, out: Any) -> None:
    """w_words [N, K/2] uint32 (f16 pairs), x [K] f32, out [N] f32."""
    lane = cu.threadIdx.x & 31
    row = cu.blockIdx.x * ROWS_PER_BLOCK + (cu.threadIdx.x >> 5)
    n, kw = w_words.shape
    if row >= n:
        return
    acc = np.float32(0.0)
    j = lane
    while j + 96 < kw:  # four independent 32-bit loads in flight per lane
        a0, a1, a2, a3 = w_words[row, j], w_words[row, j + 32], w_words[row, j + 64], w_words[row, j + 96]
        for t, a in ((0, a0), (32, a1), (64, a2), (96, a3)):
            jj = 2 * (j + t)
            acc += half_bits(np.int32(a) & 0xFFFF) * x[jj] + half_bits((np.int32(a) >> 16) & 0xFFFF) * x[jj + 1]
        j += 128
    while j < kw:
        a = np.int32(w_words[row, j])
        acc += half_bits(a & 0xFFFF) * x[2 * j] + half_bits((a >> 16) & 0xFFFF) * x[2 * j + 1]
        j += 32
    acc = warp_sum(acc)
    if lane == 0:
        out[row] = acc


@cu.jit(fastmath=True)
def gemv_f32_kernel(w: Any, x: Any, out: Any) -> None:
    """w [N, K] f32, x [K], out [N]; a warp per row, coalesced row reads."""
    lane = cu.threadIdx.x & 31
    row = cu.blockIdx.x * ROWS_PER_BLOCK + (cu.threadIdx.x >> 5)
    n, k = w.shape
    if row >= n:
        return
    acc = np.float32(0.0)
    for j in range(lane, k, 32):
        acc += w[row, j] * x[j]
    acc = warp_sum(acc)
    if lane == 0:
        out[row] = acc


def gemv(w: Any, x: Any, out: Any) -> None:
    """Launch: w is a device array [N, K] of float32, or of float16 (K even)."""
    n = w.shape[0]
    blocks = math.ceil(n / ROWS_PER_BLOCK)
    if w.dtype == np.float16:
        if w.shape[1] % 2:
            raise ValueError("f16 GEMV needs an even K")
        gemv_f16w_kernel[blocks, 32 * ROWS_PER_BLOCK](w.view(np.uint32), x, out)
    else:
        gemv_f32_kernel[blocks, 32 * ROWS_PER_BLOCK](w, x, out)
