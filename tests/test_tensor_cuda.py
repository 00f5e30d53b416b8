"""Tensor ops on the :cuda device (simulator in CI, real GPU on the device machine)."""

from __future__ import annotations

import numpy as np
import pytest
from test_kernels_helpers import check, randn, rng

from gene_jit.tensor import ops, ops_nn
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
