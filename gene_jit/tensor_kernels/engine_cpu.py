"""Numba CPU kernels of the native inference engine that work on heads and a KV cache:
rotary embedding at given positions, storing keys and values in the cache, and
attention of new tokens over the cache (causal, optionally within a sliding window), and
GeGLU, SwiGLU and RMSNorm as ggml computes them.

Layouts: per-token heads `x [T, H, D]`; one layer's cache `k_cache, v_cache [Hkv, S, D]`
(a kv head's rows contiguous, position p at row p). Float64 twins: reference.rope
(NeoX pairing), reference.rope_adjacent, reference.windowed_attention.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

import gene_jit.tensor_kernels.kernel_cache  # noqa: F401  (cache stamp, before decorating)
from gene_jit.tensor_kernels.qgemv_cpu import _f32_bits, half_round, round_half

ROPE_ADJACENT, ROPE_NEOX = 0, 2  # llama.cpp's rope modes: pairs (2i, 2i+1) or (i, i + n/2)


@intrinsic
def fma32(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """a * b + c for float32 values, rounded once (where ggml's compiler fuses them)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        f32 = args[0].type
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32, [f32] * 3),
                                            "llvm.fma.f32")
        return builder.call(fn, args)

    return types.float32(types.float32, types.float32, types.float32), codegen


@nb.njit(fastmath=False, cache=True)
def rope_heads(
    x: np.ndarray, positions: np.ndarray, base: float, freq_scale: float, n_rot: int,
    mode: int, factors: np.ndarray, out: np.ndarray,
) -> None:
    """out [T, H, D] = x rotated at `positions [T]`: pair i turns by
    pos * freq_scale * base^(-2i / n_rot) / factors[i] (factors empty: 1); dimensions past
    n_rot are copied.

    In float32 as ggml computes it, so that keys and queries match libllama's to the bit:
    the angle of pair i is pos times base^(-2/n_rot) multiplied in i times, its cosine
    and sine libm's cosf and sinf of the float32 angle (as ggml calls them), and each
    rotated value one fused multiply-add, `x0 * cos - (x1 * sin)`."""
    t_all, h_all, d = x.shape
    half = n_rot // 2
    cos = np.empty(half, np.float32)
    sin = np.empty(half, np.float32)
    step = np.float32(base ** (-2.0 / n_rot))
    scale = np.float32(freq_scale)
    for t in range(t_all):
        theta = np.float32(positions[t])
        for i in range(half):
            angle = theta / factors[i] if factors.shape[0] else theta
            angle = scale * np.float32(angle)
            cos[i] = math.cos(angle)  # float32 in, float32 out: libm's cosf and sinf
            sin[i] = math.sin(angle)
            theta = np.float32(theta * step)
        for h in range(h_all):
            src = x[t, h]
            dst = out[t, h]
            for i in range(half):
                if mode == ROPE_NEOX:
                    a, b = i, i + half
                else:
                    a, b = 2 * i, 2 * i + 1
                x0, x1 = np.float64(src[a]), src[b]
                dst[a] = np.float32(x0 * np.float64(cos[i]) - np.float64(np.float32(x1 * sin[i])))
                dst[b] = np.float32(x0 * np.float64(sin[i]) + np.float64(np.float32(x1 * cos[i])))
            for j in range(n_rot, d):
                dst[j] = src[j]


@nb.njit(cache=True)
def kv_store(k: np.ndarray, v: np.ndarray, pos: int, k_cache: np.ndarray, v_cache: np.ndarray) -> None:
    """Cache rows pos .. pos + T - 1 of every kv head = k, v [T, Hkv, D], rounded to
    float16 values as llama.cpp's f16 cache holds them."""
    t_all, hkv, d = k.shape
    for t in range(t_all):
        for h in range(hkv):
            round_half(k[t, h], k_cache[h, pos + t])
            round_half(v[t, h], v_cache[h, pos + t])


@nb.njit(fastmath=False, cache=True, inline="always")
def _dot_f16(q: np.ndarray, k: np.ndarray, lanes: np.ndarray) -> Any:
    """q . k in the order ggml_vec_dot_f16 adds on AVX-512: element c into accumulator
    (c // 16) % 4, lane c % 16; the four accumulators added pairwise, then the 16 lanes
    halved three times (as _mm512_reduce_add_ps does), the tail in double."""
    d = q.shape[0]
    lanes[:] = 0.0
    n = d - d % 64
    for c0 in range(0, n, 64):
        for c in range(64):
            lanes[c] += q[c0 + c] * k[c0 + c]
    for c in range(16):
        lanes[c] = (lanes[c] + lanes[32 + c]) + (lanes[16 + c] + lanes[48 + c])
    for c in range(8):
        lanes[c] = lanes[8 + c] + lanes[c]
    for c in range(4):
        lanes[c] = lanes[4 + c] + lanes[c]
    total = np.float64((lanes[0] + lanes[2]) + (lanes[1] + lanes[3]))
    for c in range(n, d):
        total += np.float64(q[c] * k[c])
    return np.float32(total)


@nb.njit(parallel=True, fastmath=False, cache=True)
def cached_attention(
    q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, pos: int, window: int,
    scale: float, out: np.ndarray,
) -> None:
    """out [T, H, D]: query t (at position pos + t) attends over cache rows
    max(0, pos + t - window + 1) .. pos + t (window <= 0: from row 0); query head h reads
    kv head h // (H / Hkv).

    Computed as ggml's CPU flash attention computes it with an f16 cache, so that the
    engine follows libllama's numbers: the query rounded to f16, each score
    `(q . k) * scale` in f32 (summed in ggml's order), an online softmax whose running
    sum of values is held in f16 (each update a fused multiply-add rounded to f16),
    divided by the f32 sum of weights at the end."""
    t_all, h_all, d = q.shape
    group = h_all // k_cache.shape[0]
    for item in nb.prange(t_all * h_all):
        t, h = item // h_all, item % h_all
        kv = h // group
        last = pos + t
        first = 0 if window <= 0 else max(0, last - window + 1)
        qh = np.empty(d, np.float32)
        acc = np.zeros(d, np.float32)
        lanes = np.empty(64, np.float32)
        for c in range(d):
            qh[c] = half_round(q[t, h, c])
        top = np.float32(-np.inf)
        total = np.float32(0.0)
        for j in range(first, last + 1):
            s = _dot_f16(qh, k_cache[kv, j], lanes) * np.float32(scale)
            grow = np.float32(1.0)
            w = np.float32(1.0)
            if s > top:
                grow = np.float32(math.exp(top - s)) if top > -np.inf else np.float32(0.0)
                top = s
                for c in range(d):
                    acc[c] = half_round(acc[c] * grow)
            else:
                w = np.float32(math.exp(s - top))
            vr = v_cache[kv, j]
            for c in range(d):  # ggml_vec_mad_f16: one fma in f32, stored as f16
                acc[c] = half_round(fma32(vr[c], w, acc[c]))  # type: ignore[call-arg]
            total = fma32(total, grow, w)  # type: ignore[call-arg]  # S = S * ms + vs, fused
        inv = np.float32(1.0) / total
        for c in range(d):
            out[t, h, c] = acc[c] * inv


@nb.njit(cache=True, inline="always")
def _half_value(h: int) -> Any:
    """The float16 with bit pattern h, as a float32 (inf and NaN patterns give inf)."""
    e = (h >> 10) & 0x1F
    m = np.float32(h & 0x3FF)
    if e == 0:
        v = m * np.float32(5.960464477539063e-08)  # 2^-24
    elif e == 31:
        v = np.float32(np.inf)
    else:
        v = (np.float32(1.0) + m * np.float32(0.0009765625)) * np.float32(2.0 ** (e - 15))
    return -v if h & 0x8000 else v


@nb.njit(cache=True, inline="always")
def _half_bits(v: Any) -> Any:
    """The float16 bit pattern of v, a finite float32 that is a float16 value."""
    a = abs(v)
    sign = 0x8000 if v < 0 else 0
    if a < np.float32(6.103515625e-05):  # subnormal: steps of 2^-24
        return sign | np.int64(a * np.float32(16777216.0))
    b = np.int64(_f32_bits(a))  # type: ignore[call-arg]
    return sign | ((((b >> 23) & 0xFF) - 112) << 10) | ((b >> 13) & 0x3FF)


@nb.njit(fastmath=False, cache=True)
def _gelu_table() -> np.ndarray:
    """GELU (tanh form) of every float16 value, as ggml_cpu_init fills
    ggml_table_gelu_f16: in float32, `0.5x (1 + tanhf(sqrt(2/pi) x (1 + 0.044715 x x)))`
    with the inner `a x * x + 1` one fused multiply-add (as the compiler contracts it),
    rounded to float16. Kept as float32 values."""
    out = np.empty(1 << 16, np.float32)
    a = np.float32(0.044715)
    c = np.float32(0.7978845608028654)
    for i in range(1 << 16):
        x = _half_value(i)
        inner = np.float32(np.float64(a * x) * np.float64(x) + 1.0)  # exact product: one rounding
        t = np.float32(math.tanh(np.float32(c * x) * inner))
        out[i] = half_round(np.float32(np.float32(0.5) * x) * (np.float32(1.0) + t))
    return out


_GELU: list[np.ndarray] = []


def gelu_table() -> np.ndarray:
    """The float16 GELU table (built once a process)."""
    if not _GELU:
        _GELU.append(_gelu_table())
    return _GELU[0]


@nb.njit(cache=True, nogil=True)
def _geglu(gate: np.ndarray, up: np.ndarray, out: np.ndarray, table: np.ndarray) -> None:
    for i in range(gate.shape[0]):
        x = gate[i]
        if x <= np.float32(-10.0):
            out[i] = 0.0
        elif x >= np.float32(10.0):
            out[i] = x * up[i]
        elif x != x:  # NaN fails both tests; its bits are no index of the table
            out[i] = x * up[i]
        else:
            out[i] = table[_half_bits(half_round(x))] * up[i]


def geglu(gate: np.ndarray, up: np.ndarray, out: np.ndarray) -> None:
    """out = gelu(gate) * up over flat float32 arrays, as ggml_vec_geglu_f32 computes it:
    GELU looked up in ggml's float16 table (`gelu_table`) for the input rounded to
    float16, and exact (0 or the input) beyond -10 and 10; a NaN gate gives NaN (ggml's
    table holds NaN at the NaN patterns)."""
    _geglu(gate, up, out, gelu_table())


@nb.njit(cache=True, nogil=True)
def _swiglu(gate: np.ndarray, up: np.ndarray, out: np.ndarray) -> None:
    for i in range(gate.shape[0]):
        x = gate[i]
        out[i] = x / (np.float32(1.0) + math.exp(-x)) * up[i]


def swiglu(gate: np.ndarray, up: np.ndarray, out: np.ndarray) -> None:
    """out = silu(gate) * up over flat float32 arrays, as ggml_silu_f32 writes SiLU
    (x / (1 + expf(-x)), each step rounded to float32)."""
    _swiglu(gate, up, out)


@nb.njit(fastmath=False, cache=True)
def rms_norm(x: np.ndarray, w: np.ndarray, eps: float, out: np.ndarray) -> None:
    """out [R, C] = RMSNorm of each row of x times w [C], as ggml computes it: the squares
    rounded to f32 and summed in order in f64, the mean and 1 / sqrt(mean + eps) in f32,
    then x * scale and * w, each rounded to f32."""
    rows, cols = x.shape
    e = np.float32(eps)
    for r in range(rows):
        total = 0.0
        for c in range(cols):
            total += np.float64(np.float32(x[r, c] * x[r, c]))
        mean = np.float32(total / cols)
        scale = np.float32(1.0) / np.float32(math.sqrt(np.float32(mean + e)))
        for c in range(cols):
            out[r, c] = np.float32(x[r, c] * scale) * w[c]
