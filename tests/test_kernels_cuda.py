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
