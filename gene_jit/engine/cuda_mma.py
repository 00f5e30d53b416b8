"""Products of packed Q8_0 / Q4_0 weights with 8-bit activations on the tensor cores, for
batches of tokens: each 32-value block's integer sums come from one warp-wide
`mma.sync.m16n8k32.s8` (16 weight rows by 8 tokens), then are scaled by both blocks' scales
and summed in f32, as cuda_qdot's dp4a products sum them block by block.

A warp holds 16 weight rows and NT tiles of 8 tokens (NT * 8 <= 64 accumulators of four
f32 a lane): each weight word it loads serves up to 64 tokens, and the activations it
reads (the `quantise_q8` layout: int8 values [T, K/4] words, f32 scales [T, K/32]) stay
in L1 for the warps of a block. Fragments, per the PTX ISA for m16n8k32 with .s8 operands,
lane = 4 g + t:
  A (16 x 32, row-major): a0 = row g, values 4t .. 4t+3; a1 = row g+8, same values;
      a2, a3 = the same rows, values 16+4t .. 16+4t+3 (one int32 word each);
  B (32 x 8, column-major): b0 = token g, values 4t .. 4t+3; b1 = values 16+4t .. 16+4t+3;
  D (16 x 8, s32): d0, d1 = row g, tokens 2t, 2t+1; d2, d3 = row g+8, tokens 2t, 2t+1.
Q4_0 nibbles become signed bytes n - 8 in registers ((n + 0x78) ^ 0x80 per byte).

Under Numba's simulator the warp's product is computed from every lane's fragments by a
block-wide exchange, so tests check the indexing of this module (and, on a GPU, the
hardware's fragment layout against the same expectations).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gene_jit.tensor_kernels.cuda_support import cuda, launch_stream, simulator
from gene_jit.tensor_kernels.gemv_cuda import half_bits
from gene_jit.tensor_kernels.qgemv_cpu import Q4_0, Q8_0

cu = cuda()
MMA_WARPS = 4  # warps of a block: 64 weight rows
MMA_MIN_TOKENS = 16  # fewer tokens go to cuda_qdot's dp4a products
NIBBLES = 0x0F0F0F0F

if simulator():
    import threading

    _SLOTS: dict[tuple[int, int, int], dict[int, Any]] = {}

    def _bytes(words: list[int]) -> np.ndarray:
        """int32 words -> their signed bytes, four a word, lowest first."""
        return np.array(words, np.uint32).view(np.int8).astype(np.int32).reshape(len(words), 4)

    def _warp_product(regs: list[tuple[int, ...]]) -> np.ndarray:
        """D [16, 8] = A . B from the 32 lanes' fragments (lane 4 g + t: registers
        a0 a1 a2 a3 b0 b1), laid out as the module's docstring says."""
        a = np.zeros((16, 32), np.int32)
        b = np.zeros((32, 8), np.int32)
        for lane, (a0, a1, a2, a3, b0, b1) in enumerate(regs):
            g, t = lane >> 2, lane & 3
            v = _bytes([a0, a1, a2, a3, b0, b1])
            a[g, 4 * t:4 * t + 4], a[g + 8, 4 * t:4 * t + 4] = v[0], v[1]
            a[g, 16 + 4 * t:20 + 4 * t], a[g + 8, 16 + 4 * t:20 + 4 * t] = v[2], v[3]
            b[4 * t:4 * t + 4, g], b[16 + 4 * t:20 + 4 * t, g] = v[4], v[5]
        return a @ b

    @cu.jit(device=True)
    def mma_s8(a0: Any, a1: Any, a2: Any, a3: Any, b0: Any, b1: Any) -> tuple[Any, ...]:
        """The warp's m16n8k32 product of the fragments its lanes hold (every thread of
        the block calls it the same number of times): lane 0 of each warp multiplies
        between two barriers, each lane then reads its four values."""
        th = threading.current_thread()
        t, blk = th.threadIdx, th.blockIdx  # type: ignore[attr-defined]
        tid = t.x
        block = _SLOTS.setdefault((blk.x, blk.y, blk.z), {})
        block[tid] = tuple(int(v) & 0xFFFFFFFF for v in (a0, a1, a2, a3, b0, b1))
        th.syncthreads()  # type: ignore[attr-defined]
        first = tid - (tid & 31)
        if tid == first:
            block[-1 - first] = _warp_product([block[first + lane] for lane in range(32)])
        th.syncthreads()  # type: ignore[attr-defined]
        d = block[-1 - first]
        g, q = (tid & 31) >> 2, tid & 3
        return (np.int32(d[g, 2 * q]), np.int32(d[g, 2 * q + 1]), np.int32(d[g + 8, 2 * q]),
                np.int32(d[g + 8, 2 * q + 1]))

else:
    from llvmlite import ir
    from numba import types
    from numba.cuda.extending import intrinsic

    @intrinsic
    def mma_s8(typingctx: Any, a0: Any, a1: Any, a2: Any, a3: Any, b0: Any, b1: Any) -> Any:  # noqa: ARG001
        """(d0, d1, d2, d3) = the warp's A (16 x 32) . B (32 x 8) of signed bytes."""
        args = (a0, a1, a2, a3, b0, b1)
        if not all(isinstance(v, types.Integer) for v in args):
            return None
        sig = types.UniTuple(types.int32, 4)(*args)

        def codegen(context: Any, builder: Any, sig: Any, llargs: Any) -> Any:
            i32 = ir.IntType(32)
            vals = [context.cast(builder, v, t, types.int32) for v, t in zip(llargs, sig.args, strict=True)]
            zero = ir.Constant(i32, 0)
            fnty = ir.FunctionType(ir.LiteralStructType([i32] * 4), [i32] * 10)
            asm = ir.InlineAsm(
                fnty,
                "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {$0, $1, $2, $3}, "
                "{$4, $5, $6, $7}, {$8, $9}, {$10, $11, $12, $13};",
                ",".join(["=r"] * 4 + ["r"] * 10))
            res = builder.call(asm, vals + [zero] * 4)
            return context.make_tuple(builder, sig.return_type, [builder.extract_value(res, e) for e in range(4)])

        return sig, codegen


@cu.jit(device=True, inline=True)
def _q4_bytes(n: Any) -> Any:
    """Four nibbles 0..15 (one a byte) -> the signed bytes n - 8 (no carry crosses a byte:
    n + 0x78 <= 0x87)."""
    v = (((np.int64(n) & NIBBLES) + 0x78787878) ^ 0x80808080) & 0xFFFFFFFF
    return np.int32(v - 0x100000000 if v >= 0x80000000 else v)


@cu.jit(device=True, inline=True)
def _half(wf: Any, word: int, b: int) -> Any:
    return half_bits((wf[word + (b >> 1)] >> (16 * (b & 1))) & 0xFFFF)


@cu.jit(device=True, inline=True)
def out_index(row: int, tok: int, n_tok: int, n: int, n0: int, n1: int) -> int:
    """Where output (tok, row) of a product goes in its flat `out`: rows 0 .. n0-1,
    n0 .. n1-1 and n1 .. n-1 are those of up to three weights (q, k, v; gate, up), whose
    outputs [T, rows] lie one after the other."""
    if row < n0:
        return tok * n0 + row
    if row < n1:
        return n_tok * n0 + tok * (n1 - n0) + row - n0
    return n_tok * n1 + tok * (n - n1) + row - n1


_KERNELS: dict[tuple[int, int], Any] = {}
# four blocks an SM (16 warps): ptxas then fits 8 tiles' accumulators in 128 registers
# without spills, where it would take 168 and leave room for three blocks
_BOUNDS: dict[str, Any] = {} if simulator() else {"launch_bounds": (32 * MMA_WARPS, 4)}


def _kernel(kind: int, nt: int) -> Any:
    """out = x . w^T for packed weights (flat `wf`, `width` words a row) and x quantised
    (flat `xf`, scales xd [T, K/32]); a warp per 16 rows and 8 nt tokens."""
    key = (kind, nt)
    if key in _KERNELS:
        return _KERNELS[key]
    q4 = kind == Q4_0
    n_acc = 4 * nt  # a constant of the kernel, as local arrays need

    @cu.jit(**_BOUNDS)
    def kernel(wf: Any, width: int, xf: Any, xd: Any, n: int, n0: int, n1: int, out: Any) -> None:
        lane = cu.threadIdx.x & 31
        g, q = lane >> 2, lane & 3
        first = (cu.blockIdx.y * MMA_WARPS + (cu.threadIdx.x >> 5)) * 16
        n_tok = xd.shape[0]
        nb = xd.shape[1]
        kw = nb * 8  # int32 words of a quantised x row
        t0 = cu.blockIdx.x * 8 * nt
        r0 = min(first + g, n - 1)  # rows past the end are loaded clamped, never stored
        r1 = min(first + g + 8, n - 1)
        base0, base1 = r0 * width, r1 * width
        s_word = nb * 4 if q4 else nb * 8
        acc = cu.local.array(n_acc, np.float32)
        for i in range(n_acc):
            acc[i] = np.float32(0.0)
        for b in range(nb):
            if q4:
                w0 = wf[base0 + 4 * b + q]
                w1 = wf[base1 + 4 * b + q]
                a0, a2 = _q4_bytes(w0), _q4_bytes(np.int64(w0) >> 4)
                a1, a3 = _q4_bytes(w1), _q4_bytes(np.int64(w1) >> 4)
            else:
                a0, a2 = wf[base0 + 8 * b + q], wf[base0 + 8 * b + 4 + q]
                a1, a3 = wf[base1 + 8 * b + q], wf[base1 + 8 * b + 4 + q]
            dw0 = _half(wf, base0 + s_word, b)
            dw1 = _half(wf, base1 + s_word, b)
            for j in range(nt):
                tb = min(t0 + 8 * j + g, n_tok - 1)
                d0, d1, d2, d3 = mma_s8(a0, a1, a2, a3, xf[tb * kw + 8 * b + q], xf[tb * kw + 8 * b + 4 + q])
                te = min(t0 + 8 * j + 2 * q, n_tok - 1)
                to = min(te + 1, n_tok - 1)
                xe, xo = xd[te, b], xd[to, b]
                acc[4 * j] += np.float32(d0) * (dw0 * xe)
                acc[4 * j + 1] += np.float32(d1) * (dw0 * xo)
                acc[4 * j + 2] += np.float32(d2) * (dw1 * xe)
                acc[4 * j + 3] += np.float32(d3) * (dw1 * xo)
        for i in range(n_acc):
            row = first + g + 8 * ((i >> 1) & 1)
            tok = t0 + 8 * (i >> 2) + 2 * q + (i & 1)
            if row < n and tok < n_tok:
                out[out_index(row, tok, n_tok, n, n0, n1)] = acc[i]

    _KERNELS[key] = kernel
    return kernel


def tiles_for(t: int) -> int:
    """Tiles of 8 tokens a warp takes for t tokens (64 tokens at most a launch column)."""
    return next(s for s in (2, 4, 8) if 8 * s >= min(t, 64))


def linear(w: Any, kind: int, xq: Any, xd: Any, out: Any, n0: int, n1: int) -> None:
    """As cuda_qdot.linear, for t >= MMA_MIN_TOKENS tokens of Q8_0 / Q4_0 weights."""
    if kind not in (Q8_0, Q4_0):
        raise ValueError(f"tensor-core products take Q8_0 and Q4_0 weights, not type {kind}")
    t, n = xd.shape[0], w.shape[0]
    nt = tiles_for(t)
    rows = 16 * MMA_WARPS
    grid = ((t + 8 * nt - 1) // (8 * nt), (n + rows - 1) // rows)
    _kernel(kind, nt)[grid, 32 * MMA_WARPS, launch_stream()](
        w.reshape(w.size), w.shape[1], xq.reshape(xq.size), xd, n, n0, n1, out.reshape(out.size))
