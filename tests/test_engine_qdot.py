"""The engine's integer-dot products (gene_jit/tensor_kernels/qdot_cpu.py): activations
quantised as llama.cpp quantises them, every product element against the float64
product of the dequantised operands, and against a NumPy model of llama.cpp's x86
arithmetic (its lanes, fused multiply-adds and final sums) to the bit; the GELU table
and the rotary angles as ggml computes them."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("numba")

from test_engine_kernels import q8_0_ref, q8_k_ref, weight  # noqa: E402
from test_kernels_helpers import poisoned, rng  # noqa: E402

from gene_jit.tensor_kernels import engine_cpu, qdot_cpu, qgemv_cpu  # noqa: E402

F32, F64 = np.float32, np.float64
KINDS = ["q8_0", "q4_0", "q5_0", "q4_k", "q6_k"]


def activations(t: int, k: int, seed: int = 1) -> np.ndarray:
    x = rng(seed).standard_normal((t, k)) * np.exp(rng(seed + 1).uniform(-4, 2, (t, k)))
    x = x.astype(F32)
    x[-1, :256] = 0.0  # an all-zero block
    return x


@pytest.mark.parametrize("kind", KINDS)
def test_quantize_as_llama(kind: str) -> None:
    code = qgemv_cpu.KINDS[kind]
    x = activations(3, 512)
    a = qdot_cpu.quantize(code, x)
    block = 256 if kind.endswith("_k") else 32
    # the references multiply as they round: Q8_K's values in float32, Q8_0's exactly
    q = a.q.astype(F32 if block == 256 else F64).reshape(3, -1, block)
    values = (q * a.d[:, :, None]).astype(F64).reshape(3, 512)
    assert np.array_equal(values, q8_k_ref(x) if block == 256 else q8_0_ref(x))
    qi = a.q.astype(np.int64)
    assert np.array_equal(a.s4, qi.reshape(3, -1, 4).sum(-1))
    assert np.array_equal(a.s16, qi.reshape(3, -1, 16).sum(-1))


def integer_weight(kind: str, raw: np.ndarray) -> tuple[np.ndarray, ...]:
    """(signed values [N, K] int64, scales) of a GGUF weight: Q8_0/Q4_0/Q5_0 give
    (values, d [N, blocks]); Q6_K (stored six-bit values, sub-block scales [N, K/16],
    d); Q4_K (nibbles, scales [N, K/32], mins [N, K/32], d, dmin)."""
    n = raw.shape[0]
    half = lambda b: b[..., :2].copy().view(np.float16)[..., 0].astype(F32)  # noqa: E731
    if kind == "q8_0":
        b = raw.reshape(n, -1, 34)
        return b[..., 2:].view(np.int8).astype(np.int64).reshape(n, -1), half(b)
    if kind == "q4_0":
        b = raw.reshape(n, -1, 18)
        qs = b[..., 2:].astype(np.int64)
        return np.concatenate([qs & 15, qs >> 4], -1).reshape(n, -1) - 8, half(b)
    if kind == "q5_0":
        b = raw.reshape(n, -1, 22)
        qh = b[..., 2:6].copy().view(np.uint32).astype(np.int64)
        qs = b[..., 6:].astype(np.int64)
        j = np.arange(16)
        lo = (qs & 15) | (((qh >> j) & 1) << 4)
        hi = (qs >> 4) | (((qh >> (j + 16)) & 1) << 4)
        return np.concatenate([lo, hi], -1).reshape(n, -1) - 16, half(b)
    if kind == "q6_k":
        b = raw.reshape(n, -1, 210)
        parts = []
        for h in range(2):
            ql0 = b[..., 64 * h : 64 * h + 32].astype(np.int64)
            ql1 = b[..., 64 * h + 32 : 64 * h + 64].astype(np.int64)
            qh = b[..., 128 + 32 * h : 160 + 32 * h].astype(np.int64)
            parts += [(ql0 & 15) | ((qh & 3) << 4), (ql1 & 15) | (((qh >> 2) & 3) << 4),
                      (ql0 >> 4) | (((qh >> 4) & 3) << 4), (ql1 >> 4) | (((qh >> 6) & 3) << 4)]
        u = np.concatenate(parts, -1).reshape(n, -1)
        sc = b[..., 192:208].view(np.int8).astype(np.int64).reshape(n, -1)
        return u, sc, half(b[..., 208:210])
    b = raw.reshape(n, -1, 144)
    qs = b[..., 16:].astype(np.int64).reshape(n, -1, 4, 32)
    u = np.stack([qs & 15, qs >> 4], 3).reshape(n, -1)  # sub-block 2c: low nibbles
    aux = qdot_cpu.q4_k_aux(raw).astype(np.int64).reshape(n, -1, 16)
    return (u, aux[..., :8].reshape(n, -1), aux[..., 8:].reshape(n, -1), half(b),
            half(b[..., 2:4]))


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a * b + c rounded once to float32 (the product is exact in float64 here)."""
    return (a.astype(F64) * b.astype(F64) + c.astype(F64)).astype(F32)


def hsum8(acc: np.ndarray) -> np.ndarray:
    """hsum_float_8 of acc [..., 8]."""
    r = (acc[..., 4:] + acc[..., :4]).astype(F32)
    return ((r[..., 0] + r[..., 2]).astype(F32) + (r[..., 1] + r[..., 3]).astype(F32)).astype(F32)


def llama_product(kind: str, raw: np.ndarray, a: qdot_cpu.Activations, t: int) -> np.ndarray:
    """Row products of token t as llama.cpp's x86 code computes them (see qdot_cpu.py)."""
    parts = integer_weight(kind, raw)
    q = a.q[t].astype(np.int64)
    n = raw.shape[0]
    if kind in ("q8_0", "q4_0", "q5_0"):
        w, dw = parts
        lanes = (w * q).reshape(n, -1, 8, 4).sum(-1)  # [N, blocks, 8]
        d = (dw * a.d[t]).astype(F32)
        acc = np.zeros((n, 8), F32)
        for b in range(lanes.shape[1]):
            acc = fma(d[:, b, None], lanes[:, b].astype(F32), acc)
        return hsum8(acc)
    if kind == "q6_k":
        u, sc, dw = parts
        acc = np.zeros((n, 8), F32)
        for b in range(dw.shape[1]):
            ub, qb = u[:, 256 * b : 256 * b + 256], q[256 * b : 256 * b + 256]
            dots = (ub * qb).reshape(n, 8, 8, 4).sum(-1)  # [N, chunk, lane]
            lane_sc = np.repeat(sc[:, 16 * b : 16 * b + 16].reshape(n, 8, 2), 4, axis=2)
            s16 = a.s16[t, 16 * b : 16 * b + 16].astype(np.int64)
            sub = 32 * (s16 * sc[:, 16 * b : 16 * b + 16]).reshape(n, 8, 2).sum(-1)
            lanes = (dots * lane_sc).sum(1) - sub
            d = (a.d[t, b] * dw[:, b]).astype(F32)
            acc = fma(d[:, None], lanes.astype(F32), acc)
        return hsum8(acc)
    u, scales, mins, dw, dmin = parts
    acc1: np.ndarray = np.zeros(n, F32)
    acc_min: np.ndarray = np.zeros(n, F32)
    for b in range(dw.shape[1]):
        dots = (u[:, 256 * b : 256 * b + 256] * q[256 * b : 256 * b + 256]).reshape(n, 8, 32).sum(-1)
        isum = (dots * scales[:, 8 * b : 8 * b + 8]).sum(-1)
        s32 = a.s16[t, 16 * b : 16 * b + 16].reshape(8, 2).sum(-1).astype(np.int64)
        isum_min = (mins[:, 8 * b : 8 * b + 8] * s32).sum(-1)
        acc1 = fma(isum.astype(F32), (dw[:, b] * a.d[t, b]).astype(F32), acc1)
        acc_min = fma(isum_min.astype(F32), (dmin[:, b] * a.d[t, b]).astype(F32), acc_min)
    return (acc1 - acc_min).astype(F32)


@pytest.mark.parametrize("kind", KINDS)
def test_integer_products(kind: str) -> None:
    """Every element: within float32 rounding of the float64 product of the dequantised
    weight and activations, and equal to llama.cpp's arithmetic to the bit."""
    n, k, t = 37, 1024, 3
    raw, w = weight(kind, n, k)
    code = qgemv_cpu.KINDS[kind]
    a = qdot_cpu.quantize(code, activations(t, k, seed=3))
    aux = qdot_cpu.q4_k_aux(raw) if kind == "q4_k" else np.zeros((n, 0), np.uint8)
    out = poisoned(t, n)
    qdot_cpu.rows(code, raw, aux, *a, out, 0, 20)
    assert np.isnan(out[:, 20:]).all(), "rows past r1 were written"
    qdot_cpu.rows(code, raw, aux, *a, out, 20, n)
    block = 256 if kind.endswith("_k") else 32
    x = (a.q.astype(F64).reshape(t, -1, block) * a.d[:, :, None]).reshape(t, k)
    want = x @ w.T
    bound = np.abs(x) @ np.abs(w).T
    assert not np.isnan(out).any(), "an element was not written"
    err = float((np.abs(out - want) / np.where(bound > 0, bound, 1)).max())
    assert err < 1e-6, f"{kind}: relative error {err:.2e}"
    for i in range(t):
        assert np.array_equal(out[i], llama_product(kind, raw, a, i)), f"{kind} token {i}"


def test_integer_products_emit_vnni() -> None:
    """Where the CPU has VNNI, the products are vpdpbusd instructions."""
    if not qdot_cpu.VNNI:
        pytest.skip("no VNNI on this CPU")
    import numba

    fresh = numba.njit(nogil=True)(qdot_cpu.rows.py_func)  # the disk cache keeps no assembly
    raw, _ = weight("q8_0", 4, 64)
    a = qdot_cpu.quantize(qgemv_cpu.Q8_0, activations(1, 64))
    fresh(qgemv_cpu.Q8_0, raw, np.zeros((4, 0), np.uint8), *a, poisoned(1, 4), 0, 4)
    asm = fresh.inspect_asm(fresh.signatures[0])
    assert asm.count("vpdpbusd") >= 5  # one or more per weight type


def test_gelu_table_is_ggmls() -> None:
    """ggml's GELU table: the float32 formula with the inner product fused, for every
    float16 input; checked against the float64 GELU to float16 rounding, and against
    libggml's own table where it can be read."""
    table = engine_cpu.gelu_table()
    bits = np.arange(1 << 16, dtype=np.uint16)
    x = bits.view(np.float16).astype(F64)
    finite = np.isfinite(x) & (np.abs(x) < 10)
    exact = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * x * (1 + 0.044715 * x * x)))
    # float16 rounding, and float32 cancellation in 1 + tanh(..) for negative inputs
    close = np.abs(table.astype(F64) - exact) <= np.maximum(np.abs(exact) * 2.0**-10,
                                                            np.abs(x) * 2.0**-22 + 2.0**-24)
    assert close[finite].all()
    ggml = ggml_gelu_table()
    if ggml is not None:
        assert np.array_equal(table[finite], ggml[finite])


def ggml_gelu_table() -> np.ndarray | None:
    """libggml-cpu's ggml_table_gelu_f16 as float32, filled by running a model; None
    where the library or the symbol is not there."""
    import ctypes
    from pathlib import Path

    try:
        import llama_cpp

        from gene_jit.llama.model import Model
    except ImportError:
        return None
    m = Model("default", n_ctx=64)
    m.ctx.feed_one(0, 2)
    m.close()
    for path in sorted((Path(llama_cpp.__file__).parent / "lib").glob("libggml-cpu.so*")):
        try:
            raw = (ctypes.c_uint16 * (1 << 16)).in_dll(ctypes.CDLL(str(path)), "ggml_table_gelu_f16")
        except (OSError, ValueError):
            continue
        table = np.ctypeslib.as_array(raw).copy()
        if table.any():
            return table.view(np.float16).astype(F32)
    return None


def test_rope_angles_use_float32_libm() -> None:
    """Cosines and sines of the float32 angles as libm's cosf and sinf give them (the
    float64 values rounded differ in the last bit for about 1% of angles)."""
    import ctypes

    libm = ctypes.CDLL("libm.so.6")
    libm.cosf.restype = libm.sinf.restype = ctypes.c_float
    libm.cosf.argtypes = libm.sinf.argtypes = [ctypes.c_float]
    x = np.zeros((40, 1, 2), F32)
    x[:, 0, 0] = 1.0  # rotating (1, 0) gives (cos, sin)
    pos = np.arange(1000, 1040, dtype=np.int64)
    out = poisoned(40, 1, 2)
    engine_cpu.rope_heads(x, pos, 10000.0, 1.0, 2, engine_cpu.ROPE_NEOX, np.zeros(0, F32), out)
    want = np.array([[libm.cosf(float(p)), libm.sinf(float(p))] for p in pos], F32)
    assert np.array_equal(out[:, 0], want)


def test_integer_products_without_vnni(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPUs without VNNI get the same integers from plain vector code."""
    import numba

    monkeypatch.setattr(qdot_cpu, "VNNI", False)
    plain = numba.njit(nogil=True)(qdot_cpu.rows.py_func)
    for kind in KINDS:
        code = qgemv_cpu.KINDS[kind]
        raw, _ = weight(kind, 9, 512, seed=4)
        aux = qdot_cpu.q4_k_aux(raw) if kind == "q4_k" else np.zeros((9, 0), np.uint8)
        a = qdot_cpu.quantize(code, activations(2, 512, seed=5))
        got, want = poisoned(2, 9), poisoned(2, 9)
        plain(code, raw, aux, *a, got, 0, 9)
        qdot_cpu.rows(code, raw, aux, *a, want, 0, 9)
        assert np.array_equal(got, want), kind
    assert "vpdpbusd" not in plain.inspect_asm(plain.signatures[0])
