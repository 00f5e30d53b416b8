"""Numba CPU dequantisation of GGUF blocks (Q8_0, Q4_0, Q4_K, Q6_K) into float32.

`raw` is the tensor's bytes (uint8, a whole number of blocks); blocks decode in
parallel. Block layouts are documented beside the float64 references in reference.py.
"""

from __future__ import annotations

import numba as nb
import numpy as np

import gene_jit.tensor_kernels.kernel_cache  # noqa: F401  (cache stamp, before decorating)


@nb.njit(cache=True, inline="always")
def _f16(lo: np.uint8, hi: np.uint8) -> np.float32:
    """Decode a little-endian IEEE half from two bytes (Numba's CPU target has no f16)."""
    h = np.int32(lo) | (np.int32(hi) << 8)
    sign = np.float32(-1.0) if h & 0x8000 else np.float32(1.0)
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:
        return sign * np.float32(m) * np.float32(5.960464477539063e-08)  # 2^-24
    if e == 31:
        return sign * np.float32(np.inf) if m == 0 else np.float32(np.nan)
    return sign * np.float32(1024 + m) * np.float32(2.0 ** (e - 25))


@nb.njit(parallel=True, fastmath=True, cache=True)
def dequant_q8_0(raw: np.ndarray, out: np.ndarray) -> None:
    for b in nb.prange(raw.shape[0] // 34):
        o = b * 34
        d = _f16(raw[o], raw[o + 1])
        for i in range(32):
            q = np.int32(raw[o + 2 + i])
            out[b * 32 + i] = d * np.float32(q - 256 if q > 127 else q)


@nb.njit(parallel=True, fastmath=True, cache=True)
def dequant_q4_0(raw: np.ndarray, out: np.ndarray) -> None:
    for b in nb.prange(raw.shape[0] // 18):
        o = b * 18
        d = _f16(raw[o], raw[o + 1])
        for i in range(16):
            q = np.int32(raw[o + 2 + i])
            out[b * 32 + i] = d * np.float32((q & 0x0F) - 8)
            out[b * 32 + 16 + i] = d * np.float32((q >> 4) - 8)


@nb.njit(cache=True, inline="always")
def _scale_min_k4(j: int, sc: np.ndarray, o: int) -> tuple[np.int32, np.int32]:
    if j < 4:
        return np.int32(sc[o + j]) & 63, np.int32(sc[o + j + 4]) & 63
    a = np.int32(sc[o + j + 4])
    return (a & 0x0F) | ((np.int32(sc[o + j - 4]) >> 6) << 4), (a >> 4) | (
        (np.int32(sc[o + j]) >> 6) << 4
    )


@nb.njit(parallel=True, fastmath=True, cache=True)
def dequant_q4_k(raw: np.ndarray, out: np.ndarray) -> None:
    for b in nb.prange(raw.shape[0] // 144):
        o = b * 144
        d = _f16(raw[o], raw[o + 1])
        dmin = _f16(raw[o + 2], raw[o + 3])
        for c in range(4):
            s1, m1 = _scale_min_k4(2 * c, raw, o + 4)
            s2, m2 = _scale_min_k4(2 * c + 1, raw, o + 4)
            d1, mm1 = d * np.float32(s1), dmin * np.float32(m1)
            d2, mm2 = d * np.float32(s2), dmin * np.float32(m2)
            base = b * 256 + c * 64
            for i in range(32):
                q = np.int32(raw[o + 16 + c * 32 + i])
                out[base + i] = d1 * np.float32(q & 0x0F) - mm1
                out[base + 32 + i] = d2 * np.float32(q >> 4) - mm2


@nb.njit(parallel=True, fastmath=True, cache=True)
def dequant_q6_k(raw: np.ndarray, out: np.ndarray) -> None:
    for b in nb.prange(raw.shape[0] // 210):
        o = b * 210
        d = _f16(raw[o + 208], raw[o + 209])
        for half in range(2):
            ql, qh, so = o + 64 * half, o + 128 + 32 * half, o + 192 + 8 * half
            base = b * 256 + 128 * half
            for i in range(32):
                lo1, lo2 = np.int32(raw[ql + i]), np.int32(raw[ql + 32 + i])
                hb = np.int32(raw[qh + i])
                q1 = ((lo1 & 0x0F) | ((hb & 3) << 4)) - 32
                q2 = ((lo2 & 0x0F) | (((hb >> 2) & 3) << 4)) - 32
                q3 = ((lo1 >> 4) | (((hb >> 4) & 3) << 4)) - 32
                q4 = ((lo2 >> 4) | (((hb >> 6) & 3) << 4)) - 32
                s = i // 16
                for n, q in ((0, q1), (1, q2), (2, q3), (3, q4)):
                    sv = np.int32(raw[so + s + 2 * n])
                    sv = sv - 256 if sv > 127 else sv
                    out[base + 32 * n + i] = d * np.float32(sv) * np.float32(q)


DEQUANT_CPU = {
    "q8_0": dequant_q8_0,
    "q4_0": dequant_q4_0,
    "q4_k": dequant_q4_k,
    "q6_k": dequant_q6_k,
}
