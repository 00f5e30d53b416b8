"""Tensor ops on the :cuda device (simulator in CI, real GPU on the device machine)."""

from __future__ import annotations

import numpy as np
import pytest
from test_kernels_helpers import check, randn, rng

from gene_jit.tensor import ops, ops_nn
from gene_jit.tensor.tensor import Tensor
from gene_jit.tensor_kernels import reference as ref


@pytest.fixture
def cuda_dev():
    from gene_jit.tensor_kernels import cuda_support

    if not cuda_support.available():
        pytest.skip(f"no CUDA: {cuda_support.cuda_unavailable_reason()}")
    return ops.create_device("cuda")


def test_roundtrip_and_ops_on_cuda(cuda_dev) -> None:
    g = rng(21)
    a, b = randn(g, 3, 5), randn(g, 5)
    ta = ops.to(ops.create(a), cuda_dev)
    assert ta.device.is_cuda and ta.shape == (3, 5)
    np.testing.assert_array_equal(ta.numpy(), a)
    s = ops.add(ta, ops.to(ops.create(b), cuda_dev))
    assert s.device.is_cuda
    check("cuda add", s.numpy(), a.astype(np.float64) + b)
    m = ops.matmul(ta, ops.transpose(ta))
    check("cuda matmul", m.numpy(), ref.matmul(a, a.T))


def test_attention_op_on_cuda(cuda_dev) -> None:
    g = rng(22)
    q, k, v = randn(g, 4, 6, 16), randn(g, 2, 6, 16), randn(g, 2, 6, 16)
    tq, tk, tv = (ops.to(ops.create(x), cuda_dev) for x in (q, k, v))
    out = ops_nn.attention(tq, tk, tv)
    assert out.device.is_cuda
    check("cuda attention op", out.numpy(), ref.attention(q, k, v))
    dec = ops_nn.attention(ops.slice_(tq, 5, 6, axis=1), tk, tv, causal=False)
    check("cuda decode op", dec.numpy(), ref.attention(q[:, 5:6], k, v, causal=False))


def _on(dev, x):
    return ops.to(ops.create(x), dev)


def _stays_on_device(monkeypatch) -> None:
    """Fail the test if an op copies a CUDA tensor to the host (the fallback path)."""
    from gene_jit.tensor import cuda_ops

    def no_fallback(fn, *args, **kwargs):
        raise AssertionError(f"{fn.__name__} fell back to the host")

    monkeypatch.setattr(cuda_ops, "_fallback", no_fallback)


def test_elementwise_ops_stay_on_device(cuda_dev, monkeypatch) -> None:
    g = rng(23)
    a, v, s = randn(g, 2, 3, 4), randn(g, 4) + 3, randn(g, 3, 4)
    ta, tv, ts = _on(cuda_dev, a), _on(cuda_dev, v), _on(cuda_dev, s)
    _stays_on_device(monkeypatch)
    a64 = a.astype(np.float64)
    for name, f in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("div", np.divide)):
        op = getattr(ops, name)
        check(f"cuda {name} same shape", op(ta, ta).numpy(), f(a64, a64))
        check(f"cuda {name} last axis", op(ta, tv).numpy(), f(a64, v))
        check(f"cuda {name} row suffix", op(ts, ta).numpy(), f(s.astype(np.float64), a64))
        check(f"cuda {name} scalar", op(ta, 1.5).numpy(), f(a64, 1.5))
        check(f"cuda {name} scalar first", op(2, tv).numpy(), f(2.0, v.astype(np.float64)))
    check("cuda exp", ops.exp(ta).numpy(), np.exp(a64))
    check("cuda sqrt", ops.sqrt(tv).numpy(), np.sqrt(v.astype(np.float64)))
    check("cuda silu", ops.silu(ta).numpy(), ref.silu(a))
    check("cuda gelu", ops.gelu(ta).numpy(), ref.gelu(a))
    out = ops.mul(ta, tv)
    assert out.device.is_cuda and out.dtype == "f32"


def test_general_broadcast_falls_back_correctly(cuda_dev) -> None:
    """[3 1] + [4]: not a suffix broadcast, so the host computes it; still on :cuda."""
    g = rng(24)
    a, b = randn(g, 3, 1), randn(g, 4)
    out = ops.add(_on(cuda_dev, a), _on(cuda_dev, b))
    assert out.device.is_cuda and out.shape == (3, 4)
    check("cuda add general broadcast", out.numpy(), a.astype(np.float64) + b)
    with pytest.raises(ops.TensorShapeError):
        ops.add(_on(cuda_dev, randn(g, 3)), _on(cuda_dev, randn(g, 4)))


def test_shape_and_product_ops_stay_on_device(cuda_dev, monkeypatch) -> None:
    g = rng(25)
    a, b, w16 = randn(g, 2, 5, 6), randn(g, 2, 6, 3), randn(g, 7, 6).astype(np.float16)
    ta, tb, tw = _on(cuda_dev, a), _on(cuda_dev, b), ops.to(ops.create(w16, dtype="f16"), cuda_dev)
    _stays_on_device(monkeypatch)
    check("cuda batched matmul", ops.matmul(ta, tb).numpy(), ref.matmul(a, b))
    check("cuda matmul, f16 weights broadcast", ops.matmul(ta, ops.transpose(tw)).numpy(), ref.matmul(a, w16.T))
    check("cuda matmul by a vector", ops.matmul(ta, _on(cuda_dev, b[0, :, 0])).numpy(), ref.matmul(a, b[0, :, 0]))
    t = ops.transpose(ta, [2, 0, 1])
    assert t.shape == (6, 2, 5)
    np.testing.assert_array_equal(t.numpy(), a.transpose(2, 0, 1))
    r = ops.reshape(ta, [10, -1])
    assert r.device.is_cuda and r.shape == (10, 6)
    np.testing.assert_array_equal(r.numpy(), a.reshape(10, 6))


def test_row_ops_stay_on_device(cuda_dev, monkeypatch) -> None:
    g = rng(26)
    x, w, b = randn(g, 2, 3, 8) + 2, randn(g, 8), randn(g, 8)
    tx, tw, tb = _on(cuda_dev, x), _on(cuda_dev, w), _on(cuda_dev, b)
    _stays_on_device(monkeypatch)
    check("cuda rmsnorm op", ops_nn.rmsnorm(tx, tw).numpy(), ref.rmsnorm(x, w))
    check("cuda layernorm op", ops_nn.layernorm(tx, tw, tb).numpy(), ref.layernorm(x, w, b), 2e-5)
    check("cuda layernorm op, no bias", ops_nn.layernorm(tx, tw).numpy(), ref.layernorm(x, w, np.zeros(8)), 2e-5)
    check("cuda softmax op", ops_nn.softmax(tx).numpy(), ref.softmax(x))
    check("cuda rope op", ops_nn.rope(tx, 3).numpy(), ref.rope(x, np.arange(3, 6)))
    masked = ops_nn.causal_mask(tx)
    assert masked.device.is_cuda
    check("cuda causal softmax", ops_nn.softmax(masked).numpy(), ref.softmax(ops_nn.causal_mask(ops.create(x)).numpy()))


def test_feed_forward_and_dequantize_ops(cuda_dev, monkeypatch) -> None:
    from test_kernels_helpers import random_blocks

    g = rng(27)
    x = randn(g, 3, 8)
    wg, wu, wd = randn(g, 12, 8) * 0.3, randn(g, 12, 8) * 0.3, randn(g, 8, 12) * 0.3
    raw = random_blocks(g, "q4_k", 2)
    traw = ops.to(Tensor.from_numpy(raw.view(np.int32)), cuda_dev)
    tx, twg, twu, twd = (_on(cuda_dev, a) for a in (x, wg, wu, wd))
    _stays_on_device(monkeypatch)
    check("cuda ffn op", ops_nn.feed_forward(tx, twg, twu, twd).numpy(), ref.feed_forward(x, wg, wu, wd))
    one = ops.reshape(_on(cuda_dev, x[1]), [1, 8])
    check("cuda ffn op, one token", ops_nn.feed_forward(one, twg, twu, twd, "gelu").numpy(),
          ref.feed_forward(x[1:2], wg, wu, wd, "gelu"))
    deq = ops_nn.dequantize(traw, "q4_k", [2, 256])
    assert deq.device.is_cuda and deq.shape == (2, 256)
    check("cuda dequantize op", deq.numpy(), ref.DEQUANT["q4_k"](raw).reshape(2, 256), 1e-6)


def test_cuda_op_errors_are_gene_errors(cuda_dev) -> None:
    g = rng(28)
    tx = _on(cuda_dev, randn(g, 2, 8))
    with pytest.raises(ops.TensorShapeError):
        ops_nn.rmsnorm(tx, _on(cuda_dev, randn(g, 7)))
    with pytest.raises(ops.TensorShapeError):
        ops.matmul(tx, tx)
    with pytest.raises(ops.TensorShapeError):
        ops_nn.feed_forward(tx, tx, tx, tx)
    with pytest.raises(ops.TensorShapeError):
        ops.reshape(tx, [3, 5])
