"""Numba CUDA attention: decode over a KV cache (split-K, f16 or f32 cache) and causal
prefill, with grouped-query heads.

Decode takes the flash-decoding kernels of `decode_cuda` whenever the shapes fit (head
dim a power of two from 8 to 256, up to 8 query heads per kv head, aligned contiguous
arrays). Otherwise it runs in three launches so that the cache streams through at full bandwidth:
`_decode_scores` (grid: kv head x key tiles; a warp per key, lanes across the head
dimension, every query head of the group scored from one read of the K row),
`_decode_stats` (per query head: max and sum of exp over the scores), and
`_decode_values` (grid: kv head x key chunks; a thread per pair of output dims reads V
rows coalesced, weights them by the normalised probabilities and adds its chunk's part
with one atomic per output). Prefill gives each query row one warp that walks its
visible keys with an online softmax (flash-attention style, no score matrix in memory).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor_kernels import decode_cuda
from gene_jit.tensor_kernels.cuda_support import cuda
from gene_jit.tensor_kernels.gemv_cuda import half_bits, warp_sum

cu = cuda()
WARPS = 8
KEYS_PER_WARP = 8
CHUNK = 256  # keys per block in the value pass
MAX_GROUP = 16  # query heads per kv head
MAX_D = 256
LANE_D = MAX_D // 32  # head dims each lane holds in prefill


@cu.jit(device=True, inline=True)
def _pair(row: Any, w: int, is_f16: bool) -> tuple[Any, Any]:
    if is_f16:
        a = np.int32(row[w])
        return half_bits(a & 0xFFFF), half_bits((a >> 16) & 0xFFFF)
    return row[2 * w], row[2 * w + 1]


@cu.jit(fastmath=True)
def _decode_scores(q: Any, kc: Any, n_ctx: int, scale: float, is_f16: bool, scores: Any) -> None:
    """q [H, D] f32; kc [Hkv, S, W] (W words: D/2 uint32 for f16, else D f32)."""
    kh = cu.blockIdx.x
    hkv = kc.shape[0]
    group = q.shape[0] // hkv
    d = q.shape[1]
    qs = cu.shared.array((MAX_GROUP, MAX_D), np.float32)
    for i in range(cu.threadIdx.x, group * d, cu.blockDim.x):
        qs[i // d, i % d] = q[kh * group + i // d, i % d]
    cu.syncthreads()
    warp, lane = cu.threadIdx.x >> 5, cu.threadIdx.x & 31
    base = (cu.blockIdx.y * WARPS + warp) * KEYS_PER_WARP
    acc = cu.local.array(MAX_GROUP, np.float32)
    for kk in range(KEYS_PER_WARP):
        j = base + kk
        if j >= n_ctx:
            return
        for g in range(group):
            acc[g] = 0.0
        for w in range(lane, d // 2, 32):
            a, b = _pair(kc[kh, j], w, is_f16)
            for g in range(group):
                acc[g] += a * qs[g, 2 * w] + b * qs[g, 2 * w + 1]
        for g in range(group):
            s = warp_sum(acc[g])
            if lane == 0:
                scores[kh * group + g, j] = s * scale


@cu.jit(fastmath=True)
def _decode_stats(scores: Any, n_ctx: int, stats: Any) -> None:
    """One block per query head: stats[h] = (max, sum of exp(s - max))."""
    h = cu.blockIdx.x
    red = cu.shared.array(32, np.float32)
    m = -np.inf
    for j in range(cu.threadIdx.x, n_ctx, cu.blockDim.x):
        m = max(m, scores[h, j])
    for off in (16, 8, 4, 2, 1):
        m = max(m, cu.shfl_xor_sync(0xFFFFFFFF, m, off))
    if cu.threadIdx.x & 31 == 0:
        red[cu.threadIdx.x >> 5] = m
    cu.syncthreads()
    m = -np.inf
    for i in range(cu.blockDim.x >> 5):
        m = max(m, red[i])
    cu.syncthreads()
    s = np.float32(0.0)
    for j in range(cu.threadIdx.x, n_ctx, cu.blockDim.x):
        s += math.exp(scores[h, j] - m)
    s = warp_sum(s)
    if cu.threadIdx.x & 31 == 0:
        red[cu.threadIdx.x >> 5] = s
    cu.syncthreads()
    if cu.threadIdx.x == 0:
        tot = np.float32(0.0)
        for i in range(cu.blockDim.x >> 5):
            tot += red[i]
        stats[h, 0] = m
        stats[h, 1] = tot


@cu.jit(fastmath=True)
def _decode_values(scores: Any, stats: Any, vc: Any, n_ctx: int, is_f16: bool, out: Any) -> None:
    """Grid (Hkv, chunks); thread t owns output dims 2t, 2t+1 of every group head."""
    kh = cu.blockIdx.x
    hkv = vc.shape[0]
    group = scores.shape[0] // hkv
    w = cu.threadIdx.x
    d = out.shape[1]
    if 2 * w >= d:
        return
    a0 = cu.local.array(MAX_GROUP, np.float32)
    a1 = cu.local.array(MAX_GROUP, np.float32)
    for g in range(group):
        a0[g] = 0.0
        a1[g] = 0.0
    j0 = cu.blockIdx.y * CHUNK
    for j in range(j0, min(j0 + CHUNK, n_ctx)):
        va, vb = _pair(vc[kh, j], w, is_f16)
        for g in range(group):
            h = kh * group + g
            p = math.exp(scores[h, j] - stats[h, 0])
            a0[g] += p * va
            a1[g] += p * vb
    for g in range(group):
        h = kh * group + g
        inv = 1.0 / stats[h, 1]
        cu.atomic.add(out, (h, 2 * w), a0[g] * inv)
        cu.atomic.add(out, (h, 2 * w + 1), a1[g] * inv)


def decode_attention(q: Any, k_cache: Any, v_cache: Any, n_ctx: int, scale: float, out: Any,
                     scores: Any = None, stats: Any = None) -> None:
    """q [H, D] f32, caches [Hkv, S, D] f16 or f32 (device arrays), out [H, D] f32.
    Scratch `scores` [H, >= n_ctx] and `stats` [H, 2] (f32) may be passed in to avoid
    allocations on every token."""
    if decode_cuda.usable(q, k_cache, v_cache, out):
        decode_cuda.decode(q, k_cache, v_cache, n_ctx, scale, out)
        return
    h, d = q.shape
    hkv = k_cache.shape[0]
    if h % hkv or h // hkv > MAX_GROUP or d > MAX_D or d % 2:
        raise ValueError(f"decode attention: unsupported heads {h}/{hkv} or head dim {d}")
    is_f16 = k_cache.dtype == np.float16
    kw = k_cache.view(np.uint32) if is_f16 else k_cache
    vw = v_cache.view(np.uint32) if is_f16 else v_cache
    if scores is None:
        scores = cu.device_array((h, n_ctx), np.float32)
    if stats is None:
        stats = cu.device_array((h, 2), np.float32)
    tiles = math.ceil(n_ctx / (WARPS * KEYS_PER_WARP))
    _decode_scores[(hkv, tiles), 32 * WARPS](q, kw, n_ctx, np.float32(scale), is_f16, scores)
    _decode_stats[h, 256](scores, n_ctx, stats)
    _zero2d[math.ceil(h * d / 256), 256](out)
    threads = max(32, 32 * math.ceil(d / 2 / 32))
    _decode_values[(hkv, math.ceil(n_ctx / CHUNK)), threads](scores, stats, vw, n_ctx, is_f16, out)


@cu.jit
def _zero2d(a: Any) -> None:
    i = cu.grid(1)
    if i < a.size:
        a[i // a.shape[1], i % a.shape[1]] = 0.0


@cu.jit(fastmath=True)
def _prefill(q: Any, k: Any, v: Any, causal: bool, scale: float, q_offset: int, out: Any) -> None:
    """A warp per (head, query row); lanes hold D/32 dims each; online softmax."""
    h, t, d = q.shape
    hkv, tk = k.shape[0], k.shape[1]
    group = h // hkv
    gw = cu.blockIdx.x * (cu.blockDim.x >> 5) + (cu.threadIdx.x >> 5)
    lane = cu.threadIdx.x & 31
    if gw >= h * t:
        return
    hh, r = gw // t, gw % t
    kh = hh // group
    qv = cu.local.array(LANE_D, np.float32)
    acc = cu.local.array(LANE_D, np.float32)
    per = (d + 31) // 32
    for i in range(per):
        c = lane + 32 * i
        qv[i] = q[hh, r, c] * scale if c < d else 0.0
        acc[i] = 0.0
    kend = min(tk, q_offset + r + 1) if causal else tk
    m = -np.inf
    l_sum = np.float32(0.0)
    for j in range(kend):
        s = np.float32(0.0)
        for i in range(per):
            c = lane + 32 * i
            if c < d:
                s += qv[i] * k[kh, j, c]
        s = warp_sum(s)
        m_new = max(m, s)
        corr = math.exp(m - m_new)
        p = math.exp(s - m_new)
        l_sum = l_sum * corr + p
        for i in range(per):
            c = lane + 32 * i
            if c < d:
                acc[i] = acc[i] * corr + p * v[kh, j, c]
        m = m_new
    for i in range(per):
        c = lane + 32 * i
        if c < d:
            out[hh, r, c] = acc[i] / l_sum if l_sum > 0 else 0.0


def attention(q: Any, k: Any, v: Any, causal: bool, scale: float, q_offset: int, out: Any) -> None:
    """q, out [H, T, D] f32; k, v [Hkv, Tk, D] f32 (device arrays)."""
    h, t, d = q.shape
    if h % k.shape[0] or d > MAX_D:
        raise ValueError(f"attention: unsupported heads {h}/{k.shape[0]} or head dim {d}")
    warps = 4
    _prefill[math.ceil(h * t / warps), 32 * warps](q, k, v, causal, np.float32(scale), q_offset, out)
