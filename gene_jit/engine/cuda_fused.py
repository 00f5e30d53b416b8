"""Fused per-row kernels of the native engine on the GPU: ops that a decode step would
otherwise run as several small launches, each of which costs more in latency than in work.

- `add_rmsnorm`: out = x + RMSNorm(y) * w (a post-norm joining the residual stream);
- `residual_rmsnorm`: x2 = x + RMSNorm(y) * p (or x + y), then h = RMSNorm(x2) * w with
  h's 8-bit blocks for the products that read it (a layer's closing residual join and the
  norm of what reads its output next);
- `norm_rope`: per head, RMSNorm * w, then RoPE at each row's position, then times `mul`
  (Gemma's QK norm, rotary embedding and query scale);
- `qk_rope_store`: norm_rope of q's heads and of k's (or RoPE alone), whose result goes
  into the KV cache with v's heads: what the attention's inputs need, one launch.

Each computes what the unfused kernels of cuda_kernels.py compute, operation for operation
(the same f64 sums of squares, the same angles and fused products), so the results are the
same bits, as tests/test_engine_cuda.py checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gene_jit.engine.cuda_kernels import THREADS, no_quant, rope_cos_sin, row_scale, scaled_row
from gene_jit.tensor_kernels.cuda_support import cuda, launch_stream, simulator

cu = cuda()
MAX_HEAD = 512  # head widths norm_rope takes (its normalised head waits in shared memory)

if simulator():

    @cu.jit(device=True)
    def mul_rn(a: Any, b: Any) -> Any:
        return np.float32(a * b)
else:
    # a product rounded on its own: NVVM contracts a product and a sum into one fused
    # multiply-add (one rounding), where the unfused ops round the product when they store it
    mul_rn = cu.libdevice.fmul_rn


@cu.jit
def _add_rmsnorm_kernel(x: Any, y: Any, w: Any, eps: Any, out: Any) -> None:
    """A block per row: out[r] = x[r] + RMSNorm(y[r]) * w."""
    r = cu.blockIdx.x
    cols = y.shape[1]
    part = cu.shared.array(THREADS, np.float64)
    scale = row_scale(y, r, cols, eps, part)
    c = cu.threadIdx.x
    while c < cols:
        out[r, c] = x[r, c] + mul_rn(np.float32(y[r, c] * scale), w[c])
        c += THREADS


def add_rmsnorm(x: Any, y: Any, w: Any, eps: float, out: Any) -> None:
    """out [R, C] = x + RMSNorm(y) * w (x, y [R, C])."""
    _add_rmsnorm_kernel[y.shape[0], THREADS, launch_stream()](x, y, w, np.float32(eps), out)


@cu.jit
def _residual_rmsnorm_kernel(x: Any, y: Any, p: Any, post: bool, w: Any, eps: Any, x2: Any,
                             h: Any, quant: bool, xq: Any, xd: Any) -> None:
    """A block per row: x2[r] = x[r] + RMSNorm(y[r]) * p (post), else x[r] + y[r]; then
    h[r] = RMSNorm(x2[r]) * w as cuda_kernels._rmsnorm_kernel computes it, its 8-bit blocks
    too (quant). Each thread reads back the values of x2 it wrote itself."""
    r = cu.blockIdx.x
    cols = y.shape[1]
    # two reductions: a thread may still read the first's total when another starts the
    # second, so each has its own shared array
    part = cu.shared.array(THREADS, np.float64)
    part2 = cu.shared.array(THREADS, np.float64)
    c = cu.threadIdx.x
    if post:
        scale = row_scale(y, r, cols, eps, part)
        while c < cols:
            x2[r, c] = x[r, c] + mul_rn(np.float32(y[r, c] * scale), p[c])
            c += THREADS
    else:
        while c < cols:
            x2[r, c] = x[r, c] + y[r, c]
            c += THREADS
    scaled_row(x2, r, cols, row_scale(x2, r, cols, eps, part2), w, h, quant, xq, xd)


def residual_rmsnorm(x: Any, y: Any, p: Any, w: Any, eps: float, x2: Any, h: Any,
                     xq: Any = None, xd: Any = None) -> None:
    """x2 [R, C] = x + RMSNorm(y) * p (x + y when p is None), h = RMSNorm(x2) * w; with
    xq, xd (C a multiple of 32) also h's 8-bit quants and block scales."""
    post = p is not None
    quant = xq is not None
    if not quant:
        xq, xd = no_quant()
    _residual_rmsnorm_kernel[y.shape[0], THREADS, launch_stream()](
        x, y, p if post else w, post, w, np.float32(eps), x2, h, quant, xq, xd)


@cu.jit(device=True, inline=True)
def _rotate(a: Any, b: Any, cs: Any, sn: Any) -> Any:
    """A pair (a, b) turned by the angle of cos cs, sin sn, as cuda_kernels._rope_kernel
    turns it."""
    x0 = np.float64(a)
    return (np.float32(x0 * np.float64(cs) - np.float64(np.float32(b * sn))),
            np.float32(x0 * np.float64(sn) + np.float64(np.float32(b * cs))))


@cu.jit(device=True, inline=True)
def _head_to_shared(x: Any, r: int, d: int, norm: bool, w: Any, eps: Any, part: Any, normed: Any) -> None:
    """normed = row r of x (its RMSNorm * w when `norm`), for the rotation that follows
    (every thread of the block calls it: its barriers)."""
    s = row_scale(x, r, d, eps, part) if norm else np.float32(1.0)
    c = cu.threadIdx.x
    while c < d:
        normed[c] = np.float32(x[r, c] * s) * w[c] if norm else x[r, c]
        c += THREADS
    cu.syncthreads()


@cu.jit
def _norm_rope_kernel(x: Any, w: Any, eps: Any, pos: Any, step: Any, scale: Any, n_rot: int,
                      neox: bool, factors: Any, use_factors: bool, mul: Any, use_mul: bool,
                      out: Any) -> None:
    """A block per (token, head) of x [T, H, D] viewed as rows [T * H, D]: the head's
    RMSNorm * w into shared memory, then cuda_kernels._rope_kernel's rotation of it, each
    value then times `mul` (use_mul)."""
    t, h = cu.blockIdx.x, cu.blockIdx.y
    heads, d = out.shape[1], out.shape[2]
    part = cu.shared.array(THREADS, np.float64)
    normed = cu.shared.array(MAX_HEAD, np.float32)
    _head_to_shared(x, t * heads + h, d, True, w, eps, part, normed)
    half = n_rot // 2
    i = cu.threadIdx.x
    while i < half:
        cs, sn = rope_cos_sin(pos[t], i, step, scale, factors, use_factors)
        a, b = (i, i + half) if neox else (2 * i, 2 * i + 1)
        va, vb = _rotate(normed[a], normed[b], cs, sn)
        out[t, h, a] = va * mul if use_mul else va
        out[t, h, b] = vb * mul if use_mul else vb
        i += THREADS
    j = n_rot + cu.threadIdx.x
    while j < d:
        out[t, h, j] = normed[j] * mul if use_mul else normed[j]
        j += THREADS


def norm_rope(x: Any, w: Any, eps: float, pos: Any, base: float, scale: float, n_rot: int,
              neox: bool, factors: Any, use_factors: bool, mul: float | None, out: Any) -> None:
    """out [T, H, D] = RoPE(RMSNorm(x) * w) (times mul), x [T, H, D], D <= MAX_HEAD."""
    t, heads, d = out.shape
    step = np.float32(base ** (-2.0 / n_rot))
    _norm_rope_kernel[(t, heads), THREADS, launch_stream()](
        x.reshape(t * heads, d), w, np.float32(eps), pos, step, np.float32(scale), n_rot, neox,
        factors, use_factors, np.float32(1.0 if mul is None else mul), mul is not None, out)


@cu.jit
def _qk_rope_store_kernel(q: Any, k: Any, v: Any, norm: bool, wq: Any, wk: Any, eps: Any, pos: Any,
                          slot: Any, step: Any, scale: Any, n_rot: int, neox: bool,
                          factors: Any, use_factors: bool, mul: Any, use_mul: bool,
                          out: Any, kc: Any, vc: Any) -> None:
    """A block per (token, head) of q [T, H, D] and then of k [T, Hkv, D] (rows
    [T * heads, D]): _norm_rope_kernel's values (without the norm unless `norm`: then
    cuda_kernels._rope_kernel's), q's times `mul` (use_mul) into out, k's rounded to f16
    into the cache kc [S, Hkv, C, D] at the row's slot and position, where a k head's block
    also stores that head of v (as cuda_kernels._kv_store_kernel does)."""
    t, hh = cu.blockIdx.x, cu.blockIdx.y
    heads, d = out.shape[1], out.shape[2]
    is_q = hh < heads  # the same for the whole block: its barriers are met by all threads
    kh = hh - heads
    x = q if is_q else k
    w = wq if is_q else wk
    r = t * heads + hh if is_q else t * kc.shape[1] + kh
    scaled = is_q and use_mul
    part = cu.shared.array(THREADS, np.float64)
    normed = cu.shared.array(MAX_HEAD, np.float32)
    _head_to_shared(x, r, d, norm, w, eps, part, normed)
    half = n_rot // 2
    i = cu.threadIdx.x
    while i < half:
        cs, sn = rope_cos_sin(pos[t], i, step, scale, factors, use_factors)
        a, b = (i, i + half) if neox else (2 * i, 2 * i + 1)
        va, vb = _rotate(normed[a], normed[b], cs, sn)
        if is_q:
            out[t, hh, a] = va * mul if scaled else va
            out[t, hh, b] = vb * mul if scaled else vb
        else:
            kc[slot[t], kh, pos[t], a] = np.float16(va)
            kc[slot[t], kh, pos[t], b] = np.float16(vb)
        i += THREADS
    j = n_rot + cu.threadIdx.x
    while j < d:
        if is_q:
            out[t, hh, j] = normed[j] * mul if scaled else normed[j]
        else:
            kc[slot[t], kh, pos[t], j] = np.float16(normed[j])
        j += THREADS
    if not is_q:
        c = cu.threadIdx.x
        while c < d:
            vc[slot[t], kh, pos[t], c] = np.float16(v[t, kh, c])
            c += THREADS


def qk_rope_store(q: Any, k: Any, v: Any, wq: Any, wk: Any, eps: float, pos: Any, slot: Any,
                  base: float, scale: float, n_rot: int, neox: bool, factors: Any,
                  use_factors: bool, mul: float | None, out: Any, kc: Any, vc: Any) -> None:
    """out [T, H, D] = RoPE(RMSNorm(q) * wq) (times mul); RoPE(RMSNorm(k) * wk) and v
    [T, Hkv, D] into the cache kc, vc [S, Hkv, C, D] at each row's slot and position (wq,
    wk None: RoPE(q), RoPE(k)); one launch, D <= MAX_HEAD."""
    t, heads, d = out.shape
    kv_heads = k.shape[1]
    step = np.float32(base ** (-2.0 / n_rot))
    norm = wq is not None
    if not norm:
        wq = wk = factors  # not read
    _qk_rope_store_kernel[(t, heads + kv_heads), THREADS, launch_stream()](
        q.reshape(t * heads, d), k.reshape(t * kv_heads, d), v, norm, wq, wk, np.float32(eps), pos, slot,
        step, np.float32(scale), n_rot, neox, factors, use_factors,
        np.float32(1.0 if mul is None else mul), mul is not None, out, kc, vc)
