"""Numba CUDA kernels against the float64 references. They run under Numba's CUDA
simulator (NUMBA_ENABLE_CUDASIM=1, small sizes) in CI, and on a real GPU where one is
present; `-m cuda` selects the larger real-GPU cases."""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_kernels_helpers import F16_TOL, check, poisoned, randn, rng

from gene_jit.tensor_kernels import reference as ref


def _cuda():
    from gene_jit.tensor_kernels import cuda_support

    if not cuda_support.available():
        pytest.skip(f"no CUDA: {cuda_support.cuda_unavailable_reason()} (set NUMBA_ENABLE_CUDASIM=1)")
    return cuda_support.cuda()


SIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")
BIG = pytest.mark.cuda if not SIM else pytest.mark.skip(reason="real-GPU size")


# (10, 64): vector kernel, tail chunk only; (13, 328): vector kernel main loop plus tail,
# odd N; (7, 70): K not a multiple of 8, so the word / scalar kernels.
@pytest.mark.parametrize("n,k", [(10, 64), (13, 328), (7, 70), pytest.param(4096, 4096, marks=BIG),
                                 pytest.param(14336, 4104, marks=BIG)])
def test_gemv_f16_weights(n: int, k: int) -> None:
    cu = _cuda()
    from gene_jit.tensor_kernels import gemv_cuda

    g = rng(11)
    w = (randn(g, n, k) * 0.05).astype(np.float16)
    x = randn(g, k)
    out = cu.to_device(poisoned(n))
    gemv_cuda.gemv(cu.to_device(w), cu.to_device(x), out)
    check("cuda gemv f16", out.copy_to_host(), ref.gemv(w, x))
    w32 = randn(g, n, k)
    out = cu.to_device(poisoned(n))
    gemv_cuda.gemv(cu.to_device(w32), cu.to_device(x), out)
    check("cuda gemv f32", out.copy_to_host(), ref.gemv(w32, x))


def test_gemv_unaligned_x_falls_back() -> None:
    """An x view that starts 4 bytes into its buffer can not take 16-byte loads."""
    cu = _cuda()
    from gene_jit.tensor_kernels import gemv_cuda

    g = rng(14)
    w = (randn(g, 6, 16) * 0.05).astype(np.float16)
    x = randn(g, 17)
    dx = cu.to_device(x)[1:]
    out = cu.to_device(poisoned(6))
    if not gemv_cuda.simulator():
        assert not gemv_cuda.vector_ok(cu.to_device(w), dx, out)
    gemv_cuda.gemv(cu.to_device(w), dx, out)
    check("cuda gemv f16, unaligned x", out.copy_to_host(), ref.gemv(w, x[1:]))


# Flash-decoding path: one split (40 keys), three splits with a masked tail (300 keys,
# d 32), a group of 3 and f32 caches; d 48 takes the generic three-launch path.
@pytest.mark.parametrize("dt,heads,kv,ctx,d", [
    (np.float16, 4, 2, 40, 64), (np.float32, 2, 2, 70, 32), (np.float16, 4, 2, 300, 32),
    (np.float16, 6, 2, 50, 16), (np.float16, 4, 2, 30, 48),
    pytest.param(np.float16, 32, 8, 4000, 128, marks=BIG),
    pytest.param(np.float16, 32, 32, 8191, 128, marks=BIG),
    pytest.param(np.float32, 64, 8, 3000, 64, marks=BIG),
    pytest.param(np.float16, 32, 8, 16381, 128, marks=BIG),
    pytest.param(np.float16, 4, 1, 30001, 128, marks=BIG),
    pytest.param(np.float16, 8, 1, 20011, 128, marks=BIG),
    pytest.param(np.float16, 16, 8, 777, 64, marks=BIG),
])
def test_decode_attention(dt: type, heads: int, kv: int, ctx: int, d: int) -> None:
    cu = _cuda()
    from gene_jit.tensor_kernels import attention_cuda

    g = rng(12)
    q = randn(g, heads, d)
    kc, vc = randn(g, kv, ctx + 5, d).astype(dt), randn(g, kv, ctx + 5, d).astype(dt)
    out = cu.to_device(poisoned(heads, d))
    scale = 1 / np.sqrt(d)
    attention_cuda.decode_attention(cu.to_device(q), cu.to_device(kc), cu.to_device(vc), ctx, scale, out)
    tol = F16_TOL if dt == np.float16 else 1e-5
    check("cuda decode attention", out.copy_to_host(), ref.decode_attention(q, kc, vc, ctx, scale), tol)


@pytest.mark.parametrize("causal,heads,kv,t,d", [(True, 2, 1, 9, 40), (False, 2, 2, 5, 16)])
def test_prefill_attention(causal: bool, heads: int, kv: int, t: int, d: int) -> None:
    cu = _cuda()
    from gene_jit.tensor_kernels import attention_cuda

    g = rng(13)
    q, k, v = randn(g, heads, t, d), randn(g, kv, t, d), randn(g, kv, t, d)
    out = cu.to_device(poisoned(heads, t, d))
    attention_cuda.attention(cu.to_device(q), cu.to_device(k), cu.to_device(v), causal, 0.3, 0, out)
    check("cuda prefill attention", out.copy_to_host(), ref.attention(q, k, v, causal=causal, scale=0.3))


# ---- matmul, feed-forward, row ops, dequantisation ----


@pytest.mark.parametrize("batch_a,batch_b,m,k,n,trans,wdt", [
    (1, 1, 5, 7, 9, False, np.float32), (3, 3, 17, 20, 66, False, np.float32),
    (2, 1, 9, 33, 12, True, np.float32), (1, 1, 4, 24, 70, True, np.float16),
    pytest.param(4, 4, 300, 257, 130, False, np.float32, marks=BIG),
    pytest.param(1, 1, 512, 4096, 1024, True, np.float16, marks=BIG),
])
def test_matmul(batch_a: int, batch_b: int, m: int, k: int, n: int, trans: bool, wdt: type) -> None:
    cu = _cuda()
    from gene_jit.tensor_kernels import matmul_cuda

    g = rng(31)
    a = randn(g, batch_a, m, k)
    b = randn(g, batch_b, n, k).astype(wdt) if trans else randn(g, batch_b, k, n).astype(wdt)
    nb = max(batch_a, batch_b)
    out = cu.to_device(poisoned(nb, m, n))
    matmul_cuda.matmul(cu.to_device(a), cu.to_device(b), out, trans_b=trans)
    want = ref.matmul(a, b.transpose(0, 2, 1) if trans else b)
    check("cuda matmul", out.copy_to_host(), np.broadcast_to(want, (nb, m, n)), 1e-5 if wdt == np.float32 else 1e-5)


@pytest.mark.parametrize("t,e,f,act,wdt", [
    (1, 16, 24, "silu", np.float32), (5, 16, 40, "gelu", np.float32), (3, 24, 16, "silu", np.float16),
    pytest.param(1, 2048, 5632, "silu", np.float16, marks=BIG),
    pytest.param(33, 512, 1408, "gelu", np.float32, marks=BIG),
])
def test_feed_forward(t: int, e: int, f: int, act: str, wdt: type) -> None:
    cu = _cuda()
    from gene_jit.tensor_kernels import matmul_cuda

    g = rng(32)
    x = randn(g, t, e)
    wg, wu = (randn(g, f, e) * 0.2).astype(wdt), (randn(g, f, e) * 0.2).astype(wdt)
    wd = (randn(g, e, f) * 0.2).astype(wdt)
    out = cu.to_device(poisoned(t, e))
    matmul_cuda.feed_forward(cu.to_device(x), cu.to_device(wg), cu.to_device(wu), cu.to_device(wd), act, out)
    check("cuda feed-forward", out.copy_to_host(), ref.feed_forward(x, wg, wu, wd, act), 1e-5)


# (3, 10): ragged rows, plain kernels; (2, 300): register kernels, one vector per
# thread, some threads idle; (2, 1100): two vectors per thread, the second partly live.
@pytest.mark.parametrize("rows,cols", [(3, 10), (2, 300), (2, 1100), pytest.param(4096, 4096, marks=BIG),
                                       pytest.param(37, 8192, marks=BIG), pytest.param(5, 8196, marks=BIG)])
def test_norms_and_softmax(rows: int, cols: int) -> None:
    cu = _cuda()
    from gene_jit.tensor_kernels import norms_cuda

    g = rng(33)
    x = randn(g, rows, cols) * 3 + 5  # off-centre rows: LayerNorm must not cancel
    w, b = randn(g, cols), randn(g, cols)
    dx = cu.to_device(x)
    out = cu.to_device(poisoned(rows, cols))
    norms_cuda.rmsnorm(dx, cu.to_device(w), 1e-6, out)
    check("cuda rmsnorm", out.copy_to_host(), ref.rmsnorm(x, w, 1e-6))
    out = cu.to_device(poisoned(rows, cols))
    norms_cuda.layernorm(dx, cu.to_device(w), cu.to_device(b), 1e-5, out)
    check("cuda layernorm", out.copy_to_host(), ref.layernorm(x, w, b, 1e-5), 2e-5)
    out = cu.to_device(poisoned(rows, cols))
    norms_cuda.softmax(dx, out)
    check("cuda softmax", out.copy_to_host(), ref.softmax(x))


def test_norms_f16_weights_and_unaligned_rows() -> None:
    """f16 weights and a row view 4 bytes into its buffer take the plain kernels."""
    cu = _cuda()
    from gene_jit.tensor_kernels import norms_cuda

    g = rng(38)
    x = randn(g, 3, 16) * 2 + 1
    w, b = randn(g, 16).astype(np.float16), randn(g, 16)
    out = cu.to_device(poisoned(3, 16))
    norms_cuda.rmsnorm(cu.to_device(x), cu.to_device(w), 1e-6, out)
    check("cuda rmsnorm, f16 weights", out.copy_to_host(), ref.rmsnorm(x, w, 1e-6))
    out = cu.to_device(poisoned(3, 16))
    norms_cuda.layernorm(cu.to_device(x), cu.to_device(w), cu.to_device(b), 1e-5, out)
    check("cuda layernorm, f16 weights", out.copy_to_host(), ref.layernorm(x, w, b, 1e-5), 2e-5)
    flat = cu.to_device(np.concatenate([[0.0], x.reshape(-1)]).astype(np.float32))
    out = cu.to_device(poisoned(3, 16))
    norms_cuda.softmax(flat[1:].reshape(3, 16), out)
    check("cuda softmax, unaligned rows", out.copy_to_host(), ref.softmax(x))


def test_softmax_masked_rows() -> None:
    """-inf entries (a causal mask) get probability 0; large scores do not overflow."""
    cu = _cuda()
    from gene_jit.tensor_kernels import norms_cuda

    x = np.array([[1.0, -np.inf, 3.0, 800.0], [0.5, 0.25, -np.inf, -np.inf]], np.float32)
    out = cu.to_device(poisoned(2, 4))
    norms_cuda.softmax(cu.to_device(x), out)
    check("cuda softmax masked", out.copy_to_host(), ref.softmax(x))


@pytest.mark.parametrize("b,t,d,start", [(2, 5, 8, 0), (1, 3, 64, 4090), pytest.param(32, 512, 128, 7, marks=BIG)])
def test_rope(b: int, t: int, d: int, start: int) -> None:
    cu = _cuda()
    from gene_jit.tensor_kernels import norms_cuda

    g = rng(34)
    x = randn(g, b, t, d)
    pos = np.arange(start, start + t, dtype=np.int64)
    out = cu.to_device(poisoned(b, t, d))
    norms_cuda.rope(cu.to_device(x), cu.to_device(pos), 10000.0, out)
    check("cuda rope", out.copy_to_host(), ref.rope(x, pos))


EXACT_KINDS = ("q8_0", "q4_0", "q6_k")  # f16 scale times small integers: exact in f32


@pytest.mark.parametrize("kind,nblocks", [("q8_0", 5), ("q4_0", 5), ("q4_k", 3), ("q6_k", 3),
                                          pytest.param("q8_0", 40001, marks=BIG),
                                          pytest.param("q4_0", 40001, marks=BIG),
                                          pytest.param("q4_k", 4097, marks=BIG),
                                          pytest.param("q6_k", 4097, marks=BIG)])
def test_dequantize(kind: str, nblocks: int) -> None:
    """Every output written (NaN-poisoned), against the float64 reference; the kinds
    whose values are exact in f32 must match it bit for bit."""
    cu = _cuda()
    from test_kernels_helpers import random_blocks

    from gene_jit.tensor_kernels import dequant_cuda

    raw = random_blocks(rng(35), kind, nblocks)
    out = cu.to_device(poisoned(dequant_cuda.out_size(kind, raw.size)))
    dequant_cuda.dequantize(cu.to_device(raw), kind, out)
    want = ref.DEQUANT[kind](raw)
    check(f"cuda dequant {kind}", out.copy_to_host(), want, 1e-6)
    if kind in EXACT_KINDS:
        np.testing.assert_array_equal(out.copy_to_host(), want.astype(np.float32))


@pytest.mark.parametrize("kind", ["q8_0", "q4_0", "q4_k", "q6_k"])
def test_dequantize_unaligned_output(kind: str) -> None:
    """An output view 4 bytes into its buffer can not take 16-byte stores: the scalar
    stores write the same values, and nothing outside the view."""
    cu = _cuda()
    from test_kernels_helpers import random_blocks

    from gene_jit.tensor_kernels import dequant_cuda

    raw = random_blocks(rng(37), kind, 2)
    n = dequant_cuda.out_size(kind, raw.size)
    buf = cu.to_device(poisoned(n + 2))
    dequant_cuda.dequantize(cu.to_device(raw), kind, buf[1:n + 1])
    host = buf.copy_to_host()
    assert np.isnan(host[0]) and np.isnan(host[n + 1])
    check(f"cuda dequant {kind}, unaligned", host[1:n + 1], ref.DEQUANT[kind](raw), 1e-6)


def test_elementwise_kernels() -> None:
    cu = _cuda()
    from gene_jit.tensor_kernels import elementwise_cuda as ew

    g = rng(36)
    a, v = randn(g, 4, 6), randn(g, 6) + 3
    da, dv = cu.to_device(a.reshape(-1)), cu.to_device(v)
    for op, f in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("div", np.divide)):
        out = cu.to_device(poisoned(24))
        ew.binary(da, dv, out, op)
        check(f"cuda {op} row-broadcast", out.copy_to_host().reshape(4, 6), f(a.astype(np.float64), v))
        out = cu.to_device(poisoned(24))
        ew.binary_scalar(da, 2.5, out, op, True)
        check(f"cuda scalar {op}", out.copy_to_host().reshape(4, 6), f(2.5, a.astype(np.float64)))
    for op, f in (("exp", np.exp), ("silu", ref.silu), ("gelu", ref.gelu)):
        out = cu.to_device(poisoned(24))
        ew.unary(da, out, op)
        check(f"cuda {op}", out.copy_to_host().reshape(4, 6), f(a.astype(np.float64)))
    out = cu.to_device(poisoned(6))
    ew.unary(dv, out, "sqrt")
    check("cuda sqrt", out.copy_to_host(), np.sqrt(v.astype(np.float64)))


def test_elementwise_vector_kernels_many_trips(monkeypatch) -> None:
    """One block, so each thread makes several grid-stride trips with a ragged last one;
    broadcast operands of 1000 and 40 values wrap at steps that are not multiples of
    their size; either operand may be the broadcast one."""
    cu = _cuda()
    from gene_jit.tensor_kernels import elementwise_cuda as ew

    monkeypatch.setattr(ew, "VEC_MAX_BLOCKS", 1)
    g = rng(39)
    a, row, small = randn(g, 5, 1000), randn(g, 1000) + 3, randn(g, 40) + 3
    da, drow, dsmall = cu.to_device(a.reshape(-1)), cu.to_device(row), cu.to_device(small)
    a64 = a.astype(np.float64)
    for op, f in (("add", np.add), ("div", np.divide)):
        out = cu.to_device(poisoned(5000))
        ew.binary(da, drow, out, op)
        check(f"cuda {op} vector row-broadcast", out.copy_to_host().reshape(5, 1000), f(a64, row))
        out = cu.to_device(poisoned(5000))
        ew.binary(drow, da, out, op)
        check(f"cuda {op} vector broadcast first", out.copy_to_host().reshape(5, 1000), f(row, a64))
        out = cu.to_device(poisoned(5000))
        ew.binary(da, dsmall, out, op)
        check(f"cuda {op} vector 40-broadcast", out.copy_to_host(), f(a64.reshape(-1), np.tile(small, 125)))
    out = cu.to_device(poisoned(5000))
    ew.unary(da, out, "silu")
    check("cuda vector silu", out.copy_to_host().reshape(5, 1000), ref.silu(a))
    out = cu.to_device(poisoned(5000))
    ew.binary_scalar(da, 0.5, out, "sub", True)
    check("cuda vector scalar-first sub", out.copy_to_host().reshape(5, 1000), 0.5 - a64)


def test_elementwise_in_place_and_unaligned() -> None:
    """Output aliasing an input (in place), and views 4 bytes into their buffers (the
    scalar kernels)."""
    cu = _cuda()
    from gene_jit.tensor_kernels import elementwise_cuda as ew

    g = rng(40)
    a, row = randn(g, 3, 8), randn(g, 8)
    da = cu.to_device(a.reshape(-1))
    ew.binary(da, cu.to_device(row), da, "mul")
    check("cuda in-place mul", da.copy_to_host().reshape(3, 8), a.astype(np.float64) * row)
    buf = cu.to_device(np.concatenate([[0.0], a.reshape(-1)]).astype(np.float32))
    out = cu.to_device(poisoned(25))
    ew.unary(buf[1:], out[1:], "exp")
    check("cuda exp, unaligned", out.copy_to_host()[1:], np.exp(a.astype(np.float64)).reshape(-1))
    out = cu.to_device(poisoned(25))
    ew.binary(buf[1:], cu.to_device(row), out[1:], "sub")
    check("cuda sub, unaligned", out.copy_to_host()[1:].reshape(3, 8), a.astype(np.float64) - row)


# The real-GPU cases: a group of 4 (8) over 36 (134) splits of a context that is no
# multiple of the split length, so the combine's lanes hold several (max, sum) pairs.
@pytest.mark.parametrize("dt,heads,kv,ctx,d,resident", [
    (np.float16, 4, 2, 300, 32, 24), (np.float32, 8, 1, 97, 64, 7), (np.float16, 2, 2, 130, 16, 40),
    pytest.param(np.float16, 4, 1, 570, 128, 36, marks=BIG),
    pytest.param(np.float16, 16, 2, 3210, 128, 400, marks=BIG),
])
def test_decode_many_splits_combine_in_kernel(monkeypatch, dt: type, heads: int, kv: int, ctx: int, d: int,
                                              resident: int) -> None:
    """Many splits per kv head, so the last block's in-kernel combine merges a masked
    tail and several rows of partials; a second launch reuses the reset counters."""
    cu = _cuda()
    from gene_jit.tensor_kernels import decode_cuda

    monkeypatch.setattr(decode_cuda, "resident_blocks", lambda launcher, threads: resident)
    g = rng(15)
    kc, vc = randn(g, kv, ctx, d).astype(dt), randn(g, kv, ctx, d).astype(dt)
    dk, dv = cu.to_device(kc), cu.to_device(vc)
    for seed in (0, 1):
        q = randn(rng(seed), heads, d)
        out = cu.to_device(poisoned(heads, d))
        decode_cuda.decode(cu.to_device(q), dk, dv, ctx, 0.2, out)
        tol = F16_TOL if dt == np.float16 else 1e-5
        check("cuda decode, in-kernel combine", out.copy_to_host(), ref.decode_attention(q, kc, vc, ctx, 0.2), tol)
