"""Numba CUDA dequantisation of GGUF blocks (Q8_0, Q4_0, Q4_K, Q6_K) to float32.

Each thread produces one group of 32 outputs: a whole Q8_0 / Q4_0 block, or one 32-value
sub-block of a Q4_K / Q6_K super-block, reading the packed bytes exactly as
`reference.py` (and ggml-quants.c) lay them out. The f16 scales are rebuilt from their
two little-endian bytes with `gemv_cuda.half_bits`; these kernels compile without
fastmath so that subnormal scales survive that conversion instead of flushing to zero.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor_kernels.cuda_support import cuda
from gene_jit.tensor_kernels.gemv_cuda import half_bits
from gene_jit.tensor_kernels.reference import BLOCK_BYTES, BLOCK_VALUES

cu = cuda()
THREADS = 128
GROUP = 32  # outputs per thread


@cu.jit(device=True, inline=True)
def _f16(raw: Any, i: int) -> Any:
    return half_bits(np.int32(raw[i]) | (np.int32(raw[i + 1]) << 8))


@cu.jit(device=True, inline=True)
def _i8(v: Any) -> Any:
    x = np.int32(v)
    return x - 256 if x >= 128 else x


@cu.jit
def q8_0_kernel(raw: Any, out: Any) -> None:
    """34-byte blocks: f16 d, 32 int8 quants; x = d * q."""
    b = cu.grid(1)
    if b >= out.size // 32:
        return
    base = b * 34
    d = _f16(raw, base)
    for k in range(32):
        out[b * 32 + k] = d * np.float32(_i8(raw[base + 2 + k]))


@cu.jit
def q4_0_kernel(raw: Any, out: Any) -> None:
    """18-byte blocks: f16 d, 16 bytes of nibbles (low: values 0..15, high: 16..31)."""
    b = cu.grid(1)
    if b >= out.size // 32:
        return
    base = b * 18
    d = _f16(raw, base)
    for k in range(16):
        q = np.int32(raw[base + 2 + k])
        out[b * 32 + k] = d * np.float32((q & 0x0F) - 8)
        out[b * 32 + 16 + k] = d * np.float32((q >> 4) - 8)


@cu.jit
def q4_k_kernel(raw: Any, out: Any) -> None:
    """144-byte super-blocks of 256; thread = (super-block, sub-block j of 32)."""
    gi = cu.grid(1)
    if gi >= out.size // 32:
        return
    b, j = gi // 8, gi % 8
    base = b * 144
    d = _f16(raw, base)
    dmin = _f16(raw, base + 2)
    sc = base + 4  # 12 bytes of packed 6-bit scales and mins
    if j < 4:
        scale = np.int32(raw[sc + j]) & 63
        mn = np.int32(raw[sc + j + 4]) & 63
    else:
        scale = (np.int32(raw[sc + j + 4]) & 0x0F) | ((np.int32(raw[sc + j - 4]) >> 6) << 4)
        mn = (np.int32(raw[sc + j + 4]) >> 4) | ((np.int32(raw[sc + j]) >> 6) << 4)
    ds = d * np.float32(scale)
    dm = dmin * np.float32(mn)
    qs = base + 16 + 32 * (j // 2)
    shift = 4 * (j % 2)  # even sub-blocks take the low nibbles, odd ones the high
    for k in range(32):
        q = (np.int32(raw[qs + k]) >> shift) & 0x0F
        out[gi * 32 + k] = ds * np.float32(q) - dm


@cu.jit
def q6_k_kernel(raw: Any, out: Any) -> None:
    """210-byte super-blocks of 256: ql [128], qh [64], int8 scales [16], f16 d; thread =
    (super-block, half, quarter i): 32 values of 6 bits = low nibble | 2 high bits."""
    gi = cu.grid(1)
    if gi >= out.size // 32:
        return
    b, g = gi // 8, gi % 8
    half, i = g // 4, g % 4
    base = b * 210
    d = _f16(raw, base + 208)
    ql = base + 64 * half + 32 * (i % 2)
    qh = base + 128 + 32 * half
    sc = base + 192 + 8 * half + 2 * i
    nib_shift = 4 * (i // 2)
    s0 = d * np.float32(_i8(raw[sc]))
    s1 = d * np.float32(_i8(raw[sc + 1]))
    for k in range(32):
        q = ((np.int32(raw[ql + k]) >> nib_shift) & 0x0F) | (((np.int32(raw[qh + k]) >> (2 * i)) & 3) << 4)
        s = s0 if k < 16 else s1
        out[gi * 32 + k] = s * np.float32(q - 32)


KERNELS = {"q8_0": q8_0_kernel, "q4_0": q4_0_kernel, "q4_k": q4_k_kernel, "q6_k": q6_k_kernel}


def out_size(kind: str, nbytes: int) -> int:
    return nbytes // BLOCK_BYTES[kind] * BLOCK_VALUES[kind]


def dequantize(raw: Any, kind: str, out: Any) -> None:
    """raw: device uint8 [nblocks * block bytes]; out: device f32 [out_size(kind, raw.size)]."""
    groups = out.size // GROUP
    if groups:
        KERNELS[kind][math.ceil(groups / THREADS), THREADS](raw, out)
