"""C-ABI entry points for the CPU kernels: the calls tier-1 code (and tier 0, through
ctypes) makes with raw pointers and shapes.

Each entry is a `numba.cfunc` compiled on first request (the kernels it calls come from
Numba's disk cache; importing this module imports Numba but compiles nothing): pointers to the row-major buffers (`float*`, `uint16_t*` for f16 weights,
`uint8_t*` for GGUF blocks, `int64_t*` for positions), `int64_t` shapes, `double` for
scalars, and an `int32_t` status result: `OK` (0) or `BAD_SHAPE` (1) when the shapes
are inconsistent (nothing is written then). Buffers must be C-contiguous, of the sizes
the shapes say, and outputs must not alias inputs.

    address, cfunctype = entry("rmsnorm_f32")   # tier 1 emits `call` to address
    fn = ctypes_function("rmsnorm_f32")          # tier 0: fn(x_ptr, w_ptr, out_ptr, ...)

Entries, with their C parameter lists:

    gemv_f32(float *w, float *x, float *out, i64 n, i64 k)        out[n] = w[n,k] x[k]
    gemv_f16w(u16 *w, float *x, float *out, i64 n, i64 k)         w as f16 bit patterns
    matmul_f32(float *a, float *b, float *out, i64 batch, i64 m, i64 k, i64 n)
    rmsnorm_f32(float *x, float *w, float *out, i64 rows, i64 cols, double eps)
    softmax_f32(float *x, float *out, i64 rows, i64 cols)
    rope_f32(float *x, i64 *positions, float *out, i64 batch, i64 tokens, i64 dim,
             double theta)
    feed_forward_f32(float *x, float *wg, float *wu, float *wd, float *out,
                     i64 tokens, i64 embed, i64 hidden, i64 act)   act 0 SiLU, 1 GELU
    decode_attention_f32(float *q, float *k_cache, float *v_cache, float *out,
                         i64 heads, i64 kv_heads, i64 cache_len, i64 head_dim,
                         i64 n_ctx, double scale)
    dequant_q8_0 / dequant_q4_0 / dequant_q4_k / dequant_q6_k(u8 *raw, float *out,
                                                               i64 nbytes)
"""

from __future__ import annotations

import ctypes
from typing import Any

from numba import carray

import gene_jit.tensor_kernels.kernel_cache  # noqa: F401  (cache stamp, before decorating)
from gene_jit.runtime.errors import GeneNameError
from gene_jit.tensor_kernels.attention_cpu import decode_attention_f32
from gene_jit.tensor_kernels.dequant_cpu import (
    dequant_q4_0,
    dequant_q4_k,
    dequant_q6_k,
    dequant_q8_0,
)
from gene_jit.tensor_kernels.ffn_cpu import ffn_f32
from gene_jit.tensor_kernels.matmul_cpu import gemv_f16w, gemv_f32, matmul_f32
from gene_jit.tensor_kernels.norms_cpu import rmsnorm_f32, rope_f32, softmax_f32

OK, BAD_SHAPE = 0, 1

# Inside a cfunc body a pointer argument is a Numba CPointer value that only `carray`
# reads; Python's type system has no closer name for it.
Ptr = Any

# Pointers travel as void* in the ctypes signatures, so that callers may pass integer
# addresses (what tier 1 and NumPy's `arr.ctypes.data` hold); `param_kinds` keeps the
# element types.
_C = {
    "f32p": ctypes.c_void_p,
    "u16p": ctypes.c_void_p,
    "u8p": ctypes.c_void_p,
    "i64p": ctypes.c_void_p,
    "i64": ctypes.c_int64,
    "f64": ctypes.c_double,
}

# ---- C bodies (module-level, no closures, so that Numba's disk cache keys them) ----


def _gemv_f32(w: Ptr, x: Ptr, out: Ptr, n: int, k: int) -> int:
    if n < 0 or k < 0:
        return BAD_SHAPE
    gemv_f32(carray(w, (n, k)), carray(x, (k,)), carray(out, (n,)))
    return OK


def _gemv_f16w(w: Ptr, x: Ptr, out: Ptr, n: int, k: int) -> int:
    if n < 0 or k < 0:
        return BAD_SHAPE
    gemv_f16w(carray(w, (n, k)), carray(x, (k,)), carray(out, (n,)))
    return OK


def _matmul_f32(a: Ptr, b: Ptr, out: Ptr, batch: int, m: int, k: int, n: int) -> int:
    if batch < 0 or m < 0 or k < 0 or n < 0:
        return BAD_SHAPE
    matmul_f32(carray(a, (batch, m, k)), carray(b, (batch, k, n)), carray(out, (batch, m, n)))
    return OK


def _rmsnorm_f32(x: Ptr, w: Ptr, out: Ptr, rows: int, cols: int, eps: float) -> int:
    if rows < 0 or cols <= 0:
        return BAD_SHAPE
    rmsnorm_f32(carray(x, (rows, cols)), carray(w, (cols,)), eps, carray(out, (rows, cols)))
    return OK


def _softmax_f32(x: Ptr, out: Ptr, rows: int, cols: int) -> int:
    if rows < 0 or cols <= 0:
        return BAD_SHAPE
    softmax_f32(carray(x, (rows, cols)), carray(out, (rows, cols)))
    return OK


def _rope_f32(
    x: Ptr, positions: Ptr, out: Ptr, batch: int, tokens: int, dim: int, theta: float
) -> int:
    if batch < 0 or tokens < 0 or dim <= 0 or dim % 2:
        return BAD_SHAPE
    rope_f32(
        carray(x, (batch, tokens, dim)),
        carray(positions, (tokens,)),
        theta,
        carray(out, (batch, tokens, dim)),
    )
    return OK


def _feed_forward_f32(
    x: Ptr, wg: Ptr, wu: Ptr, wd: Ptr, out: Ptr, tokens: int, embed: int, hidden: int, act: int
) -> int:
    if tokens < 0 or embed <= 0 or hidden <= 0 or act < 0 or act > 1:
        return BAD_SHAPE
    ffn_f32(
        carray(x, (tokens, embed)),
        carray(wg, (hidden, embed)),
        carray(wu, (hidden, embed)),
        carray(wd, (embed, hidden)),
        act,
        carray(out, (tokens, embed)),
    )
    return OK


def _decode_attention_f32(
    q: Ptr,
    kc: Ptr,
    vc: Ptr,
    out: Ptr,
    heads: int,
    kv_heads: int,
    cache_len: int,
    head_dim: int,
    n_ctx: int,
    scale: float,
) -> int:
    if (
        kv_heads <= 0
        or heads < kv_heads
        or heads % kv_heads
        or head_dim <= 0
        or n_ctx <= 0
        or n_ctx > cache_len
    ):
        return BAD_SHAPE
    decode_attention_f32(
        carray(q, (heads, head_dim)),
        carray(kc, (kv_heads, cache_len, head_dim)),
        carray(vc, (kv_heads, cache_len, head_dim)),
        n_ctx,
        scale,
        carray(out, (heads, head_dim)),
    )
    return OK


# GGUF blocks: (bytes, values) per block are 34/32 (Q8_0), 18/32 (Q4_0), 144/256 (Q4_K),
# 210/256 (Q6_K), as in reference.BLOCK_BYTES / BLOCK_VALUES.


def _dequant_q8_0(raw: Ptr, out: Ptr, nbytes: int) -> int:
    if nbytes < 0 or nbytes % 34:
        return BAD_SHAPE
    dequant_q8_0(carray(raw, (nbytes,)), carray(out, (nbytes // 34 * 32,)))
    return OK


def _dequant_q4_0(raw: Ptr, out: Ptr, nbytes: int) -> int:
    if nbytes < 0 or nbytes % 18:
        return BAD_SHAPE
    dequant_q4_0(carray(raw, (nbytes,)), carray(out, (nbytes // 18 * 32,)))
    return OK


def _dequant_q4_k(raw: Ptr, out: Ptr, nbytes: int) -> int:
    if nbytes < 0 or nbytes % 144:
        return BAD_SHAPE
    dequant_q4_k(carray(raw, (nbytes,)), carray(out, (nbytes // 144 * 256,)))
    return OK


def _dequant_q6_k(raw: Ptr, out: Ptr, nbytes: int) -> int:
    if nbytes < 0 or nbytes % 210:
        return BAD_SHAPE
    dequant_q6_k(carray(raw, (nbytes,)), carray(out, (nbytes // 210 * 256,)))
    return OK


# name -> (C body, C parameter kinds); the result is always int32
_ENTRIES: dict[str, tuple[Any, tuple[str, ...]]] = {
    "gemv_f32": (_gemv_f32, ("f32p", "f32p", "f32p", "i64", "i64")),
    "gemv_f16w": (_gemv_f16w, ("u16p", "f32p", "f32p", "i64", "i64")),
    "matmul_f32": (_matmul_f32, ("f32p", "f32p", "f32p", "i64", "i64", "i64", "i64")),
    "rmsnorm_f32": (_rmsnorm_f32, ("f32p", "f32p", "f32p", "i64", "i64", "f64")),
    "softmax_f32": (_softmax_f32, ("f32p", "f32p", "i64", "i64")),
    "rope_f32": (_rope_f32, ("f32p", "i64p", "f32p", "i64", "i64", "i64", "f64")),
    "feed_forward_f32": (
        _feed_forward_f32,
        ("f32p", "f32p", "f32p", "f32p", "f32p", "i64", "i64", "i64", "i64"),
    ),
    "decode_attention_f32": (
        _decode_attention_f32,
        ("f32p", "f32p", "f32p", "f32p", "i64", "i64", "i64", "i64", "i64", "f64"),
    ),
    "dequant_q8_0": (_dequant_q8_0, ("u8p", "f32p", "i64")),
    "dequant_q4_0": (_dequant_q4_0, ("u8p", "f32p", "i64")),
    "dequant_q4_k": (_dequant_q4_k, ("u8p", "f32p", "i64")),
    "dequant_q6_k": (_dequant_q6_k, ("u8p", "f32p", "i64")),
}

_compiled: dict[str, Any] = {}


def names() -> list[str]:
    """The entry point names."""
    return list(_ENTRIES)


def param_kinds(name: str) -> tuple[str, ...]:
    """The C parameter kinds of an entry point: "f32p" (float*), "u16p" (uint16_t*),
    "u8p" (uint8_t*), "i64p" (int64_t*), "i64" (int64_t), "f64" (double)."""
    return _params(name)


def _params(name: str) -> tuple[str, ...]:
    try:
        return _ENTRIES[name][1]
    except KeyError:
        raise GeneNameError(
            f"no kernel entry point named {name!r}; known: {', '.join(_ENTRIES)}"
        ) from None


def ctypes_signature(name: str) -> Any:
    """The ctypes CFUNCTYPE of an entry point."""
    return ctypes.CFUNCTYPE(ctypes.c_int32, *(_C[p] for p in _params(name)))


def entry(name: str) -> tuple[int, Any]:
    """(address, ctypes signature) of an entry point, compiling it on first use."""
    cf = _compiled.get(name)
    if cf is None:
        cf = _compile(name)
        _compiled[name] = cf
    return cf.address, ctypes_signature(name)


def ctypes_function(name: str) -> Any:
    """A ctypes callable for an entry point (pointer arguments: integer addresses such
    as NumPy's `arr.ctypes.data`, or ctypes pointers)."""
    address, sig = entry(name)
    return sig(address)


def _compile(name: str) -> Any:
    import numba as nb
    from numba import types

    nbt = {
        "f32p": types.CPointer(types.float32),
        "u16p": types.CPointer(types.uint16),
        "u8p": types.CPointer(types.uint8),
        "i64p": types.CPointer(types.int64),
        "i64": types.int64,
        "f64": types.float64,
    }
    params = _params(name)
    body = _ENTRIES[name][0]
    # not cached on disk: a cfunc loaded back from Numba's cache crashes when called
    # (Numba 0.68); the kernels it calls stay cached, so compiling it is the thin wrapper
    return nb.cfunc(types.int32(*(nbt[p] for p in params)), cache=False)(body)
