"""Integer-dot products of GGUF weights with 8-bit activations, as llama.cpp's CPU
backend computes them on x86: the activation vector is quantised once per product (Q8_0
blocks of 32 for Q8_0, Q5_0 and Q4_0 weights; Q8_K blocks of 256 for Q4_K and Q6_K),
each block's products are summed in int32 (exact), and the float work is done in
llama.cpp's order, so the results are libllama's to the bit:

- Q8_0, Q5_0, Q4_0 (ggml_vec_dot_*_q8_0, AVX2 path): eight float lanes per row; lane l
  of block b adds `d_w * d_x` times the integer sum of values 4l..4l+3 of the block with
  one fused multiply-add; the lanes are added as hsum_float_8 adds them.
- Q6_K (ggml_vec_dot_q6_K_q8_K): the same eight lanes per 256-value block, each lane's
  integer the scaled sums of its 4-value groups minus 32 * (the block sums times scales).
- Q4_K (ggml_gemv_q4_K_8x8_q8_K, the repacked weights libllama uses on AVX2): per block
  one integer for the scaled sums and one for the mins, each added into its own float
  with a fused multiply-add; the row is the first minus the second.

The integer sums run on `vpdpbusd` (unsigned bytes times signed bytes, four products
into each int32 lane), emitted by the intrinsics below as LLVM IR. Signed weights become
unsigned with an offset the activations' sums take back: Q8_0's w + 128, Q5_0's and
Q4_0's stored values (w + 16, w + 8), Q6_K's (w + 32). CPUs without VNNI get the same
integers from plain vector code.

Layouts: weights `w [N, row_bytes]` uint8 as in the GGUF file; activations quantised by
`quantize(kind, x [T, K])` into an `Activations` tuple; `rows(kind, w, aux, *a, out, r0,
r1)` writes out[:, r0:r1]. Q4_K rows also read `aux [N, K / 256 * 16]`: each block's
eight 6-bit scales then eight mins, unpacked once per weight by `q4_k_aux`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import llvmlite.binding as llvm
import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, config, types
from numba.extending import intrinsic

import gene_jit.tensor_kernels.kernel_cache  # noqa: F401  (cache stamp, before decorating)
from gene_jit.tensor_kernels.qgemv_cpu import Q4_0, Q4_K, Q5_0, Q6_K, Q8_0, q8_0_row, q8_k_row

__all__ = ["INTEGER_KINDS", "Activations", "product", "q4_k_aux", "quantize", "rows"]

INTEGER_KINDS = (Q8_0, Q4_0, Q5_0, Q4_K, Q6_K)
K_KINDS = (Q4_K, Q6_K)


class Activations(NamedTuple):
    """x [T, K] quantised: `q` int8 [T, K]; `d` float32 scales [T, K / block]; `s4`
    int32 sums of each 4 values [T, K / 4]; `s16` int32 sums of each 16 [T, K / 16]."""

    q: np.ndarray
    d: np.ndarray
    s4: np.ndarray
    s16: np.ndarray


# ---- activations quantised as llama.cpp quantises them ----


@nb.njit(fastmath=False, cache=True, nogil=True)
def _quantize(k_blocks: bool, x: np.ndarray, q: np.ndarray, d: np.ndarray, s4: np.ndarray,
              s16: np.ndarray) -> None:
    for t in range(x.shape[0]):
        if k_blocks:
            q8_k_row(x[t], q[t], d[t])
        else:
            q8_0_row(x[t], q[t], d[t])
        for g in range(s4.shape[1]):
            s = np.int32(0)
            for i in range(4):
                s += np.int32(q[t, 4 * g + i])
            s4[t, g] = s
        for g in range(s16.shape[1]):
            s16[t, g] = s4[t, 4 * g] + s4[t, 4 * g + 1] + s4[t, 4 * g + 2] + s4[t, 4 * g + 3]


@nb.njit(fastmath=False, cache=True, nogil=True)
def _quantized(kind: int, x: np.ndarray) -> tuple[np.ndarray, ...]:
    t, k = x.shape
    k_blocks = kind == Q4_K or kind == Q6_K
    block = 256 if k_blocks else 32
    q = np.empty((t, k), np.int8)
    d = np.empty((t, k // block), np.float32)
    s4 = np.empty((t, k // 4), np.int32)
    s16 = np.empty((t, k // 16), np.int32)
    _quantize(k_blocks, x, q, d, s4, s16)
    return q, d, s4, s16


def quantize(kind: int, x: np.ndarray) -> Activations:
    """x [T, K] float32 quantised for products with weights of `kind` (Q8_K blocks for
    the K-quants, Q8_0 blocks for the others)."""
    return Activations(*_quantized(kind, x))


# ---- LLVM IR of the row products ----

_I8, _I16, _I32, _I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
_F32 = ir.FloatType()
_V32I8, _V8I32, _V8F = ir.VectorType(_I8, 32), ir.VectorType(_I32, 8), ir.VectorType(_F32, 8)


def _vnni() -> bool:
    """Whether the code Numba emits may use vpdpbusd (its target's features)."""
    if getattr(config, "CPU_NAME", None):
        feats = getattr(config, "CPU_FEATURES", None) or ""
    else:
        feats = llvm.get_host_cpu_features().flatten()
    have = set(feats.split(","))
    return "+avxvnni" in have or {"+avx512vnni", "+avx512vl"} <= have


VNNI = _vnni()


class _IR:
    """Helpers emitting vector code into a Numba function being lowered."""

    def __init__(self, builder: ir.IRBuilder) -> None:
        self.b = builder

    def const(self, v: int) -> ir.Constant:
        return ir.Constant(_I64, v)

    def load(self, addr: Any, ty: ir.Type, offset: Any = 0) -> Any:
        if not isinstance(offset, int) or offset:
            addr = self.b.add(addr, self.const(offset) if isinstance(offset, int) else offset)
        return self.b.load(self.b.inttoptr(addr, ty.as_pointer()), align=1)

    def half(self, addr: Any, offset: Any = 0) -> Any:
        return self.b.fpext(self.b.bitcast(self.load(addr, _I16, offset), ir.HalfType()), _F32)

    def splat(self, value: Any, ty: ir.VectorType) -> Any:
        v = self.b.insert_element(ir.Constant(ty, ir.Undefined), value, ir.Constant(_I32, 0))
        mask = ir.Constant(ir.VectorType(_I32, ty.count), [0] * ty.count)
        return self.b.shuffle_vector(v, ir.Constant(ty, ir.Undefined), mask)

    def bytes(self, v: int) -> ir.Constant:
        return ir.Constant(_V32I8, [v] * 32)

    def call(self, name: str, ret: ir.Type, args: list[Any]) -> Any:
        fn = cgutils.get_or_insert_function(self.b.module, ir.FunctionType(ret, [a.type for a in args]),
                                            name)
        return self.b.call(fn, args)

    def dpbusd(self, acc: Any, u: Any, s: Any) -> Any:
        """acc + (lane l: the sum of u[4l+i] * s[4l+i], u unsigned, s signed bytes)."""
        if VNNI:
            return self.call("llvm.x86.avx512.vpdpbusd.256", _V8I32,
                             [acc, self.b.bitcast(u, _V8I32), self.b.bitcast(s, _V8I32)])
        wide = ir.VectorType(_I32, 32)
        p = self.b.mul(self.b.zext(u, wide), self.b.sext(s, wide))
        for i in range(4):
            part = self.b.shuffle_vector(p, p, ir.Constant(ir.VectorType(_I32, 8),
                                                           list(range(i, 32, 4))))
            acc = self.b.add(acc, part)
        return acc

    def fma(self, a: Any, x: Any, c: Any) -> Any:
        return self.call("llvm.fma.v8f32", _V8F, [a, x, c])

    def hsum8(self, v: Any) -> Any:
        """The eight lanes added as hsum_float_8 adds them: (lo + hi) halves, then
        (0 + 2) + (1 + 3)."""
        b = self.b
        lo = b.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, 4), [0, 1, 2, 3]))
        hi = b.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, 4), [4, 5, 6, 7]))
        r = b.fadd(hi, lo)
        e = [b.extract_element(r, ir.Constant(_I32, i)) for i in range(4)]
        return b.fadd(b.fadd(e[0], e[2]), b.fadd(e[1], e[3]))

    def pairs(self, v: Any, n: int) -> Any:
        """<n x i32> -> <n/2 x i32>: lane i = v[2i] + v[2i + 1]."""
        m = ir.VectorType(_I32, n // 2)
        even = self.b.shuffle_vector(v, v, ir.Constant(m, list(range(0, n, 2))))
        odd = self.b.shuffle_vector(v, v, ir.Constant(m, list(range(1, n, 2))))
        return self.b.add(even, odd)


def _lane_loop(builder: Any, n: Any, body: Any) -> Any:
    """Eight float lanes carried through `body(ir, b, acc) -> acc` for b in 0..n, summed
    as hsum_float_8 sums them."""
    h = _IR(builder)
    acc = cgutils.alloca_once_value(builder, ir.Constant(_V8F, None))
    with cgutils.for_range(builder, n) as loop:
        builder.store(body(h, loop.index, builder.load(acc)), acc)
    return h.hsum8(builder.load(acc))


_ROW_SIG = types.float32(types.intp, types.intp, types.intp, types.intp, types.intp,
                         types.intp, types.intp)


@intrinsic
def _row_q8_0(typingctx: Any, w: Any, aux: Any, q: Any, d: Any, s4: Any, s16: Any,
              nb_: Any) -> Any:
    """One Q8_0 row (w + 128 as unsigned bytes, minus 128 times the sums of 4)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        w, _, q, d, s4, _, n = args

        def block(h: _IR, i: Any, acc: Any) -> Any:
            b = h.b
            wb = b.add(w, b.mul(i, h.const(34)))
            scale = b.fmul(h.half(wb), h.load(d, _F32, b.mul(i, h.const(4))))
            uw = b.xor(h.load(wb, _V32I8, 2), h.bytes(0x80))
            off = b.mul(i, h.const(32))
            base = b.mul(h.load(s4, _V8I32, off), ir.Constant(_V8I32, [-128] * 8))
            s = h.dpbusd(base, uw, h.load(q, _V32I8, off))
            return h.fma(h.splat(scale, _V8F), b.sitofp(s, _V8F), acc)

        return _lane_loop(builder, n, block)

    return _ROW_SIG, codegen


def _nibbles(h: _IR, wb: Any, at: int) -> Any:
    """The 16 bytes at wb + at as 32 values: low nibbles, then high nibbles."""
    b = h.b
    v16 = ir.VectorType(_I8, 16)
    raw = h.load(wb, v16, at)
    low = b.and_(raw, ir.Constant(v16, [0x0F] * 16))
    high = b.lshr(raw, ir.Constant(v16, [4] * 16))
    return b.shuffle_vector(low, high, ir.Constant(ir.VectorType(_I32, 32), list(range(32))))


@intrinsic
def _row_q4_0(typingctx: Any, w: Any, aux: Any, q: Any, d: Any, s4: Any, s16: Any,
              nb_: Any) -> Any:
    """One Q4_0 row (stored nibbles w + 8, minus 8 times the sums of 4)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        w, _, q, d, s4, _, n = args

        def block(h: _IR, i: Any, acc: Any) -> Any:
            b = h.b
            wb = b.add(w, b.mul(i, h.const(18)))
            scale = b.fmul(h.half(wb), h.load(d, _F32, b.mul(i, h.const(4))))
            off = b.mul(i, h.const(32))
            base = b.mul(h.load(s4, _V8I32, off), ir.Constant(_V8I32, [-8] * 8))
            s = h.dpbusd(base, _nibbles(h, wb, 2), h.load(q, _V32I8, off))
            return h.fma(h.splat(scale, _V8F), b.sitofp(s, _V8F), acc)

        return _lane_loop(builder, n, block)

    return _ROW_SIG, codegen


@intrinsic
def _row_q5_0(typingctx: Any, w: Any, aux: Any, q: Any, d: Any, s4: Any, s16: Any,
              nb_: Any) -> Any:
    """One Q5_0 row (stored five-bit values w + 16, minus 16 times the sums of 4)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        w, _, q, d, s4, _, n = args

        def block(h: _IR, i: Any, acc: Any) -> Any:
            b = h.b
            wb = b.add(w, b.mul(i, h.const(22)))
            scale = b.fmul(h.half(wb), h.load(d, _F32, b.mul(i, h.const(4))))
            qh = b.bitcast(h.load(wb, _I32, 2), ir.VectorType(_I8, 4))
            spread = b.shuffle_vector(qh, qh, ir.Constant(ir.VectorType(_I32, 32),
                                                          [j // 8 for j in range(32)]))
            bit = b.and_(spread, ir.Constant(_V32I8, [1 << (j % 8) for j in range(32)]))
            high = b.select(b.icmp_unsigned("!=", bit, h.bytes(0)), h.bytes(16), h.bytes(0))
            uw = b.or_(_nibbles(h, wb, 6), high)
            off = b.mul(i, h.const(32))
            base = b.mul(h.load(s4, _V8I32, off), ir.Constant(_V8I32, [-16] * 8))
            s = h.dpbusd(base, uw, h.load(q, _V32I8, off))
            return h.fma(h.splat(scale, _V8F), b.sitofp(s, _V8F), acc)

        return _lane_loop(builder, n, block)

    return _ROW_SIG, codegen


@intrinsic
def _row_q6_k(typingctx: Any, w: Any, aux: Any, q: Any, d: Any, s4: Any, s16: Any,
              nb_: Any) -> Any:
    """One Q6_K row: per block, lane l adds scale * (sum of its 4 stored six-bit values
    times the activations) over the block's eight 32-value chunks, minus 32 times
    (s16[2l] sc[2l] + s16[2l+1] sc[2l+1]); then d_x * d_w times the lane, fused."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        w, _, q, d, _, s16, n = args

        def block(h: _IR, i: Any, acc: Any) -> Any:
            b = h.b
            wb = b.add(w, b.mul(i, h.const(210)))
            scale = b.fmul(h.load(d, _F32, b.mul(i, h.const(4))), h.half(wb, 208))
            sc = b.sext(h.load(wb, ir.VectorType(_I8, 16), 192), ir.VectorType(_I32, 16))
            sums = h.load(s16, ir.VectorType(_I32, 16), b.mul(i, h.const(64)))
            sumi = b.sub(ir.Constant(_V8I32, [0] * 8), b.shl(h.pairs(b.mul(sums, sc), 16),
                                                             ir.Constant(_V8I32, [5] * 8)))
            qb = b.mul(i, h.const(256))
            for half in range(2):
                ql0 = h.load(wb, _V32I8, 64 * half)
                ql1 = h.load(wb, _V32I8, 64 * half + 32)
                qh = h.load(wb, _V32I8, 128 + 32 * half)
                parts = (
                    b.or_(b.and_(ql0, h.bytes(15)), b.shl(b.and_(qh, h.bytes(3)), h.bytes(4))),
                    b.or_(b.and_(ql1, h.bytes(15)),
                          b.shl(b.and_(b.lshr(qh, h.bytes(2)), h.bytes(3)), h.bytes(4))),
                    b.or_(b.lshr(ql0, h.bytes(4)),
                          b.shl(b.and_(b.lshr(qh, h.bytes(4)), h.bytes(3)), h.bytes(4))),
                    b.or_(b.lshr(ql1, h.bytes(4)), b.shl(b.lshr(qh, h.bytes(6)), h.bytes(4))),
                )
                for c, u in enumerate(parts):
                    chunk = 4 * half + c
                    dots = h.dpbusd(ir.Constant(_V8I32, [0] * 8), u,
                                    h.load(q, _V32I8, b.add(qb, h.const(32 * chunk))))
                    lanes = b.shuffle_vector(sc, sc, ir.Constant(
                        _V8I32, [2 * chunk] * 4 + [2 * chunk + 1] * 4))
                    sumi = b.add(sumi, b.mul(dots, lanes))
            return h.fma(h.splat(scale, _V8F), b.sitofp(sumi, _V8F), acc)

        return _lane_loop(builder, n, block)

    return _ROW_SIG, codegen


@intrinsic
def _row_q4_k(typingctx: Any, w: Any, aux: Any, q: Any, d: Any, s4: Any, s16: Any,
              nb_: Any) -> Any:
    """One Q4_K row: per block the integer sum of scale_j * (nibbles . activations) of
    its eight sub-blocks, and sum of min_j * (the sub-block's activation sum); each times
    its f32 scale added into its own float (fused); the row is the first minus the
    second."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        w, aux, q, d, _, s16, n = args
        h = _IR(builder)
        b = builder
        acc = cgutils.alloca_once_value(b, ir.Constant(_F32, 0.0))
        acc_min = cgutils.alloca_once_value(b, ir.Constant(_F32, 0.0))
        fma = "llvm.fma.f32"
        with cgutils.for_range(b, n) as loop:
            i = loop.index
            wb = b.add(w, b.mul(i, h.const(144)))
            dx = h.load(d, _F32, b.mul(i, h.const(4)))
            a16 = b.zext(h.load(aux, ir.VectorType(_I8, 16), b.mul(i, h.const(16))),
                         ir.VectorType(_I32, 16))
            sums = h.pairs(h.load(s16, ir.VectorType(_I32, 16), b.mul(i, h.const(64))), 16)
            mins = b.shuffle_vector(a16, a16, ir.Constant(_V8I32, list(range(8, 16))))
            isum_min = h.call("llvm.vector.reduce.add.v8i32", _I32, [b.mul(mins, sums)])
            tot = ir.Constant(_V8I32, [0] * 8)
            qb = b.mul(i, h.const(256))
            for c in range(4):
                raw = h.load(wb, _V32I8, 16 + 32 * c)
                for j, u in enumerate((b.and_(raw, h.bytes(15)), b.lshr(raw, h.bytes(4)))):
                    sub = 2 * c + j
                    dots = h.dpbusd(ir.Constant(_V8I32, [0] * 8), u,
                                    h.load(q, _V32I8, b.add(qb, h.const(32 * sub))))
                    s = b.shuffle_vector(a16, a16, ir.Constant(_V8I32, [sub] * 8))
                    tot = b.add(tot, b.mul(dots, s))
            isum = h.call("llvm.vector.reduce.add.v8i32", _I32, [tot])
            f_sum = h.call(fma, _F32, [b.sitofp(isum, _F32), b.fmul(h.half(wb), dx), b.load(acc)])
            f_min = h.call(fma, _F32, [b.sitofp(isum_min, _F32), b.fmul(h.half(wb, 2), dx),
                                       b.load(acc_min)])
            b.store(f_sum, acc)
            b.store(f_min, acc_min)
        return b.fsub(b.load(acc), b.load(acc_min))

    return _ROW_SIG, codegen


# ---- rows of a product ----


@nb.njit(cache=True, inline="always")
def _addr(a: np.ndarray) -> Any:
    return nb.intp(a.ctypes.data)


@nb.njit(fastmath=False, cache=True, nogil=True)
def rows(kind: int, w: np.ndarray, aux: np.ndarray, q: np.ndarray, d: np.ndarray,
         s4: np.ndarray, s16: np.ndarray, out: np.ndarray, r0: int, r1: int) -> None:
    """out[:, r0:r1] = the activations (q, d, s4, s16: an `Activations`) times rows
    r0:r1 of the weight w of `kind`, on the calling thread without the GIL."""
    t_all = q.shape[0]
    stride, astride = w.strides[0], aux.strides[0]
    n = d.shape[1]
    for r in range(r0, r1):
        wr = _addr(w) + r * stride
        ar = _addr(aux) + r * astride
        for t in range(t_all):
            args = (wr, ar, _addr(q[t]), _addr(d[t]), _addr(s4[t]), _addr(s16[t]), n)
            if kind == Q8_0:
                out[t, r] = _row_q8_0(*args)  # type: ignore[call-arg]
            elif kind == Q5_0:
                out[t, r] = _row_q5_0(*args)  # type: ignore[call-arg]
            elif kind == Q4_0:
                out[t, r] = _row_q4_0(*args)  # type: ignore[call-arg]
            elif kind == Q6_K:
                out[t, r] = _row_q6_k(*args)  # type: ignore[call-arg]
            else:
                out[t, r] = _row_q4_k(*args)  # type: ignore[call-arg]


@nb.njit(fastmath=False, cache=True, nogil=True)
def product(kind: int, w: np.ndarray, aux: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """out [T, N] = x [T, K] times every row of w: `quantize` and `rows` in one call (a
    call from Python costs more than a small product)."""
    q, d, s4, s16 = _quantized(kind, x)
    rows(kind, w, aux, q, d, s4, s16, out, 0, w.shape[0])


@nb.njit(cache=True, nogil=True)
def _q4_k_aux(w: np.ndarray, aux: np.ndarray) -> None:
    for r in range(w.shape[0]):
        for b in range(aux.shape[1] // 16):
            o = b * 144 + 4
            for j in range(8):
                if j < 4:
                    sc = np.int32(w[r, o + j]) & 63
                    mn = np.int32(w[r, o + j + 4]) & 63
                else:
                    a = np.int32(w[r, o + j + 4])
                    sc = (a & 0x0F) | ((np.int32(w[r, o + j - 4]) >> 6) << 4)
                    mn = (a >> 4) | ((np.int32(w[r, o + j]) >> 6) << 4)
                aux[r, b * 16 + j] = sc
                aux[r, b * 16 + 8 + j] = mn


def q4_k_aux(w: np.ndarray) -> np.ndarray:
    """The six-bit scales and mins of every Q4_K block of w, unpacked: [N, blocks * 16]."""
    aux = np.empty((w.shape[0], w.shape[1] // 144 * 16), np.uint8)
    _q4_k_aux(w, aux)
    return aux
