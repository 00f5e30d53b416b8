"""Numba CPU fused scaled-dot-product attention, with grouped-query heads.

Prefill (`attention_f32`): work splits into (head, block of query rows) items run in
parallel; each query row scores only the keys its causal mask lets it see, then makes
one fused softmax-and-V pass (no BLAS inside the parallel loop: a threaded BLAS called
from parallel Numba threads oversubscribes the cores). Decode (`decode_attention_f32`): one query per head over
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
        s = np.empty(tk, np.float32)
        acc = np.empty(d, np.float32)
        for r in range(r0, r1):
            lim = min(tk, q_offset + r + 1) if causal else tk
            m = -np.inf
            for c in range(lim):
                dot = np.float32(0.0)
                for i in range(d):
                    dot += q[hh, r, i] * k[kh, c, i]
                s[c] = dot * sc
                m = max(m, s[c])
            tot = np.float32(0.0)
            acc[:] = 0.0
            for c in range(lim):
                p = np.float32(math.exp(s[c] - m))
                tot += p
                for i in range(d):
                    acc[i] += p * v[kh, c, i]
            inv = np.float32(1.0) / tot if lim > 0 else np.float32(0.0)
            for i in range(d):
                out[hh, r, i] = acc[i] * inv


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
