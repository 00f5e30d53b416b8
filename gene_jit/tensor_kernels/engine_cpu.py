"""Numba CPU kernels of the native inference engine that work on heads and a KV cache:
rotary embedding at given positions, storing keys and values in the cache, and
attention of new tokens over the cache (causal, optionally within a sliding window).

Layouts: per-token heads `x [T, H, D]`; one layer's cache `k_cache, v_cache [Hkv, S, D]`
(a kv head's rows contiguous, position p at row p). Float64 twins: reference.rope
(NeoX pairing), reference.rope_adjacent, reference.windowed_attention.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

import gene_jit.tensor_kernels.kernel_cache  # noqa: F401  (cache stamp, before decorating)
from gene_jit.tensor_kernels.norms_cpu import exp_parts
from gene_jit.tensor_kernels.qgemv_cpu import round_half

ROPE_ADJACENT, ROPE_NEOX = 0, 2  # llama.cpp's rope modes: pairs (2i, 2i+1) or (i, i + n/2)


@nb.njit(fastmath=True, cache=True)
def rope_heads(
    x: np.ndarray, positions: np.ndarray, base: float, freq_scale: float, n_rot: int,
    mode: int, factors: np.ndarray, out: np.ndarray,
) -> None:
    """out [T, H, D] = x rotated at `positions [T]`: pair i turns by
    pos * freq_scale * base^(-2i / n_rot) / factors[i] (factors empty: 1); dimensions past
    n_rot are copied."""
    t_all, h_all, d = x.shape
    half = n_rot // 2
    cos = np.empty(half, np.float32)
    sin = np.empty(half, np.float32)
    for t in range(t_all):
        for i in range(half):
            theta = positions[t] * freq_scale * base ** (-2.0 * i / n_rot)
            if factors.shape[0]:
                theta /= factors[i]
            cos[i] = math.cos(theta)
            sin[i] = math.sin(theta)
        for h in range(h_all):
            src = x[t, h]
            dst = out[t, h]
            for i in range(half):
                if mode == ROPE_NEOX:
                    a, b = i, i + half
                else:
                    a, b = 2 * i, 2 * i + 1
                x0, x1 = src[a], src[b]
                dst[a] = x0 * cos[i] - x1 * sin[i]
                dst[b] = x0 * sin[i] + x1 * cos[i]
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


@nb.njit(parallel=True, fastmath=True, cache=True)
def cached_attention(
    q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, pos: int, window: int,
    scale: float, out: np.ndarray,
) -> None:
    """out [T, H, D]: query t (at position pos + t) attends over cache rows
    max(0, pos + t - window + 1) .. pos + t (window <= 0: from row 0); query head h reads
    kv head h // (H / Hkv)."""
    t_all, h_all, d = q.shape
    group = h_all // k_cache.shape[0]
    for item in nb.prange(t_all * h_all):
        t, h = item // h_all, item % h_all
        kv = h // group
        last = pos + t
        first = 0 if window <= 0 else max(0, last - window + 1)
        n = last - first + 1
        s = np.empty(n, np.float32)
        bits = np.empty(n, np.int32)
        qv = q[t, h]
        top = np.float32(-np.inf)
        for j in range(n):
            kr = k_cache[kv, first + j]
            acc = np.float32(0.0)
            for c in range(d):
                acc += qv[c] * kr[c]
            s[j] = acc * np.float32(scale)
            top = max(top, s[j])
        for j in range(n):
            s[j], bits[j] = exp_parts(s[j] - top)
        pw = bits.view(np.float32)
        total = np.float32(0.0)
        for j in range(n):
            s[j] *= pw[j]
            total += s[j]
        o = out[t, h]
        o[:] = 0.0
        for j in range(n):
            p = s[j] / total
            vr = v_cache[kv, first + j]
            for c in range(d):
                o[c] += p * vr[c]
