"""Float64 NumPy references for every tensor kernel.

Each function here is the plain mathematical definition, written for clarity and run in
float64; the tests compare every Numba CPU and CUDA kernel against it. Layouts follow
llama.cpp: a weight matrix is `[out, in]` (rows are output features), activations are
row-major `[tokens, features]`, attention tensors are `[heads, tokens, head_dim]`.
"""

from __future__ import annotations

import numpy as np

F64 = np.float64


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched `a @ b` (NumPy broadcasting over leading axes)."""
    return np.matmul(a.astype(F64), b.astype(F64))


def gemv(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """`w [N, K] @ x [K] -> [N]` (a weight matrix times one activation vector)."""
    return w.astype(F64) @ x.astype(F64)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x.astype(F64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """`x / sqrt(mean(x^2) + eps) * w` over the last axis."""
    x = x.astype(F64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w.astype(F64)


def layernorm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    x = x.astype(F64)
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w.astype(F64) + b.astype(F64)


def silu(x: np.ndarray) -> np.ndarray:
    x = x.astype(F64)
    return x / (1.0 + np.exp(-x))


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (what GPT-2, Gemma and llama.cpp use)."""
    x = x.astype(F64)
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def rope(x: np.ndarray, positions: np.ndarray, theta: float = 10000.0) -> np.ndarray:
    """Rotary embedding, half-split ("NeoX") pairing, on `x [..., T, D]` with `positions [T]`:
    element i of the first half rotates with element i of the second half."""
    x = x.astype(F64)
    d = x.shape[-1]
    half = d // 2
    inv = theta ** (-np.arange(half, dtype=F64) * 2.0 / d)
    ang = positions.astype(F64)[:, None] * inv[None, :]  # [T, half]
    cos, sin = np.cos(ang), np.sin(ang)
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)



def rope_adjacent(
    x: np.ndarray, positions: np.ndarray, theta: float = 10000.0, freq_scale: float = 1.0,
    n_rot: int | None = None, factors: np.ndarray | None = None,
) -> np.ndarray:
    """Rotary embedding with adjacent pairing (llama.cpp's "normal" mode) on `x [T, ..., D]`:
    elements 2i and 2i+1 turn by pos * freq_scale * theta^(-2i/n_rot) / factors[i]; the
    dimensions past n_rot stay."""
    x = x.astype(F64)
    n_rot = x.shape[-1] if n_rot is None else n_rot
    half = n_rot // 2
    inv = theta ** (-np.arange(half, dtype=F64) * 2.0 / n_rot)
    if factors is not None:
        inv = inv / factors.astype(F64)
    ang = (positions.astype(F64) * freq_scale)[:, None] * inv[None, :]  # [T, half]
    shape = (len(positions),) + (1,) * (x.ndim - 2) + (half,)
    cos, sin = np.cos(ang).reshape(shape), np.sin(ang).reshape(shape)
    out = x.copy()
    a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
    out[..., 0:n_rot:2] = a * cos - b * sin
    out[..., 1:n_rot:2] = a * sin + b * cos
    return out


def windowed_attention(
    q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, pos: int, window: int, scale: float
) -> np.ndarray:
    """New tokens over a KV cache: q [T, H, D] (token t at position pos + t), caches
    [Hkv, S, D]; query t sees rows max(0, pos + t - window + 1) .. pos + t (window <= 0:
    all rows up to its own); query head h reads kv head h // (H / Hkv)."""
    t_all, heads, d = q.shape
    group = heads // k_cache.shape[0]
    out = np.zeros((t_all, heads, d), dtype=F64)
    for t in range(t_all):
        last = pos + t
        first = 0 if window <= 0 else max(0, last - window + 1)
        for h in range(heads):
            k = k_cache[h // group, first : last + 1].astype(F64)
            v = v_cache[h // group, first : last + 1].astype(F64)
            out[t, h] = softmax(k @ q[t, h].astype(F64) * scale) @ v
    return out

def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    causal: bool = True,
    scale: float | None = None,
    q_offset: int = 0,
) -> np.ndarray:
    """Scaled dot-product attention with grouped-query heads.

    q [H, Tq, D], k/v [Hkv, Tk, D] with H a multiple of Hkv (query head h reads kv head
    h // (H // Hkv)). With `causal`, query t (at absolute position q_offset + t) sees keys
    0..q_offset + t."""
    h, tq, d = q.shape
    hkv, tk, _ = k.shape
    group = h // hkv
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    kk = np.repeat(k.astype(F64), group, axis=0)
    vv = np.repeat(v.astype(F64), group, axis=0)
    s = np.matmul(q.astype(F64), kk.transpose(0, 2, 1)) * scale  # [H, Tq, Tk]
    if causal:
        qpos = q_offset + np.arange(tq)[:, None]
        s = np.where(np.arange(tk)[None, :] <= qpos, s, -np.inf)
    return np.matmul(softmax(s), vv)


def decode_attention(
    q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, n_ctx: int, scale: float | None = None
) -> np.ndarray:
    """One new token attending over the first `n_ctx` cache rows: q [H, D],
    k_cache/v_cache [Hkv, S, D] (S >= n_ctx) -> [H, D]."""
    out = attention(
        q[:, None, :], k_cache[:, :n_ctx], v_cache[:, :n_ctx], causal=False, scale=scale
    )
    return out[:, 0, :]


def feed_forward(
    x: np.ndarray, w_gate: np.ndarray, w_up: np.ndarray, w_down: np.ndarray, act: str = "silu"
) -> np.ndarray:
    """Gated feed-forward: `down(act(gate x) * up x)`, weights [F, E], [F, E], [E, F]."""
    x = x.astype(F64)
    g = x @ w_gate.astype(F64).T
    u = x @ w_up.astype(F64).T
    a = silu(g) if act == "silu" else gelu(g)
    return (a * u) @ w_down.astype(F64).T


# ---- GGUF block dequantisation (layouts as in ggml-quants.c) ----

QK8_0, QK4_0, QK_K = 32, 32, 256
BLOCK_BYTES = {"q8_0": 34, "q4_0": 18, "q4_k": 144, "q6_k": 210}
BLOCK_VALUES = {"q8_0": 32, "q4_0": 32, "q4_k": 256, "q6_k": 256}


def _f16(b: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(b).view(np.float16).astype(F64)


def dequant_q8_0(raw: np.ndarray) -> np.ndarray:
    """Blocks of 32: f16 scale d, 32 int8 quants; x = d * q."""
    blocks = raw.reshape(-1, 34)
    d = _f16(blocks[:, 0:2])
    q = blocks[:, 2:].view(np.int8).astype(F64)
    return (d * q).reshape(-1)


def dequant_q4_0(raw: np.ndarray) -> np.ndarray:
    """Blocks of 32: f16 scale d, 16 bytes of nibbles; low nibbles are values 0..15,
    high nibbles values 16..31; x = d * (nibble - 8)."""
    blocks = raw.reshape(-1, 18)
    d = _f16(blocks[:, 0:2])
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(F64) - 8.0
    return (d * q).reshape(-1)


def dequant_q5_0(raw: np.ndarray) -> np.ndarray:
    """Blocks of 32: f16 scale d, 4 bytes of high bits qh (little-endian), 16 bytes of
    nibbles; value j < 16 is low nibble j with bit j of qh as its fifth bit, value 16 + j
    the high nibble with bit 16 + j; x = d * (five-bit value - 16)."""
    blocks = raw.reshape(-1, 22)
    d = _f16(blocks[:, 0:2])
    qh = np.ascontiguousarray(blocks[:, 2:6]).view("<u4").astype(np.int64)
    qs = blocks[:, 6:].astype(np.int64)
    j = np.arange(16)
    lo = (qs & 0x0F) | (((qh >> j) & 1) << 4)
    hi = (qs >> 4) | (((qh >> (j + 16)) & 1) << 4)
    return (d * (np.concatenate([lo, hi], axis=1) - 16).astype(F64)).reshape(-1)


def _k4_scales(sc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8 six-bit (scale, min) pairs packed in Q4_K's 12 scale bytes."""
    sc = sc.astype(np.int64)
    scales = np.empty((sc.shape[0], 8), dtype=np.int64)
    mins = np.empty((sc.shape[0], 8), dtype=np.int64)
    for j in range(8):
        if j < 4:
            scales[:, j] = sc[:, j] & 63
            mins[:, j] = sc[:, j + 4] & 63
        else:
            scales[:, j] = (sc[:, j + 4] & 0x0F) | ((sc[:, j - 4] >> 6) << 4)
            mins[:, j] = (sc[:, j + 4] >> 4) | ((sc[:, j] >> 6) << 4)
    return scales, mins


def dequant_q4_k(raw: np.ndarray) -> np.ndarray:
    """Super-blocks of 256: f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles.
    Eight sub-blocks of 32; x = d * scale_j * nibble - dmin * min_j."""
    blocks = raw.reshape(-1, 144)
    d = _f16(blocks[:, 0:2])
    dmin = _f16(blocks[:, 2:4])
    scales, mins = _k4_scales(blocks[:, 4:16])
    qs = blocks[:, 16:].reshape(-1, 4, 32)
    out = np.empty((blocks.shape[0], 8, 32), dtype=F64)
    for c in range(4):
        out[:, 2 * c] = (d * scales[:, 2 * c : 2 * c + 1]) * (qs[:, c] & 0x0F) - dmin * mins[
            :, 2 * c : 2 * c + 1
        ]
        out[:, 2 * c + 1] = (d * scales[:, 2 * c + 1 : 2 * c + 2]) * (qs[:, c] >> 4) - dmin * mins[
            :, 2 * c + 1 : 2 * c + 2
        ]
    return out.reshape(-1)


def dequant_q6_k(raw: np.ndarray) -> np.ndarray:
    """Super-blocks of 256: 128 bytes low nibbles (ql), 64 bytes high 2-bit pairs (qh),
    16 int8 scales, f16 d; x = d * scale * (6-bit value - 32)."""
    blocks = raw.reshape(-1, 210)
    ql = blocks[:, 0:128].astype(np.int64)
    qh = blocks[:, 128:192].astype(np.int64)
    sc = blocks[:, 192:208].view(np.int8).astype(F64)
    d = _f16(blocks[:, 208:210])
    out = np.empty((blocks.shape[0], 256), dtype=F64)
    for half in range(2):
        l_ = ql[:, 64 * half : 64 * half + 64]
        h_ = qh[:, 32 * half : 32 * half + 32]
        s_ = sc[:, 8 * half : 8 * half + 8]
        base = 128 * half
        quads = [
            (l_[:, :32] & 0x0F) | (((h_ >> 0) & 3) << 4),
            (l_[:, 32:] & 0x0F) | (((h_ >> 2) & 3) << 4),
            (l_[:, :32] >> 4) | (((h_ >> 4) & 3) << 4),
            (l_[:, 32:] >> 4) | (((h_ >> 6) & 3) << 4),
        ]
        for i, q in enumerate(quads):
            for part in range(2):
                sl = slice(16 * part, 16 * part + 16)
                out[:, base + 32 * i + 16 * part : base + 32 * i + 16 * part + 16] = (
                    d * s_[:, 2 * i + part : 2 * i + part + 1] * (q[:, sl] - 32)
                )
    return out.reshape(-1)


DEQUANT = {"q8_0": dequant_q8_0, "q4_0": dequant_q4_0, "q4_k": dequant_q4_k, "q6_k": dequant_q6_k}
