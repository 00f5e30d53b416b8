"""Flash-decoding on the GPU: one new token's query heads attending over a KV cache.

Decode attention reads the whole cache once and does little arithmetic per byte, so the
kernel is built to stream the cache at HBM bandwidth:

- One kernel, grid (kv heads x splits): each block takes one kv head and one range of
  keys (a split) for every query head of its group. `plan` sizes the splits so that the
  grid is exactly as many blocks as the GPU holds at once (occupancy x SMs): one wave,
  every SM busy, no second partial wave. Inside a block, `L = D / 8` lanes hold one key row
  (8 dims each, one 16-byte load of f16 via `vector_cuda.ld8`); a warp therefore reads
  `32 / L` rows at once, and each lane issues `2 * U` loads (U keys of K and of V)
  before it computes, to keep bytes in flight. Every lane keeps its query slice, its
  output slice and the online-softmax state (running max, running sum) in registers: the
  group size, head dim and unroll are compile-time constants of the generated kernel, so
  the small per-lane arrays are fully unrolled into registers. The block's key streams
  then merge through shared memory into one partial (max, sum, unnormalised output) per
  query head and split.
- Combine, in the same launch: each block publishes its partials (thread fence) and
  bumps its kv head's counter with an atomic; the block that finds itself last merges
  all splits of that kv head with the usual rescaling by exp(max_s - max), divides by
  the total sum and resets the counter for the next launch. This saves the second
  launch and its drain-and-refill of the GPU, which cost more than the combine itself
  on short caches. The partials are read with L2-coherent loads (`ld.global.cg`).

Masked keys and empty streams use a large negative finite score instead of -inf: the
kernels compile with fastmath, which assumes no infinities.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor_kernels.cuda_support import cuda, simulator
from gene_jit.tensor_kernels.vector_cuda import Launcher, aligned, array_type, ld8, ld_cg2, ld_cg4

cu = cuda()
WARPS = 4  # warps per split block
BLOCKS_PER_SM = 0  # split blocks per SM `plan` aims at; 0: as many as fit at once
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
                       acc: Any, part_o: Any, part_ml: Any, sm_ml: Any, sm_acc: Any) -> None:
        """The block's streams -> one (max, sum, output) partial per query head, through
        shared `sm_ml` [nsub, group, 2] and `sm_acc` [nsub, group, d]."""
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
    _combine = _make_combine(group, d)

    @cu.jit(fastmath=True)
    def split(q: Any, kc: Any, vc: Any, head_stride: int, n_ctx: int, split_len: int,
              scale: float, part_o: Any, part_ml: Any, counters: Any, out: Any) -> None:
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
        sm_ml = cu.shared.array((nsub, group, 2), np.float32)
        sm_acc = cu.shared.array((nsub, group, d), np.float32)
        _merge_streams(kh, sp, tid, li, stream, m, lsum, acc, part_o, part_ml, sm_ml, sm_acc)
        # Publish this split's partials, then count it in; the block that brings the
        # count to the number of splits sees every partial of its kv head and combines.
        cu.threadfence()
        cu.syncthreads()
        last = cu.shared.array(1, np.int32)
        if tid == 0:
            done = cu.atomic.add(counters, kh, 1)
            last[0] = 1 if done == cu.gridDim.y - 1 else 0
        cu.syncthreads()
        if last[0] == 1:
            cu.threadfence()
            _combine(kh, cu.gridDim.y, tid, part_o, part_ml, out, sm_acc)
            if tid == 0:
                counters[kh] = 0  # every split has counted: ready for the next launch

    return split, trip


def _make_combine(group: int, d: int) -> Any:
    """The device function with which the last split block of a kv head merges the
    partials of all splits into the outputs of the head's `group` query heads.

    Weights first: per query head, the threads fold (max, sum) pairs over the splits and
    the warps meet in shared memory; each split's weight exp(m_s - M) / L goes to shared
    memory. (Staging all pairs in shared memory first, and four rows per thread below,
    measured slower on the H100.) Then the outputs: `d / 4` threads cover one partial
    row with 16-byte loads, the block's threads take `rows` splits at once, and every thread keeps `group * 2`
    loads in flight per trip, so the few microseconds this runs on the critical path go
    to L2 bandwidth, not latency. The per-row-slot sums meet in shared memory."""
    quads = d // 4  # threads per partial row
    rows = WARPS * 32 // quads  # partial rows read at once
    @cu.jit(device=True, inline=True)
    def _combine(kh: int, splits: int, tid: int, part_o: Any, part_ml: Any, out: Any, sums: Any) -> None:
        """`sums` is shared [>= rows, group, d] (the merge's buffer, free again by now)."""
        wts = cu.shared.array((group, MAX_SPLITS), np.float32)
        red = cu.shared.array((WARPS, 2), np.float32)
        lane, warp = tid & 31, tid >> 5
        for g in range(group):
            h = kh * group + g
            m = NEG
            lt = np.float32(0.0)
            for s in range(tid, splits, WARPS * 32):
                ms, ls = ld_cg2(part_ml, (h * splits + s) * 2)
                mn = max(m, ms)
                lt = lt * math.exp(m - mn) + ls * math.exp(ms - mn)
                m = mn
            for off in (16, 8, 4, 2, 1):
                mo = cu.shfl_xor_sync(0xFFFFFFFF, m, off)
                lo = cu.shfl_xor_sync(0xFFFFFFFF, lt, off)
                mn = max(m, mo)
                lt = lt * math.exp(m - mn) + lo * math.exp(mo - mn)
                m = mn
            if lane == 0:
                red[warp, 0] = m
                red[warp, 1] = lt
            cu.syncthreads()
            mx = red[0, 0]
            for w in range(1, WARPS):
                mx = max(mx, red[w, 0])
            tot = np.float32(0.0)
            for w in range(WARPS):
                tot += red[w, 1] * math.exp(red[w, 0] - mx)
            cu.syncthreads()  # `red` is written again for the next head
            inv = np.float32(1.0) / tot
            for s in range(tid, splits, WARPS * 32):
                wts[g, s] = math.exp(ld_cg2(part_ml, (h * splits + s) * 2)[0] - mx) * inv
        cu.syncthreads()
        qi, r = tid % quads, tid // quads
        acc = cu.local.array((group, 4), np.float32)
        for g in range(group):
            for e in range(4):
                acc[g, e] = 0.0
        s = r
        while s < splits:
            s2 = min(s + rows, splits - 1)  # past the end: re-read, weight 0
            for g in range(group):
                h = kh * group + g
                a = ld_cg4(part_o, (h * splits + s) * d + qi * 4)
                b = ld_cg4(part_o, (h * splits + s2) * d + qi * 4)
                wa = wts[g, s]
                wb = wts[g, s2] if s + rows < splits else np.float32(0.0)
                for e in range(4):
                    acc[g, e] += a[e] * wa + b[e] * wb
            s += 2 * rows
        for g in range(group):
            for e in range(4):
                sums[r, g, qi * 4 + e] = acc[g, e]
        cu.syncthreads()
        for idx in range(tid, group * d, WARPS * 32):
            g, c = idx // d, idx % d
            o = np.float32(0.0)
            for rr in range(rows):
                o += sums[rr, g, c]
            out[kh * group + g, c] = o

    return _combine


MAX_SPLITS = 256  # the combining block's weight table (shared memory) holds this many


_kernels: dict[tuple[Any, ...], tuple[Launcher, int]] = {}
_scratch: dict[tuple[int, int, int, int], tuple[Any, Any, Any]] = {}


def default_unroll(group: int) -> int:
    return 4 if group <= 4 else 2  # 2 * unroll loads in flight, within the register budget


def _split_kernel(group: int, d: int, cache_dtype: Any, unroll: int) -> tuple[Launcher, int]:
    key = (group, d, np.dtype(cache_dtype).name, unroll)
    if key not in _kernels:
        from numba import types

        kern, trip = _make_split(group, d, unroll)
        cache_t = array_type(cache_dtype)
        sig = (array_type(np.float32), cache_t, cache_t, types.int64, types.int64, types.int64,
               types.float32, array_type(np.float32, 3), array_type(np.float32, 3),
               array_type(np.int32), array_type(np.float32, 2))
        _kernels[key] = (Launcher(kern, sig), trip)
    return _kernels[key]


def resident_blocks(launcher: Launcher) -> int:
    """How many split blocks the whole GPU holds at once (occupancy x SMs), or
    BLOCKS_PER_SM x SMs when that is set. A grid within this runs as one wave: a second,
    partial wave would add a whole block's latency for a few blocks' work."""
    if simulator():
        return 4
    sms = int(cu.get_current_device().MULTIPROCESSOR_COUNT)
    if BLOCKS_PER_SM:
        return BLOCKS_PER_SM * sms
    return int(launcher.compiled().max_cooperative_grid_blocks(WARPS * 32))


def plan(hkv: int, n_ctx: int, nsub: int, resident: int) -> tuple[int, int]:
    """(splits, keys per split): as many splits per kv head as fill one wave of resident
    blocks, each a multiple of the block's `nsub` key streams long."""
    splits = max(1, min(resident // hkv, MAX_SPLITS, math.ceil(n_ctx / nsub)))
    split_len = math.ceil(math.ceil(n_ctx / splits) / nsub) * nsub
    return math.ceil(n_ctx / split_len), split_len


def usable(q: Any, k_cache: Any, v_cache: Any, out: Any) -> bool:
    """Whether the flash-decoding kernel takes these arrays (else the generic path)."""
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
    `unroll` (keys per stream per trip) defaults to the tuned value for the group size.
    One launch: the split blocks combine their own partials (see the module doc)."""
    h, d = q.shape
    hkv, s_len = k_cache.shape[0], k_cache.shape[1]
    group = h // hkv
    unroll = unroll or default_unroll(group)
    split, trip = _split_kernel(group, d, k_cache.dtype, unroll)
    splits, split_len = plan(hkv, n_ctx, trip // unroll, resident_blocks(split))
    key = (h, hkv, d, splits)
    if key not in _scratch:
        _scratch[key] = (cu.device_array((h, splits, d), np.float32), cu.device_array((h, splits, 2), np.float32),
                         cu.to_device(np.zeros(hkv, np.int32)))
    part_o, part_ml, counters = _scratch[key]
    split((hkv, splits), WARPS * 32, q.reshape(h * d), k_cache.reshape(k_cache.size),
          v_cache.reshape(v_cache.size), s_len * d, n_ctx, split_len, np.float32(scale), part_o, part_ml,
          counters, out)
