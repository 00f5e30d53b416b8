"""Numba CPU kernels against their float64 references (random inputs, NaN-poisoned
outputs, relative error reported)."""

from __future__ import annotations

import numpy as np
import pytest
from test_kernels_helpers import F16_TOL, check, poisoned, randn, random_blocks, rng

from gene_jit.tensor_kernels import reference as ref


def test_gemv_f32_and_f16_weights() -> None:
    from gene_jit.tensor_kernels import matmul_cpu

    g = rng(1)
    w, x = randn(g, 67, 130), randn(g, 130)
    out = poisoned(67)
    matmul_cpu.gemv_f32(w, x, out)
    check("gemv f32", out, ref.gemv(w, x))
    w16 = w.astype(np.float16)
    out = poisoned(67)
    matmul_cpu.gemv_f16w(w16.view(np.uint16), x, out)
    check("gemv f16 weights", out, ref.gemv(w16, x))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("version", ["matmul_f32_v1", "matmul_f32"])
def test_matmul_batched(version: str, batch: int) -> None:
    from gene_jit.tensor_kernels import matmul_cpu

    g = rng(2)
    a, b = randn(g, batch, 17, 33), randn(g, batch, 33, 9)
    out = poisoned(batch, 17, 9)
    getattr(matmul_cpu, version)(a, b, out)
    check(version, out, ref.matmul(a, b))


def test_norms_softmax_activations() -> None:
    from gene_jit.tensor_kernels import norms_cpu as k

    g = rng(3)
    x, w, b = randn(g, 5, 300), randn(g, 300), randn(g, 300)
    out = poisoned(5, 300)
    k.softmax_f32(x, out)
    check("softmax", out, ref.softmax(x))
    out = poisoned(5, 300)
    k.rmsnorm_f32(x, w, 1e-6, out)
    check("rmsnorm", out, ref.rmsnorm(x, w, 1e-6))
    out = poisoned(5, 300)
    k.layernorm_f32(x, w, b, 1e-5, out)
    check("layernorm", out, ref.layernorm(x, w, b, 1e-5))
    flat = x.reshape(-1)
    out = poisoned(flat.size)
    k.silu_f32(flat, out)
    check("silu", out, ref.silu(flat))
    out = poisoned(flat.size)
    k.gelu_f32(flat, out)
    check("gelu", out, ref.gelu(flat))


def test_rope() -> None:
    from gene_jit.tensor_kernels import norms_cpu as k

    g = rng(4)
    x = randn(g, 3, 7, 16)
    pos = np.arange(5, 12, dtype=np.int64)
    out = poisoned(3, 7, 16)
    k.rope_f32(x, pos, 10000.0, out)
    check("rope", out, ref.rope(x, pos))


@pytest.mark.parametrize("version", ["attention_f32_v1", "attention_f32_v2", "attention_f32"])
@pytest.mark.parametrize(
    "causal,heads,kv_heads,t", [(True, 4, 2, 70), (False, 3, 3, 20), (True, 2, 1, 130)]
)
def test_attention_prefill(version: str, causal: bool, heads: int, kv_heads: int, t: int) -> None:
    from gene_jit.tensor_kernels import attention_cpu

    g = rng(5)
    q, k, v = randn(g, heads, t, 16), randn(g, kv_heads, t, 16), randn(g, kv_heads, t, 16)
    out = poisoned(heads, t, 16)
    getattr(attention_cpu, version)(q, k, v, causal, 0.25, 0, out)
    check("attention prefill", out, ref.attention(q, k, v, causal=causal, scale=0.25))


@pytest.mark.parametrize("version", ["attention_f32_v1", "attention_f32_v2"])
@pytest.mark.parametrize(
    "causal,t,tk,offset", [(True, 37, 100, 63), (True, 1, 50, 49), (False, 70, 9, 0)]
)
def test_attention_with_cache_offset(
    version: str, causal: bool, t: int, tk: int, offset: int
) -> None:
    """Queries after a cached prefix (chunked prefill), a single query, short keys."""
    from gene_jit.tensor_kernels import attention_cpu

    g = rng(10)
    q, k, v = randn(g, 4, t, 16), randn(g, 2, tk, 16), randn(g, 2, tk, 16)
    out = poisoned(4, t, 16)
    getattr(attention_cpu, version)(q, k, v, causal, 0.3, offset, out)
    check(
        "attention with offset",
        out,
        ref.attention(q, k, v, causal=causal, scale=0.3, q_offset=offset),
    )


def test_attention_decode_gqa() -> None:
    from gene_jit.tensor_kernels import attention_cpu

    g = rng(6)
    q, kc, vc = randn(g, 8, 32), randn(g, 2, 100, 32), randn(g, 2, 100, 32)
    out = poisoned(8, 32)
    attention_cpu.decode_attention_f32(q, kc, vc, 77, 1 / np.sqrt(32), out)
    check("decode attention", out, ref.decode_attention(q, kc, vc, 77))


@pytest.mark.parametrize("tokens,act", [(1, 0), (9, 0), (1, 1), (4, 1)])
def test_feed_forward(tokens: int, act: int) -> None:
    from gene_jit.tensor_kernels import ffn_cpu

    g = rng(7)
    x = randn(g, tokens, 48)
    wg, wu, wd = randn(g, 96, 48), randn(g, 96, 48), randn(g, 48, 96)
    out = poisoned(tokens, 48)
    ffn_cpu.feed_forward_f32(x, wg, wu, wd, act, out)
    check("feed-forward", out, ref.feed_forward(x, wg, wu, wd, "silu" if act == 0 else "gelu"))


@pytest.mark.parametrize("kind", ["q8_0", "q4_0", "q4_k", "q6_k"])
def test_dequant(kind: str) -> None:
    from gene_jit.tensor_kernels.dequant_cpu import DEQUANT_CPU

    raw = random_blocks(rng(8), kind, 7)
    n = 7 * ref.BLOCK_VALUES[kind]
    out = poisoned(n)
    DEQUANT_CPU[kind](raw, out)
    check(f"dequant {kind}", out, ref.DEQUANT[kind](raw))


def test_reference_dequant_matches_gguf() -> None:
    gguf = pytest.importorskip("gguf")
    from gguf.quants import dequantize

    types = {"q8_0": "Q8_0", "q4_0": "Q4_0", "q4_k": "Q4_K", "q6_k": "Q6_K"}
    for kind, name in types.items():
        raw = random_blocks(rng(9), kind, 3)
        theirs = dequantize(raw.reshape(3, -1), getattr(gguf.GGMLQuantizationType, name))
        check(
            f"reference {kind} vs gguf", ref.DEQUANT[kind](raw), theirs.reshape(-1), F16_TOL * 1e-3
        )
