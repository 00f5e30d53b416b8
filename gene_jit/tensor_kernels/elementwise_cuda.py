"""Numba CUDA element-wise kernels: binary arithmetic with suffix broadcasting, unary
maths (exp, sqrt, SiLU, GELU), axis permutation (transpose) and the causal mask.

Binary ops cover the broadcasts a model needs without index arithmetic per axis: each
operand is either a scalar (a kernel argument, no device copy), or an array whose shape
is a suffix of the output shape (same shape, last-axis vector, one row of a batch), read
at `i % size`. Every kernel is a grid-stride loop over the flat output, f32 throughout.
The op is a runtime code: the branch is uniform across the grid, so it costs nothing
next to the memory traffic, and one compiled kernel serves every op.

Unary, scalar and binary ops have vector kernels for the common case (sizes multiples of
4, arrays 16-byte aligned): each thread moves four elements per 16-byte access
(`vector_cuda.ld4` / `st4`) and handles two such groups per loop trip, loading both
before it stores either, so that every thread keeps 32 bytes per operand in flight. The
broadcast operands' positions `i % size` are advanced by a precomputed step with one
compare instead of a 64-bit division per element. Their grid is large enough that a
thread makes one trip over a 4096 x 4096 array (the H100 ran these fastest with the
most blocks: no block is left with a long tail). Other shapes take the scalar kernels.

These kernels compile without fastmath: exp overflows to inf and the causal mask writes
-inf, which fastmath arithmetic may assume away.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor_kernels.cuda_support import cuda, launch_stream
from gene_jit.tensor_kernels.vector_cuda import aligned, ld4, st4

cu = cuda()

ADD, SUB, MUL, DIV = 0, 1, 2, 3
BINARY_OPS = {"add": ADD, "sub": SUB, "mul": MUL, "div": DIV}
EXP, SQRT, SILU, GELU = 0, 1, 2, 3
UNARY_OPS = {"exp": EXP, "sqrt": SQRT, "silu": SILU, "gelu": GELU}
THREADS = 256
MAX_BLOCKS = 132 * 16  # a grid-stride loop covers larger arrays
VEC_MAX_BLOCKS = 132 * 64  # vector kernels: one trip per thread up to 16M elements
GELU_C = np.float32(0.7978845608028654)  # sqrt(2 / pi)


@cu.jit(device=True, inline=True)
def apply_binary(op: int, x: Any, y: Any) -> Any:
    if op == ADD:
        return x + y
    if op == SUB:
        return x - y
    if op == MUL:
        return x * y
    return x / y


@cu.jit(device=True, inline=True)
def silu(x: Any) -> Any:
    return x / (np.float32(1.0) + math.exp(-x))


@cu.jit(device=True, inline=True)
def gelu(x: Any) -> Any:
    """GELU, tanh approximation (as reference.gelu)."""
    return np.float32(0.5) * x * (np.float32(1.0) + math.tanh(GELU_C * (x + np.float32(0.044715) * x * x * x)))


@cu.jit(device=True, inline=True)
def apply_unary(op: int, x: Any) -> Any:
    if op == EXP:
        return math.exp(x)
    if op == SQRT:
        return math.sqrt(x)
    if op == SILU:
        return silu(x)
    return gelu(x)


@cu.jit
def binary_kernel(a: Any, b: Any, out: Any, op: int) -> None:
    """out[i] = a[i % a.size] (op) b[i % b.size], all flat f32."""
    na, nb = a.size, b.size
    i = cu.grid(1)
    while i < out.size:
        out[i] = apply_binary(op, np.float32(a[i % na]), np.float32(b[i % nb]))
        i += cu.gridsize(1)


@cu.jit
def scalar_kernel(a: Any, s: float, out: Any, op: int, scalar_first: bool) -> None:
    """out[i] = a[i] (op) s, or s (op) a[i] with `scalar_first`."""
    sv = np.float32(s)
    i = cu.grid(1)
    while i < out.size:
        x = np.float32(a[i])
        out[i] = apply_binary(op, sv, x) if scalar_first else apply_binary(op, x, sv)
        i += cu.gridsize(1)


@cu.jit
def unary_kernel(a: Any, out: Any, op: int) -> None:
    i = cu.grid(1)
    while i < out.size:
        out[i] = apply_unary(op, np.float32(a[i]))
        i += cu.gridsize(1)


@cu.jit
def gate_kernel(g: Any, u: Any, out: Any, op: int) -> None:
    """The gated feed-forward's middle: out[i] = act(g[i]) * u[i] (op: SILU or GELU)."""
    i = cu.grid(1)
    while i < out.size:
        out[i] = apply_unary(op, g[i]) * u[i]
        i += cu.gridsize(1)


@cu.jit(device=True, inline=True)
def _wrap(i: int, n: int) -> int:
    """`i % n` for 0 <= i < 2n."""
    return i - n if i >= n else i


@cu.jit(device=True, inline=True)
def _unary4(op: int, out: Any, i: int, x: Any) -> None:
    st4(out, i, apply_unary(op, x[0]), apply_unary(op, x[1]), apply_unary(op, x[2]), apply_unary(op, x[3]))


@cu.jit
def unary_vec_kernel(a: Any, out: Any, op: int) -> None:
    """out = op(a), flat f32 of a size divisible by 4, 16-byte aligned; a thread takes
    groups i and i + half of four elements per trip."""
    n = out.size
    half = cu.gridsize(1) * 4
    i = cu.grid(1) * 4
    while i < n:
        j = i + half
        x = ld4(a, i)
        y = ld4(a, j) if j < n else x
        _unary4(op, out, i, x)
        if j < n:
            _unary4(op, out, j, y)
        i = j + half


@cu.jit(device=True, inline=True)
def _binary4(op: int, out: Any, i: int, x: Any, y: Any) -> None:
    st4(out, i, apply_binary(op, x[0], y[0]), apply_binary(op, x[1], y[1]), apply_binary(op, x[2], y[2]),
        apply_binary(op, x[3], y[3]))


@cu.jit
def binary_vec_kernel(a: Any, b: Any, out: Any, op: int) -> None:
    """out[i] = a[i % a.size] (op) b[i % b.size]: flat f32, every size divisible by 4,
    16-byte aligned; a thread takes groups i and i + half of four elements per trip."""
    n, na, nb = out.size, a.size, b.size
    half = cu.gridsize(1) * 4
    i = cu.grid(1) * 4
    ia, ib = i % na, i % nb
    ha, hb = half % na, half % nb
    while i < n:
        j = i + half
        ja, jb = _wrap(ia + ha, na), _wrap(ib + hb, nb)
        x, y = ld4(a, ia), ld4(b, ib)
        x2 = ld4(a, ja) if j < n else x
        y2 = ld4(b, jb) if j < n else y
        _binary4(op, out, i, x, y)
        if j < n:
            _binary4(op, out, j, x2, y2)
        i = j + half
        ia, ib = _wrap(ja + ha, na), _wrap(jb + hb, nb)


@cu.jit
def scalar_vec_kernel(a: Any, s: float, out: Any, op: int, scalar_first: bool) -> None:
    """out = a (op) s, or s (op) a: flat f32 of a size divisible by 4, 16-byte aligned."""
    n = out.size
    sv = np.float32(s)
    sx = (sv, sv, sv, sv)
    half = cu.gridsize(1) * 4
    i = cu.grid(1) * 4
    while i < n:
        j = i + half
        x = ld4(a, i)
        y = ld4(a, j) if j < n else x
        if scalar_first:
            _binary4(op, out, i, sx, x)
        else:
            _binary4(op, out, i, x, sx)
        if j < n:
            if scalar_first:
                _binary4(op, out, j, sx, y)
            else:
                _binary4(op, out, j, y, sx)
        i = j + half


@cu.jit
def permute_kernel(src: Any, out: Any, out_shape: Any, src_strides: Any) -> None:
    """out (flat, C order, shape `out_shape` of 4 dims) = src (flat) read through
    `src_strides`: the source's element strides listed in output-axis order."""
    i = cu.grid(1)
    while i < out.size:
        rem = i
        off = 0
        for ax in range(3, -1, -1):
            n = out_shape[ax]
            off += (rem % n) * src_strides[ax]
            rem //= n
        out[i] = src[off]
        i += cu.gridsize(1)


@cu.jit
def causal_mask_kernel(x: Any, out: Any, tq: int, tk: int) -> None:
    """x, out flat [..., tq, tk]: key j of query row r is kept when j <= tk - tq + r."""
    i = cu.grid(1)
    while i < out.size:
        j = i % tk
        r = (i // tk) % tq
        out[i] = x[i] if j <= tk - tq + r else -math.inf
        i += cu.gridsize(1)


def grid_for(n: int) -> int:
    return max(1, min(MAX_BLOCKS, math.ceil(n / THREADS)))


def vec_grid(n: int) -> int:
    """Blocks for a vector kernel over n elements: 8 per thread per trip."""
    return max(1, min(VEC_MAX_BLOCKS, math.ceil(n / (8 * THREADS))))


def _vec_ok(*arrays: Any) -> bool:
    """Whether the 16-byte kernels take these flat f32 arrays."""
    return all(x.size % 4 == 0 and x.size > 0 and x.dtype == np.float32 and aligned(x) for x in arrays)


def binary(a: Any, b: Any, out: Any, op: str) -> None:
    """Flat device arrays; `b` and `a` sizes divide `out.size` (suffix broadcasting)."""
    if _vec_ok(a, b, out):
        binary_vec_kernel[vec_grid(out.size), THREADS, launch_stream()](a, b, out, BINARY_OPS[op])
        return
    binary_kernel[grid_for(out.size), THREADS, launch_stream()](a, b, out, BINARY_OPS[op])


def binary_scalar(a: Any, s: float, out: Any, op: str, scalar_first: bool) -> None:
    if _vec_ok(a, out):
        scalar_vec_kernel[vec_grid(out.size), THREADS, launch_stream()](a, np.float32(s), out, BINARY_OPS[op], scalar_first)
        return
    scalar_kernel[grid_for(out.size), THREADS, launch_stream()](a, np.float32(s), out, BINARY_OPS[op], scalar_first)


def unary(a: Any, out: Any, op: str) -> None:
    if _vec_ok(a, out):
        unary_vec_kernel[vec_grid(out.size), THREADS, launch_stream()](a, out, UNARY_OPS[op])
        return
    unary_kernel[grid_for(out.size), THREADS, launch_stream()](a, out, UNARY_OPS[op])


def gate(g: Any, u: Any, out: Any, act: str) -> None:
    gate_kernel[grid_for(out.size), THREADS, launch_stream()](g, u, out, UNARY_OPS[act])


def permute(src: Any, shape: tuple[int, ...], perm: list[int], out: Any) -> None:
    """out (flat) = the C-contiguous flat `src` of `shape`, axes permuted by `perm`
    (up to 4 axes)."""
    strides = [1] * len(shape)
    for ax in range(len(shape) - 2, -1, -1):
        strides[ax] = strides[ax + 1] * shape[ax + 1]
    pad = 4 - len(shape)
    out_shape = [1] * pad + [shape[p] for p in perm]
    src_strides = [0] * pad + [strides[p] for p in perm]
    permute_kernel[grid_for(out.size), THREADS](src, out, cu.to_device(np.array(out_shape, np.int64)),
                                               cu.to_device(np.array(src_strides, np.int64)))


def causal_mask(x: Any, out: Any, tq: int, tk: int) -> None:
    causal_mask_kernel[grid_for(out.size), THREADS](x, out, tq, tk)
