"""Numba CUDA kernels of the native engine: products with GGUF weights dequantised in
registers, embedding rows, and the per-row ops of a forward pass (RMSNorm, RoPE, KV cache
store, attention, GeGLU and SwiGLU) with the rounding of the CPU engine (engine_cpu.py), so that both
devices compute the same model.

Every row of a forward call carries its own place: `pos [T]` (its position) and `slot [T]`
(its sequence's slot in the cache), int32 arrays in device memory. One launch thus serves a
prompt (one slot, consecutive positions) and a batch of sequences decoding at once (one
row per slot), and a captured CUDA graph reads the positions of each step from memory.

Weights: `w [N, row_bytes]` uint8 GGUF blocks, or `[N, K]` float32 / float16 / uint16
(bf16 bits) for plain types. `_deq8` functions decode values 8g .. 8g+7 of a row (group g)
in registers, as qgemv_cpu.py decodes them on the CPU (value = scale * quant).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor_kernels.cuda_support import cuda, launch_stream, simulator
from gene_jit.tensor_kernels.gemv_cuda import half_bits, int_as_float, warp_sum
from gene_jit.tensor_kernels.qgemv_cpu import BF16, F16, F32, Q4_0, Q4_K, Q5_0, Q6_K, Q8_0
from gene_jit.tensor_kernels.vector_cuda import aligned, ld4

cu = cuda()
WARPS = 8  # warps (output rows) per block of the product
TILES = (1, 2, 4, 8, 16)  # tokens a warp multiplies each decoded weight group by
NEG = np.float32(-1e30)
THREADS = 128

if simulator():

    @cu.jit(device=True)
    def float_as_int(v: Any) -> Any:
        return np.array([v], np.float32).view(np.int32)[0]
else:
    float_as_int = cu.libdevice.float_as_int


@cu.jit(device=True, inline=True)
def half_round(v: Any) -> Any:
    """v rounded to the nearest float16 value (ties to even), as float32."""
    return np.float32(np.float16(v))


@cu.jit(device=True, inline=True)
def _h(w: Any, r: int, o: int) -> Any:
    return half_bits(np.int32(w[r, o]) | (np.int32(w[r, o + 1]) << 8))


@cu.jit(device=True, inline=True)
def _i8(v: Any) -> Any:
    x = np.int32(v)
    return x - 256 if x >= 128 else x


@cu.jit(device=True, inline=True)
def _deq_f32(w: Any, r: int, g: int, out: Any, base: int) -> None:
    for i in range(8):
        out[base + i] = w[r, 8 * g + i]


@cu.jit(device=True, inline=True)
def _deq_f16(w: Any, r: int, g: int, out: Any, base: int) -> None:
    for i in range(8):
        out[base + i] = np.float32(w[r, 8 * g + i])


@cu.jit(device=True, inline=True)
def _deq_bf16(w: Any, r: int, g: int, out: Any, base: int) -> None:
    for i in range(8):
        out[base + i] = int_as_float(np.int32(w[r, 8 * g + i]) << 16)


@cu.jit(device=True, inline=True)
def _deq_q8_0(w: Any, r: int, g: int, out: Any, base: int) -> None:
    o = (g >> 2) * 34
    d = _h(w, r, o)
    q = o + 2 + 8 * (g & 3)
    for i in range(8):
        out[base + i] = d * np.float32(_i8(w[r, q + i]))


@cu.jit(device=True, inline=True)
def _deq_q4_0(w: Any, r: int, g: int, out: Any, base: int) -> None:
    o = (g >> 2) * 18
    d = _h(w, r, o)
    sub = g & 3
    q = o + 2 + 8 * (sub & 1)
    shift = 4 * (sub >> 1)
    for i in range(8):
        out[base + i] = d * np.float32(((np.int32(w[r, q + i]) >> shift) & 0xF) - 8)


@cu.jit(device=True, inline=True)
def _deq_q5_0(w: Any, r: int, g: int, out: Any, base: int) -> None:
    o = (g >> 2) * 22
    d = _h(w, r, o)
    qh = (np.int64(w[r, o + 2]) | (np.int64(w[r, o + 3]) << 8) | (np.int64(w[r, o + 4]) << 16)
          | (np.int64(w[r, o + 5]) << 24))
    sub = g & 3
    idx = 8 * (sub & 1)
    shift = 4 * (sub >> 1)
    for i in range(8):
        j = idx + i
        q = (np.int64(w[r, o + 6 + j]) >> shift) & 0xF
        q |= ((qh >> (j + 16 * (sub >> 1))) & 1) << 4
        out[base + i] = d * np.float32(q - 16)


@cu.jit(device=True, inline=True)
def _deq_q4_k(w: Any, r: int, g: int, out: Any, base: int) -> None:
    o = (g >> 5) * 144
    d = _h(w, r, o)
    dmin = _h(w, r, o + 2)
    v0 = 8 * (g & 31)
    c = v0 >> 6
    within = v0 & 63
    j = 2 * c + (within >> 5)
    s = o + 4
    if j < 4:
        sc = np.int32(w[r, s + j]) & 63
        m = np.int32(w[r, s + j + 4]) & 63
    else:
        sc = (np.int32(w[r, s + j + 4]) & 0xF) | ((np.int32(w[r, s + j - 4]) >> 6) << 4)
        m = (np.int32(w[r, s + j + 4]) >> 4) | ((np.int32(w[r, s + j]) >> 6) << 4)
    d1 = d * np.float32(sc)
    m1 = dmin * np.float32(m)
    q = o + 16 + c * 32 + (within & 31)
    shift = 4 * (within >> 5)
    for i in range(8):
        out[base + i] = d1 * np.float32((np.int32(w[r, q + i]) >> shift) & 0xF) - m1


@cu.jit(device=True, inline=True)
def _deq_q6_k(w: Any, r: int, g: int, out: Any, base: int) -> None:
    o = (g >> 5) * 210
    d = _h(w, r, o + 208)
    v0 = 8 * (g & 31)
    half = v0 >> 7
    quarter = (v0 & 127) >> 5
    i0 = v0 & 31
    ql = o + 64 * half + 32 * (quarter & 1)
    qh = o + 128 + 32 * half
    c = d * np.float32(_i8(w[r, o + 192 + 8 * half + 2 * quarter + (i0 >> 4)]))
    lo_shift = 4 * (quarter >> 1)
    hi_shift = 2 * quarter
    for k in range(8):
        i = i0 + k
        q = ((np.int32(w[r, ql + i]) >> lo_shift) & 0xF) | (((np.int32(w[r, qh + i]) >> hi_shift) & 3) << 4)
        out[base + k] = c * np.float32(q - 32)


DEQ = {F32: _deq_f32, F16: _deq_f16, BF16: _deq_bf16, Q8_0: _deq_q8_0, Q4_0: _deq_q4_0,
       Q5_0: _deq_q5_0, Q4_K: _deq_q4_k, Q6_K: _deq_q6_k}

_LINEAR: dict[tuple[int, int, bool], Any] = {}


def _linear_kernel(kind: int, tile: int, vec: bool) -> Any:
    """out [T, N] = x [T, K] . w^T: a warp per weight row, each lane decoding groups of 8
    weights once for `tile` tokens; the token tiles of a row band are neighbouring blocks,
    so a band's weights come from HBM once and from L2 for the other tiles. `vec`: x's
    rows start on 16-byte boundaries, and a lane reads its 8 values with two 16-byte loads.
    (Warps of 2 or 4 rows, each x load serving them all, measured slower on the H100:
    bench/results/engine_bench_h100.txt, run 2.)"""
    key = (kind, tile, vec)
    if key in _LINEAR:
        return _LINEAR[key]
    deq = DEQ[kind]

    @cu.jit
    def kernel(w: Any, x: Any, xf: Any, out: Any) -> None:
        lane = cu.threadIdx.x & 31
        row = cu.blockIdx.y * WARPS + (cu.threadIdx.x >> 5)
        n_tok, n = out.shape
        if row >= n:
            return
        t0 = cu.blockIdx.x * tile
        acc = cu.local.array(tile, np.float32)
        vals = cu.local.array(8, np.float32)
        for u in range(tile):
            acc[u] = np.float32(0.0)
        groups = x.shape[1] // 8
        g = lane
        while g < groups:
            deq(w, row, g, vals, 0)
            for u in range(tile):
                t = t0 + u
                if t < n_tok:
                    if vec:
                        o = t * x.shape[1] + 8 * g
                        a0, a1, a2, a3 = ld4(xf, o)
                        b0, b1, b2, b3 = ld4(xf, o + 4)
                        acc[u] += ((vals[0] * a0 + vals[1] * a1) + (vals[2] * a2 + vals[3] * a3)
                                   + ((vals[4] * b0 + vals[5] * b1) + (vals[6] * b2 + vals[7] * b3)))
                    else:
                        s = np.float32(0.0)
                        for i in range(8):
                            s += vals[i] * x[t, 8 * g + i]
                        acc[u] += s
            g += 32
        for u in range(tile):
            v = warp_sum(acc[u])
            if lane == 0 and t0 + u < n_tok:
                out[t0 + u, row] = v

    _LINEAR[key] = kernel
    return kernel


def linear(w: Any, kind: int, x: Any, out: Any) -> None:
    t, n = out.shape
    tile = next((s for s in TILES if s >= t), TILES[-1])
    grid = ((t + tile - 1) // tile, (n + WARPS - 1) // WARPS)
    vec = aligned(x, x.shape[1])
    _linear_kernel(kind, tile, vec)[grid, 32 * WARPS, launch_stream()](w, x, x.reshape(x.size), out)


_EMBED: dict[int, Any] = {}


def embed_rows(w: Any, kind: int, ids: Any, scale: float, out: Any) -> None:
    """out [T, E] = rows ids [T] of w decoded, times scale (w: GGUF blocks, or Q8_0 / Q4_0
    rows packed by cuda_qdot.pack, int32)."""
    if kind in (Q8_0, Q4_0) and w.dtype == np.int32:
        from gene_jit.engine import cuda_qdot

        cuda_qdot.embed_rows(w, kind, ids, scale, out)
        return
    kernel: Any = _EMBED.get(kind)
    if kernel is None:
        deq = DEQ[kind]

        @cu.jit
        def kernel(w: Any, ids: Any, scale: Any, out: Any) -> None:
            t = cu.blockIdx.x
            g = cu.blockIdx.y * cu.blockDim.x + cu.threadIdx.x
            if g >= out.shape[1] // 8:
                return
            vals = cu.local.array(8, np.float32)
            deq(w, ids[t], g, vals, 0)
            for i in range(8):
                out[t, 8 * g + i] = vals[i] * scale

        _EMBED[kind] = kernel
    groups = out.shape[1] // 8
    grid = (out.shape[0], (groups + THREADS - 1) // THREADS)
    kernel[grid, THREADS, launch_stream()](w, ids, np.float32(scale), out)


# ---- activations rounded as llama.cpp's CPU backend rounds them (qgemv_cpu.py) ----


@cu.jit(device=True, inline=True)
def _nearest(v: Any) -> Any:
    """v (float32) to the nearest integer, ties to even, as float32."""
    a = np.float64(v)
    r = np.float64(math.floor(a + 0.5))
    if r - a == 0.5 and math.fmod(r, 2.0) != 0.0:
        r -= 1.0
    return np.float32(r)


@cu.jit(device=True, inline=True)
def quant32(v: Any, lane: int, xq: Any, xd: Any, t: int, b: int) -> None:
    """Block b of row t, value v from each lane of a warp: its 8-bit quants into
    xq [T, K/4] (int32 words of 4) and its scale, f16-rounded, into xd [T, K/32], as
    _round_q8_0_kernel rounds them (value = quant * scale)."""
    amax = abs(v)
    for off in (16, 8, 4, 2, 1):
        amax = max(amax, cu.shfl_xor_sync(0xFFFFFFFF, amax, off))
    inv = np.float32(127.0) / amax if amax != 0 else np.float32(0.0)
    q = np.int64(_nearest(v * inv)) & 0xFF
    pair = q | (np.int64(cu.shfl_xor_sync(0xFFFFFFFF, q, 1)) << 8)  # lane 4j: bytes 4j, 4j+1
    word = pair | (np.int64(cu.shfl_xor_sync(0xFFFFFFFF, pair, 2)) << 16)
    if lane & 3 == 0:
        xq[t, 8 * b + (lane >> 2)] = np.int32(word - (1 << 32) if word >= (1 << 31) else word)
    if lane == 0:
        xd[t, b] = half_round(amax / np.float32(127.0))


@cu.jit
def _round_q8_0_kernel(x: Any, out: Any) -> None:
    i = cu.grid(1)
    nb = x.shape[1] // 32
    if i >= x.shape[0] * nb:
        return
    t, b = i // nb, i % nb
    amax = np.float32(0.0)
    for k in range(32):
        amax = max(amax, abs(x[t, 32 * b + k]))
    d = half_round(amax / np.float32(127.0))
    inv = np.float32(127.0) / amax if amax != 0 else np.float32(0.0)
    for k in range(32):
        out[t, 32 * b + k] = _nearest(x[t, 32 * b + k] * inv) * d


@cu.jit
def _round_q8_k_kernel(x: Any, out: Any) -> None:
    i = cu.grid(1)
    nb = x.shape[1] // 256
    if i >= x.shape[0] * nb:
        return
    t, b = i // nb, i % nb
    amax = np.float32(0.0)
    top = np.float32(0.0)
    for k in range(256):
        a = abs(x[t, 256 * b + k])
        if a > amax:
            amax = a
            top = x[t, 256 * b + k]
    if amax == 0:
        for k in range(256):
            out[t, 256 * b + k] = np.float32(0.0)
        return
    iscale = np.float32(-127.0) / top
    d = np.float32(1.0) / iscale
    for k in range(256):
        out[t, 256 * b + k] = min(np.float32(127.0), _nearest(iscale * x[t, 256 * b + k])) * d


@cu.jit
def _round_f16_kernel(x: Any, out: Any) -> None:
    i = cu.grid(1)
    if i < x.size:
        t, c = i // x.shape[1], i % x.shape[1]
        out[t, c] = half_round(x[t, c])


@cu.jit
def _round_bf16_kernel(x: Any, out: Any) -> None:
    i = cu.grid(1)
    if i < x.size:
        t, c = i // x.shape[1], i % x.shape[1]
        b = np.int64(float_as_int(x[t, c])) & 0xFFFFFFFF
        if (b & 0x7FFFFFFF) > 0x7F800000:
            b = b | 0x00400000
        else:
            b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
        out[t, c] = int_as_float(np.int32(b - 0x100000000 if b >= 0x80000000 else b))


def round_activations(kind: int, x: Any, out: Any) -> None:
    """out [T, K] = x rounded for a product with a weight of `kind` (not F32)."""
    if kind in (Q8_0, Q4_0, Q5_0):
        n, kernel = x.shape[0] * (x.shape[1] // 32), _round_q8_0_kernel
    elif kind in (Q4_K, Q6_K):
        n, kernel = x.shape[0] * (x.shape[1] // 256), _round_q8_k_kernel
    else:
        n, kernel = x.size, _round_f16_kernel if kind == F16 else _round_bf16_kernel
    kernel[(n + THREADS - 1) // THREADS, THREADS, launch_stream()](x, out)


# ---- per-row ops ----


@cu.jit(device=True, inline=True)
def row_scale(x: Any, r: int, cols: int, eps: Any, part: Any) -> Any:
    """1 / sqrt(mean(x[r]^2) + eps) as engine_cpu.rms_norm computes it: f32 squares summed
    in f64 (every thread of the block gets it; `part` is THREADS shared f64)."""
    total = 0.0
    c = cu.threadIdx.x
    while c < cols:
        total += np.float64(np.float32(x[r, c] * x[r, c]))
        c += THREADS
    part[cu.threadIdx.x] = total
    cu.syncthreads()
    step = THREADS // 2
    while step > 0:
        if cu.threadIdx.x < step:
            part[cu.threadIdx.x] += part[cu.threadIdx.x + step]
        cu.syncthreads()
        step //= 2
    mean = np.float32(part[0] / cols)
    return np.float32(1.0) / np.float32(math.sqrt(np.float32(mean + eps)))


@cu.jit(device=True, inline=True)
def scaled_row(x: Any, r: int, cols: int, scale: Any, w: Any, out: Any, quant: bool, xq: Any,
               xd: Any) -> None:
    """out[r] = x[r] * scale * w, as engine_cpu.rms_norm rounds it; `quant` (cols a multiple
    of 32): also quantised (quant32) for the products."""
    c = cu.threadIdx.x
    while c < cols:  # with cols % 32 == 0 a warp's lanes stay together, a block each pass
        v = np.float32(x[r, c] * scale) * w[c]
        out[r, c] = v
        if quant:
            quant32(v, c & 31, xq, xd, r, c >> 5)
        c += THREADS


@cu.jit
def _rmsnorm_kernel(x: Any, w: Any, eps: Any, out: Any, quant: bool, xq: Any, xd: Any) -> None:
    """A block per row of x [R, C]: sum of f32 squares in f64, then as engine_cpu.rms_norm."""
    r = cu.blockIdx.x
    cols = x.shape[1]
    part = cu.shared.array(THREADS, np.float64)
    scaled_row(x, r, cols, row_scale(x, r, cols, eps, part), w, out, quant, xq, xd)


_NO_QUANT: list[Any] = []


def no_quant() -> tuple[Any, Any]:
    """Stand-ins for the 8-bit blocks' arrays of a kernel told not to write them."""
    if not _NO_QUANT:
        _NO_QUANT.extend([cu.to_device(np.zeros((1, 8), np.int32)), cu.to_device(np.zeros((1, 1), np.float32))])
    return _NO_QUANT[0], _NO_QUANT[1]


def rmsnorm(x: Any, w: Any, eps: float, out: Any, xq: Any = None, xd: Any = None) -> None:
    """out = RMSNorm(x) * w; with xq, xd (x [R, C], C a multiple of 32) also its 8-bit
    quants and block scales."""
    quant = xq is not None
    if not quant:
        xq, xd = no_quant()
    _rmsnorm_kernel[x.shape[0], THREADS, launch_stream()](x, w, np.float32(eps), out, quant, xq, xd)


@cu.jit(device=True, inline=True)
def _half_index(v: Any) -> Any:
    """The f16 bit pattern of v, a finite float32 that is an f16 value."""
    a = abs(v)
    sign = 0x8000 if v < 0 else 0
    if a < np.float32(6.103515625e-05):  # subnormal: steps of 2^-24
        return sign | np.int32(a * np.float32(16777216.0))
    b = np.int32(float_as_int(a))
    return sign | ((((b >> 23) & 0xFF) - 112) << 10) | ((b >> 13) & 0x3FF)


@cu.jit(device=True, inline=True)
def _gelu_times(x: Any, u: Any, table: Any) -> Any:
    if x <= np.float32(-10.0):
        return np.float32(0.0)
    if x >= np.float32(10.0):
        return x * u
    if x != x:  # NaN fails both tests; its bits are no index of the table
        return x * u
    return table[_half_index(half_round(x))] * u


@cu.jit
def _gated_kernel(gate: Any, up: Any, silu: bool, table: Any, out: Any, quant: bool, xq: Any,
                  xd: Any) -> None:
    """out = act(gate) * up: `silu` x / (1 + exp(-x)) (engine_cpu.swiglu), else GELU read
    from ggml's f16 table (engine_cpu.gelu_table) at gate rounded to f16, as
    engine_cpu.geglu computes it. `quant`: the output, rows of xd.shape[1] * 32 values,
    also quantised (quant32)."""
    i = cu.grid(1)
    n = gate.size
    if quant:
        if i >= n + (-n) % 32:
            return
    elif i >= n:
        return
    v = np.float32(0.0)
    if i < n:
        x = gate[i]
        if silu:
            v = x / (np.float32(1.0) + math.exp(-x)) * up[i]
        else:
            v = _gelu_times(x, up[i], table)
        out[i] = v
    if quant:
        nb = xd.shape[1]
        quant32(v, cu.threadIdx.x & 31, xq, xd, (i >> 5) // nb, (i >> 5) % nb)


_GELU: list[Any] = []


def gated(act: str, gate: Any, up: Any, out: Any, xq: Any = None, xd: Any = None) -> None:
    """out = act(gate) * up over flat arrays, act "gelu" (GeGLU) or "silu" (SwiGLU); with
    xq, xd also quantised in rows of xd.shape[1] * 32 values (blocks of THREADS threads
    cover whole 32-value blocks)."""
    if not _GELU:
        from gene_jit.tensor_kernels.engine_cpu import gelu_table

        _GELU.append(cu.to_device(gelu_table()))
    quant = xq is not None
    if not quant:
        xq, xd = no_quant()
    _gated_kernel[(gate.size + THREADS - 1) // THREADS, THREADS, launch_stream()](
        gate, up, act == "silu", _GELU[0], out, quant, xq, xd)


def geglu(gate: Any, up: Any, out: Any, xq: Any = None, xd: Any = None) -> None:
    gated("gelu", gate, up, out, xq, xd)


@cu.jit(device=True, inline=True)
def rope_cos_sin(p: Any, i: int, step: Any, scale: Any, factors: Any, use_factors: bool) -> Any:
    """cos and sin of pair i's angle at position p, built as engine_cpu.rope_heads builds it
    (i multiplications by `step` in f32)."""
    theta = np.float32(p)
    for _ in range(i):
        theta = np.float32(theta * step)
    angle = theta / factors[i] if use_factors else theta
    angle = scale * np.float32(angle)
    return np.float32(math.cos(np.float64(angle))), np.float32(math.sin(np.float64(angle)))


@cu.jit
def _rope_kernel(x: Any, pos: Any, step: Any, scale: Any, n_rot: int, neox: bool, factors: Any,
                 use_factors: bool, out: Any) -> None:
    """A block per (token, head) of x [T, H, D]; pair i's angle built as engine_cpu.rope_heads
    builds it (i multiplications by `step` in f32)."""
    t, h = cu.blockIdx.x, cu.blockIdx.y
    d = x.shape[2]
    half = n_rot // 2
    i = cu.threadIdx.x
    while i < half:
        cs, sn = rope_cos_sin(pos[t], i, step, scale, factors, use_factors)
        a, b = (i, i + half) if neox else (2 * i, 2 * i + 1)
        x0, x1 = np.float64(x[t, h, a]), x[t, h, b]
        out[t, h, a] = np.float32(x0 * np.float64(cs) - np.float64(np.float32(x1 * sn)))
        out[t, h, b] = np.float32(x0 * np.float64(sn) + np.float64(np.float32(x1 * cs)))
        i += cu.blockDim.x
    j = n_rot + cu.threadIdx.x
    while j < d:
        out[t, h, j] = x[t, h, j]
        j += cu.blockDim.x


def rope(x: Any, pos: Any, base: float, scale: float, n_rot: int, neox: bool, factors: Any,
         use_factors: bool, out: Any) -> None:
    step = np.float32(base ** (-2.0 / n_rot))
    grid = (x.shape[0], x.shape[1])
    _rope_kernel[grid, 64, launch_stream()](x, pos, step, np.float32(scale), n_rot, neox, factors,
                                             use_factors, out)


@cu.jit
def _kv_store_kernel(k: Any, v: Any, pos: Any, slot: Any, kc: Any, vc: Any) -> None:
    """kc, vc [S, Hkv, C, D] f16 at (slot[t], h, pos[t]) = k, v [T, Hkv, D]."""
    i = cu.grid(1)
    if i >= k.size:
        return
    hd = k.shape[1] * k.shape[2]
    t, rest = i // hd, i % hd
    h, c = rest // k.shape[2], rest % k.shape[2]
    kc[slot[t], h, pos[t], c] = np.float16(k[t, h, c])
    vc[slot[t], h, pos[t], c] = np.float16(v[t, h, c])


def kv_store(k: Any, v: Any, pos: Any, slot: Any, kc: Any, vc: Any) -> None:
    _kv_store_kernel[(k.size + THREADS - 1) // THREADS, THREADS, launch_stream()](k, v, pos, slot, kc, vc)


_ATTENTION: dict[tuple[int, bool], Any] = {}
ATT_WARPS = 32  # warps of a block that take keys in turn (fast attention)


def _att_warps(d: int) -> int:
    """Warps of a fast attention block: ATT_WARPS, fewer where their partial sums of
    values would pass 32 KB of shared memory."""
    return max(1, min(ATT_WARPS, 8192 // (32 * ((d + 31) // 32))))


def _attention_kernel(d: int, exact: bool) -> Any:
    """A block per (token, query head); its warps take keys in turn with an online softmax
    each (scores and sums in f32, the query rounded to f16 as on the CPU), merged at the end.
    `exact`: one warp takes the keys in order and holds the running sum of values in f16, as
    engine_cpu.cached_attention (ggml's CPU flash attention) does, for results that follow
    the CPU engine's to float rounding of the scores (slower: no parallelism over keys)."""
    if (d, exact) in _ATTENTION:
        return _ATTENTION[(d, exact)]
    per = (d + 31) // 32
    warps = 1 if exact else _att_warps(d)
    width = per * 32

    @cu.jit
    def kernel(q: Any, kc: Any, vc: Any, pos: Any, slot: Any, window: int, scale: Any, out: Any,
               quant: bool, xq: Any, xd: Any) -> None:
        t, h = cu.blockIdx.x, cu.blockIdx.y
        warp, lane = cu.threadIdx.x >> 5, cu.threadIdx.x & 31
        kv = h // (q.shape[1] // kc.shape[1])
        s = slot[t]
        last = pos[t]
        first = 0 if window <= 0 else max(0, last - window + 1)
        qv = cu.local.array(per, np.float32)
        acc = cu.local.array(per, np.float32)
        for i in range(per):
            c = lane + 32 * i
            qv[i] = half_round(q[t, h, c]) if c < d else np.float32(0.0)
            acc[i] = np.float32(0.0)
        top = NEG
        total = np.float32(0.0)
        j = first + warp
        while j <= last:
            dot = np.float32(0.0)
            for i in range(per):
                c = lane + 32 * i
                if c < d:
                    dot += qv[i] * np.float32(kc[s, kv, j, c])
            sc = warp_sum(dot) * scale
            w = np.float32(1.0)
            if sc > top:
                grow = np.float32(math.exp(np.float64(top - sc))) if exact else np.float32(math.exp(top - sc))
                top = sc
                total *= grow
                for i in range(per):
                    acc[i] = half_round(acc[i] * grow) if exact else acc[i] * grow
            else:
                w = np.float32(math.exp(np.float64(sc - top))) if exact else np.float32(math.exp(sc - top))
            total += w
            for i in range(per):
                c = lane + 32 * i
                if c < d:
                    if exact:
                        acc[i] = half_round(np.float32(np.float64(vc[s, kv, j, c]) * np.float64(w)
                                                       + np.float64(acc[i])))
                    else:
                        acc[i] += w * np.float32(vc[s, kv, j, c])
            j += warps
        tops = cu.shared.array(warps, np.float32)
        sums = cu.shared.array(warps, np.float32)
        parts = cu.shared.array((warps, width), np.float32)
        if lane == 0:
            tops[warp] = top
            sums[warp] = total
        for i in range(per):
            parts[warp, lane + 32 * i] = acc[i]
        cu.syncthreads()
        m = NEG
        for u in range(warps):
            m = max(m, tops[u])
        c = cu.threadIdx.x
        while c < d:
            num = np.float32(0.0)
            den = np.float32(0.0)
            for u in range(warps):
                f = math.exp(tops[u] - m) if sums[u] > 0 else np.float32(0.0)
                num += parts[u, c] * f
                den += sums[u] * f
            o = num * (np.float32(1.0) / den) if exact else num / den
            out[t, h, c] = o
            if quant:  # whole warps of consecutive values: the blocks of row t of [T, H*D]
                quant32(o, c & 31, xq, xd, t, (h * d + c) >> 5)
            c += cu.blockDim.x

    _ATTENTION[(d, exact)] = kernel
    return kernel


def attention(q: Any, kc: Any, vc: Any, pos: Any, slot: Any, window: int, scale: float, out: Any,
              exact: bool = False, xq: Any = None, xd: Any = None) -> None:
    """out [T, H, D] = each query row's attention; with xq, xd (D a multiple of 32) also
    out's rows [T, H*D] quantised (quant32) for the product that reads them."""
    quant = xq is not None
    if not quant:
        xq, xd = no_quant()
    grid = (q.shape[0], q.shape[1])
    _attention_kernel(q.shape[2], exact)[grid, 32 * (1 if exact else _att_warps(q.shape[2])), launch_stream()](
        q, kc, vc, pos, slot, window, np.float32(scale), out, quant, xq, xd)


ARGMAX_THREADS = 128 if simulator() else 1024  # (the simulator runs a thread each)


@cu.jit(device=True, inline=True)
def _better(v: Any, k: Any, bv: Any, bk: Any) -> bool:
    """(v, k) comes before (bv, bk): a larger value, or an equal one at a lower index."""
    return v > bv or (v == bv and k < bk)


@cu.jit
def _argmax_kernel(logits: Any, tokens: Any, pos: Any) -> None:
    """tokens[t] = argmax of logits row t (the lowest index among ties; values above -1e30
    only, else 0); pos[t] += 1: the greedy step that feeds a decode graph's next replay.
    Each thread follows four strided streams whose loads are all issued before the
    comparisons (a 262k-word row is 64 such passes of 1,024 threads, not 2,048 loads in
    series), then the block merges the threads' bests."""
    t = cu.blockIdx.x
    nt = cu.blockDim.x
    n = logits.shape[1]
    best = cu.shared.array(1024, np.float32)
    where = cu.shared.array(1024, np.int32)
    b0, b1, b2, b3 = NEG, NEG, NEG, NEG
    k0, k1, k2, k3 = np.int32(0), np.int32(0), np.int32(0), np.int32(0)
    last = n - 1
    c = cu.threadIdx.x
    while c < n:
        c1, c2, c3 = c + nt, c + 2 * nt, c + 3 * nt
        v0 = logits[t, c]
        v1 = logits[t, min(c1, last)]
        v2 = logits[t, min(c2, last)]
        v3 = logits[t, min(c3, last)]
        if v0 > b0:
            b0, k0 = v0, np.int32(c)
        if c1 < n and v1 > b1:
            b1, k1 = v1, np.int32(c1)
        if c2 < n and v2 > b2:
            b2, k2 = v2, np.int32(c2)
        if c3 < n and v3 > b3:
            b3, k3 = v3, np.int32(c3)
        c += 4 * nt
    if _better(b1, k1, b0, k0):
        b0, k0 = b1, k1
    if _better(b3, k3, b2, k2):
        b2, k2 = b3, k3
    if _better(b2, k2, b0, k0):
        b0, k0 = b2, k2
    best[cu.threadIdx.x] = b0
    where[cu.threadIdx.x] = k0
    cu.syncthreads()
    step = nt // 2
    while step > 0:
        i = cu.threadIdx.x
        if i < step and _better(best[i + step], where[i + step], best[i], where[i]):
            best[i] = best[i + step]
            where[i] = where[i + step]
        cu.syncthreads()
        step //= 2
    if cu.threadIdx.x == 0:
        tokens[t] = where[0]
        pos[t] += 1


def argmax_step(logits: Any, tokens: Any, pos: Any) -> None:
    _argmax_kernel[logits.shape[0], ARGMAX_THREADS, launch_stream()](logits, tokens, pos)
