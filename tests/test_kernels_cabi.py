"""C-ABI kernel entry points called through ctypes with NumPy buffers, against the
float64 references (NaN-poisoned outputs), and their shape checks."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pytest
from test_kernels_helpers import check, poisoned, randn, random_blocks, rng

from gene_jit.runtime.errors import GeneError
from gene_jit.tensor_kernels import reference as ref

cabi = pytest.importorskip("gene_jit.tensor_kernels.cabi")


def ptr(a: np.ndarray) -> int:
    assert a.flags.c_contiguous
    return a.ctypes.data


def call(name: str, *args: Any) -> int:
    fn = cabi.ctypes_function(name)
    return int(fn(*(ptr(a) if isinstance(a, np.ndarray) else a for a in args)))


def test_entry_gives_address_and_signature() -> None:
    address, sig = cabi.entry("softmax_f32")
    assert isinstance(address, int) and address != 0
    assert sig._restype_ is ctypes.c_int32 and len(sig._argtypes_) == 4
    assert set(cabi.names()) >= {"gemv_f32", "decode_attention_f32", "dequant_q6_k"}
    with pytest.raises(GeneError, match="no kernel entry point named 'nope'"):
        cabi.entry("nope")


def test_gemv_and_matmul() -> None:
    g = rng(41)
    w, x = randn(g, 37, 70), randn(g, 70)
    out = poisoned(37)
    assert call("gemv_f32", w, x, out, 37, 70) == cabi.OK
    check("c gemv f32", out, ref.gemv(w, x))
    w16 = w.astype(np.float16)
    out = poisoned(37)
    assert call("gemv_f16w", w16.view(np.uint16), x, out, 37, 70) == cabi.OK
    check("c gemv f16 weights", out, ref.gemv(w16, x))
    a, b = randn(g, 2, 9, 13), randn(g, 2, 13, 5)
    out = poisoned(2, 9, 5)
    assert call("matmul_f32", a, b, out, 2, 9, 13, 5) == cabi.OK
    check("c matmul", out, ref.matmul(a, b))


def test_rows_and_rope() -> None:
    g = rng(42)
    x, w = randn(g, 6, 40), randn(g, 40)
    out = poisoned(6, 40)
    assert call("rmsnorm_f32", x, w, out, 6, 40, 1e-6) == cabi.OK
    check("c rmsnorm", out, ref.rmsnorm(x, w, 1e-6))
    out = poisoned(6, 40)
    assert call("softmax_f32", x, out, 6, 40) == cabi.OK
    check("c softmax", out, ref.softmax(x))
    xr = randn(g, 2, 5, 8)
    pos = np.arange(3, 8, dtype=np.int64)
    out = poisoned(2, 5, 8)
    assert call("rope_f32", xr, pos, out, 2, 5, 8, 10000.0) == cabi.OK
    check("c rope", out, ref.rope(xr, pos))


@pytest.mark.parametrize("tokens,act", [(1, 0), (5, 1)])
def test_feed_forward(tokens: int, act: int) -> None:
    g = rng(43)
    x = randn(g, tokens, 24)
    wg, wu, wd = randn(g, 56, 24), randn(g, 56, 24), randn(g, 24, 56)
    out = poisoned(tokens, 24)
    assert call("feed_forward_f32", x, wg, wu, wd, out, tokens, 24, 56, act) == cabi.OK
    check("c feed-forward", out, ref.feed_forward(x, wg, wu, wd, "silu" if act == 0 else "gelu"))


def test_decode_attention() -> None:
    g = rng(44)
    q, kc, vc = randn(g, 6, 16), randn(g, 2, 40, 16), randn(g, 2, 40, 16)
    out = poisoned(6, 16)
    assert call("decode_attention_f32", q, kc, vc, out, 6, 2, 40, 16, 33, 0.25) == cabi.OK
    check("c decode attention", out, ref.decode_attention(q, kc, vc, 33, 0.25))


@pytest.mark.parametrize("kind", ["q8_0", "q4_0", "q4_k", "q6_k"])
def test_dequant(kind: str) -> None:
    raw = random_blocks(rng(45), kind, 5)
    out = poisoned(5 * ref.BLOCK_VALUES[kind])
    assert call(f"dequant_{kind}", raw, out, raw.size) == cabi.OK
    check(f"c dequant {kind}", out, ref.DEQUANT[kind](raw))


def test_bad_shapes_write_nothing() -> None:
    g = rng(46)
    q, kc = randn(g, 6, 16), randn(g, 4, 40, 16)
    out = poisoned(6, 16)
    # 6 query heads do not split over 4 kv heads; n_ctx beyond the cache
    assert call("decode_attention_f32", q, kc, kc, out, 6, 4, 40, 16, 10, 0.25) == cabi.BAD_SHAPE
    assert call("decode_attention_f32", q, kc, kc, out, 6, 2, 40, 16, 41, 0.25) == cabi.BAD_SHAPE
    assert np.isnan(out).all()
    raw = np.zeros(35, np.uint8)
    assert call("dequant_q8_0", raw, poisoned(64), 35) == cabi.BAD_SHAPE
    x = randn(g, 2, 5, 7)
    assert (
        call("rope_f32", x, np.arange(5, dtype=np.int64), poisoned(2, 5, 7), 2, 5, 7, 1e4)
        == cabi.BAD_SHAPE
    )
