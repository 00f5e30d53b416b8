"""Numba CPU products with GGUF weights dequantised inside the product (fused): the
weights stay in their blocks in memory, and each block is decoded in registers where it
is multiplied. The native engine multiplies quantised weights with integer dot products
instead (qdot_cpu.py, as llama.cpp does); it uses these for F16, BF16 and F32 weights
and for embedding rows.

Layouts: a weight is `w [N, row_bytes]` uint8, one output feature per row (llama.cpp's
`[out, in]`), each row a whole number of blocks of its type; activations are `x [T, K]`
float32 row-major; `out [T, N]`. Types (the `kind` argument): Q8_0, Q4_0, Q5_0, Q4_K,
Q6_K, and the plain F32, F16, BF16 read from the same raw bytes. Block layouts are
documented beside the float64 references in reference.py.

- `qgemv(w, kind, x, out)`: one token (`x [K]`, `out [N]`), rows in parallel. Each
  block's dot product accumulates the integer quants times x in float32, and the block
  scale multiplies the sum once; constant offsets (Q4_0's 8, Q5_0's 16, Q4_K's mins) are
  applied through per-32 sums of x computed once per call.
- `qmatmul(w, kind, x, out)`: several tokens (prefill), rows in parallel in chunks; each
  row is decoded once into a float32 scratch row and dotted with four tokens at a time.
- `dequant_rows(w, kind, ids, out)`: the rows `ids` decoded (embedding lookup).
- `round_activations(kind, x, out)`: activations rounded as llama.cpp's CPU backend
  rounds them before a product with a weight of `kind` (8-bit blocks, f16, bf16).
- `qgemv_rows`, `qmatmul_rows`: a range of output rows of either, serial and without
  the GIL, for callers that split the rows over threads of their own.

Block scales are IEEE halves; `_half` widens one with integer shifts and a bit cast
(zero, subnormal and normal values exact; inf and NaN, from a corrupt file, stay inf and
NaN as ggml reads them).
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

import gene_jit.tensor_kernels.kernel_cache  # noqa: F401  (cache stamp, before decorating)

F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q6_K = 0, 1, 2, 3, 4, 5, 6, 7
KINDS = {"f32": F32, "f16": F16, "bf16": BF16, "q8_0": Q8_0, "q4_0": Q4_0, "q5_0": Q5_0,
         "q4_k": Q4_K, "q6_k": Q6_K}
# (bytes, values) of one block of each kind
BLOCKS = {F32: (4, 1), F16: (2, 1), BF16: (2, 1), Q8_0: (34, 32), Q4_0: (18, 32),
          Q5_0: (22, 32), Q4_K: (144, 256), Q6_K: (210, 256)}

_TWO_112 = np.float32(5.192296858534828e33)
GEMV_CHUNK = 64  # rows a parallel item of qgemv runs with one lane scratch
ROW_CHUNK = 16  # rows a parallel item of qmatmul decodes with one scratch row


@intrinsic
def _bits_f32(typingctx: Any, bits: types.Type) -> Any:
    """The float32 whose bit pattern is the uint32 `bits`."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.uint32), codegen


@nb.njit(cache=True, inline="always")
def _half(lo: Any, hi: Any) -> Any:
    h = np.uint32(lo) | (np.uint32(hi) << np.uint32(8))
    b = ((h & np.uint32(0x7FFF)) << np.uint32(13)) | ((h & np.uint32(0x8000)) << np.uint32(16))
    if (h & np.uint32(0x7C00)) == np.uint32(0x7C00):  # inf, NaN: an f32 exponent of all ones
        b |= np.uint32(0x7F800000)
    return _bits_f32(b) * _TWO_112  # type: ignore[call-arg]


@nb.njit(cache=True, inline="always")
def _i8(b: Any) -> Any:
    v = np.int32(b)
    return np.float32(v - 256 if v > 127 else v)


@nb.njit(cache=True, inline="always")
def _k4_scale_min(j: int, row: np.ndarray, o: int) -> tuple[Any, Any]:
    """The six-bit (scale, min) of Q4_K sub-block `j` from the 12 bytes at row[o:]."""
    if j < 4:
        return np.int32(row[o + j]) & 63, np.int32(row[o + j + 4]) & 63
    a = np.int32(row[o + j + 4])
    return ((a & 0x0F) | ((np.int32(row[o + j - 4]) >> 6) << 4),
            (a >> 4) | ((np.int32(row[o + j]) >> 6) << 4))


# ---- fused dot products of one row with x (x [K], xs [K // 32] sums of 32 values) ----
# Each block adds its scaled products into 32 lanes (`acc`, float32 scratch) that are
# summed once per row: a sum per block would cost a horizontal reduction per block.


@nb.njit(fastmath=True, cache=True, inline="always")
def _lanes(acc: np.ndarray) -> Any:
    s = np.float32(0.0)
    for i in range(32):
        s += acc[i]
    return s


@nb.njit(fastmath=True, cache=True, inline="always")
def _dot_q8_0(row: np.ndarray, x: np.ndarray, xs: np.ndarray, acc: np.ndarray) -> Any:
    acc[:] = 0.0
    for b in range(x.shape[0] // 32):
        o = b * 34
        q = row[o + 2 : o + 34]
        xb = x[b * 32 : b * 32 + 32]
        d = _half(row[o], row[o + 1])
        for i in range(32):
            acc[i] += d * _i8(q[i]) * xb[i]
    return _lanes(acc)


@nb.njit(fastmath=True, cache=True, inline="always")
def _dot_q4_0(row: np.ndarray, x: np.ndarray, xs: np.ndarray, acc: np.ndarray) -> Any:
    acc[:] = 0.0
    off = np.float32(0.0)
    for b in range(x.shape[0] // 32):
        o = b * 18
        q = row[o + 2 : o + 18]
        xb = x[b * 32 : b * 32 + 32]
        d = _half(row[o], row[o + 1])
        for i in range(16):
            v = np.int32(q[i])
            acc[i] += d * np.float32(v & 0x0F) * xb[i]
            acc[16 + i] += d * np.float32(v >> 4) * xb[16 + i]
        off += d * xs[b]
    return _lanes(acc) - np.float32(8.0) * off


@nb.njit(fastmath=True, cache=True, inline="always")
def _dot_q5_0(row: np.ndarray, x: np.ndarray, xs: np.ndarray, acc: np.ndarray) -> Any:
    acc[:] = 0.0
    off = np.float32(0.0)
    for b in range(x.shape[0] // 32):
        o = b * 22
        qh = (np.uint32(row[o + 2]) | (np.uint32(row[o + 3]) << np.uint32(8))
              | (np.uint32(row[o + 4]) << np.uint32(16)) | (np.uint32(row[o + 5]) << np.uint32(24)))
        q = row[o + 6 : o + 22]
        xb = x[b * 32 : b * 32 + 32]
        d = _half(row[o], row[o + 1])
        for i in range(16):
            v = np.uint32(q[i])
            lo = (v & np.uint32(0x0F)) | (((qh >> np.uint32(i)) & np.uint32(1)) << np.uint32(4))
            hi = (v >> np.uint32(4)) | (((qh >> np.uint32(i + 16)) & np.uint32(1)) << np.uint32(4))
            acc[i] += d * np.float32(lo) * xb[i]
            acc[16 + i] += d * np.float32(hi) * xb[16 + i]
        off += d * xs[b]
    return _lanes(acc) - np.float32(16.0) * off


@nb.njit(fastmath=True, cache=True, inline="always")
def _dot_q4_k(row: np.ndarray, x: np.ndarray, xs: np.ndarray, acc: np.ndarray) -> Any:
    acc[:] = 0.0
    off = np.float32(0.0)
    for b in range(x.shape[0] // 256):
        o = b * 144
        d = _half(row[o], row[o + 1])
        dmin = _half(row[o + 2], row[o + 3])
        for c in range(4):
            s1, m1 = _k4_scale_min(2 * c, row, o + 4)
            s2, m2 = _k4_scale_min(2 * c + 1, row, o + 4)
            d1, d2 = d * np.float32(s1), d * np.float32(s2)
            q = row[o + 16 + c * 32 : o + 48 + c * 32]
            xb = x[b * 256 + c * 64 : b * 256 + c * 64 + 64]
            for i in range(32):
                v = np.int32(q[i])
                acc[i] += d1 * np.float32(v & 0x0F) * xb[i] + d2 * np.float32(v >> 4) * xb[32 + i]
            sub = b * 8 + 2 * c
            off += dmin * (np.float32(m1) * xs[sub] + np.float32(m2) * xs[sub + 1])
    return _lanes(acc) - off


@nb.njit(fastmath=True, cache=True, inline="always")
def _dot_q6_k(row: np.ndarray, x: np.ndarray, xs: np.ndarray, acc: np.ndarray) -> Any:
    acc[:] = 0.0
    for b in range(x.shape[0] // 256):
        o = b * 210
        d = _half(row[o + 208], row[o + 209])
        for half in range(2):
            ql = row[o + 64 * half : o + 64 * half + 64]
            qh = row[o + 128 + 32 * half : o + 160 + 32 * half]
            so = o + 192 + 8 * half
            xb = x[b * 256 + 128 * half : b * 256 + 128 * half + 128]
            for part in range(2):
                c1, c2 = d * _i8(row[so + part]), d * _i8(row[so + 2 + part])
                c3, c4 = d * _i8(row[so + 4 + part]), d * _i8(row[so + 6 + part])
                for j in range(16):
                    i = 16 * part + j
                    lo1, lo2 = np.int32(ql[i]), np.int32(ql[32 + i])
                    hb = np.int32(qh[i])
                    acc[i] += (c1 * np.float32(((lo1 & 0x0F) | ((hb & 3) << 4)) - 32) * xb[i]
                               + c2 * np.float32(((lo2 & 0x0F) | (((hb >> 2) & 3) << 4)) - 32) * xb[32 + i]
                               + c3 * np.float32(((lo1 >> 4) | (((hb >> 4) & 3) << 4)) - 32) * xb[64 + i]
                               + c4 * np.float32(((lo2 >> 4) | (((hb >> 6) & 3) << 4)) - 32) * xb[96 + i])
    return _lanes(acc)


@nb.njit(fastmath=True, cache=True, inline="always")
def _plain(kind: int, row: np.ndarray, j: int) -> Any:
    """Value j of a row of plain floats (F32, F16, BF16) stored as bytes."""
    if kind == F32:
        o = 4 * j
        return _bits_f32(np.uint32(row[o]) | (np.uint32(row[o + 1]) << np.uint32(8))  # type: ignore[call-arg]
                         | (np.uint32(row[o + 2]) << np.uint32(16))
                         | (np.uint32(row[o + 3]) << np.uint32(24)))
    if kind == BF16:
        return _bits_f32((np.uint32(row[2 * j]) << np.uint32(16))  # type: ignore[call-arg]
                         | (np.uint32(row[2 * j + 1]) << np.uint32(24)))
    return _half(row[2 * j], row[2 * j + 1])


@nb.njit(fastmath=True, cache=True, inline="always")
def _dot(kind: int, row: np.ndarray, x: np.ndarray, xs: np.ndarray, acc: np.ndarray) -> Any:
    if kind == Q8_0:
        return _dot_q8_0(row, x, xs, acc)
    if kind == Q4_0:
        return _dot_q4_0(row, x, xs, acc)
    if kind == Q5_0:
        return _dot_q5_0(row, x, xs, acc)
    if kind == Q4_K:
        return _dot_q4_k(row, x, xs, acc)
    if kind == Q6_K:
        return _dot_q6_k(row, x, xs, acc)
    s = np.float32(0.0)
    for j in range(x.shape[0]):
        s += _plain(kind, row, j) * x[j]
    return s


@nb.njit(fastmath=True, cache=True, nogil=True)
def sums32(x: np.ndarray) -> np.ndarray:
    """The sums of each 32 values of x [K] (the offsets of Q4_0, Q5_0 and Q4_K blocks)."""
    xs = np.zeros(x.shape[0] // 32, np.float32)
    for b in range(xs.shape[0]):
        s = np.float32(0.0)
        for i in range(32):
            s += x[b * 32 + i]
        xs[b] = s
    return xs


@nb.njit(parallel=True, fastmath=True, cache=True)
def qgemv(w: np.ndarray, kind: int, x: np.ndarray, out: np.ndarray) -> None:
    """out [N] = W x for one token: w [N, row_bytes] uint8, x [K] float32."""
    xs = sums32(x)
    n = w.shape[0]
    for c in nb.prange((n + GEMV_CHUNK - 1) // GEMV_CHUNK):
        qgemv_rows(w, kind, x, xs, out, c * GEMV_CHUNK, min(n, c * GEMV_CHUNK + GEMV_CHUNK))


@nb.njit(fastmath=True, cache=True, nogil=True)
def qgemv_rows(w: np.ndarray, kind: int, x: np.ndarray, xs: np.ndarray, out: np.ndarray,
               r0: int, r1: int) -> None:
    """out[r0:r1] of qgemv on the calling thread (`xs = sums32(x)`), without the GIL: the
    engine splits large products over threads of its own (gene_jit/engine/threads.py)."""
    acc = np.empty(32, np.float32)
    for r in range(r0, r1):
        out[r] = _dot(kind, w[r], x, xs, acc)


# ---- whole rows decoded (prefill products, embedding rows) ----


@nb.njit(fastmath=True, cache=True)
def dequant_row(kind: int, row: np.ndarray, out: np.ndarray) -> None:
    """Decode one weight row into out [K] float32."""
    k = out.shape[0]
    if kind == Q8_0:
        for b in range(k // 32):
            d = _half(row[b * 34], row[b * 34 + 1])
            for i in range(32):
                out[b * 32 + i] = d * _i8(row[b * 34 + 2 + i])
    elif kind == Q4_0:
        for b in range(k // 32):
            o = b * 18
            d = _half(row[o], row[o + 1])
            for i in range(16):
                q = np.int32(row[o + 2 + i])
                out[b * 32 + i] = d * np.float32((q & 0x0F) - 8)
                out[b * 32 + 16 + i] = d * np.float32((q >> 4) - 8)
    elif kind == Q5_0:
        for b in range(k // 32):
            o = b * 22
            d = _half(row[o], row[o + 1])
            qh = (np.int64(row[o + 2]) | (np.int64(row[o + 3]) << 8)
                  | (np.int64(row[o + 4]) << 16) | (np.int64(row[o + 5]) << 24))
            for i in range(16):
                v = np.int64(row[o + 6 + i])
                out[b * 32 + i] = d * np.float32(((v & 0x0F) | (((qh >> i) & 1) << 4)) - 16)
                out[b * 32 + 16 + i] = d * np.float32(((v >> 4) | (((qh >> (i + 16)) & 1) << 4)) - 16)
    elif kind == Q4_K:
        _row_q4_k(row, out)
    elif kind == Q6_K:
        _row_q6_k(row, out)
    else:
        for j in range(k):
            out[j] = _plain(kind, row, j)


@nb.njit(fastmath=True, cache=True, inline="always")
def _row_q4_k(row: np.ndarray, out: np.ndarray) -> None:
    for b in range(out.shape[0] // 256):
        o = b * 144
        d = _half(row[o], row[o + 1])
        dmin = _half(row[o + 2], row[o + 3])
        for c in range(4):
            s1, m1 = _k4_scale_min(2 * c, row, o + 4)
            s2, m2 = _k4_scale_min(2 * c + 1, row, o + 4)
            d1, mm1 = d * np.float32(s1), dmin * np.float32(m1)
            d2, mm2 = d * np.float32(s2), dmin * np.float32(m2)
            base = b * 256 + c * 64
            for i in range(32):
                q = np.int32(row[o + 16 + c * 32 + i])
                out[base + i] = d1 * np.float32(q & 0x0F) - mm1
                out[base + 32 + i] = d2 * np.float32(q >> 4) - mm2


@nb.njit(fastmath=True, cache=True, inline="always")
def _row_q6_k(row: np.ndarray, out: np.ndarray) -> None:
    for b in range(out.shape[0] // 256):
        o = b * 210
        d = _half(row[o + 208], row[o + 209])
        for half in range(2):
            ql, qh, so = o + 64 * half, o + 128 + 32 * half, o + 192 + 8 * half
            base = b * 256 + 128 * half
            for i in range(32):
                lo1, lo2 = np.int32(row[ql + i]), np.int32(row[ql + 32 + i])
                hb = np.int32(row[qh + i])
                s = i // 16
                out[base + i] = d * _i8(row[so + s]) * np.float32(
                    ((lo1 & 0x0F) | ((hb & 3) << 4)) - 32)
                out[base + 32 + i] = d * _i8(row[so + s + 2]) * np.float32(
                    ((lo2 & 0x0F) | (((hb >> 2) & 3) << 4)) - 32)
                out[base + 64 + i] = d * _i8(row[so + s + 4]) * np.float32(
                    ((lo1 >> 4) | (((hb >> 4) & 3) << 4)) - 32)
                out[base + 96 + i] = d * _i8(row[so + s + 6]) * np.float32(
                    ((lo2 >> 4) | (((hb >> 6) & 3) << 4)) - 32)


@nb.njit(parallel=True, fastmath=True, cache=True)
def qmatmul(w: np.ndarray, kind: int, x: np.ndarray, out: np.ndarray) -> None:
    """out [T, N] = x [T, K] W^T: each row of W decoded once, then dotted with four
    tokens at a time (one load of the row feeds four sums)."""
    n = w.shape[0]
    for c in nb.prange((n + ROW_CHUNK - 1) // ROW_CHUNK):
        qmatmul_rows(w, kind, x, out, c * ROW_CHUNK, min(n, c * ROW_CHUNK + ROW_CHUNK))


@nb.njit(fastmath=True, cache=True, nogil=True)
def qmatmul_rows(w: np.ndarray, kind: int, x: np.ndarray, out: np.ndarray, r0: int,
                 r1: int) -> None:
    """Columns r0:r1 of qmatmul's out, on the calling thread without the GIL."""
    t_all, k = x.shape
    buf = np.empty(k, np.float32)
    for r in range(r0, r1):
        dequant_row(kind, w[r], buf)
        t = 0
        while t + 4 <= t_all:
            s0 = np.float32(0.0)
            s1 = np.float32(0.0)
            s2 = np.float32(0.0)
            s3 = np.float32(0.0)
            for j in range(k):
                v = buf[j]
                s0 += v * x[t, j]
                s1 += v * x[t + 1, j]
                s2 += v * x[t + 2, j]
                s3 += v * x[t + 3, j]
            out[t, r], out[t + 1, r], out[t + 2, r], out[t + 3, r] = s0, s1, s2, s3
            t += 4
        while t < t_all:
            s = np.float32(0.0)
            for j in range(k):
                s += buf[j] * x[t, j]
            out[t, r] = s
            t += 1


@nb.njit(fastmath=True, cache=True, nogil=True)
def dequant_rows(w: np.ndarray, kind: int, ids: np.ndarray, out: np.ndarray) -> None:
    """out [len(ids), K] = the rows `ids` of W, decoded."""
    for i in range(ids.shape[0]):
        dequant_row(kind, w[ids[i]], out[i])


# ---- activations rounded as llama.cpp's CPU backend rounds them ----
# llama.cpp multiplies quantised weights by activations quantised to 8 bits: blocks of 32
# with an f16 scale (Q8_0) for Q8_0, Q4_0, Q5_0 weights, blocks of 256 with an f32 scale
# (Q8_K) for K-quants; f16 and bf16 weights by activations rounded to that type. Its
# products are then exact integer sums times the two scales, so the weights times the
# rounded activations (dequantised: q * scale) give its results up to float rounding.


@intrinsic
def _f32_bits(typingctx: Any, value: types.Type) -> Any:
    """The uint32 bit pattern of the float32 `value`."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@nb.njit(fastmath=False, cache=True, inline="always")
def half_round(v: Any) -> Any:
    """v (float32) rounded to the nearest float16 value (ties to even), as a float32."""
    a = abs(v)
    if a < np.float32(6.103515625e-05):  # float16 subnormals: steps of 2^-24
        return np.float32(np.round(np.float64(v) * 16777216.0) / 16777216.0)
    if a > np.float32(65504.0):
        return np.float32(np.inf) if v > 0 else np.float32(-np.inf)
    b: Any = _f32_bits(v)  # type: ignore[call-arg]
    b += np.uint32(0xFFF) + ((b >> np.uint32(13)) & np.uint32(1))
    return _bits_f32(b & np.uint32(0xFFFFE000))  # type: ignore[call-arg]


@nb.njit(fastmath=False, cache=True)
def round_half(src: np.ndarray, dst: np.ndarray) -> None:
    """dst = src rounded to float16 values, kept as float32."""
    for c in range(src.shape[0]):
        dst[c] = half_round(src[c])


@nb.njit(fastmath=False, cache=True, inline="always")
def _nearest_int(v: Any) -> Any:
    """Round to the nearest integer, ties to even (_mm256_round_ps and ggml's
    nearest_int both do)."""
    return np.int32(np.round(np.float64(v)))


@nb.njit(fastmath=False, cache=True, inline="always")
def q8_0_row(x: np.ndarray, q: np.ndarray, d: np.ndarray) -> None:
    """quantize_row_q8_0 (x86): scale f16(amax / 127), values round(x * (127 / amax)).
    A NaN in the block makes amax and the scale NaN (as the SIMD max keeps it), so NaN
    activations give NaN products rather than zeros."""
    for b in range(x.shape[0] // 32):
        amax = np.float32(0.0)
        for i in range(32):
            a = abs(x[b * 32 + i])
            if a > amax or a != a:
                amax = a
        d[b] = half_round(amax / np.float32(127.0))
        inv = np.float32(127.0) / amax if amax != 0 else np.float32(0.0)
        for i in range(32):
            q[b * 32 + i] = _nearest_int(x[b * 32 + i] * inv)


@nb.njit(fastmath=False, cache=True, inline="always")
def q8_k_row(x: np.ndarray, q: np.ndarray, d: np.ndarray) -> None:
    """quantize_row_q8_K_ref: the value of largest magnitude maps to -127, the scale is
    the inverse of the multiplier, values above 127 clip; a NaN in the block makes the
    scale NaN, as q8_0_row does."""
    for b in range(x.shape[0] // 256):
        amax = np.float32(0.0)
        top = np.float32(0.0)
        for i in range(256):
            a = abs(x[b * 256 + i])
            if a > amax or a != a:
                amax, top = a, x[b * 256 + i]
        if amax == 0:
            d[b] = 0.0
            q[b * 256 : b * 256 + 256] = 0
            continue
        iscale = np.float32(-127.0) / top
        for i in range(256):
            q[b * 256 + i] = min(127, _nearest_int(iscale * x[b * 256 + i]))
        d[b] = np.float32(1.0) / iscale


@nb.njit(fastmath=False, cache=True)
def _round_q8(x: np.ndarray, out: np.ndarray, block: int) -> None:
    """x quantised to 8-bit blocks of `block` values (32: Q8_0, 256: Q8_K) and scaled back."""
    q = np.empty(x.shape[0], np.int8)
    d = np.empty(x.shape[0] // block, np.float32)
    if block == 32:
        q8_0_row(x, q, d)
    else:
        q8_k_row(x, q, d)
    for i in range(x.shape[0]):
        out[i] = np.float32(q[i]) * d[i // block]


@nb.njit(fastmath=False, cache=True, nogil=True)
def round_activations(kind: int, x: np.ndarray, out: np.ndarray) -> None:
    """out [T, K] = x [T, K] rounded as llama.cpp rounds the activations that multiply a
    weight of `kind` (see above); F32 weights take them as they are."""
    for t in range(x.shape[0]):
        if kind == Q8_0 or kind == Q4_0 or kind == Q5_0:
            _round_q8(x[t], out[t], 32)
        elif kind == Q4_K or kind == Q6_K:
            _round_q8(x[t], out[t], 256)
        elif kind == F16:
            round_half(x[t], out[t])
        elif kind == BF16:
            bits = x[t].view(np.uint32)
            dst = out[t].view(np.uint32)
            for i in range(x.shape[1]):
                b = bits[i]
                if (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):  # NaN stays NaN
                    dst[i] = b | np.uint32(0x00400000)
                else:
                    dst[i] = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
        else:
            out[t] = x[t]
