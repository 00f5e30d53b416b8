"""Numba CUDA matrix products: tiled, batched f32 GEMM (B as [K, N], or as an [N, K]
weight matrix, f32 or f16 with f32 accumulate), and the fused gated feed-forward.

GEMM tiling: a block of 16 x 16 threads computes a 64 x 64 tile of the output, each
thread a 4 x 4 register block (rows ty + 16 i, columns tx + 16 j, so the output writes
and the shared-memory reads stay coalesced / conflict-free). The K axis advances in
steps of 16: the block stages a 64 x 16 slice of A and a 16 x 64 slice of B in shared
memory (four loads per thread each, zero-filled past the edges), then every thread does
16 rank-1 updates of its 4 x 4 block from registers. With B given as a weight matrix
[N, K] ("NT"), the staging reads it along K, so no transposed copy is ever made.

Feed-forward `down(act(x gate^T) * (x up^T))`: for several tokens, one dual-GEMM kernel
accumulates x gate^T and x up^T for the same tile together (x staged once for both) and
applies act(g) * u in its epilogue; the down projection is the NT GEMM. For one token
the three products are GEMVs (bandwidth-bound, `gemv_cuda`) with the gate kernel between.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor_kernels import elementwise_cuda
from gene_jit.tensor_kernels.cuda_support import cuda
from gene_jit.tensor_kernels.elementwise_cuda import apply_unary

cu = cuda()
TILE = 64  # output tile edge
BK = 16  # K step
TPB = 16  # threads per tile edge (each owns TILE / TPB = 4 rows and columns)
PER = 4


@cu.jit(device=True, inline=True)
def _stage_a(a: Any, za: int, m0: int, k0: int, tid: int, sa: Any) -> None:
    """sa[kk, m] = a[za, m0 + m, k0 + kk] (64 x 16 slice, zero past the edges)."""
    m_len, k_len = a.shape[1], a.shape[2]
    for r in range(PER):
        idx = tid + 256 * r
        m, kk = idx // BK, idx % BK
        gm, gk = m0 + m, k0 + kk
        sa[kk, m] = a[za, gm, gk] if gm < m_len and gk < k_len else np.float32(0.0)


@cu.jit(device=True, inline=True)
def _stage_b(b: Any, zb: int, n0: int, k0: int, tid: int, trans_b: bool, sb: Any) -> None:
    """sb[kk, n] = B[k0 + kk, n0 + n], B being b[zb] ([K, N]) or b[zb]^T ([N, K])."""
    if trans_b:
        n_len, k_len = b.shape[1], b.shape[2]
        for r in range(PER):
            idx = tid + 256 * r
            n, kk = idx // BK, idx % BK
            gn, gk = n0 + n, k0 + kk
            sb[kk, n] = np.float32(b[zb, gn, gk]) if gn < n_len and gk < k_len else np.float32(0.0)
    else:
        k_len, n_len = b.shape[1], b.shape[2]
        for r in range(PER):
            idx = tid + 256 * r
            kk, n = idx // TILE, idx % TILE
            gn, gk = n0 + n, k0 + kk
            sb[kk, n] = np.float32(b[zb, gk, gn]) if gn < n_len and gk < k_len else np.float32(0.0)


@cu.jit(device=True, inline=True)
def _rank_updates(sa: Any, sb: Any, ty: int, tx: int, acc: Any) -> None:
    ar = cu.local.array(PER, np.float32)
    br = cu.local.array(PER, np.float32)
    for kk in range(BK):
        for i in range(PER):
            ar[i] = sa[kk, ty + TPB * i]
            br[i] = sb[kk, tx + TPB * i]
        for i in range(PER):
            for j in range(PER):
                acc[i, j] += ar[i] * br[j]


@cu.jit(fastmath=True)
def gemm_kernel(a: Any, b: Any, out: Any, trans_b: bool) -> None:
    """out[z] = a[z or 0] @ B[z or 0]; a [Ba, M, K] f32, b [Bb, K, N] or [Bb, N, K]
    (trans_b) f32/f16, out [B, M, N] f32; a batch of 1 broadcasts."""
    tx, ty = cu.threadIdx.x, cu.threadIdx.y
    tid = ty * TPB + tx
    z = cu.blockIdx.z
    za = z if a.shape[0] > 1 else 0
    zb = z if b.shape[0] > 1 else 0
    m0, n0 = cu.blockIdx.y * TILE, cu.blockIdx.x * TILE
    sa = cu.shared.array((BK, TILE), np.float32)
    sb = cu.shared.array((BK, TILE), np.float32)
    acc = cu.local.array((PER, PER), np.float32)
    for i in range(PER):
        for j in range(PER):
            acc[i, j] = 0.0
    for k0 in range(0, a.shape[2], BK):
        _stage_a(a, za, m0, k0, tid, sa)
        _stage_b(b, zb, n0, k0, tid, trans_b, sb)
        cu.syncthreads()
        _rank_updates(sa, sb, ty, tx, acc)
        cu.syncthreads()
    for i in range(PER):
        m = m0 + ty + TPB * i
        for j in range(PER):
            n = n0 + tx + TPB * j
            if m < out.shape[1] and n < out.shape[2]:
                out[z, m, n] = acc[i, j]


@cu.jit(fastmath=True)
def gated_kernel(x: Any, wg: Any, wu: Any, act: int, h: Any) -> None:
    """h [T, F] = act(x wg^T) * (x wu^T); x [1, T, E] f32, wg/wu [1, F, E] f32/f16."""
    tx, ty = cu.threadIdx.x, cu.threadIdx.y
    tid = ty * TPB + tx
    m0, n0 = cu.blockIdx.y * TILE, cu.blockIdx.x * TILE
    sa = cu.shared.array((BK, TILE), np.float32)
    sg = cu.shared.array((BK, TILE), np.float32)
    su = cu.shared.array((BK, TILE), np.float32)
    accg = cu.local.array((PER, PER), np.float32)
    accu = cu.local.array((PER, PER), np.float32)
    for i in range(PER):
        for j in range(PER):
            accg[i, j] = 0.0
            accu[i, j] = 0.0
    for k0 in range(0, x.shape[2], BK):
        _stage_a(x, 0, m0, k0, tid, sa)
        _stage_b(wg, 0, n0, k0, tid, True, sg)
        _stage_b(wu, 0, n0, k0, tid, True, su)
        cu.syncthreads()
        _rank_updates(sa, sg, ty, tx, accg)
        _rank_updates(sa, su, ty, tx, accu)
        cu.syncthreads()
    for i in range(PER):
        m = m0 + ty + TPB * i
        for j in range(PER):
            n = n0 + tx + TPB * j
            if m < h.shape[0] and n < h.shape[1]:
                h[m, n] = apply_unary(act, accg[i, j]) * accu[i, j]


def matmul(a: Any, b: Any, out: Any, trans_b: bool = False) -> None:
    """a [Ba, M, K] f32, b [Bb, K, N] (or [Bb, N, K] with trans_b) f32/f16, out [B, M, N]
    f32 device arrays; Ba and Bb are B or 1."""
    nb, m, n = out.shape
    if nb == 0 or m == 0 or n == 0:
        return
    grid = (math.ceil(n / TILE), math.ceil(m / TILE), nb)
    gemm_kernel[grid, (TPB, TPB)](a, b, out, trans_b)


_scratch: dict[tuple[int, ...], Any] = {}


def _buffer(shape: tuple[int, ...], slot: int) -> Any:
    """A reused f32 device buffer: allocating and freeing per call costs more than the
    kernels (a device free synchronises the GPU)."""
    key = (*shape, slot)
    if key not in _scratch:
        _scratch[key] = cu.device_array(shape, np.float32)
    return _scratch[key]


def feed_forward(x: Any, wg: Any, wu: Any, wd: Any, act: str, out: Any) -> None:
    """x [T, E] f32, wg/wu [F, E], wd [E, F] (f32 or f16), out [T, E] f32 (device)."""
    from gene_jit.tensor_kernels import gemv_cuda

    t, e = x.shape
    f = wg.shape[0]
    if t == 0:
        return
    code = elementwise_cuda.UNARY_OPS[act]
    if t == 1:
        g, u = _buffer((f,), 0), _buffer((f,), 1)
        gemv_cuda.gemv(wg, x.reshape(e), g)
        gemv_cuda.gemv(wu, x.reshape(e), u)
        elementwise_cuda.gate(g, u, g, act)
        gemv_cuda.gemv(wd, g, out.reshape(e))
        return
    h = _buffer((t, f), 0)
    grid = (math.ceil(f / TILE), math.ceil(t / TILE))
    gated_kernel[grid, (TPB, TPB)](x.reshape(1, t, e), wg.reshape(1, f, e), wu.reshape(1, f, e), code, h)
    matmul(h.reshape(1, t, f), wd.reshape(1, e, f), out.reshape(1, t, e), trans_b=True)
