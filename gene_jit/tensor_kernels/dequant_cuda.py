"""Numba CUDA dequantisation of GGUF blocks (Q8_0, Q4_0, Q4_K, Q6_K) to float32.

Dequantisation reads about one byte per value and writes four, so it is bound by the
stores. Each thread produces four consecutive outputs and writes them with one 16-byte
store (`vector_cuda.st4`): a warp writes 512 contiguous bytes per instruction, fully
coalesced. The packed bytes a thread needs (its four quants, the block's f16 scales, the
super-block's packed sub-block scales) are read as single bytes exactly where
`reference.py` (and ggml-quants.c) lay them out; neighbouring threads read neighbouring
bytes of the same blocks, so those loads coalesce and hit L1. Outputs that do not start
on a 16-byte boundary take four scalar stores instead (a uniform branch).

The f16 scales are rebuilt from their two little-endian bytes with `gemv_cuda.half_bits`;
these kernels compile without fastmath so that subnormal scales survive that conversion
instead of flushing to zero. Each value is computed with the same float32 operations as
the reference's definition (products of an f16 scale and small integers are exact).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor_kernels.cuda_support import cuda
from gene_jit.tensor_kernels.gemv_cuda import half_bits
from gene_jit.tensor_kernels.reference import BLOCK_BYTES, BLOCK_VALUES
from gene_jit.tensor_kernels.vector_cuda import aligned, st4

cu = cuda()
THREADS = 256
PER_THREAD = 4  # consecutive outputs per thread: one 16-byte store


@cu.jit(device=True, inline=True)
def _f16(raw: Any, i: int) -> Any:
    return half_bits(np.int32(raw[i]) | (np.int32(raw[i + 1]) << 8))


@cu.jit(device=True, inline=True)
def _i8(v: Any) -> Any:
    x = np.int32(v)
    return x - 256 if x >= 128 else x


@cu.jit(device=True, inline=True)
def _store4(out: Any, i: int, vec: bool, x0: Any, x1: Any, x2: Any, x3: Any) -> None:
    if vec:
        st4(out, i, x0, x1, x2, x3)
    else:
        out[i] = x0
        out[i + 1] = x1
        out[i + 2] = x2
        out[i + 3] = x3


@cu.jit
def q8_0_kernel(raw: Any, out: Any, vec: bool) -> None:
    """34-byte blocks: f16 d, 32 int8 quants; x = d * q. Thread: outputs i..i+3."""
    i = cu.grid(1) * PER_THREAD
    if i >= out.size:
        return
    base = (i >> 5) * 34
    d = _f16(raw, base)
    p = base + 2 + (i & 31)
    _store4(out, i, vec, d * np.float32(_i8(raw[p])), d * np.float32(_i8(raw[p + 1])),
            d * np.float32(_i8(raw[p + 2])), d * np.float32(_i8(raw[p + 3])))


@cu.jit
def q4_0_kernel(raw: Any, out: Any, vec: bool) -> None:
    """18-byte blocks: f16 d, 16 bytes of nibbles (low: values 0..15, high: 16..31);
    x = d * (nibble - 8)."""
    i = cu.grid(1) * PER_THREAD
    if i >= out.size:
        return
    base = (i >> 5) * 18
    d = _f16(raw, base)
    k = i & 31
    p = base + 2 + (k & 15)
    shift = 4 * (k >> 4)
    _store4(out, i, vec, d * np.float32(((np.int32(raw[p]) >> shift) & 0x0F) - 8),
            d * np.float32(((np.int32(raw[p + 1]) >> shift) & 0x0F) - 8),
            d * np.float32(((np.int32(raw[p + 2]) >> shift) & 0x0F) - 8),
            d * np.float32(((np.int32(raw[p + 3]) >> shift) & 0x0F) - 8))


@cu.jit
def q4_k_kernel(raw: Any, out: Any, vec: bool) -> None:
    """144-byte super-blocks of 256: f16 d, f16 dmin, 12 bytes of packed 6-bit (scale,
    min) pairs, 128 bytes of nibbles; sub-block j of 32 takes the low (even j) or high
    (odd j) nibbles of bytes 32 * (j // 2) ..; x = d * scale_j * q - dmin * min_j."""
    i = cu.grid(1) * PER_THREAD
    if i >= out.size:
        return
    base = (i >> 8) * 144
    j = (i >> 5) & 7
    d = _f16(raw, base)
    dmin = _f16(raw, base + 2)
    sc = base + 4
    if j < 4:
        scale = np.int32(raw[sc + j]) & 63
        mn = np.int32(raw[sc + j + 4]) & 63
    else:
        scale = (np.int32(raw[sc + j + 4]) & 0x0F) | ((np.int32(raw[sc + j - 4]) >> 6) << 4)
        mn = (np.int32(raw[sc + j + 4]) >> 4) | ((np.int32(raw[sc + j]) >> 6) << 4)
    ds = d * np.float32(scale)
    dm = dmin * np.float32(mn)
    p = base + 16 + 32 * (j >> 1) + (i & 31)
    shift = 4 * (j & 1)
    _store4(out, i, vec, ds * np.float32((np.int32(raw[p]) >> shift) & 0x0F) - dm,
            ds * np.float32((np.int32(raw[p + 1]) >> shift) & 0x0F) - dm,
            ds * np.float32((np.int32(raw[p + 2]) >> shift) & 0x0F) - dm,
            ds * np.float32((np.int32(raw[p + 3]) >> shift) & 0x0F) - dm)


@cu.jit(device=True, inline=True)
def _q6(ql: Any, qh: Any, nib_shift: int, hi_shift: int) -> Any:
    """One 6-bit Q6_K quant, centred: low nibble | 2 high bits, minus 32."""
    return np.float32((((np.int32(ql) >> nib_shift) & 0x0F) | (((np.int32(qh) >> hi_shift) & 3) << 4)) - 32)


@cu.jit
def q6_k_kernel(raw: Any, out: Any, vec: bool) -> None:
    """210-byte super-blocks of 256: ql [128], qh [64], int8 scales [16], f16 d. Value
    r = 128 * half + 32 * quarter + k takes nibble (quarter // 2) of ql[64 * half + 32 *
    (quarter % 2) + k], bits 2 * quarter of qh[32 * half + k], and scale 8 * half + 2 *
    quarter + k // 16; x = d * scale * (q - 32)."""
    i = cu.grid(1) * PER_THREAD
    if i >= out.size:
        return
    base = (i >> 8) * 210
    half = (i >> 7) & 1
    quarter = (i >> 5) & 3
    k = i & 31
    d = _f16(raw, base + 208)
    s = d * np.float32(_i8(raw[base + 192 + 8 * half + 2 * quarter + (k >> 4)]))
    ql = base + 64 * half + 32 * (quarter & 1) + k
    qh = base + 128 + 32 * half + k
    ns, hs = 4 * (quarter >> 1), 2 * quarter
    _store4(out, i, vec, s * _q6(raw[ql], raw[qh], ns, hs), s * _q6(raw[ql + 1], raw[qh + 1], ns, hs),
            s * _q6(raw[ql + 2], raw[qh + 2], ns, hs), s * _q6(raw[ql + 3], raw[qh + 3], ns, hs))


KERNELS = {"q8_0": q8_0_kernel, "q4_0": q4_0_kernel, "q4_k": q4_k_kernel, "q6_k": q6_k_kernel}


def out_size(kind: str, nbytes: int) -> int:
    return nbytes // BLOCK_BYTES[kind] * BLOCK_VALUES[kind]


def dequantize(raw: Any, kind: str, out: Any) -> None:
    """raw: device uint8 [nblocks * block bytes]; out: device f32 [out_size(kind, raw.size)]."""
    threads = out.size // PER_THREAD  # block sizes are multiples of 32 values
    if threads:
        KERNELS[kind][math.ceil(threads / THREADS), THREADS](raw, out, aligned(out))
