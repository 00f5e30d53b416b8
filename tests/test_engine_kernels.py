"""The native engine's CPU kernels against their float64 references, every element
written: fused quantised products (one token and several), row decoding, llama.cpp's
activation rounding, rotary embedding at positions, the KV cache and attention over it,
GeGLU; and the Gene-level ops' checks."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from test_kernels_helpers import poisoned, random_blocks, rng  # noqa: E402

from gene_jit.tensor_kernels import engine_cpu, qgemv_cpu  # noqa: E402
from gene_jit.tensor_kernels import reference as ref  # noqa: E402

F64 = np.float64
QUANTS = ["q8_0", "q4_0", "q5_0", "q4_k", "q6_k"]
PLAIN = ["f32", "f16", "bf16"]
BLOCK_BYTES = {"q5_0": 22, **ref.BLOCK_BYTES}
DEQUANT = {"q5_0": ref.dequant_q5_0, **ref.DEQUANT}


def weight(kind: str, n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(raw bytes [n, row_bytes], the float64 values [n, k]) of a random weight."""
    g = rng(seed)
    if kind in QUANTS:
        values = 256 if kind.endswith("_k") else 32
        if kind == "q5_0":
            raw = g.integers(0, 256, size=(n * k // 32, 22), dtype=np.uint8)
            raw[:, 0:2] = g.uniform(0.001, 0.05, n * k // 32).astype(np.float16).view(
                np.uint8).reshape(-1, 2)
            raw = raw.reshape(-1)
        else:
            raw = random_blocks(g, kind, n * k // values)
        return raw.reshape(n, -1), DEQUANT[kind](raw).reshape(n, k)
    w = g.standard_normal((n, k)).astype(np.float32)
    if kind == "f32":
        return w.view(np.uint8).reshape(n, -1), w.astype(F64)
    if kind == "f16":
        h = w.astype(np.float16)
        return h.view(np.uint8).reshape(n, -1), h.astype(F64)
    b = (w.view(np.uint32) >> 16).astype(np.uint16)
    return b.view(np.uint8).reshape(n, -1), (b.astype(np.uint32) << 16).view(np.float32).astype(F64)


def check_product(got: np.ndarray, w: np.ndarray, x: np.ndarray) -> None:
    """Every element within float32 rounding of the float64 product (relative to the sum
    of magnitudes, which bounds the rounding of any summation order)."""
    want = x.astype(F64) @ w.T
    bound = np.abs(x.astype(F64)) @ np.abs(w).T
    assert not np.isnan(got).any(), "an element was not written"
    err = float((np.abs(got - want) / bound).max())
    assert err < 1e-6, f"relative error {err:.2e}"


@pytest.mark.parametrize("kind", QUANTS + PLAIN)
def test_fused_products(kind: str) -> None:
    n, k = 37, 512
    raw, w = weight(kind, n, k)
    code = qgemv_cpu.KINDS[kind]
    x = rng(1).standard_normal((6, k)).astype(np.float32)
    out = poisoned(n)
    qgemv_cpu.qgemv(raw, code, x[0], out)
    check_product(out[None], w, x[:1])
    out = poisoned(n)
    qgemv_cpu.qgemv_rows(raw, code, x[0], qgemv_cpu.sums32(x[0]), out, 0, 20)
    qgemv_cpu.qgemv_rows(raw, code, x[0], qgemv_cpu.sums32(x[0]), out, 20, n)
    check_product(out[None], w, x[:1])
    for t in (2, 4, 6):  # a tail after the blocks of four tokens, and none
        out2 = poisoned(t, n)
        qgemv_cpu.qmatmul(raw, code, x[:t], out2)
        check_product(out2, w, x[:t])
    ids = np.array([5, 0, 36, 5], np.int64)
    rows = poisoned(4, k)
    qgemv_cpu.dequant_rows(raw, code, ids, rows)
    assert np.array_equal(rows.astype(F64), w[ids])


def q8_0_ref(x: np.ndarray) -> np.ndarray:
    """llama.cpp's quantize_row_q8_0 (x86): per 32, d = max|x| / 127 kept as f16,
    q = round-half-even(x * 127 / max|x|); the values q * d."""
    b = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(b).max(axis=1, keepdims=True)
    inv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, 1), 0).astype(np.float32)
    d = (amax / np.float32(127)).astype(np.float16).astype(F64)
    return (np.round(b * inv).astype(F64) * d).reshape(x.shape)


def q8_k_ref(x: np.ndarray) -> np.ndarray:
    """llama.cpp's quantize_row_q8_K: per 256, the value m of largest magnitude,
    q = min(127, round-half-even(x * -127 / m)), d = 1 / (-127 / m)."""
    b = x.reshape(-1, 256).astype(np.float32)
    m = np.take_along_axis(b, np.abs(b).argmax(axis=1)[:, None], axis=1)
    iscale = (np.float32(-127) / np.where(m == 0, 1, m)).astype(np.float32)
    q = np.minimum(127, np.round(b * iscale))
    return np.where(m == 0, 0.0, q * (np.float32(1) / iscale)).astype(F64).reshape(x.shape)


@pytest.mark.parametrize("kind", QUANTS + PLAIN)
def test_activation_rounding(kind: str) -> None:
    x = (rng(2).standard_normal((3, 512)) * np.exp(rng(3).uniform(-6, 3, (3, 512)))).astype(
        np.float32)
    x[1, :256] = 0.0  # an all-zero block
    out = poisoned(3, 512)
    qgemv_cpu.round_activations(qgemv_cpu.KINDS[kind], x, out)
    if kind in ("q8_0", "q4_0", "q5_0"):
        want = q8_0_ref(x)
    elif kind in ("q4_k", "q6_k"):
        want = q8_k_ref(x)
    elif kind == "f16":
        want = x.astype(np.float16).astype(F64)
    elif kind == "bf16":
        bits = x.view(np.uint32).astype(np.uint64)
        want = (((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)).view(
            np.float32).astype(F64)
    else:
        want = x.astype(F64)
    assert np.array_equal(out.astype(F64), want)


def test_round_half_every_range() -> None:
    g = rng(4)
    x = (g.standard_normal(20000) * np.exp(g.uniform(-22, 12, 20000))).astype(np.float32)
    out = poisoned(x.size)
    qgemv_cpu.round_half(x, out)
    with np.errstate(over="ignore"):
        assert np.array_equal(out, x.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("mode", ["neox", "adjacent"])
def test_rope_heads(mode: str) -> None:
    g = rng(5)
    x = g.standard_normal((5, 3, 16)).astype(np.float32)
    pos = np.arange(9, 14, dtype=np.int64)
    factors = np.array([1, 2, 1, 4, 1, 1], np.float32)
    out = poisoned(5, 3, 16)
    code = engine_cpu.ROPE_NEOX if mode == "neox" else engine_cpu.ROPE_ADJACENT
    if mode == "neox":
        engine_cpu.rope_heads(x, pos, 500.0, 1.0, 16, code, np.zeros(0, np.float32), out)
        want = ref.rope(x.transpose(1, 0, 2), pos, 500.0).transpose(1, 0, 2)
    else:
        engine_cpu.rope_heads(x, pos, 500.0, 0.5, 12, code, factors, out)
        want = ref.rope_adjacent(x, pos, 500.0, 0.5, 12, factors)
    assert np.abs(out - want).max() < 1e-5


@pytest.mark.parametrize("window", [0, 3])
def test_cache_and_attention(window: int) -> None:
    g = rng(6)
    heads, kv_heads, d, t, pos = 4, 2, 64, 3, 5
    k_cache = np.zeros((kv_heads, 16, d), np.float32)
    v_cache = np.zeros((kv_heads, 16, d), np.float32)
    k_all = g.standard_normal((pos + t, kv_heads, d)).astype(np.float32)
    v_all = g.standard_normal((pos + t, kv_heads, d)).astype(np.float32)
    engine_cpu.kv_store(k_all[:pos], v_all[:pos], 0, k_cache, v_cache)
    engine_cpu.kv_store(k_all[pos:], v_all[pos:], pos, k_cache, v_cache)
    want_k = k_all.transpose(1, 0, 2).astype(np.float16).astype(np.float32)
    assert np.array_equal(k_cache[:, : pos + t], want_k)
    q = g.standard_normal((t, heads, d)).astype(np.float32)
    out = poisoned(t, heads, d)
    engine_cpu.cached_attention(q, k_cache, v_cache, pos, window, 0.125, out)
    want = ref.windowed_attention(q, k_cache, v_cache, pos, window, 0.125)
    # the query and the running sum of values are held as f16 values, as in ggml
    assert np.abs(out - want).max() < 5e-3


def test_geglu() -> None:
    g = rng(7)
    gate = (g.standard_normal(4096) * 4).astype(np.float32)
    gate[:3] = [-12.0, 11.0, 0.0]
    up = g.standard_normal(4096).astype(np.float32)
    out = poisoned(4096)
    engine_cpu.geglu(gate, up, out)
    want = ref.gelu(gate) * up
    assert np.abs(out - want).max() <= 2e-3 * max(1.0, float(np.abs(want).max()))
    assert out[0] == 0.0 and out[1] == np.float32(11.0) * up[1]


def test_swiglu() -> None:
    """silu(gate) * up against the float64 reference, over the range where exp(-x)
    overflows float32 too (SiLU tends to 0 there, never NaN for a finite gate)."""
    g = rng(9)
    gate = (g.standard_normal(4096) * 6).astype(np.float32)
    gate[:4] = [-100.0, -89.0, 100.0, 0.0]
    up = g.standard_normal(4096).astype(np.float32)
    out = poisoned(4096)
    engine_cpu.swiglu(gate, up, out)
    want = ref.silu(gate.astype(np.float64)) * up
    assert np.abs(out - want).max() <= 1e-6 * max(1.0, float(np.abs(want).max()))
    assert not np.isnan(out).any() and out[3] == 0.0 and out[2] == np.float32(100.0) * up[2]


def test_ops_check_their_operands() -> None:
    from gene_jit.engine import ops
    from gene_jit.engine.weights import Weight
    from gene_jit.runtime.errors import GeneError
    from gene_jit.tensor.device import CPU
    from gene_jit.tensor.tensor import Tensor

    raw, _ = weight("q8_0", 8, 64)
    w = Weight("w", "Q8_0", 8, 64, raw, CPU)
    x = Tensor.from_numpy(np.ones((2, 64), np.float32))
    assert ops.linear(x, w).shape == (2, 8)
    bad = [
        lambda: ops.linear(Tensor.from_numpy(np.ones((2, 32), np.float32)), w),
        lambda: ops.linear([1, 2], w),
        lambda: ops.embed_rows(w, [8]),
        lambda: ops.embed_rows(w, []),
        lambda: ops.rope_at(Tensor.from_numpy(np.ones((1, 2, 6), np.float32)), 0, 1e4, mode="x"),
        lambda: ops.rope_at(Tensor.from_numpy(np.ones((1, 2, 6), np.float32)), -1, 1e4),
    ]
    cache = ops.KVCache(1, 2, 8, 4)
    kv = Tensor.from_numpy(np.ones((3, 2, 8), np.float32))
    bad += [
        lambda: ops.kv_store(cache, 0, kv, kv, 2),  # positions 2..4 past 4
        lambda: ops.kv_store(cache, 1, kv, kv, 0),  # no layer 1
        lambda: ops.kv_attention(cache, 0, Tensor.from_numpy(np.ones((1, 3, 8), np.float32)), 0),
    ]
    for call in bad:
        with pytest.raises(GeneError):
            call()


def test_ops_from_gene() -> None:
    import gene_jit

    out = gene_jit.eval("""
      (var x (tensor/create [[1.0 2.0 3.0 4.0]]))
      (var r (tensor/rope-at (tensor/reshape x [1 1 4]) 3 10000.0 ^mode :adjacent))
      [(tensor/shape (tensor/geglu x x)) (tensor/shape (tensor/swiglu x x))]""")
    assert out == [[1, 4], [1, 4]]
    from gene_jit.runtime.errors import GeneError

    for op in ("geglu", "swiglu"):
        with pytest.raises(GeneError, match=f"tensor/{op}: gate \\[1, 4\\] and up \\[1, 2\\] differ"):
            gene_jit.eval(f"(tensor/{op} (tensor/create [[1.0 2.0 3.0 4.0]]) (tensor/create [[1.0 2.0]]))")


def test_rms_norm() -> None:
    g = rng(8)
    x = (g.standard_normal((5, 640)) * 3).astype(np.float32)
    w = g.standard_normal(640).astype(np.float32)
    out = poisoned(5, 640)
    engine_cpu.rms_norm(x, w, 1e-6, out)
    assert np.abs(out - ref.rmsnorm(x, w, 1e-6)).max() < 1e-5 * np.abs(out).max()


def test_residual_rmsnorm_is_the_ops_it_fuses() -> None:
    """tensor/residual-rmsnorm gives [x2 h] with the bits of the add (or post-norm and
    add) and the RMSNorm one after the other, for rows of several widths and shapes; its
    operands are checked under its own name, from Python and from Gene."""
    import gene_jit
    from gene_jit.engine import ops
    from gene_jit.runtime.errors import GeneError
    from gene_jit.tensor import ops as tensor_ops
    from gene_jit.tensor.tensor import Tensor

    g = rng(12)

    def t(a: np.ndarray) -> Tensor:
        return Tensor.from_numpy(np.ascontiguousarray(a, np.float32))

    for shape in ((1, 640), (3, 96), (2, 40), (2, 3, 64)):
        x, y = ((3 * g.standard_normal(shape)).astype(np.float32) for _ in range(2))
        w, p = ((1 + 0.2 * g.standard_normal(shape[-1])).astype(np.float32) for _ in range(2))
        for post in (None, t(p)):
            joined = tensor_ops.add(t(x), t(y) if post is None else ops.ggml_rmsnorm(t(y), post, 1e-6))
            x2, h = ops.residual_rmsnorm(t(x), t(y), t(w), 1e-6, post)
            assert x2.shape == h.shape == shape
            np.testing.assert_array_equal(x2.numpy(), joined.numpy())
            np.testing.assert_array_equal(h.numpy(), ops.ggml_rmsnorm(joined, t(w), 1e-6).numpy())
    one = t(np.ones((2, 32)))
    bad = [
        (lambda: ops.residual_rmsnorm(one, t(np.ones((3, 32))), t(np.ones(32))), "do not fit"),
        (lambda: ops.residual_rmsnorm(one, one, t(np.ones(16))), "a weight of 16 values"),
        (lambda: ops.residual_rmsnorm(one, one, t(np.ones(32)), 1e-6, t(np.ones(8))), "post of 8"),
        (lambda: ops.residual_rmsnorm(one, [1.0], t(np.ones(32))), "y must be a tensor"),
        (lambda: ops.residual_rmsnorm(one, one, t(np.ones((2, 32)))), "the weight must have 1 axes"),
        (lambda: ops.residual_rmsnorm(one, one, t(np.ones(32)), "x"), "eps must be a number"),
    ]
    for call, message in bad:
        with pytest.raises(GeneError, match=f"tensor/residual-rmsnorm: .*{message}"):
            call()
    out = gene_jit.eval("""
      (var x (tensor/create [[1.0 2.0 3.0 4.0]]))
      (var r (tensor/residual-rmsnorm x x (tensor/create [1.0 1.0 1.0 1.0]) 1e-6 ^post x/0))
      [(len r) (tensor/shape r/0) (tensor/shape r/1)]""")
    assert out == [2, [1, 4], [1, 4]]


def test_qk_rope_store_is_the_ops_it_fuses() -> None:
    """tensor/qk-norm-rope-store returns q's rmsnorm-rope and leaves in the cache what
    rmsnorm-rope of k and kv-store leave, to the bit (tensor/qk-rope-store: rope-at's);
    their operands are checked under their own names."""
    from gene_jit.engine import ops
    from gene_jit.runtime.errors import GeneError
    from gene_jit.tensor.tensor import Tensor

    g = rng(14)

    def t(a: np.ndarray) -> Tensor:
        return Tensor.from_numpy(np.ascontiguousarray(a, np.float32))

    n, h, hkv, d = 3, 4, 2, 16
    q, k, v = ((3 * g.standard_normal((n, heads, d))).astype(np.float32) for heads in (h, hkv, hkv))
    wq, wk = ((1 + 0.2 * g.standard_normal(d)).astype(np.float32) for _ in range(2))
    fac = t(1 + g.random(6))
    for mode, dims, mul, norm in (("neox", d, 0.25, True), ("adjacent", 12, None, True),
                                  ("adjacent", 12, None, False), ("neox", d, None, False)):
        want, got = ops.KVCache(2, hkv, d, 8), ops.KVCache(2, hkv, d, 8)
        factors = None if mode == "neox" else fac
        if norm:
            wq_ = ops.rmsnorm_rope(t(q), t(wq), 1e-6, 2, 1e4, 0.5, mode, dims, factors, mul)
            ops.kv_store(want, 1, ops.rmsnorm_rope(t(k), t(wk), 1e-6, 2, 1e4, 0.5, mode, dims, factors),
                         t(v), 2)
            out = ops.qk_norm_rope_store(got, 1, t(q), t(k), t(v), t(wq), t(wk), 1e-6, 2, 1e4, 0.5, mode,
                                         dims, factors, mul)
        else:
            wq_ = ops.rope_at(t(q), 2, 1e4, 0.5, mode, dims, factors)
            ops.kv_store(want, 1, ops.rope_at(t(k), 2, 1e4, 0.5, mode, dims, factors), t(v), 2)
            out = ops.qk_rope_store(got, 1, t(q), t(k), t(v), 2, 1e4, 0.5, mode, dims, factors)
        np.testing.assert_array_equal(out.numpy(), wq_.numpy())
        for a, b in ((want.k, got.k), (want.v, got.v)):
            for la, lb in zip(a, b, strict=True):
                np.testing.assert_array_equal(la, lb)
    cache = ops.KVCache(1, hkv, d, 4)
    args = (t(q), t(k), t(v), t(wq), t(wk), 1e-6, 0, 1e4)
    bad = [
        (lambda: ops.qk_norm_rope_store(cache, 0, t(q), t(q), t(v), *args[3:]), "do not fit"),
        (lambda: ops.qk_norm_rope_store(cache, 0, *args[:3], t(wq[:8]), *args[4:]), "weights of 8"),
        (lambda: ops.qk_norm_rope_store(cache, 0, *args[:6], 2, 1e4), "past the cache"),
        (lambda: ops.qk_norm_rope_store(cache, 1, *args), "layer 1"),
        (lambda: ops.qk_norm_rope_store(cache, 0, *args, mul="x"), "mul must be a number"),
        (lambda: ops.qk_norm_rope_store(None, 0, *args), "expected a KV cache"),
        (lambda: ops.qk_norm_rope_store(cache, 0, *args[:3], None, *args[4:]), "q's weight must be a tensor"),
    ]
    for call, message in bad:
        with pytest.raises(GeneError, match=f"tensor/qk-norm-rope-store: .*{message}"):
            call()
    for call, message in (
            (lambda: ops.qk_rope_store(cache, 0, t(q), t(q), t(v), 0, 1e4), "do not fit"),
            (lambda: ops.qk_rope_store(cache, 0, *args[:3], 3, 1e4), "past the cache")):
        with pytest.raises(GeneError, match=f"tensor/qk-rope-store: .*{message}"):
            call()
