"""Numba CPU fused scaled-dot-product attention, with grouped-query heads.

Prefill (`attention_f32`): work splits into (head, block of query rows) items run in
parallel; each item computes its scores with sgemm (`np.dot`), so with a causal mask a
block only touches the keys its rows can see, then does a fused mask + softmax pass
and a second sgemm against V. Decode (`decode_attention_f32`): one query per head over
a KV cache; each parallel item is one KV head, so its K and V rows are read once for
all the query heads that share them.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

QBLOCK = 64  # query rows per work item in prefill


@nb.njit(parallel=True, fastmath=True, cache=True)
def attention_f32(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool, scale: float, q_offset: int,
    out: np.ndarray,
) -> None:
    """q, out [H, T, D]; k, v [Hkv, Tk, D]; query t sits at position q_offset + t."""
    h, t, d = q.shape
    hkv, tk, _ = k.shape
    group = h // hkv
    nblocks = (t + QBLOCK - 1) // QBLOCK
    sc = np.float32(scale)
    for item in nb.prange(h * nblocks):
        hh, blk = item // nblocks, item % nblocks
        kh = hh // group
        r0 = blk * QBLOCK
        r1 = min(r0 + QBLOCK, t)
        kend = min(tk, q_offset + r1) if causal else tk
        s = np.dot(q[hh, r0:r1], k[kh, :kend].T)  # [rows, kend]
        for r in range(r1 - r0):
            lim = min(kend, q_offset + r0 + r + 1) if causal else kend
            m = -np.inf
            for c in range(lim):
                m = max(m, s[r, c])
            tot = np.float32(0.0)
            for c in range(lim):
                e = math.exp((s[r, c] - m) * sc)
                s[r, c] = e
                tot += e
            inv = np.float32(1.0) / tot if lim > 0 else np.float32(0.0)
            for c in range(lim):
                s[r, c] *= inv
            for c in range(lim, kend):
                s[r, c] = 0.0
        out[hh, r0:r1] = np.dot(s, v[kh, :kend])


@nb.njit(parallel=True, fastmath=True, cache=True)
def decode_attention_f32(
    q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, n_ctx: int, scale: float,
    out: np.ndarray,
) -> None:
    """q, out [H, D]; k_cache, v_cache [Hkv, S, D] of which the first n_ctx rows count."""
    h, d = q.shape
    hkv = k_cache.shape[0]
    group = h // hkv
    sc = np.float32(scale)
    for kh in nb.prange(hkv):
        s = np.empty((group, n_ctx), np.float32)
        for j in range(n_ctx):
            for g in range(group):
                acc = np.float32(0.0)
                for i in range(d):
                    acc += q[kh * group + g, i] * k_cache[kh, j, i]
                s[g, j] = acc * sc
        acc_o = np.zeros((group, d), np.float32)
        for g in range(group):
            m = -np.inf
            for j in range(n_ctx):
                m = max(m, s[g, j])
            tot = np.float32(0.0)
            for j in range(n_ctx):
                e = math.exp(s[g, j] - m)
                s[g, j] = e
                tot += e
            inv = np.float32(1.0) / tot
            for j in range(n_ctx):
                s[g, j] *= inv
        for j in range(n_ctx):
            for g in range(group):
                p = s[g, j]
                for i in range(d):
                    acc_o[g, i] += p * v_cache[kh, j, i]
        for g in range(group):
            for i in range(d):
                out[kh * group + g, i] = acc_o[g, i]
