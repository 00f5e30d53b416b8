"""Flash-decoding on the GPU: one new token's query heads attending over a KV cache.

Decode attention reads the whole cache once and does little arithmetic per byte, so the
kernel is built to stream the cache at HBM bandwidth:

- `split` kernel, grid (kv heads x splits): each block takes one kv head and one range
  of keys (a split) for every query head of its group, so the grid has several blocks
  per SM whatever the head count. Inside a block, `L = D / 8` lanes hold one key row
  (8 dims each, one 16-byte load of f16 via `vector_cuda.ld8`); a warp therefore reads
  `32 / L` rows at once, and each lane issues `2 * U` loads (U keys of K and of V)
  before it computes, to keep bytes in flight. Every lane keeps its query slice, its
  output slice and the online-softmax state (running max, running sum) in registers: the
  group size, head dim and unroll are compile-time constants of the generated kernel, so
  the small per-lane arrays are fully unrolled into registers. The block's key streams
  then merge through shared memory into one partial (max, sum, unnormalised output) per
  query head and split.
- `combine` kernel, one block per query head: merges the splits' partials with the
  usual rescaling by exp(max_s - max) and divides by the total sum; the splits are spread
  over the block's threads (a thread walking all splits would wait on the cache once per
  split).

Masked keys and empty streams use a large negative finite score instead of -inf: the
kernels compile with fastmath, which assumes no infinities.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor_kernels.cuda_support import cuda, simulator
from gene_jit.tensor_kernels.vector_cuda import Launcher, aligned, array_type, ld8

cu = cuda()
WARPS = 4  # warps per split block
BLOCKS_PER_SM = 4  # split blocks `plan` aims at per SM
NEG = np.float32(-1e30)  # "minus infinity" that fastmath arithmetic keeps finite
MAX_GROUP = 8  # query heads per kv head held in registers
HEAD_DIMS = (8, 16, 32, 64, 128, 256)  # D / 8 lanes must tile a warp


def supported(group: int, d: int) -> bool:
    return 1 <= group <= MAX_GROUP and d in HEAD_DIMS


def _make_merge(group: int, d: int, nsub: int) -> Any:
    """The device function that merges a split block's key streams (shared memory sized
    by the compile-time group, head dim and stream count)."""

    @cu.jit(device=True, inline=True)
    def _merge_streams(kh: int, sp: int, tid: int, li: int, stream: int, m: Any, lsum: Any,
                       acc: Any, part_o: Any, part_ml: Any) -> None:
        """The block's streams -> one (max, sum, output) partial per query head."""
        sm_ml = cu.shared.array((nsub, group, 2), np.float32)
        sm_acc = cu.shared.array((nsub, group, d), np.float32)
        for g in range(group):
            if li == 0:
                sm_ml[stream, g, 0] = m[g]
                sm_ml[stream, g, 1] = lsum[g]
            for e in range(8):
                sm_acc[stream, g, li * 8 + e] = acc[g, e]
        cu.syncthreads()
        for idx in range(tid, group * d, WARPS * 32):
            g, c = idx // d, idx % d
            mx = NEG
            for s in range(nsub):
                mx = max(mx, sm_ml[s, g, 0])
            o = np.float32(0.0)
            tot = np.float32(0.0)
            for s in range(nsub):
                w = math.exp(sm_ml[s, g, 0] - mx)
                o += sm_acc[s, g, c] * w
                tot += sm_ml[s, g, 1] * w
            h = kh * group + g
            part_o[h, sp, c] = o
            if c == 0:
                part_ml[h, sp, 0] = mx
                part_ml[h, sp, 1] = tot

    return _merge_streams


def _make_split(group: int, d: int, unroll: int) -> Any:
    """The split kernel for one (group size, head dim, unroll), with those as constants."""
    lanes = d // 8  # lanes per key row
    subs = 32 // lanes  # key rows a warp reads at once
    nsub = WARPS * subs  # key streams per block
    trip = nsub * unroll  # keys a block consumes per loop trip

    _merge_streams = _make_merge(group, d, nsub)

    @cu.jit(fastmath=True)
    def split(q: Any, kc: Any, vc: Any, head_stride: int, n_ctx: int, split_len: int,
              scale: float, part_o: Any, part_ml: Any) -> None:
        kh, sp = cu.blockIdx.x, cu.blockIdx.y
        tid = cu.threadIdx.x
        lane = tid & 31
        li = lane % lanes
        stream = (tid >> 5) * subs + lane // lanes
        qr = cu.local.array((group, 8), np.float32)
        for g in range(group):
            qv = ld8(q, ((kh * group + g) * d + li * 8))
            for e in range(8):
                qr[g, e] = qv[e] * scale
        m = cu.local.array(group, np.float32)
        lsum = cu.local.array(group, np.float32)
        acc = cu.local.array((group, 8), np.float32)
        for g in range(group):
            m[g] = NEG
            lsum[g] = 0.0
            for e in range(8):
                acc[g, e] = 0.0
        kr = cu.local.array((unroll, 8), np.float32)
        vr = cu.local.array((unroll, 8), np.float32)
        sc = cu.local.array((unroll, group), np.float32)
        j1 = min((sp + 1) * split_len, n_ctx)
        base = kh * head_stride + li * 8
        jb = sp * split_len  # warp-uniform: every lane makes the same trips and shuffles
        while jb < j1:
            for u in range(unroll):
                jj = min(jb + stream + u * nsub, j1 - 1)  # past the end: re-read, then mask
                kv = ld8(kc, base + jj * d)
                vv = ld8(vc, base + jj * d)
                for e in range(8):
                    kr[u, e] = kv[e]
                    vr[u, e] = vv[e]
            for u in range(unroll):
                for g in range(group):
                    s = np.float32(0.0)
                    for e in range(8):
                        s += qr[g, e] * kr[u, e]
                    off = lanes >> 1
                    while off > 0:
                        s += cu.shfl_xor_sync(0xFFFFFFFF, s, off)
                        off >>= 1
                    sc[u, g] = s if jb + stream + u * nsub < j1 else NEG
            for g in range(group):
                mx = m[g]
                for u in range(unroll):
                    mx = max(mx, sc[u, g])
                corr = math.exp(m[g] - mx)
                lsum[g] *= corr
                for e in range(8):
                    acc[g, e] *= corr
                for u in range(unroll):
                    p = math.exp(sc[u, g] - mx)
                    lsum[g] += p
                    for e in range(8):
                        acc[g, e] += p * vr[u, e]
                m[g] = mx
            jb += trip
        _merge_streams(kh, sp, tid, li, stream, m, lsum, acc, part_o, part_ml)

    return split, trip


COMBINE_THREADS = 512
COMBINE_WARPS = 16  # COMBINE_THREADS / 32, spelled out: shared array sizes must be literals
MAX_SPLITS = 1024  # `plan` never makes more (it aims at four blocks per SM)


@cu.jit(device=True, inline=True)
def _block_reduce(v: Any, red: Any, is_max: bool) -> Any:
    """Max or sum of `v` over the block (every thread gets the result)."""
    off = 16
    while off > 0:
        o = cu.shfl_xor_sync(0xFFFFFFFF, v, off)
        v = max(v, o) if is_max else v + o
        off >>= 1
    if cu.threadIdx.x & 31 == 0:
        red[cu.threadIdx.x >> 5] = v
    cu.syncthreads()
    v = red[0]
    for i in range(1, COMBINE_WARPS):
        v = max(v, red[i]) if is_max else v + red[i]
    cu.syncthreads()
    return v


@cu.jit(fastmath=True)
def _combine(part_o: Any, part_ml: Any, splits: int, out: Any) -> None:
    """One block per query head merges its splits' partials. Every loop here runs across
    threads, not along one thread: a serial walk over the splits waits on one cache
    round trip per split, which cost more than the split kernel itself."""
    h = cu.blockIdx.x
    tid = cu.threadIdx.x
    d = out.shape[1]
    red = cu.shared.array(COMBINE_WARPS, np.float32)
    wts = cu.shared.array(MAX_SPLITS, np.float32)
    parts = cu.shared.array(COMBINE_THREADS, np.float32)
    mx = NEG
    for s in range(tid, splits, COMBINE_THREADS):
        mx = max(mx, part_ml[h, s, 0])
    mx = _block_reduce(mx, red, True)
    tot = np.float32(0.0)
    for s in range(tid, splits, COMBINE_THREADS):
        w = math.exp(part_ml[h, s, 0] - mx)
        wts[s] = w
        tot += part_ml[h, s, 1] * w
    tot = _block_reduce(tot, red, False)  # its barrier also publishes `wts`
    nparts = COMBINE_THREADS // d  # threads per output dim, each over every nparts-th split
    p, c = tid // d, tid % d
    o0 = np.float32(0.0)
    o1 = np.float32(0.0)
    s = p
    if p < nparts:
        while s + nparts < splits:  # two independent loads in flight per trip
            o0 += part_o[h, s, c] * wts[s]
            o1 += part_o[h, s + nparts, c] * wts[s + nparts]
            s += 2 * nparts
        if s < splits:
            o0 += part_o[h, s, c] * wts[s]
    parts[tid] = o0 + o1
    cu.syncthreads()
    if tid < d:
        o = np.float32(0.0)
        for q in range(nparts):
            o += parts[q * d + tid]
        out[h, tid] = o / tot


_kernels: dict[tuple[Any, ...], tuple[Launcher, int]] = {}
_combine_launch: list[Launcher] = []
_scratch: dict[tuple[int, int, int], tuple[Any, Any]] = {}


def default_unroll(group: int) -> int:
    return 4 if group <= 4 else 2  # 2 * unroll loads in flight, within the register budget


def _split_kernel(group: int, d: int, cache_dtype: Any, unroll: int) -> tuple[Launcher, int]:
    key = (group, d, np.dtype(cache_dtype).name, unroll)
    if key not in _kernels:
        from numba import types

        kern, trip = _make_split(group, d, unroll)
        cache_t = array_type(cache_dtype)
        sig = (array_type(np.float32), cache_t, cache_t, types.int64, types.int64, types.int64,
               types.float32, array_type(np.float32, 3), array_type(np.float32, 3))
        _kernels[key] = (Launcher(kern, sig), trip)
    return _kernels[key]


def _sm_count() -> int:
    if simulator():
        return 2
    return int(cu.get_current_device().MULTIPROCESSOR_COUNT)


def plan(hkv: int, n_ctx: int, trip: int) -> tuple[int, int]:
    """(splits, keys per split): about BLOCKS_PER_SM blocks per SM, each split a whole number of
    block trips so only the last split has masked keys."""
    want = max(1, math.ceil(BLOCKS_PER_SM * _sm_count() / hkv))
    splits = max(1, min(want, MAX_SPLITS, math.ceil(n_ctx / trip)))
    split_len = math.ceil(math.ceil(n_ctx / splits) / trip) * trip
    return math.ceil(n_ctx / split_len), split_len


def usable(q: Any, k_cache: Any, v_cache: Any, out: Any) -> bool:
    """Whether the flash-decoding kernels take these arrays (else the generic path)."""
    h, d = q.shape
    hkv = k_cache.shape[0]
    return (h % hkv == 0 and supported(h // hkv, d) and q.dtype == np.float32
            and out.dtype == np.float32 and k_cache.dtype == v_cache.dtype
            and k_cache.dtype in (np.float16, np.float32) and k_cache.shape == v_cache.shape
            and aligned(q, d) and aligned(k_cache, d) and aligned(v_cache, d)
            and out.is_c_contiguous())


def decode(q: Any, k_cache: Any, v_cache: Any, n_ctx: int, scale: float, out: Any,
           unroll: int = 0) -> None:
    """q [H, D] f32, caches [Hkv, S, D] (f16 or f32), out [H, D] f32; `usable` holds.
    `unroll` (keys per stream per trip) defaults to the tuned value for the group size."""
    h, d = q.shape
    hkv, s_len = k_cache.shape[0], k_cache.shape[1]
    group = h // hkv
    split, trip = _split_kernel(group, d, k_cache.dtype, unroll or default_unroll(group))
    splits, split_len = plan(hkv, n_ctx, trip)
    key = (h, d, splits)
    if key not in _scratch:
        _scratch[key] = (cu.device_array((h, splits, d), np.float32), cu.device_array((h, splits, 2), np.float32))
    part_o, part_ml = _scratch[key]
    split((hkv, splits), WARPS * 32, q.reshape(h * d), k_cache.reshape(k_cache.size),
          v_cache.reshape(v_cache.size), s_len * d, n_ctx, split_len, np.float32(scale), part_o, part_ml)
    if not _combine_launch:
        from numba import types

        _combine_launch.append(Launcher(_combine, (array_type(np.float32, 3), array_type(np.float32, 3),
                                                   types.int64, array_type(np.float32, 2))))
    _combine_launch[0](h, COMBINE_THREADS, part_o, part_ml, splits, out)
