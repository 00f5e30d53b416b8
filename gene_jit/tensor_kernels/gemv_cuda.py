"""Numba CUDA GEMV: `out [N] = w [N, K] @ x [K]`, f32 or f16 weights, f32 accumulate.

GEMV moves each weight once and does two flops per weight, so it is bound by memory
bandwidth; everything here serves keeping enough bytes in flight. The fast kernel
(`_make_vec_kernel`, for 16-byte aligned rows with K a multiple of 8) gives each warp
`ROWS` rows; a lane reads 8 weights per row with one 16-byte load (`vector_cuda.ld8`,
hardware f16 -> f32), two chunks per loop trip, so each lane has `2 * ROWS` weight loads
outstanding, and the chunk of x it multiplies is loaded once for all its rows. Warps
reduce with shuffles and lane r writes row r. Other shapes use the word kernel
(`gemv_f16w_kernel`: 32-bit loads, integer widening) or the plain f32 kernel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor_kernels.cuda_support import cuda, simulator
from gene_jit.tensor_kernels.vector_cuda import Launcher, aligned, array_type, ld8

cu = cuda()
ROWS_PER_BLOCK = 8
ROWS = 2  # rows per warp in the vector kernel
VEC_WARPS = 4  # warps per block in the vector kernel: small blocks spread over all SMs
TWO_112 = np.float32(5.192296858534828e33)

if simulator():

    @cu.jit(device=True)
    def int_as_float(i: Any) -> Any:
        return np.array([i], np.int64).astype(np.uint32).view(np.float32)[0]
else:
    int_as_float = cu.libdevice.int_as_float


@cu.jit(device=True, inline=True)
def half_bits(h: Any) -> Any:
    """f16 bit pattern (low 16 bits of an int) -> float32. Shifting the bits into place
    gives the value / 2^112, exactly; the multiply restores it before any product could
    fall into the subnormal range that fastmath flushes to zero. Inf and NaN patterns (a
    corrupt file's scales) get an exponent of all ones, which the multiply keeps."""
    top = 0x7F800000 if (h & 0x7C00) == 0x7C00 else 0
    return int_as_float(np.int32(((h & 0x7FFF) << 13) | ((h & 0x8000) << 16) | top)) * TWO_112


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


@cu.jit(device=True, inline=True)
def dot8(w: Any, x: Any) -> Any:
    return (w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3] * x[3]
            + w[4] * x[4] + w[5] * x[5] + w[6] * x[6] + w[7] * x[7])


def _make_vec_kernel(rows: int, warps: int) -> Any:
    """The vector kernel with `rows` rows per warp and `warps` warps per block as
    compile-time constants (so the per-row accumulators stay in registers)."""

    @cu.jit(fastmath=True)
    def gemv_vec_kernel(w: Any, x: Any, out: Any, n: int, k: int) -> None:
        """w flat [N*K] (f16 or f32), x [K] f32, out [N] f32; K % 8 == 0, rows 16-byte aligned."""
        lane = cu.threadIdx.x & 31
        r0 = (cu.blockIdx.x * warps + (cu.threadIdx.x >> 5)) * rows
        if r0 >= n:
            return
        acc = cu.local.array(rows, np.float32)
        base = cu.local.array(rows, np.int64)
        for r in range(rows):
            acc[r] = 0.0
            base[r] = np.int64(min(r0 + r, n - 1)) * k  # rows past N re-read the last row
        nch = k >> 3
        c = lane
        while c + 32 < nch:  # two chunks per trip: 2 * rows independent 16-byte loads
            xa = ld8(x, c * 8)
            xb = ld8(x, c * 8 + 256)
            for r in range(rows):
                wa = ld8(w, base[r] + c * 8)
                wb = ld8(w, base[r] + c * 8 + 256)
                acc[r] += dot8(wa, xa) + dot8(wb, xb)
            c += 64
        if c < nch:
            xa = ld8(x, c * 8)
            for r in range(rows):
                acc[r] += dot8(ld8(w, base[r] + c * 8), xa)
        for r in range(rows):
            s = warp_sum(acc[r])
            if lane == r and r0 + r < n:
                out[r0 + r] = s

    return gemv_vec_kernel


_launchers: dict[tuple[str, int, int], Launcher] = {}


def vector_launcher(dtype: Any, rows: int = ROWS, warps: int = VEC_WARPS) -> Launcher:
    from numba import types

    key = (np.dtype(dtype).name, rows, warps)
    if key not in _launchers:
        kern = _make_vec_kernel(rows, warps)
        _launchers[key] = Launcher(kern, (array_type(dtype), array_type(np.float32),
                                          array_type(np.float32), types.int64, types.int64))
    return _launchers[key]


def vector_ok(w: Any, x: Any, out: Any) -> bool:
    """Whether the 16-byte-load kernel applies: f16/f32 weights, f32 x and out, K a
    multiple of 8, every row and x 16-byte aligned, all contiguous."""
    return (w.ndim == 2 and w.dtype in (np.float16, np.float32) and x.dtype == np.float32
            and out.dtype == np.float32 and x.ndim == 1 and out.ndim == 1
            and aligned(w, w.shape[1]) and aligned(x) and out.is_c_contiguous())


def gemv(w: Any, x: Any, out: Any, rows: int = ROWS, warps: int = VEC_WARPS) -> None:
    """Launch: w is a device array [N, K] of float32, or of float16 (K even). `rows` and
    `warps` shape the vector kernel (the defaults are the tuned ones)."""
    n = w.shape[0]
    if vector_ok(w, x, out):
        vector_launcher(w.dtype, rows, warps)(math.ceil(n / (rows * warps)), 32 * warps,
                                              w.reshape(w.size), x, out, n, w.shape[1])
        return
    blocks = math.ceil(n / ROWS_PER_BLOCK)
    if w.dtype == np.float16:
        if w.shape[1] % 2:
            raise ValueError("f16 GEMV needs an even K")
        gemv_f16w_kernel[blocks, 32 * ROWS_PER_BLOCK](w.view(np.uint32), x, out)
    else:
        gemv_f32_kernel[blocks, 32 * ROWS_PER_BLOCK](w, x, out)
