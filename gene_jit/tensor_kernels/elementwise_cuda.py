"""Numba CUDA element-wise kernels: binary arithmetic with suffix broadcasting, unary
maths (exp, sqrt, SiLU, GELU), axis permutation (transpose) and the causal mask.

Binary ops cover the broadcasts a model needs without index arithmetic per axis: each
operand is either a scalar (a kernel argument, no device copy), or an array whose shape
is a suffix of the output shape (same shape, last-axis vector, one row of a batch), read
at `i % size`. Every kernel is a grid-stride loop over the flat output, f32 throughout.
The op is a runtime code: the branch is uniform across the grid, so it costs nothing
next to the memory traffic, and one compiled kernel serves every op.

These kernels compile without fastmath: exp overflows to inf and the causal mask writes
-inf, which fastmath arithmetic may assume away.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor_kernels.cuda_support import cuda

cu = cuda()

ADD, SUB, MUL, DIV = 0, 1, 2, 3
BINARY_OPS = {"add": ADD, "sub": SUB, "mul": MUL, "div": DIV}
EXP, SQRT, SILU, GELU = 0, 1, 2, 3
UNARY_OPS = {"exp": EXP, "sqrt": SQRT, "silu": SILU, "gelu": GELU}
THREADS = 256
MAX_BLOCKS = 132 * 16  # a grid-stride loop covers larger arrays
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


def binary(a: Any, b: Any, out: Any, op: str) -> None:
    """Flat device arrays; `b` and `a` sizes divide `out.size` (suffix broadcasting)."""
    binary_kernel[grid_for(out.size), THREADS](a, b, out, BINARY_OPS[op])


def binary_scalar(a: Any, s: float, out: Any, op: str, scalar_first: bool) -> None:
    scalar_kernel[grid_for(out.size), THREADS](a, np.float32(s), out, BINARY_OPS[op], scalar_first)


def unary(a: Any, out: Any, op: str) -> None:
    unary_kernel[grid_for(out.size), THREADS](a, out, UNARY_OPS[op])


def gate(g: Any, u: Any, out: Any, act: str) -> None:
    gate_kernel[grid_for(out.size), THREADS](g, u, out, UNARY_OPS[act])


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
