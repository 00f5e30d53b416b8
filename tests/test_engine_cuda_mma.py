"""Tensor-core products (gene_jit/engine/cuda_mma.py) of packed Q8_0 / Q4_0 weights for 16
tokens and more: against the CPU engine's products and the dp4a kernels of cuda_qdot,
with rows and tokens that fill no whole tile, and with the rows of grouped weights. Under
Numba's simulator (CI) they check this module's fragment indexing; on a GPU (`-m cuda`
runs them too) the hardware's m16n8k32 layout."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.test_engine_cuda import _cpu, _dev, _gpu, _weight


@pytest.fixture(autouse=True)
def _needs_cuda() -> None:
    """The kernels' modules need CUDA (or the simulator) to be imported."""
    _dev()


def _products(type_name: str, rows: int, cols: int, t: int, seed: int, dp4a: bool) -> tuple[Any, ...]:
    from gene_jit.engine import cuda_mma, cuda_ops, cuda_qdot, ops

    dev = _dev()
    w = _weight(type_name, rows, cols, seed)
    wg = cuda_ops._place_weight(w, dev)
    x = np.random.default_rng(seed + 1).standard_normal((t, cols)).astype(np.float32)
    want = ops.linear(_cpu(x), w).numpy()
    got = ops.linear(_gpu(x, dev), wg).numpy()
    if not dp4a:
        return want, got, None
    # the same product through the dp4a kernels (the path of fewer tokens)
    saved = cuda_mma.MMA_MIN_TOKENS
    cuda_mma.MMA_MIN_TOKENS = 1 << 30
    try:
        xq, xd = cuda_ops._quantised(_gpu(x, dev), _gpu(x, dev).data)
        out = cuda_ops.device_empty((t, rows))
        cuda_qdot.linear(wg.raw, wg.kind, xq, xd, out)
        other = out.copy_to_host() if hasattr(out, "copy_to_host") else np.asarray(out)
    finally:
        cuda_mma.MMA_MIN_TOKENS = saved
    return want, got, other


@pytest.mark.parametrize("type_name", ["Q8_0", "Q4_0"])
@pytest.mark.parametrize(("rows", "cols", "t"), [(16, 32, 16), (40, 64, 21), (70, 64, 64), (24, 32, 67)])
def test_tensor_core_products_equal_the_cpu(type_name: str, rows: int, cols: int, t: int) -> None:
    """Each against the CPU engine; the first also against the dp4a kernels."""
    want, got, dp4a = _products(type_name, rows, cols, t, seed=rows + t, dp4a=t == 16)
    assert got.shape == want.shape == (t, rows)
    tol = 2e-5 * np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=tol)
    if dp4a is not None:
        np.testing.assert_allclose(got, dp4a, rtol=1e-5, atol=tol)


def test_tensor_core_products_of_grouped_weights() -> None:
    """q, k and v in one array and one launch: each output region is its own product."""
    from gene_jit.engine import cuda_ops, ops

    dev = _dev()
    layer = {"wq": _weight("Q4_0", 24, 64, 1), "wk": _weight("Q4_0", 8, 64, 2), "wv": _weight("Q4_0", 16, 64, 3)}
    placed = cuda_ops._place_layer(layer, dev)
    x = np.random.default_rng(5).standard_normal((18, 64)).astype(np.float32)
    xg = _gpu(x, dev)
    for name in ("wq", "wk", "wv"):
        got = ops.linear(xg, placed[name]).numpy()
        want = ops.linear(_cpu(x), layer[name]).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5 * np.abs(want).max())


def test_q4_nibbles_become_signed_bytes() -> None:
    from gene_jit.engine import cuda_mma

    for n in range(16):
        word = n * 0x01010101
        got = int(cuda_mma._q4_bytes.py_func(word)) if hasattr(cuda_mma._q4_bytes, "py_func") else None
        if got is None:
            pytest.skip("no Python function behind the device function")
        b = np.array([got], np.int32).view(np.int8)
        assert list(b) == [n - 8] * 4
