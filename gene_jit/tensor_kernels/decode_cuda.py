"""Flash-decoding on the GPU: one new token's query heads attending over a KV cache.

Decode attention reads the whole cache once and does little arithmetic per byte, so the
kernel is built to stream the cache at HBM bandwidth:

- One kernel, grid (kv heads x splits): each block takes one kv head and one range of
  keys (a split) for every query head of its group. `plan` sizes the splits so that the
  grid is exactly as many blocks as the GPU holds at once (occupancy x SMs): one wave,
  every SM busy, no second partial wave. Groups of up to 4 query heads run 8 warps per
  block (`default_warps`), larger ones 4: at the same occupancy, wider blocks mean half
  as many splits, so half the partials for the combine below, which runs after the last
  split and so dominates short caches with grouped heads. Inside a block, `L = D / 8`
  lanes hold one key row (8 dims each, one 16-byte load of f16 via `vector_cuda.ld8`);
  a warp therefore reads `32 / L` rows at once, and each lane issues `2 * U` loads (U
  keys of K and of V) before it computes, to keep bytes in flight. Every lane keeps its
  query slice, its output slice and the online-softmax state (running max, running sum)
  in registers: the group size, head dim, unroll and warps are compile-time constants of
  the generated kernel, so the small per-lane arrays are fully unrolled into registers. The block's key streams
  then merge through shared memory into one partial (max, sum, unnormalised output) per
  query head and split.
- Combine, in the same launch: each block publishes its partials (thread fence) and
  bumps its kv head's counter with an atomic; the block that finds itself last merges
  all splits of that kv head with the usual rescaling by exp(max_s - max), divides by
  the total sum and resets the counter for the next launch. This saves the second
  launch and its drain-and-refill of the GPU, which cost more than the combine itself
  on short caches. The partials are read with L2-coherent loads (`ld.global.cg`), all
  of a thread's loads issued before the first is used (see `_make_combine`).

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
WARPS = 4  # warps per split block for groups over SMALL_GROUP
WIDE_WARPS = 8  # warps per split block for groups up to SMALL_GROUP
SMALL_GROUP = 4  # (WIDE_WARPS * 1 KiB * group of shared memory must stay under 48 KiB)
BLOCKS_PER_SM = 0  # split blocks per SM `plan` aims at; 0: as many as fit at once
NEG = np.float32(-1e30)  # "minus infinity" that fastmath arithmetic keeps finite
MAX_GROUP = 8  # query heads per kv head held in registers
HEAD_DIMS = (8, 16, 32, 64, 128, 256)  # D / 8 lanes must tile a warp


def supported(group: int, d: int) -> bool:
    return 1 <= group <= MAX_GROUP and d in HEAD_DIMS


def _make_merge(group: int, d: int, nsub: int, warps: int) -> Any:
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
        for idx in range(tid, group * d, warps * 32):
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


def _make_split(group: int, d: int, unroll: int, warps: int) -> Any:
    """The split kernel for one (group size, head dim, unroll, warps per block), with
    those as constants."""
    lanes = d // 8  # lanes per key row
    subs = 32 // lanes  # key rows a warp reads at once
    nsub = warps * subs  # key streams per block
    trip = nsub * unroll  # keys a block consumes per loop trip

    _merge_streams = _make_merge(group, d, nsub, warps)
    _combine = _make_combine(group, d, warps)

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


def _make_weights(group: int, warps: int) -> Any:
    """The combine's first step: each split's weight exp(m_s - M) / L per query head,
    into shared `wts` [group, MAX_SPLITS] (see `_make_combine`)."""
    per_lane = MAX_SPLITS // 32  # (max, sum) pairs a lane holds

    @cu.jit(device=True, inline=True)
    def _weights(kh: int, splits: int, tid: int, part_ml: Any, wts: Any) -> None:
        lane = tid & 31
        ms = cu.local.array(per_lane, np.float32)
        ls = cu.local.array(per_lane, np.float32)
        for g0 in range(0, group, warps):  # every warp makes the same trips and shuffles
            g = g0 + (tid >> 5)
            live = g < group
            h = kh * group + min(g, group - 1)
            mx = NEG
            for i in range(per_lane):
                s = lane + 32 * i
                if live and s < splits:
                    pair = ld_cg2(part_ml, (h * splits + s) * 2)
                    ms[i] = pair[0]
                    ls[i] = pair[1]
                else:
                    ms[i] = NEG
                    ls[i] = 0.0
                mx = max(mx, ms[i])
            for off in (16, 8, 4, 2, 1):
                mx = max(mx, cu.shfl_xor_sync(0xFFFFFFFF, mx, off))
            tot = np.float32(0.0)
            for i in range(per_lane):
                tot += ls[i] * math.exp(ms[i] - mx)
            for off in (16, 8, 4, 2, 1):
                tot += cu.shfl_xor_sync(0xFFFFFFFF, tot, off)
            inv = np.float32(1.0) / tot if live else np.float32(0.0)
            for i in range(per_lane):
                if live and lane + 32 * i < splits:
                    wts[g, lane + 32 * i] = math.exp(ms[i] - mx) * inv

    return _weights


def _make_combine(group: int, d: int, warps: int) -> Any:
    """The device function with which the last split block of a kv head merges the
    partials of all splits into the outputs of the head's `group` query heads.

    It runs on the critical path after the last split, so it is built to wait on as few
    L2 round trips as possible. Weights first: warp w takes query heads w, w + warps, ...;
    each lane loads all its (max, sum) pairs at once (splits lane, lane + 32, ...), the
    warp folds them with shuffles, and each split's weight exp(m_s - M) / L goes to
    shared memory: one round trip for every head together. Then the outputs: `d / 4`
    threads cover one partial row with 16-byte loads, the block's threads take `rows`
    splits side by side, and each thread first loads `unroll` of its splits for every
    head (`unroll * group` loads in flight), then weights and sums them; the per-row-slot
    sums meet in shared memory."""
    threads = warps * 32
    quads = d // 4  # threads per partial row
    rows = threads // quads  # partial rows read at once
    unroll = max(1, 16 // group)  # splits per row slot per trip
    _weights = _make_weights(group, warps)

    @cu.jit(device=True, inline=True)
    def _combine(kh: int, splits: int, tid: int, part_o: Any, part_ml: Any, out: Any, sums: Any) -> None:
        """`sums` is shared [>= rows, group, d] (the merge's buffer, free again by now)."""
        wts = cu.shared.array((group, MAX_SPLITS), np.float32)
        _weights(kh, splits, tid, part_ml, wts)
        cu.syncthreads()
        qi, r = tid % quads, tid // quads
        acc = cu.local.array((group, 4), np.float32)
        buf = cu.local.array((unroll, group, 4), np.float32)
        for g in range(group):
            for e in range(4):
                acc[g, e] = 0.0
        s = r
        while s < splits:
            for u in range(unroll):
                su = s + u * rows
                for g in range(group):
                    if su < splits:
                        a = ld_cg4(part_o, ((kh * group + g) * splits + su) * d + qi * 4)
                        for e in range(4):
                            buf[u, g, e] = a[e]
                    else:
                        for e in range(4):
                            buf[u, g, e] = 0.0
            for u in range(unroll):
                su = min(s + u * rows, splits - 1)
                for g in range(group):
                    w = wts[g, su]
                    for e in range(4):
                        acc[g, e] += buf[u, g, e] * w
            s += unroll * rows
        for g in range(group):
            for e in range(4):
                sums[r, g, qi * 4 + e] = acc[g, e]
        cu.syncthreads()
        for idx in range(tid, group * d, threads):
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
    """Keys per stream per trip (2 * unroll loads in flight), within the register budget.
    One query head per kv head has the least arithmetic per key and ran best with 2 on
    the H100 (the shorter trips end the split sooner), groups of 2 to 4 with 4."""
    return 4 if 2 <= group <= 4 else 2


def default_warps(group: int) -> int:
    """Warps per split block. Wider blocks mean fewer, longer splits: fewer partials for
    the combine on the critical path, which dominates short caches with grouped heads.
    The stream merge's shared buffer (1 KiB per warp and group head) bounds them."""
    return WIDE_WARPS if group <= SMALL_GROUP else WARPS


def _split_kernel(group: int, d: int, cache_dtype: Any, unroll: int, warps: int) -> tuple[Launcher, int]:
    key = (group, d, np.dtype(cache_dtype).name, unroll, warps)
    if key not in _kernels:
        from numba import types

        kern, trip = _make_split(group, d, unroll, warps)
        cache_t = array_type(cache_dtype)
        sig = (array_type(np.float32), cache_t, cache_t, types.int64, types.int64, types.int64,
               types.float32, array_type(np.float32, 3), array_type(np.float32, 3),
               array_type(np.int32), array_type(np.float32, 2))
        _kernels[key] = (Launcher(kern, sig), trip)
    return _kernels[key]


def resident_blocks(launcher: Launcher, threads: int) -> int:
    """How many split blocks the whole GPU holds at once (occupancy x SMs), or
    BLOCKS_PER_SM x SMs when that is set. A grid within this runs as one wave: a second,
    partial wave would add a whole block's latency for a few blocks' work."""
    if simulator():
        return 4
    sms = int(cu.get_current_device().MULTIPROCESSOR_COUNT)
    if BLOCKS_PER_SM:
        return BLOCKS_PER_SM * sms
    return int(launcher.compiled().max_cooperative_grid_blocks(threads))


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
           unroll: int = 0, warps: int = 0) -> None:
    """q [H, D] f32, caches [Hkv, S, D] (f16 or f32), out [H, D] f32; `usable` holds.
    `unroll` (keys per stream per trip) and `warps` (per split block) default to the
    tuned values for the group size. One launch: the split blocks combine their own
    partials (see the module doc)."""
    h, d = q.shape
    hkv, s_len = k_cache.shape[0], k_cache.shape[1]
    group = h // hkv
    unroll = unroll or default_unroll(group)
    warps = warps or default_warps(group)
    split, trip = _split_kernel(group, d, k_cache.dtype, unroll, warps)
    splits, split_len = plan(hkv, n_ctx, trip // unroll, resident_blocks(split, warps * 32))
    key = (h, hkv, d, splits)
    if key not in _scratch:
        _scratch[key] = (cu.device_array((h, splits, d), np.float32), cu.device_array((h, splits, 2), np.float32),
                         cu.to_device(np.zeros(hkv, np.int32)))
    part_o, part_ml, counters = _scratch[key]
    split((hkv, splits), warps * 32, q.reshape(h * d), k_cache.reshape(k_cache.size),
          v_cache.reshape(v_cache.size), s_len * d, n_ctx, split_len, np.float32(scale), part_o, part_ml,
          counters, out)
