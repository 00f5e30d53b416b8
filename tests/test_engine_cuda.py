"""The native engine on a CUDA device against the CPU engine: every engine op with every
weight type, rows of several sequences at their own positions and slots, and (on a real
GPU, `-m cuda`) whole models: the tiny llama GGUF that test_engine_llama writes decoded
greedily, in one pass and batched, and through captured decode graphs. The op tests run
under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) in CI."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")


def _dev() -> Any:
    from gene_jit.tensor_kernels import cuda_support

    if not cuda_support.available():
        pytest.skip(f"no CUDA: {cuda_support.cuda_unavailable_reason()} (set NUMBA_ENABLE_CUDASIM=1)")
    from gene_jit.tensor.device import create_device

    return create_device("cuda")


def _gpu(a: np.ndarray, dev: Any) -> Any:
    from gene_jit.tensor.tensor import Tensor
    from gene_jit.tensor_kernels.cuda_support import cuda

    return Tensor(cuda().to_device(np.ascontiguousarray(a, np.float32)), "f32", dev)


def _cpu(a: np.ndarray) -> Any:
    from gene_jit.tensor.tensor import Tensor

    return Tensor(np.ascontiguousarray(a, np.float32), "f32")


def _weight(type_name: str, rows: int, cols: int, seed: int) -> Any:
    from gguf.quants import quantize

    from gene_jit.engine.weights import Weight
    from gene_jit.tensor.device import CPU

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, cols)).astype(np.float32)
    if type_name in ("Q4_K", "Q6_K"):
        # random blocks (gguf-py cannot write K-quants), with finite, modest f16 scales
        size, where = (144, (0, 2)) if type_name == "Q4_K" else (210, (208,))
        raw = rng.integers(0, 256, (rows, cols // 256, size), dtype=np.uint8)
        for o in where:
            raw[:, :, o:o + 2] = (rng.random((rows, cols // 256, 1)) * 0.01 + 0.001).astype(
                np.float16).view(np.uint8).reshape(rows, cols // 256, 2)
        return Weight("w", type_name, rows, cols, raw.reshape(rows, -1), CPU)
    if type_name == "F32":
        raw = a.view(np.uint8)
    else:
        try:
            raw = quantize(a, getattr(gguf.GGMLQuantizationType, type_name))
        except NotImplementedError:
            pytest.skip(f"gguf cannot write {type_name}")
        raw = np.asarray(raw).view(np.uint8).reshape(rows, -1)
    return Weight("w", type_name, rows, cols, raw, CPU)


@pytest.mark.parametrize("type_name", ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q5_0", "Q4_K", "Q6_K"])
@pytest.mark.parametrize("t", [1, 3])
def test_linear_and_embed_rows_each_type(type_name: str, t: int) -> None:
    from gene_jit.engine import cuda_ops, ops

    dev = _dev()
    w = _weight(type_name, 9, 256, seed=len(type_name) + t)
    wg = cuda_ops._place_weight(w, dev)
    x = np.random.default_rng(t).standard_normal((t, 256)).astype(np.float32)
    want = ops.linear(_cpu(x), w).numpy()
    got = ops.linear(_gpu(x, dev), wg).numpy()
    assert got.shape == want.shape == (t, 9)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5 * np.abs(want).max())
    ids = [8, 0, 3][:t]
    np.testing.assert_array_equal(ops.embed_rows(wg, ids).numpy(), ops.embed_rows(w, ids).numpy())


def test_grouped_products_equal_the_cpu() -> None:
    """q, k and v (and gate and up) of one packed kind share one array and one launch per
    x: each product is the CPU's, for every x in turn."""
    from gene_jit.engine import cuda_ops, ops

    dev = _dev()
    layer = {"wq": _weight("Q4_0", 24, 64, 1), "wk": _weight("Q4_0", 8, 64, 2), "wv": _weight("Q4_0", 16, 64, 3),
             "w-gate": _weight("Q8_0", 40, 64, 4), "w-up": _weight("Q8_0", 40, 64, 5),
             "wo": _weight("Q8_0", 64, 32, 6)}
    placed = cuda_ops._place_layer(layer, dev)
    assert all(id(placed[n]) in cuda_ops._GROUP_OF for n in ("wq", "wk", "wv", "w-gate", "w-up"))
    assert id(placed["wo"]) not in cuda_ops._GROUP_OF
    rng = np.random.default_rng(9)
    for t in (1, 3, 1):
        x = rng.standard_normal((t, 64)).astype(np.float32)
        xg = _gpu(x, dev)
        for name in ("wq", "wk", "wv", "w-gate", "w-up"):
            got = ops.linear(xg, placed[name]).numpy()
            want = ops.linear(_cpu(x), layer[name]).numpy()
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5 * np.abs(want).max())


def test_quantised_beside_norm_and_glu_equal_the_quantiser() -> None:
    """The 8-bit blocks that RMSNorm, GeGLU, SwiGLU and attention write beside their output (which
    the next products read) are those the quantiser makes of that output; the products
    with them are the CPU's."""
    dev = _dev()  # the CUDA modules compile kernels on import: only where CUDA is usable
    from gene_jit.engine import cuda_ops, cuda_qdot, ops
    from gene_jit.tensor_kernels.cuda_support import cuda

    rng = np.random.default_rng(8)
    x = (rng.standard_normal((3, 96)) * 3).astype(np.float32)
    w = (1 + 0.1 * rng.standard_normal(96)).astype(np.float32)
    g, u = (rng.standard_normal((2, 3, 96)) * 4).astype(np.float32)
    outs = [ops.ggml_rmsnorm(_gpu(x, dev), _gpu(w, dev), 1e-6), ops.geglu(_gpu(g, dev), _gpu(u, dev)),
            ops.swiglu(_gpu(g, dev), _gpu(u, dev))]
    # attention's heads, merged as the output product reads them ([T, H*D])
    from gene_jit.tensor import ops as tensor_ops

    cache = ops.kv_cache({"config": {"n-layer": 1, "n-head-kv": 1, "head-dim": 32},
                          "embed": _gpu(np.zeros(1), dev)}, 8)
    kv = [_gpu(rng.standard_normal((3, 1, 32)), dev) for _ in range(2)]
    ops.kv_store(cache, 0, kv[0], kv[1], 0)
    att = ops.kv_attention(cache, 0, _gpu(rng.standard_normal((3, 3, 32)), dev), 0)
    outs.append(tensor_ops.reshape(att, [3, 96]))
    for out in outs:  # written by the op itself, not quantised on demand
        assert (cuda_ops._address(out.data), (3, 96)) in cuda_ops._QUANTISED
        xq, xd = cuda_ops._quantised(out, out.data)
        want_q, want_d = cuda().device_array((3, 24), np.int32), cuda().device_array((3, 3), np.float32)
        cuda_qdot.quantise_q8(out.data, want_q, want_d)
        np.testing.assert_array_equal(xq.copy_to_host(), want_q.copy_to_host())
        np.testing.assert_array_equal(xd.copy_to_host(), want_d.copy_to_host())
        wt = _weight("Q8_0", 5, 96, seed=2)
        got = ops.linear(out, cuda_ops._place_weight(wt, dev)).numpy()
        want = ops.linear(_cpu(out.numpy()), wt).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5 * np.abs(want).max())


@pytest.mark.cuda
@pytest.mark.skipif(SIM, reason="cuBLAS needs a GPU")
@pytest.mark.parametrize("type_name", ["F32", "Q8_0", "Q4_K"])
def test_prompt_products_through_cublas(type_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Products of many tokens (cuBLAS on weights decoded band by band) equal the kernels'."""
    from gene_jit.engine import cuda_ops, ops

    dev = _dev()
    if cuda_ops._torch() is None:
        pytest.skip("torch with CUDA is not installed")
    monkeypatch.setattr(cuda_ops, "_SCRATCH_VALUES", 7 * 256)  # several bands
    w = cuda_ops._place_weight(_weight(type_name, 33, 256, seed=4), dev)
    x = _gpu(np.random.default_rng(5).standard_normal((70, 256)), dev)
    got = ops.linear(x, w).numpy()
    monkeypatch.setattr(cuda_ops, "MATMUL_ROWS", 10**9)
    want = ops.linear(x, w).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_row_ops_match_cpu() -> None:
    from gene_jit.engine import cuda_ops, ops

    dev = _dev()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 32)).astype(np.float32)
    w = (1 + 0.1 * rng.standard_normal(32)).astype(np.float32)
    np.testing.assert_array_equal(ops.ggml_rmsnorm(_gpu(x, dev), _gpu(w, dev), 1e-6).numpy(),
                                  ops.ggml_rmsnorm(_cpu(x), _cpu(w), 1e-6).numpy())
    fac = (1 + rng.random(12)).astype(np.float32)
    for mode, dims, factors in (("neox", 32, None), ("adjacent", 24, fac)):
        got = ops.rope_at(_gpu(x, dev), 7, 10000.0, 0.5, mode, dims,
                          None if factors is None else _gpu(factors, dev)).numpy()
        want = ops.rope_at(_cpu(x), 7, 10000.0, 0.5, mode, dims,
                           None if factors is None else _cpu(factors)).numpy()
        np.testing.assert_array_equal(got, want)
    g = (rng.standard_normal((16, 128)) * 4).astype(np.float32)  # GELU as ggml's f16 table holds it
    u = rng.standard_normal((16, 128)).astype(np.float32)
    np.testing.assert_array_equal(ops.geglu(_gpu(g, dev), _gpu(u, dev)).numpy(),
                                  ops.geglu(_cpu(g), _cpu(u)).numpy())
    with pytest.raises(Exception, match="differ"):
        ops.geglu(_gpu(g, dev), _gpu(u[:2], dev))
    # SwiGLU: exp may differ by an ulp between libdevice and the CPU's libm
    np.testing.assert_allclose(ops.swiglu(_gpu(g, dev), _gpu(u, dev)).numpy(),
                               ops.swiglu(_cpu(g), _cpu(u)).numpy(), rtol=1e-6, atol=1e-7)
    assert cuda_ops.ATTENTION_ROUNDING == "f32"
    from gene_jit.tensor import ops as tensor_ops

    view = tensor_ops.slice_(_gpu(x, dev), 1)  # the rows a forward pass keeps: no host copy
    assert view.device == dev
    np.testing.assert_array_equal(view.numpy(), x[1:])
    np.testing.assert_array_equal(tensor_ops.slice_(_gpu(x, dev), 0, 1, 1).numpy(), x[:, :1])


def test_fused_row_ops_equal_the_ops_they_fuse() -> None:
    """tensor/rmsnorm-rope and tensor/add-rmsnorm give, to the bit, what the ops they fuse
    give one after the other (on the GPU, and on the CPU), for every row at its own
    position, both RoPE modes, partial rotation, frequency factors and head widths past
    one block of threads."""
    from gene_jit.engine import cuda_ops, ops
    from gene_jit.tensor import ops as tensor_ops

    dev = _dev()
    rng = np.random.default_rng(5)
    for t, h, d, mode, dims, with_factors, mul in ((3, 2, 32, "neox", 32, False, 0.125),
                                                   (2, 1, 256, "neox", 256, False, 0.0625),
                                                   (2, 3, 48, "adjacent", 40, True, None),
                                                   (1, 1, 544, "neox", 512, False, 0.5)):  # past MAX_HEAD
        x = (3 * rng.standard_normal((t, h, d))).astype(np.float32)
        w = (1 + 0.2 * rng.standard_normal(d)).astype(np.float32)
        fac = (1 + rng.random(dims // 2)).astype(np.float32)
        rows = cuda_ops.Rows.from_host(np.array([9, 2, 5][:t]), np.zeros(t))
        for tensor, pos, fa in ((lambda a: _gpu(a, dev), rows, _gpu(fac, dev)), (_cpu, 4, _cpu(fac))):
            factors = fa if with_factors else None
            want = ops.rope_at(ops.ggml_rmsnorm(tensor(x), tensor(w), 1e-6), pos, 1e6, 0.5, mode,
                               dims, factors)
            if mul is not None:
                want = tensor_ops.mul(want, mul)
            got = ops.rmsnorm_rope(tensor(x), tensor(w), 1e-6, pos, 1e6, 0.5, mode, dims, factors, mul)
            assert got.device == want.device
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    for shape in ((1, 640), (3, 64), (2, 5, 96)):
        x, y = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
        w = (1 + 0.2 * rng.standard_normal(shape[-1])).astype(np.float32)
        for tensor in (lambda a: _gpu(a, dev), _cpu):
            want = tensor_ops.add(tensor(x), ops.ggml_rmsnorm(tensor(y), tensor(w), 1e-6)).numpy()
            got = ops.add_rmsnorm(tensor(x), tensor(y), tensor(w), 1e-6)
            assert got.shape == shape
            np.testing.assert_array_equal(got.numpy(), want)
    from gene_jit.runtime.errors import GeneError

    for tensor in (lambda a: _gpu(a, dev), _cpu):
        with pytest.raises(GeneError, match="differ|do not fit"):
            ops.add_rmsnorm(tensor(np.ones((2, 32))), tensor(np.ones((3, 32))), tensor(np.ones(32)))
        with pytest.raises(GeneError, match="mul must be a number"):
            ops.rmsnorm_rope(tensor(np.ones((1, 1, 32))), tensor(np.ones(32)), 1e-6, 0, 1e4, mul="x")
        with pytest.raises(GeneError, match="rmsnorm-rope: weight of 16 values for heads of 32"):
            ops.rmsnorm_rope(tensor(np.ones((1, 1, 32))), tensor(np.ones(16)), 1e-6, 0, 1e4)


def test_residual_rmsnorm_equals_the_ops_it_fuses() -> None:
    """tensor/residual-rmsnorm on the GPU (one kernel) gives, to the bit, what the add (or
    post-norm and add) and the RMSNorm give one after the other, on the GPU and on the CPU:
    rows narrower and wider than a block of threads, widths that are no multiple of 32,
    with and without a post-norm; h's 8-bit blocks, written beside it, are the quantiser's."""
    dev = _dev()
    from gene_jit.engine import cuda_ops, cuda_qdot, ops
    from gene_jit.runtime.errors import GeneError
    from gene_jit.tensor import ops as tensor_ops
    from gene_jit.tensor_kernels.cuda_support import cuda

    rng = np.random.default_rng(13)
    for shape in ((1, 640), (3, 96), (2, 40), (2, 3, 64)):
        x, y = ((3 * rng.standard_normal(shape)).astype(np.float32) for _ in range(2))
        w, p = ((1 + 0.2 * rng.standard_normal(shape[-1])).astype(np.float32) for _ in range(2))
        for with_post in (False, True):
            outs = []
            for tensor in (lambda a: _gpu(a, dev), _cpu):
                post = tensor(p) if with_post else None
                joined = tensor_ops.add(tensor(x), ops.ggml_rmsnorm(tensor(y), post, 1e-6) if with_post
                                        else tensor(y))
                x2, h = ops.residual_rmsnorm(tensor(x), tensor(y), tensor(w), 1e-6, post)
                assert x2.device == h.device == joined.device and h.shape == shape
                np.testing.assert_array_equal(x2.numpy(), joined.numpy())
                np.testing.assert_array_equal(h.numpy(), ops.ggml_rmsnorm(joined, tensor(w), 1e-6).numpy())
                outs.append(h)
            np.testing.assert_array_equal(outs[0].numpy(), outs[1].numpy())
            h = outs[0]
            if len(shape) == 2 and shape[1] % 32 == 0:  # blocks beside h, as the products read them
                assert (cuda_ops._address(h.data), shape) in cuda_ops._QUANTISED
                xq, xd = cuda_ops._quantised(h, h.data)
                want_q = cuda().device_array((shape[0], shape[1] // 4), np.int32)
                want_d = cuda().device_array((shape[0], shape[1] // 32), np.float32)
                cuda_qdot.quantise_q8(h.data, want_q, want_d)
                np.testing.assert_array_equal(xq.copy_to_host(), want_q.copy_to_host())
                np.testing.assert_array_equal(xd.copy_to_host(), want_d.copy_to_host())
    one = _gpu(np.ones((2, 32)), dev)
    for call, message in (
            (lambda: ops.residual_rmsnorm(one, _gpu(np.ones((3, 32)), dev), _gpu(np.ones(32), dev)), "do not fit"),
            (lambda: ops.residual_rmsnorm(one, one, _gpu(np.ones(32), dev), 1e-6, _gpu(np.ones(8), dev)), "of 8"),
            (lambda: ops.residual_rmsnorm(one, one, _gpu(np.ones(32), dev), 1e-6, _cpu(np.ones(32))),
             "different devices")):
        with pytest.raises(GeneError, match=f"tensor/residual-rmsnorm: .*{message}"):
            call()


def _qk_inputs(fused: bool, dev: Any, q: np.ndarray, k: np.ndarray, v: np.ndarray, wq: Any, wk: Any,
               factors: Any, rows: Any, mode: str, dims: int, mul: Any) -> tuple[Any, Any]:
    """(q's output, a zeroed 3-slot cache whose layer 1 received k and v), by
    tensor/qk-norm-rope-store (tensor/qk-rope-store where wq is None) or by the ops it
    fuses."""
    from gene_jit.engine import cuda_ops, ops

    cache = cuda_ops.DeviceKVCache(2, k.shape[1], k.shape[2], 8, dev, slots=3)
    for a in (*cache.k, *cache.v):
        a.copy_to_device(np.zeros(a.shape, np.float16))
    gq, gk, gv = (_gpu(a, dev) for a in (q, k, v))
    gwq, gwk = (None, None) if wq is None else (_gpu(wq, dev), _gpu(wk, dev))
    if wq is None:  # RoPE alone
        if fused:
            out = ops.qk_rope_store(cache, 1, gq, gk, gv, rows, 1e4, 0.5, mode, dims, factors)
        else:
            out = ops.rope_at(gq, rows, 1e4, 0.5, mode, dims, factors)
            ops.kv_store(cache, 1, ops.rope_at(gk, rows, 1e4, 0.5, mode, dims, factors), gv, rows)
    elif fused:
        out = ops.qk_norm_rope_store(cache, 1, gq, gk, gv, gwq, gwk, 1e-6, rows, 1e4, 0.5, mode, dims,
                                     factors, mul)
    else:
        out = ops.rmsnorm_rope(gq, gwq, 1e-6, rows, 1e4, 0.5, mode, dims, factors, mul)
        ops.kv_store(cache, 1, ops.rmsnorm_rope(gk, gwk, 1e-6, rows, 1e4, 0.5, mode, dims, factors), gv, rows)
    return out, cache


def test_qk_norm_rope_store_equals_the_ops_it_fuses() -> None:
    """tensor/qk-norm-rope-store on the GPU (one kernel) returns what rmsnorm-rope of q
    returns and leaves in the cache what rmsnorm-rope of k and kv-store leave, to the bit,
    and the CPU's values (tensor/qk-rope-store: rope-at's): rows of several sequences at
    their own positions and slots, both RoPE modes, partial rotation, frequency factors,
    heads wider than its shared memory."""
    from gene_jit.engine import cuda_ops, ops
    from gene_jit.runtime.errors import GeneError

    dev = _dev()
    rng = np.random.default_rng(15)
    for t, h, hkv, d, mode, dims, with_factors, mul, norm in (
            (3, 4, 2, 32, "neox", 32, False, 0.125, True), (2, 3, 1, 48, "adjacent", 40, True, None, True),
            (1, 1, 1, 544, "neox", 512, False, 0.5, True), (3, 4, 2, 32, "adjacent", 24, True, None, False),
            (1, 1, 1, 544, "neox", 512, False, None, False)):
        q, k, v = ((3 * rng.standard_normal((t, n, d))).astype(np.float32) for n in (h, hkv, hkv))
        wq, wk = ((1 + 0.2 * rng.standard_normal(d)).astype(np.float32) if norm else None for _ in range(2))
        fac = (1 + rng.random(dims // 2)).astype(np.float32)
        places = [(1, 5), (0, 2), (2, 0)][:t]  # (slot, position) of each row
        rows = cuda_ops.Rows.from_host([p for _, p in places], [s for s, _ in places])
        case = (dev, q, k, v, wq, wk, _gpu(fac, dev) if with_factors else None, rows, mode, dims, mul)
        (got, gc), (want, wc) = _qk_inputs(True, *case), _qk_inputs(False, *case)
        assert got.device == dev
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        for a, b in ((gc.k[1], wc.k[1]), (gc.v[1], wc.v[1])):
            np.testing.assert_array_equal(a.copy_to_host(), b.copy_to_host())
        # the CPU's values, row by row (to float rounding: the GPU takes cos and sin in f64,
        # the CPU libm's cosf and sinf, which differ in the last bit at some angles)
        for i, (slot, p) in enumerate(places):
            cpu = ops.KVCache(2, hkv, d, 8)
            fa = _cpu(fac) if with_factors else None
            qkv = (_cpu(q[i:i + 1]), _cpu(k[i:i + 1]), _cpu(v[i:i + 1]))
            out = (ops.qk_norm_rope_store(cpu, 1, *qkv, _cpu(wq), _cpu(wk), 1e-6, p, 1e4, 0.5, mode, dims, fa, mul)
                   if norm else ops.qk_rope_store(cpu, 1, *qkv, p, 1e4, 0.5, mode, dims, fa))
            np.testing.assert_allclose(got.numpy()[i], out.numpy()[0], rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(gc.k[1].copy_to_host()[slot, :, p], cpu.k[1][:, p], rtol=1e-3)
            np.testing.assert_array_equal(gc.v[1].copy_to_host()[slot, :, p], cpu.v[1][:, p])
    cache = cuda_ops.DeviceKVCache(1, 1, 32, 4, dev)
    one, w = _gpu(np.ones((1, 1, 32)), dev), _gpu(np.ones(32), dev)
    for call, message in (
            (lambda: ops.qk_norm_rope_store(cache, 0, one, _gpu(np.ones((1, 2, 32)), dev), one, w, w, 1e-6, 0,
                                            1e4), "do not fit"),
            (lambda: ops.qk_norm_rope_store(cache, 0, one, one, one, w, _gpu(np.ones(16), dev), 1e-6, 0, 1e4),
             "weights of 32 and 16"),
            (lambda: ops.qk_norm_rope_store(cache, 0, one, one, one, w, w, 1e-6, 4, 1e4), "past the cache")):
        with pytest.raises(GeneError, match=f"tensor/qk-norm-rope-store: .*{message}"):
            call()


def test_argmax_step_takes_the_lowest_index_of_the_largest() -> None:
    """The greedy step of a decode graph: each row's largest logit (the lowest index among
    ties, wherever the threads' strided streams meet them; NaN never wins), its position
    advanced; rows shorter than a block and of lengths that are no multiple of it."""
    _dev()  # the CUDA modules compile kernels on import: only where CUDA is usable
    from gene_jit.engine import cuda_kernels
    from gene_jit.tensor_kernels.cuda_support import cuda

    rng = np.random.default_rng(9)
    nt = cuda_kernels.ARGMAX_THREADS
    for n in (5, nt + 3, 4 * nt * 3 + 7):
        rows = rng.standard_normal((6, n)).astype(np.float32)
        rows[1, [n - 1, n // 2, 3]] = 50.0  # ties: the lowest index wins
        rows[2, :] = 7.0  # all tied: index 0
        rows[3, 0] = np.nan
        rows[3, n - 1] = 40.0  # the last value, alone
        rows[4, :] = -1e31  # none above -1e30: index 0
        rows[5, [1, n - 2]] = np.inf
        want = []
        for r in rows:
            ok = np.where(np.isnan(r) | (r <= -1e30), -np.inf, r)
            want.append(int(np.argmax(ok)) if ok.max() > -np.inf else 0)
        toks = cuda().to_device(np.zeros(6, np.int32))
        pos = cuda().to_device(np.arange(6, dtype=np.int32))
        cuda_kernels.argmax_step(cuda().to_device(rows), toks, pos)
        assert toks.copy_to_host().tolist() == want, n
        assert pos.copy_to_host().tolist() == list(range(1, 7))


@pytest.mark.cuda
@pytest.mark.skipif(SIM, reason="a whole model takes minutes in the simulator")
def test_small_gemma3_gpu_equals_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small Gemma 3 (QK norms, post norms, sliding-window and global layers, tied
    output) on the GPU, prompt and graph-replayed decode steps, as the CPU engine computes it."""
    from gene_jit.engine import cuda_ops
    from gene_jit.engine.cuda_graph import GraphDecoder
    from gene_jit.engine.model import Engine
    from gene_jit.tensor.device import CPU

    monkeypatch.setattr(cuda_ops, "ATTENTION_ROUNDING", "f16")
    path = _write_small_llama(tmp_path / "gemma.gguf", e=128, f=256, v=300, layers=6, arch="gemma3")
    cpu, gpu = Engine(path, CPU), Engine(path, _dev())
    assert cpu.config.swa_pattern == 6 and cpu.config.window == 4
    toks = [5, 70, 80, 90, 100, 7, 8]
    cc, gc = cpu.new_cache(32), gpu.new_cache(32)
    a, b = cpu.forward(cc, toks, 0, len(toks)), gpu.forward(gc, toks, 0, len(toks))
    assert a is not None and b is not None
    np.testing.assert_allclose(b, a, atol=1e-3, rtol=1e-3)
    dec = GraphDecoder(gpu, gc, 1)
    tok, pos = int(b[-1].argmax()), len(toks)
    for _ in range(6):
        want = cpu.forward(cc, [tok], pos, 1)
        assert want is not None
        got = dec.step([tok], [pos], [0])[0]
        np.testing.assert_allclose(got, want[0], atol=1e-3, rtol=1e-3)
        assert got.argmax() == want[0].argmax()
        tok, pos = int(got.argmax()), pos + 1
    dec.close()


@pytest.mark.parametrize("rounding", ["f32", "f16"])
def test_cache_rows_of_several_sequences(rounding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows at their own positions in their own cache slots give what each sequence's own
    CPU cache gives: a prompt of one sequence and single tokens of two others."""
    from gene_jit.engine import cuda_ops, ops

    monkeypatch.setattr(cuda_ops, "ATTENTION_ROUNDING", rounding)
    dev = _dev()
    rng = np.random.default_rng(9)
    hkv, h, d, n_ctx = 2, 4, 32, 16
    gc = cuda_ops.DeviceKVCache(1, hkv, d, n_ctx, dev, slots=3)
    cpu = [ops.KVCache(1, hkv, d, n_ctx) for _ in range(3)]
    # slot 0: 5 positions, slot 2: 3 positions, stored as one prompt each
    for slot, n in ((0, 5), (2, 3)):
        k = rng.standard_normal((n, hkv, d)).astype(np.float32)
        v = rng.standard_normal((n, hkv, d)).astype(np.float32)
        ops.kv_store(cpu[slot], 0, _cpu(k), _cpu(v), 0)
        rows = cuda_ops.Rows.from_host(np.arange(n), np.full(n, slot))
        ops.kv_store(gc, 0, _gpu(k, dev), _gpu(v, dev), rows)
    # one step: slot 2 at position 3, slot 0 at position 5, slot 1 at position 0
    places = [(2, 3), (0, 5), (1, 0)]
    k = rng.standard_normal((3, hkv, d)).astype(np.float32)
    v = rng.standard_normal((3, hkv, d)).astype(np.float32)
    q = rng.standard_normal((3, h, d)).astype(np.float32)
    rows = cuda_ops.Rows.from_host([p for _, p in places], [s for s, _ in places])
    ops.kv_store(gc, 0, _gpu(k, dev), _gpu(v, dev), rows)
    got = ops.kv_attention(gc, 0, _gpu(q, dev), rows, window=3 if rounding == "f16" else 0).numpy()
    for i, (slot, p) in enumerate(places):
        ops.kv_store(cpu[slot], 0, _cpu(k[i:i + 1]), _cpu(v[i:i + 1]), p)
        want = ops.kv_attention(cpu[slot], 0, _cpu(q[i:i + 1]), p,
                                window=3 if rounding == "f16" else 0).numpy()[0]
        tol = 1e-6 if rounding == "f16" else 2e-3
        np.testing.assert_allclose(got[i], want, atol=tol, rtol=tol)
    with pytest.raises(Exception, match="past the cache"):
        ops.kv_store(gc, 0, _gpu(k, dev), _gpu(v, dev), n_ctx - 1)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("llama_cpp")
    from test_engine_llama import write_quantised_llama

    return write_quantised_llama(tmp_path_factory.mktemp("models") / "tiny-q.gguf")


@pytest.mark.cuda
@pytest.mark.skipif(SIM, reason="a whole model takes minutes in the simulator")
def test_tiny_llama_gpu_equals_cpu(tiny_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Greedy tokens and logits of the GPU engine (eager prompt, graph decode steps, batched
    sequences) against the CPU engine on the same file."""
    from gene_jit.engine import cuda_ops
    from gene_jit.engine.model import EngineModel
    from gene_jit.llama import gene_api as g
    from gene_jit.tensor.device import create_device

    monkeypatch.setattr(cuda_ops, "ATTENTION_ROUNDING", "f16")
    dev = _dev()
    cpu = EngineModel(str(tiny_path), n_ctx=256, threads=2)
    gpu = EngineModel(str(tiny_path), n_ctx=256, device=dev)
    assert gpu.device == str(create_device("cuda"))
    for prompt in ("The quick brown", "Hello world, this is"):
        assert g.generate_text(gpu, prompt, 16, temperature=0) == g.generate_text(cpu, prompt, 16, temperature=0)
    tokens = cpu.tokenize("The cat sat on the mat and the dog ran in the park.")
    worst = 0.0
    for m in (cpu, gpu):
        m.ctx.clear()
    for tok in tokens:
        rows = []
        for m in (cpu, gpu):
            m.ctx.feed_one(0, tok)
            rows.append(np.ctypeslib.as_array((ctypes.c_float * m.n_vocab).from_address(
                m.ctx.logits_ptr(0))).copy())
        worst = max(worst, float(np.abs(rows[0] - rows[1]).max()))
        assert rows[0].argmax() == rows[1].argmax()
    print(f"\ntiny llama on {dev}: largest logit difference to the CPU engine {worst:.2e}")
    assert worst < 1e-2
    batch = g.batch_generate(gpu, ["The quick", "Hello", "What is the"], 8, temperature=0)
    assert batch == g.batch_generate(cpu, ["The quick", "Hello", "What is the"], 8, temperature=0)


def _write_small_llama(path: Path, e: int = 64, f: int = 128, v: int = 300, layers: int = 2,
                       arch: str = "llama") -> Path:
    """A llama GGUF (no vocabulary: the engine alone reads it), weights in Q8_0, Q4_0, F16
    and F32, 4 query heads over 2 key/value heads; or (arch "gemma3") a Gemma 3 one, with
    its QK and post norms, sliding-window layers (a window of 4) and tied output."""
    from gguf.quants import quantize

    rng = np.random.default_rng(11)
    h, hkv = 4, 2
    gemma = arch == "gemma3"
    w = gguf.GGUFWriter(str(path), arch)
    if gemma:
        w.add_uint32("gemma3.attention.sliding_window", 4)
    w.add_context_length(256)
    w.add_embedding_length(e)
    w.add_block_count(layers)
    w.add_feed_forward_length(f)
    w.add_head_count(h)
    w.add_head_count_kv(hkv)
    w.add_layer_norm_rms_eps(1e-5)

    def add(name: str, a: np.ndarray, kind: str) -> None:
        if kind == "F32":
            w.add_tensor(name, a)
        else:
            qt = getattr(gguf.GGMLQuantizationType, kind)
            w.add_tensor(name, quantize(a, qt), raw_dtype=qt)

    def mat(rows: int, cols: int, scale: float = 0.25) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    add("token_embd.weight", mat(v, e, 1.0), "Q8_0")
    add("output_norm.weight", np.ones(e, np.float32), "F32")
    if not gemma:
        add("output.weight", mat(v, e, 1.0), "Q4_0")
    d = e // h
    for i in range(layers):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", np.ones(e, np.float32), "F32")
        add(p + "ffn_norm.weight", np.ones(e, np.float32), "F32")
        if gemma:
            for name, n in (("post_attention_norm", e), ("post_ffw_norm", e), ("attn_q_norm", d),
                            ("attn_k_norm", d)):
                add(p + name + ".weight", (1 + 0.2 * rng.standard_normal(n)).astype(np.float32), "F32")
        for name, (r, c), kind in (("attn_q", (h * d, e), "Q8_0"), ("attn_k", (hkv * d, e), "F16"),
                                   ("attn_v", (hkv * d, e), "F32"), ("attn_output", (e, h * d), "Q4_0"),
                                   ("ffn_gate", (f, e), "Q8_0"), ("ffn_up", (f, e), "F16"),
                                   ("ffn_down", (e, f), "Q4_0")):
            add(p + name + ".weight", mat(r, c), kind)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.cuda
@pytest.mark.skipif(SIM, reason="a whole model takes minutes in the simulator")
def test_engine_graph_decode_equals_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prompt, greedy decode steps replayed from a captured graph, and three sequences
    decoding in one graph: tokens and logits as the CPU engine's."""
    from gene_jit.engine import cuda_ops
    from gene_jit.engine.cuda_graph import GraphDecoder
    from gene_jit.engine.model import Engine
    from gene_jit.tensor.device import CPU

    monkeypatch.setattr(cuda_ops, "ATTENTION_ROUNDING", "f16")
    path = _write_small_llama(tmp_path / "small.gguf")
    cpu, gpu = Engine(path, CPU), Engine(path, _dev())

    def fwd(e: Any, cache: Any, toks: list[int], pos: Any, n: int) -> np.ndarray:
        out = e.forward(cache, toks, pos, n)
        assert out is not None
        return out

    prompts = [[5, 70, 80, 90, 100, 7], [9, 8, 7], [200, 3, 4, 5, 6]]
    caches = [cpu.new_cache(64) for _ in prompts]
    gc = gpu.new_cache(64, len(prompts))
    last_cpu, last_gpu = [], []
    for s, toks in enumerate(prompts):
        a = fwd(cpu, caches[s], toks, 0, len(toks))
        rows = cuda_ops.Rows.from_host(np.arange(len(toks)), np.full(len(toks), s))
        b = fwd(gpu, gc, toks, rows, len(toks))
        np.testing.assert_allclose(b, a, atol=1e-3, rtol=1e-3)
        last_cpu.append(int(a[-1].argmax()))
        last_gpu.append(int(b[-1].argmax()))
    assert last_cpu == last_gpu
    one = GraphDecoder(gpu, gc, 1)
    worst = 0.0
    tok, pos = [last_gpu[0]], len(prompts[0])
    for _ in range(6):  # sequence 0 alone, then all three together
        want = fwd(cpu, caches[0], tok, pos, 1)[0]
        got = one.step(tok, [pos], [0])[0]
        worst = max(worst, float(np.abs(got - want).max()))
        assert got.argmax() == want.argmax()
        tok, pos = [int(got.argmax())], pos + 1
    toks = [tok[0], last_gpu[1], last_gpu[2]]
    poss = [pos, len(prompts[1]), len(prompts[2])]
    three = GraphDecoder(gpu, gc, 3)
    for _ in range(5):
        got = three.step(toks, poss, [0, 1, 2])
        for s in range(3):
            want = fwd(cpu, caches[s], [toks[s]], poss[s], 1)[0]
            worst = max(worst, float(np.abs(got[s] - want).max()))
            assert got[s].argmax() == want.argmax()
        toks = [int(r.argmax()) for r in got]
        poss = [p + 1 for p in poss]
    print(f"\nsmall llama, graph decode on the GPU: largest logit difference to the CPU {worst:.2e}")
    assert worst < 1e-2
    assert len(one.host_s) == 5 and len(three.host_s) == 4


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "layers"), [("llama", 1), ("gemma3", 2)])
def test_small_model_forward_equals_cpu(arch: str, layers: int, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole model on the CUDA path, simulator included: a prompt in one slot, then a
    step of two sequences in one call, as the CPU engine computes them. Each layer closes
    with two residual joins, each one kernel that also normalises the sum for what reads
    it next (the feed-forward, the next layer, the output): a plain RMSNorm runs once a
    call, for the first layer's input. RoPE of q and k (after Gemma's QK norms) and the
    cache store are one kernel a layer."""
    from gene_jit.engine import cuda_fused, cuda_kernels, cuda_ops
    from gene_jit.engine.model import Engine
    from gene_jit.tensor.device import CPU

    monkeypatch.setattr(cuda_ops, "ATTENTION_ROUNDING", "f16")
    path = _write_small_llama(tmp_path / "small.gguf", e=32, f=64, v=64, layers=layers, arch=arch)
    cpu, gpu = Engine(path, CPU), Engine(path, _dev())
    calls = {"rmsnorm": 0, "residual_rmsnorm": 0, "qk_rope_store": 0, "kv_store": 0}

    def counting(f: Any, name: str) -> Any:
        def counted(*args: Any) -> None:
            calls[name] += 1
            f(*args)

        return counted

    for module, name in ((cuda_kernels, "rmsnorm"), (cuda_fused, "residual_rmsnorm"),
                         (cuda_fused, "qk_rope_store"), (cuda_kernels, "kv_store")):
        monkeypatch.setattr(module, name, counting(getattr(module, name), name))
    caches = [cpu.new_cache(16), cpu.new_cache(16)]
    gc = gpu.new_cache(16, 2)
    a = cpu.forward(caches[0], [5, 7, 9], 0, 3)
    b = gpu.forward(gc, [5, 7, 9], 0, 3)
    assert a is not None and b is not None
    np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4)
    assert calls == {"rmsnorm": 1, "residual_rmsnorm": 2 * layers, "qk_rope_store": layers, "kv_store": 0}
    nxt = int(b[-1].argmax())
    b = gpu.forward(gc, [nxt, 11], cuda_ops.Rows.from_host([3, 0], [0, 1]), 2)
    a0, a1 = cpu.forward(caches[0], [nxt], 3, 1), cpu.forward(caches[1], [11], 0, 1)
    assert b is not None and a0 is not None and a1 is not None
    np.testing.assert_allclose(b, np.concatenate([a0, a1]), atol=1e-4, rtol=1e-4)
    assert list(b.argmax(1)) == [a0[0].argmax(), a1[0].argmax()]
