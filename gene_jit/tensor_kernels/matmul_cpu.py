"""Numba CPU matmul and GEMV kernels (float32; f16 weights with f32 accumulation).

Layouts: `w [N, K]` is a weight matrix with one output feature per row (llama.cpp's
layout), so GEMV reads each row contiguously. f16 weights arrive as their uint16 bit
patterns (Numba's CPU target has no float16 type) and widen in-register.

Versions: `matmul_f32_v1` is the plain triple loop (kept as the baseline the bench
shows); `matmul_f32` (v2) hands the product to BLAS through `np.dot` per batch item,
which Numba lowers to sgemm, and parallelises the batch.

BLAS inside parallel loops: Numba's `np.dot` calls the OpenBLAS that SciPy ships, which
starts its own threads; called from every Numba worker at once it oversubscribes the
cores (and warns that it may hang under OpenMP). `blas_single_thread()`, called at the
top of a parallel item, makes that worker's BLAS calls single-threaded through
OpenBLAS's thread-local setting. `BLAS_LOCAL_THREADS` says whether this OpenBLAS has
it; kernels that need it fall back to plain loops when it does not.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.typing.templates import Signature
from numba.extending import intrinsic

import gene_jit.tensor_kernels.kernel_cache  # noqa: F401  (cache stamp, before decorating)

_TWO_112 = np.float32(5.192296858534828e33)  # rescales f16 bits shifted into f32 position
_BLAS_SYMBOL = "gene_jit_openblas_set_num_threads_local"


def _register_blas_thread_setter() -> bool:
    """Expose SciPy OpenBLAS's `openblas_set_num_threads_local` to compiled code under
    a private symbol name (resolved at link time, so cached kernels keep working)."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return False
    root = os.path.dirname(next(iter(spec.submodule_search_locations)))
    for path in sorted(glob.glob(os.path.join(root, "scipy.libs", "*openblas*"))):
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        llvm.add_symbol(_BLAS_SYMBOL, ctypes.cast(fn, ctypes.c_void_p).value)
        return True
    return False


BLAS_LOCAL_THREADS = _register_blas_thread_setter()


@intrinsic
def _set_blas_threads_local(
    typingctx: Any, n: types.Type
) -> tuple[Signature, Callable[..., ir.Value]]:
    def codegen(
        context: Any, builder: ir.IRBuilder, signature: Signature, args: list[ir.Value]
    ) -> ir.Value:
        if not BLAS_LOCAL_THREADS:  # nothing to call: a no-op returning 0
            return ir.Constant(ir.IntType(32), 0)
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _BLAS_SYMBOL)
        return builder.call(fn, [builder.trunc(args[0], ir.IntType(32))])

    return types.int32(types.int64), codegen


@nb.njit(cache=True, inline="always")
def blas_single_thread() -> None:
    """Make this thread's BLAS calls single-threaded (only when BLAS_LOCAL_THREADS)."""
    _set_blas_threads_local(np.int64(1))  # type: ignore[call-arg]


@nb.njit(parallel=True, fastmath=True, cache=True)
def gemv_f32(w: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """out [N] = w [N, K] @ x [K]."""
    n, k = w.shape
    for i in nb.prange(n):
        acc = np.float32(0.0)
        for j in range(k):
            acc += w[i, j] * x[j]
        out[i] = acc


@nb.njit(fastmath=True, cache=True)
def f16_bits_to_f32(h16: np.ndarray, buf: np.ndarray) -> np.ndarray:
    """Widen f16 bit patterns into `buf` (uint32) and return it viewed as float32,
    scaled down by 2^112 (the caller multiplies the 2^112 back once per dot product)."""
    for j in range(h16.shape[0]):
        h = np.uint32(h16[j])
        o = ((h & np.uint32(0x7FFF)) << np.uint32(13)) | ((h & np.uint32(0x8000)) << np.uint32(16))
        if (h & np.uint32(0x7C00)) == np.uint32(0x7C00):
            o |= np.uint32(0x7F800000)  # inf / NaN keep their class
        buf[j] = o
    return buf.view(np.float32)


@nb.njit(parallel=True, fastmath=True, cache=True)
def gemv_f16w(w_bits: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """out [N] = w [N, K] (f16, as uint16 bits) @ x [K] (f32), f32 accumulation."""
    n, k = w_bits.shape
    for i in nb.prange(n):
        buf = np.empty(k, np.uint32)
        f = f16_bits_to_f32(w_bits[i], buf)
        acc = np.float32(0.0)
        for j in range(k):
            acc += f[j] * x[j]
        out[i] = acc * _TWO_112


@nb.njit(parallel=True, fastmath=True, cache=True)
def matmul_f32_v1(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out [B, M, N] = a [B, M, K] @ b [B, K, N], i-k-j loop order."""
    bs, m, k = a.shape
    n = b.shape[2]
    for p in nb.prange(bs * m):
        z, i = p // m, p % m
        for j in range(n):
            out[z, i, j] = 0.0
        for kk in range(k):
            av = a[z, i, kk]
            for j in range(n):
                out[z, i, j] += av * b[z, kk, j]


@nb.njit(parallel=True, cache=True)
def _matmul_items(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    for z in nb.prange(a.shape[0]):
        blas_single_thread()
        np.dot(a[z], b[z], out[z])


@nb.njit(cache=True)
def matmul_f32(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out [B, M, N] = a [B, M, K] @ b [B, K, N] (all C-contiguous), sgemm per item: one
    item gets a threaded sgemm; several run in parallel on single-threaded sgemms."""
    if a.shape[0] == 1:
        np.dot(a[0], b[0], out[0])
    elif a.shape[0] > 1:
        _matmul_items(a, b, out)
