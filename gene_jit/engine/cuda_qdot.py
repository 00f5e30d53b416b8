"""Integer products of Q8_0 and Q4_0 weights on the GPU, as llama.cpp's CUDA backend and the
CPU engine (qdot_cpu.py) compute them: the activations quantised to 8 bits per 32-value
block (`quantise_q8`: int8 values and an f16-rounded scale per block, as the CPU engine
and ggml's quantize_row_q8_0 round them), each block's sum of integer products exact in
int32 (`dp4a`: four 8-bit products a step), then scaled by both blocks' scales.

Weights are placed in a packed layout (`pack`): a row holds every block's quants first
(Q8_0: 32 int8 values a block; Q4_0: GGUF's 16 bytes of nibbles a block) and then the f16
scales, padded to 16 bytes, held as int32 words `[N, W]`. A warp takes a row, each lane
16 values of a block at a time with one 16-byte (Q8_0) or 8-byte (Q4_0) load of weights
and 16-byte loads of the activations; each weight load serves a tile of up to 64 tokens.
`deq8` decodes 8 values of a packed row (embedding rows, prompt products through cuBLAS).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gene_jit.engine import cuda_mma
from gene_jit.engine.cuda_kernels import WARPS, quant32
from gene_jit.engine.cuda_mma import out_index
from gene_jit.tensor_kernels.cuda_support import cuda, launch_stream, simulator
from gene_jit.tensor_kernels.gemv_cuda import half_bits, warp_sum
from gene_jit.tensor_kernels.qgemv_cpu import Q4_0, Q8_0

cu = cuda()
PACKED = (Q8_0, Q4_0)
QTILES = (1, 2, 4, 8, 16, 32)  # tokens each weight load serves (64 accumulators spill)
QUANT_BYTES = {Q8_0: 32, Q4_0: 16}  # quant bytes of a 32-value block


def packed_words(kind: int, cols: int) -> int:
    """int32 words of a packed row of `cols` values."""
    nbytes = cols // 32 * (QUANT_BYTES[kind] + 2)
    return (nbytes + 15) // 16 * 4


def pack(raw: np.ndarray, kind: int, cols: int) -> np.ndarray:
    """GGUF rows `raw [N, row_bytes]` uint8 of Q8_0 / Q4_0 blocks -> packed int32 `[N, W]`."""
    n, nb = raw.shape[0], cols // 32
    qb = QUANT_BYTES[kind]
    blocks = raw.reshape(n, nb, qb + 2)
    out = np.zeros((n, packed_words(kind, cols) * 4), np.uint8)
    out[:, : nb * qb] = blocks[:, :, 2:].reshape(n, nb * qb)
    out[:, nb * qb: nb * (qb + 2)] = blocks[:, :, :2].reshape(n, 2 * nb)
    return out.view(np.int32)


if simulator():

    @cu.jit(device=True)
    def ld4i(a: Any, i: int) -> tuple[Any, ...]:
        return (np.int32(a[i]), np.int32(a[i + 1]), np.int32(a[i + 2]), np.int32(a[i + 3]))

    @cu.jit(device=True)
    def ld2i(a: Any, i: int) -> tuple[Any, ...]:
        return (np.int32(a[i]), np.int32(a[i + 1]))

    @cu.jit(device=True)
    def dp4a(a: Any, b: Any, c: Any) -> Any:
        """c + the sum of the products of the four signed bytes of a and b."""
        s = np.int64(c)
        for k in range(4):
            x = (np.int64(a) >> (8 * k)) & 0xFF
            y = (np.int64(b) >> (8 * k)) & 0xFF
            s += (x - 256 if x >= 128 else x) * (y - 256 if y >= 128 else y)
        return np.int32(s)

else:
    from llvmlite import ir
    from numba import types
    from numba.cuda.extending import intrinsic

    def _make_ld(width: int) -> Any:
        """`ld<width>i(a, i)`: int32 elements i .. i+width-1 of a flat int32 array that no
        kernel writes while it runs, one `ld.global.nc` vector load (i aligned to it)."""

        @intrinsic
        def ld(typingctx: Any, a: Any, i: Any) -> Any:  # noqa: ARG001 (Numba's intrinsic protocol)
            if not (isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.int32
                    and isinstance(i, types.Integer)):
                return None
            sig = types.UniTuple(types.int32, width)(a, i)

            def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
                arr = context.make_array(sig.args[0])(context, builder, args[0])
                idx = context.cast(builder, args[1], sig.args[1], types.intp)
                ptr = builder.ptrtoint(builder.gep(arr.data, [idx]), ir.IntType(64))
                i32 = ir.IntType(32)
                regs = ", ".join(f"${e}" for e in range(width))
                fnty = ir.FunctionType(ir.LiteralStructType([i32] * width), [ir.IntType(64)])
                asm = ir.InlineAsm(fnty, f"ld.global.nc.v{width}.u32 {{{regs}}}, [${width}];",
                                   ",".join(["=r"] * width + ["l"]))
                res = builder.call(asm, [ptr])
                vals = [builder.extract_value(res, e) for e in range(width)]
                return context.make_tuple(builder, sig.return_type, vals)

            return sig, codegen

        return ld

    ld4i = _make_ld(4)
    ld2i = _make_ld(2)

    @intrinsic
    def dp4a(typingctx: Any, a: Any, b: Any, c: Any) -> Any:  # noqa: ARG001
        if not all(isinstance(v, types.Integer) for v in (a, b, c)):
            return None
        sig = types.int32(a, b, c)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            i32 = ir.IntType(32)
            vals = [context.cast(builder, v, t, types.int32) for v, t in zip(args, sig.args, strict=True)]
            asm = ir.InlineAsm(ir.FunctionType(i32, [i32] * 3), "dp4a.s32.s32 $0, $1, $2, $3;",
                               "=r,r,r,r")
            return builder.call(asm, vals)

        return sig, codegen


NIBBLES = np.int32(0x0F0F0F0F)
ONES = np.int32(0x01010101)


@cu.jit(device=True, inline=True)
def _scale(w: Any, r: int, s_word: int, b: int) -> Any:
    """The f16 scale of block b of packed row r, whose scales start at word s_word."""
    return half_bits((w[r, s_word + (b >> 1)] >> (16 * (b & 1))) & 0xFFFF)


@cu.jit(device=True, inline=True)
def _i8(word: Any, k: int) -> Any:
    """Signed byte k of a word, as float32 (with masks: shifts of an int32 by an int64
    are done in int64 on the GPU, where no sign would come down from bit 31)."""
    b = (np.int64(word) >> (8 * k)) & 0xFF
    return np.float32(b - 256 if b >= 128 else b)


@cu.jit(device=True, inline=True)
def deq8_q8_0(w: Any, r: int, g: int, cols: int, out: Any, base: int) -> None:
    """Values 8g .. 8g+7 of packed Q8_0 row r (w [N, W] int32)."""
    d = _scale(w, r, cols // 4, g >> 2)
    for k in range(8):
        out[base + k] = d * _i8(w[r, 2 * g + (k >> 2)], k & 3)


@cu.jit(device=True, inline=True)
def deq8_q4_0(w: Any, r: int, g: int, cols: int, out: Any, base: int) -> None:
    """Values 8g .. 8g+7 of packed Q4_0 row r: low nibbles of block bytes 0-15 are its
    values 0-15, the high nibbles 16-31."""
    b, sub = g >> 2, g & 3
    d = _scale(w, r, cols // 8, b)
    word0 = 4 * b + 2 * (sub & 1)
    shift = 4 * (sub >> 1)
    for k in range(8):
        q = (w[r, word0 + (k >> 2)] >> (8 * (k & 3) + shift)) & 0xF
        out[base + k] = d * np.float32(q - 8)


DEQ8 = {Q8_0: deq8_q8_0, Q4_0: deq8_q4_0}


@cu.jit(device=True, inline=True)
def _one_q8_0(wf: Any, base: int, s_word: int, xf: Any, xd: Any, t: int, kw: int, unit: int) -> Any:
    """Values 16 unit .. 16 unit + 15 of a packed Q8_0 row (at word `base`) times those of
    quantised x row t."""
    b, h = unit >> 1, unit & 1
    dw = half_bits((wf[base + s_word + (b >> 1)] >> (16 * (b & 1))) & 0xFFFF)
    w0, w1, w2, w3 = ld4i(wf, base + 8 * b + 4 * h)
    x0, x1, x2, x3 = ld4i(xf, t * kw + 8 * b + 4 * h)
    s = dp4a(w0, x0, dp4a(w1, x1, dp4a(w2, x2, dp4a(w3, x3, 0))))
    return np.float32(s) * (dw * xd[t, b])


@cu.jit(device=True, inline=True)
def _one_q4_0(wf: Any, base: int, s_word: int, xf: Any, xd: Any, t: int, kw: int, unit: int) -> Any:
    """As _one_q8_0 for packed Q4_0: the unit's 8 bytes hold values 8h .. 8h+7 (low
    nibbles) and 16+8h .. 16+8h+7 (high) of block b."""
    b, h = unit >> 1, unit & 1
    dw = half_bits((wf[base + s_word + (b >> 1)] >> (16 * (b & 1))) & 0xFFFF)
    wa, wb = ld2i(wf, base + 4 * b + 2 * h)
    o = t * kw + 8 * b + 2 * h
    x0, x1 = ld2i(xf, o)
    x2, x3 = ld2i(xf, o + 4)
    s = dp4a(wa & NIBBLES, x0, dp4a(wb & NIBBLES, x1, dp4a((wa >> 4) & NIBBLES, x2,
                                                          dp4a((wb >> 4) & NIBBLES, x3, 0))))
    z = dp4a(ONES, x0, dp4a(ONES, x1, dp4a(ONES, x2, dp4a(ONES, x3, 0))))
    return np.float32(s - 8 * z) * (dw * xd[t, b])


@cu.jit
def _quantise_kernel(x: Any, xq: Any, xd: Any) -> None:
    """A warp per 32-value block of x [T, K]: quant32."""
    lane = cu.threadIdx.x & 31
    blk = cu.blockIdx.x * (cu.blockDim.x >> 5) + (cu.threadIdx.x >> 5)
    nb = x.shape[1] // 32
    if blk >= x.shape[0] * nb:
        return
    t, b = blk // nb, blk % nb
    quant32(x[t, 32 * b + lane], lane, xq, xd, t, b)


def quantise_q8(x: Any, xq: Any, xd: Any) -> None:
    blocks = x.shape[0] * (x.shape[1] // 32)
    _quantise_kernel[(blocks + 7) // 8, 256, launch_stream()](x, xq, xd)


_LINEAR: dict[tuple[int, int], Any] = {}


def _linear_kernel(kind: int, tile: int) -> Any:
    """out [T, N] = x . w^T for packed weights w [N, W] (flat `wf`) and x quantised (xq
    [T, K/4] flat `xf`, scales xd [T, K/32]): a warp per row, a lane per 16 values of a
    block, each weight load serving `tile` tokens."""
    key = (kind, tile)
    if key in _LINEAR:
        return _LINEAR[key]
    q4 = kind == Q4_0
    one = _one_q4_0 if q4 else _one_q8_0

    @cu.jit
    def kernel(wf: Any, width: int, xf: Any, xd: Any, n: int, n0: int, n1: int, out: Any) -> None:
        lane = cu.threadIdx.x & 31
        row = cu.blockIdx.y * WARPS + (cu.threadIdx.x >> 5)
        n_tok = xd.shape[0]
        if row >= n:
            return
        t0 = cu.blockIdx.x * tile
        kw = xd.shape[1] * 8  # int32 words of a quantised x row
        base = row * width
        s_word = kw // 2 if q4 else kw
        acc = cu.local.array(tile, np.float32)
        for u in range(tile):
            acc[u] = np.float32(0.0)
        units = xd.shape[1] * 2
        unit = lane
        if tile == 1 and t0 < n_tok:
            # one token: four units a pass, their loads all issued before the first sum
            # (clamped in place of branches, so that nothing orders them), for the bytes
            # in flight that a row's HBM reads need
            a = np.float32(0.0)
            last = units - 1
            while unit < units:
                u1, u2, u3 = min(unit + 32, last), min(unit + 64, last), min(unit + 96, last)
                p0 = one(wf, base, s_word, xf, xd, t0, kw, unit)
                p1 = one(wf, base, s_word, xf, xd, t0, kw, u1)
                p2 = one(wf, base, s_word, xf, xd, t0, kw, u2)
                p3 = one(wf, base, s_word, xf, xd, t0, kw, u3)
                a += p0
                a += p1 if unit + 32 < units else np.float32(0.0)
                a += p2 if unit + 64 < units else np.float32(0.0)
                a += p3 if unit + 96 < units else np.float32(0.0)
                unit += 128
            acc[0] = a
        while unit < units and tile > 1:
            b, h = unit >> 1, unit & 1
            word = wf[base + s_word + (b >> 1)]
            dw = half_bits((word >> (16 * (b & 1))) & 0xFFFF)
            if q4:
                wa, wb = ld2i(wf, base + 4 * b + 2 * h)
                l0, l1 = wa & NIBBLES, wb & NIBBLES
                h0, h1 = (wa >> 4) & NIBBLES, (wb >> 4) & NIBBLES
                for u in range(tile):
                    t = t0 + u
                    if t < n_tok:
                        o = t * kw + 8 * b + 2 * h
                        x0, x1 = ld2i(xf, o)
                        x2, x3 = ld2i(xf, o + 4)
                        s = dp4a(l0, x0, dp4a(l1, x1, dp4a(h0, x2, dp4a(h1, x3, 0))))
                        z = dp4a(ONES, x0, dp4a(ONES, x1, dp4a(ONES, x2, dp4a(ONES, x3, 0))))
                        acc[u] += np.float32(s - 8 * z) * (dw * xd[t, b])
            else:
                w0, w1, w2, w3 = ld4i(wf, base + 8 * b + 4 * h)
                for u in range(tile):
                    t = t0 + u
                    if t < n_tok:
                        x0, x1, x2, x3 = ld4i(xf, t * kw + 8 * b + 4 * h)
                        s = dp4a(w0, x0, dp4a(w1, x1, dp4a(w2, x2, dp4a(w3, x3, 0))))
                        acc[u] += np.float32(s) * (dw * xd[t, b])
            unit += 32
        for u in range(tile):
            v = warp_sum(acc[u])
            if lane == 0 and t0 + u < n_tok:
                out[out_index(row, t0 + u, n_tok, n, n0, n1)] = v

    _LINEAR[key] = kernel
    return kernel


def linear(w: Any, kind: int, xq: Any, xd: Any, out: Any, bounds: tuple[int, int] | None = None) -> None:
    """x . w^T for packed weights w ([N, W] int32) and x quantised by quantise_q8: out [T, N];
    or, with `bounds` (n0, n1), w the rows of up to three weights (0 .. n0-1, n0 .. n1-1,
    n1 .. N-1) and out the flat T * N values of their outputs [T, rows] one after another."""
    t, n = xd.shape[0], w.shape[0]
    n0, n1 = (n, n) if bounds is None else bounds
    if t >= cuda_mma.MMA_MIN_TOKENS:
        cuda_mma.linear(w, kind, xq, xd, out, n0, n1)
        return
    tile = next((s for s in QTILES if s >= t), QTILES[-1])
    grid = ((t + tile - 1) // tile, (n + WARPS - 1) // WARPS)
    _linear_kernel(kind, tile)[grid, 32 * WARPS, launch_stream()](
        w.reshape(w.size), w.shape[1], xq.reshape(xq.size), xd, n, n0, n1, out.reshape(out.size))


_EMBED: dict[int, Any] = {}


def embed_rows(w: Any, kind: int, ids: Any, scale: float, out: Any) -> None:
    """out [T, E] = packed rows ids [T] of w decoded, times scale."""
    kernel: Any = _EMBED.get(kind)
    if kernel is None:
        deq = DEQ8[kind]

        @cu.jit
        def kernel(w: Any, ids: Any, scale: Any, out: Any) -> None:
            t = cu.blockIdx.x
            g = cu.blockIdx.y * cu.blockDim.x + cu.threadIdx.x
            cols = out.shape[1]
            if g >= cols // 8:
                return
            vals = cu.local.array(8, np.float32)
            deq(w, ids[t], g, cols, vals, 0)
            for i in range(8):
                out[t, 8 * g + i] = vals[i] * scale

        _EMBED[kind] = kernel
    groups = out.shape[1] // 8
    grid = (out.shape[0], (groups + 127) // 128)
    kernel[grid, 128, launch_stream()](w, ids, np.float32(scale), out)
