"""Numba CPU fused scaled-dot-product attention, with grouped-query heads.

Prefill, versions:
- `attention_f32_v1`: plain loops; each (head, block of query rows) item scores the keys
  its causal mask lets it see one dot product at a time, then makes one fused
  softmax-and-V pass. Kept as the baseline, and used when BLAS threads cannot be
  limited per thread (see matmul_cpu).
- `attention_f32_v2`: tiled on BLAS. Each parallel item is (head, tile of BQ query
  rows); it computes the scores of the whole tile against every key the tile can see
  as one sgemm, transposed (`S^T = K Q^T`, the no-transpose layout OpenBLAS is fastest
  at), runs the masked softmax down the columns (inner loops run over the tile's query
  rows, contiguous, and vectorise, including exp), then `O = P V` as a second sgemm.
  Only the diagonal tile does masked work. Each worker runs its BLAS single-threaded,
  so the parallelism is the items' and the cores are not oversubscribed.
`attention_f32` picks v2 when it can.

Decode (`decode_attention_f32`): one query per head over a KV cache; each parallel item
is one KV head, so its K and V rows are read once for all the query heads sharing them.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

import gene_jit.tensor_kernels.kernel_cache  # noqa: F401  (cache stamp, before decorating)
from gene_jit.tensor_kernels.matmul_cpu import BLAS_LOCAL_THREADS, blas_single_thread
from gene_jit.tensor_kernels.norms_cpu import exp_parts

QBLOCK = 64  # query rows per work item in prefill (v1)
BQ = 64  # query rows per tile (v2): S^T tiles are [visible keys, BQ]


@nb.njit(parallel=True, fastmath=True, cache=True)
def attention_f32_v1(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    causal: bool,
    scale: float,
    q_offset: int,
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


@nb.njit(fastmath=True, cache=True)
def _softmax_columns(
    st: np.ndarray, first: int, causal: bool, scale: np.float32, tot: np.ndarray
) -> None:
    """In place on the score tile st [L, nq] (key c, query r): column r becomes the
    unnormalised softmax over the keys query r sees (key c is visible when c <= first
    + r, or always when not causal); masked entries become 0; tot[r] gets the sums."""
    lim, nq = st.shape
    # Loops run over all of 0..nq with the mask as a select: a loop starting at a
    # computed index gets negative-index wraparound checks that stop vectorisation.
    m = np.full(nq, -np.inf, np.float32)
    for c in range(lim):
        rs = c - first if causal else 0
        row = st[c]
        for r in range(nq):
            m[r] = max(m[r], row[r]) if r >= rs else m[r]
    bits = np.empty(nq, np.int32)
    pow2 = bits.view(np.float32)
    tot[:] = 0.0
    for c in range(lim):
        rs = c - first if causal else 0
        row = st[c]
        for r in range(nq):
            row[r], bits[r] = exp_parts((row[r] - m[r]) * scale)
        for r in range(nq):
            e = row[r] * pow2[r] if r >= rs else np.float32(0.0)
            row[r] = e
            tot[r] += e


@nb.njit(parallel=True, fastmath=True, cache=True)
def attention_f32_v2(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    causal: bool,
    scale: float,
    q_offset: int,
    out: np.ndarray,
    tile_rows: int = BQ,
) -> None:
    """q, out [H, T, D]; k, v [Hkv, Tk, D] (C-contiguous); query t at q_offset + t;
    tiles of `tile_rows` queries."""
    h, t, d = q.shape
    hkv, tk, _ = k.shape
    group = h // hkv
    bq = tile_rows
    ntiles = (t + bq - 1) // bq
    sc = np.float32(scale)
    for item in nb.prange(h * ntiles):
        blas_single_thread()
        hh, tile = item // ntiles, item % ntiles
        kh = hh // group
        r0 = tile * bq
        r1 = min(r0 + bq, t)
        lim = min(tk, q_offset + r1) if causal else tk
        if lim <= 0:
            out[hh, r0:r1, :] = 0.0
            continue
        qt = np.ascontiguousarray(q[hh, r0:r1].T)  # [D, nq]
        st = np.dot(k[kh, :lim], qt)  # [lim, nq]: S^T
        tot = np.empty(r1 - r0, np.float32)
        _softmax_columns(st, q_offset + r0, causal, sc, tot)
        o = np.dot(st.T, v[kh, :lim])  # [nq, D]
        for r in range(r1 - r0):
            inv = np.float32(1.0) / tot[r]
            for i in range(d):
                out[hh, r0 + r, i] = o[r, i] * inv


def attention_f32(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    causal: bool,
    scale: float,
    q_offset: int,
    out: np.ndarray,
) -> None:
    """Prefill attention: q, out [H, T, D]; k, v [Hkv, Tk, D]; query t sits at position
    q_offset + t (v2 when each worker's BLAS can run single-threaded, else v1)."""
    if BLAS_LOCAL_THREADS:
        attention_f32_v2(q, k, v, causal, scale, q_offset, out)
    else:
        attention_f32_v1(q, k, v, causal, scale, q_offset, out)


@nb.njit(parallel=True, fastmath=True, cache=True)
def decode_attention_f32(
    q: np.ndarray,
    k_cache: np.ndarray,
    v_cache: np.ndarray,
    n_ctx: int,
    scale: float,
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
