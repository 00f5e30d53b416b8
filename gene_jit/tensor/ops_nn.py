"""Tensor reductions and neural-network ops: sum/mean/max/argmax, softmax, RMSNorm,
LayerNorm, RoPE, embedding lookup, top-k, causal masks, fused attention and
feed-forward, and GGUF dequantisation. float32 inputs run the Numba kernels of
`gene_jit.tensor_kernels`; other dtypes use NumPy in their compute dtype."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.runtime.errors import GeneIndexError, GeneTypeError
from gene_jit.tensor.dtypes import FLOATS, from_numpy_dtype, shown
from gene_jit.tensor.ops import (
    TensorShapeError,
    _axis,
    as_tensor,
    fmt_shape,
    on_device,
    values,
    wrap,
)
from gene_jit.tensor.overflow import checked_sum
from gene_jit.tensor.tensor import Tensor
from gene_jit.tensor_kernels import reference


def _float_dt(t: Tensor) -> str:
    return t.dtype if t.dtype in FLOATS else "f32"


def _f32(v: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(v, dtype=np.float32)


# ---- reductions ----


def _reduce(name: str, f: Any) -> Any:
    """A reduction with NumPy's result dtypes (an int sum is i64, an int mean f64); f16
    and bf16 reduce in f32 and keep their dtype. The whole tensor gives a number. An int
    sum beyond the int64 range is an overflow error (NumPy would wrap)."""

    @on_device(name)
    def run(t: Any, axis: Any = None) -> Any:
        op = f"tensor/{name}"
        t = as_tensor(t, op=op)
        v = values(t)
        ax = None if axis is None else _axis(t, axis, op)
        empty = t.size == 0 if ax is None else t.shape[ax] == 0
        if empty and name in ("max", "argmax"):
            where = "" if ax is None else f" along axis {ax}"
            raise TensorShapeError(f"{op}: nothing to reduce{where} in {fmt_shape(t.shape)}")
        if name == "sum" and v.dtype.kind in "iu":  # overflow raises, as for Gene ints
            r = checked_sum(v, ax)
        else:
            r = f(v, axis=ax)
        if ax is None:
            return r.item() if hasattr(r, "item") else r
        keep = t.dtype in ("f16", "bf16") and name != "argmax"
        dt = t.dtype if keep else from_numpy_dtype(np.asarray(r).dtype)
        return wrap(r, dt)

    run.__name__ = name
    return run


sum_ = _reduce("sum", np.sum)
mean = _reduce("mean", np.mean)
max_ = _reduce("max", np.max)
argmax = _reduce("argmax", np.argmax)


# ---- row-wise ops ----


@on_device("softmax")
def softmax(t: Any, axis: int = -1) -> Tensor:
    t = as_tensor(t, op="tensor/softmax")
    if t.ndim == 0:
        raise TensorShapeError("tensor/softmax: a 0-d tensor has no axis")
    ax = _axis(t, axis, "tensor/softmax")
    v = values(t)
    if t.size == 0:  # nothing to normalise: an empty result of the same shape
        return wrap(np.zeros(t.shape), _float_dt(t))
    if v.dtype == np.float32 and ax == t.ndim - 1:
        from gene_jit.tensor_kernels import norms_cpu

        x = _f32(v).reshape(-1, t.shape[-1])
        out = np.empty_like(x)
        norms_cpu.softmax_f32(x, out)
        return wrap(out.reshape(t.shape), _float_dt(t))
    v = v.astype(np.float64)
    e = np.exp(v - v.max(axis=ax, keepdims=True))
    return wrap(e / e.sum(axis=ax, keepdims=True), _float_dt(t))


def _rows(x: Tensor) -> tuple[int, int]:
    """(rows, last-axis length) of x seen as a matrix of its last axis."""
    cols = x.shape[-1]
    return math.prod(x.shape[:-1]), cols


def _check_weight(op: str, x: Tensor, w: Tensor) -> None:
    if x.ndim == 0:
        raise TensorShapeError(f"{op}: a 0-d tensor has no last axis to normalise")
    if w.shape != (x.shape[-1],):
        raise TensorShapeError(
            f"{op}: weight shape {fmt_shape(w.shape)} does not match the last axis of {fmt_shape(x.shape)}"
        )


@on_device("rmsnorm")
def rmsnorm(x: Any, w: Any, eps: float = 1e-6) -> Tensor:
    x, w = as_tensor(x), as_tensor(w)
    _check_weight("tensor/rmsnorm", x, w)
    if x.size == 0:
        return wrap(np.zeros(x.shape), _float_dt(x))
    if "f64" in (x.dtype, w.dtype):  # keep float64 precision: the float64 reference
        return wrap(reference.rmsnorm(values(x), values(w), float(eps)), "f64")
    from gene_jit.tensor_kernels import norms_cpu

    xv = _f32(values(x)).reshape(_rows(x))
    out = np.empty_like(xv)
    norms_cpu.rmsnorm_f32(xv, _f32(values(w)), float(eps), out)
    return wrap(out.reshape(x.shape), _float_dt(x))


@on_device("layernorm")
def layernorm(x: Any, w: Any, b: Any = None, eps: float = 1e-5) -> Tensor:
    x, w = as_tensor(x), as_tensor(w)
    _check_weight("tensor/layernorm", x, w)
    bv = np.zeros(x.shape[-1], np.float32) if b is None else values(as_tensor(b))
    if bv.shape != (x.shape[-1],):
        raise TensorShapeError(
            f"tensor/layernorm: bias shape {fmt_shape(bv.shape)} does not match {fmt_shape(x.shape)}"
        )
    if x.size == 0:
        return wrap(np.zeros(x.shape), _float_dt(x))
    if "f64" in (x.dtype, w.dtype):
        return wrap(reference.layernorm(values(x), values(w), bv, float(eps)), "f64")
    from gene_jit.tensor_kernels import norms_cpu

    xv = _f32(values(x)).reshape(_rows(x))
    out = np.empty_like(xv)
    norms_cpu.layernorm_f32(xv, _f32(values(w)), _f32(bv), float(eps), out)
    return wrap(out.reshape(x.shape), _float_dt(x))


def positions_for(x: Tensor, positions: Any) -> np.ndarray:
    """RoPE positions: an int start offset, or an array/tensor of one position per row."""
    t = x.shape[-2]
    if positions is None:
        positions = 0
    if isinstance(positions, int) and not isinstance(positions, bool):
        return np.arange(positions, positions + t, dtype=np.int64)
    pos = np.asarray(values(as_tensor(positions)), dtype=np.int64).reshape(-1)
    if pos.shape[0] != t:
        raise TensorShapeError(
            f"tensor/rope: {pos.shape[0]} positions for {t} rows of {fmt_shape(x.shape)}"
        )
    return pos


@on_device("rope")
def rope(x: Any, positions: Any = None, theta: float = 10000.0) -> Tensor:
    """Rotary embedding on x [..., T, D] (D even), half-split pairing."""
    x = as_tensor(x)
    if x.ndim < 2 or x.shape[-1] % 2:
        raise TensorShapeError(
            f"tensor/rope: needs [... T D] with D even, got {fmt_shape(x.shape)}"
        )
    pos = positions_for(x, positions)
    if x.size == 0:
        return wrap(np.zeros(x.shape), _float_dt(x))
    if x.dtype == "f64":
        return wrap(reference.rope(values(x), pos, float(theta)), "f64")
    from gene_jit.tensor_kernels import norms_cpu

    xv = _f32(values(x)).reshape(math.prod(x.shape[:-2]), x.shape[-2], x.shape[-1])
    out = np.empty_like(xv)
    norms_cpu.rope_f32(xv, pos, float(theta), out)
    return wrap(out.reshape(x.shape), _float_dt(x))


# ---- lookup, selection, masks ----


def _ids(ids: Any, n: int, op: str) -> np.ndarray:
    iv = np.asarray(values(as_tensor(ids)))
    if iv.dtype.kind not in "iu":
        raise GeneTypeError(f"{op}: token ids must be integers, got {iv.dtype}")
    if iv.size and (iv.min() < 0 or iv.max() >= n):
        raise GeneIndexError(
            f"{op}: id out of range 0..{n - 1} (got {int(iv.min())}..{int(iv.max())})"
        )
    return iv.astype(np.int64)


@on_device("embedding")
def embedding(table: Any, ids: Any) -> Tensor:
    """Rows of `table [V, E]` for `ids` (any shape) -> [*ids.shape, E]."""
    table = as_tensor(table)
    if table.ndim != 2:
        raise TensorShapeError(
            f"tensor/embedding: table must be [vocab dim], got {fmt_shape(table.shape)}"
        )
    iv = _ids(ids, table.shape[0], "tensor/embedding")
    return Tensor(np.ascontiguousarray(table.data[iv]), table.dtype, table.device)


@on_device("topk")
def topk(t: Any, k: int) -> list[Tensor]:
    """The k largest values along the last axis (descending) and their indexes."""
    t = as_tensor(t)
    n = t.shape[-1] if t.ndim else 0
    if not isinstance(k, int) or not 0 < k <= n:
        raise GeneIndexError(
            f"tensor/topk: k={shown(k)} out of range 1..{n} for shape {fmt_shape(t.shape)}"
        )
    v = values(t)
    idx = np.argsort(-v, axis=-1, kind="stable")[..., :k]
    return [wrap(np.take_along_axis(v, idx, axis=-1), t.dtype), wrap(idx, "i64")]


@on_device("causal_mask")
def causal_mask(x: Any) -> Tensor:
    """`(tensor/causal-mask n)`: [n n] with 0 on and below the diagonal, -inf above.
    `(tensor/causal-mask scores)`: scores [..., Tq, Tk] with future keys set to -inf
    (the last query row sees every key)."""
    if isinstance(x, int) and not isinstance(x, bool):
        if x < 0:
            raise GeneTypeError(f"tensor/causal-mask: size must be >= 0, got {x}")
        return wrap(np.triu(np.full((x, x), -np.inf, np.float32), 1), "f32")
    t = as_tensor(x)
    if t.ndim < 2:
        raise TensorShapeError(
            f"tensor/causal-mask: needs [... Tq Tk] scores, got {fmt_shape(t.shape)}"
        )
    tq, tk = t.shape[-2:]
    allowed = np.arange(tk)[None, :] <= (tk - tq + np.arange(tq))[:, None]
    return wrap(np.where(allowed, values(t), -np.inf), _float_dt(t))


# ---- fused kernels ----


def _heads(t: Tensor, op: str) -> np.ndarray:
    if t.ndim == 2:
        return _f32(values(t))[None]
    if t.ndim == 3:
        return _f32(values(t))
    raise TensorShapeError(
        f"{op}: expected [heads tokens dim] or [tokens dim], got {fmt_shape(t.shape)}"
    )


@on_device("attention")
def attention(
    q: Any, k: Any, v: Any, causal: bool = True, scale: Any = None, offset: int = 0
) -> Tensor:
    """Fused softmax(q k^T * scale [+ causal mask]) v with grouped-query heads:
    q [H T D], k/v [Hkv Tk D] (or 2-D single-head [T D])."""
    q, k, v = as_tensor(q), as_tensor(k), as_tensor(v)
    op = "tensor/attention"
    qv, kv, vv = _heads(q, op), _heads(k, op), _heads(v, op)
    if kv.shape != vv.shape or qv.shape[2] != kv.shape[2] or qv.shape[0] % kv.shape[0]:
        raise TensorShapeError(
            f"{op}: q {fmt_shape(q.shape)} does not fit k {fmt_shape(k.shape)} and v {fmt_shape(v.shape)}"
        )
    if qv.size == 0 or kv.size == 0:
        if kv.shape[1] == 0 and qv.size:
            raise TensorShapeError(f"{op}: no keys to attend to in k {fmt_shape(k.shape)}")
        return wrap(np.zeros(q.shape), _float_dt(q))  # nothing to compute: empty, or D = 0
    sc = 1.0 / math.sqrt(qv.shape[2]) if scale is None else float(scale)
    out = np.empty_like(qv)
    from gene_jit.tensor_kernels import attention_cpu

    if qv.shape[1] == 1 and not causal:
        attention_cpu.decode_attention_f32(qv[:, 0], kv, vv, kv.shape[1], sc, out[:, 0])
    else:
        attention_cpu.attention_f32(qv, kv, vv, bool(causal), sc, int(offset), out)
    return wrap(out.reshape(q.shape), _float_dt(q))


@on_device("feed_forward")
def feed_forward(x: Any, w_gate: Any, w_up: Any, w_down: Any, act: Any = "silu") -> Tensor:
    """Gated feed-forward down(act(x gate^T) * (x up^T)); weights [F E], [F E], [E F]."""
    x, wg, wu, wd = (as_tensor(a) for a in (x, w_gate, w_up, w_down))
    act_name = getattr(act, "name", act)
    if act_name not in ("silu", "gelu"):
        raise GeneTypeError(f"tensor/feed-forward: act must be silu or gelu, got {shown(act)}")
    e = x.shape[-1]
    f = wg.shape[0]
    if wg.shape != (f, e) or wu.shape != (f, e) or wd.shape != (e, f):
        raise TensorShapeError(
            f"tensor/feed-forward: x {fmt_shape(x.shape)} does not fit gate {fmt_shape(wg.shape)}, "
            f"up {fmt_shape(wu.shape)}, down {fmt_shape(wd.shape)}"
        )
    from gene_jit.tensor_kernels import ffn_cpu

    xv = _f32(values(x)).reshape(-1, e)
    out = np.empty_like(xv)
    ffn_cpu.feed_forward_f32(
        xv,
        _f32(values(wg)),
        _f32(values(wu)),
        _f32(values(wd)),
        ffn_cpu.ACT_SILU if act_name == "silu" else ffn_cpu.ACT_GELU,
        out,
    )
    return wrap(out.reshape(x.shape), _float_dt(x))


@on_device("dequantize")
def dequantize(raw: Any, kind: Any, shape: Any = None) -> Tensor:
    """GGUF blocks (a uint8 array or tensor of bytes) of `kind` (:q8_0 :q4_0 :q4_k :q6_k)
    -> float32 tensor (flat, or reshaped to `shape`)."""
    from gene_jit.tensor_kernels.dequant_cpu import DEQUANT_CPU
    from gene_jit.tensor_kernels.reference import BLOCK_BYTES, BLOCK_VALUES

    name = str(getattr(kind, "name", kind)).lower()
    if name not in DEQUANT_CPU:
        raise GeneTypeError(
            f"tensor/dequantize: unknown block type {shown(kind)} (q8_0 q4_0 q4_k q6_k)"
        )
    data = raw.data if isinstance(raw, Tensor) else raw
    buf = np.ascontiguousarray(np.asarray(data)).view(np.uint8).reshape(-1)
    if buf.size % BLOCK_BYTES[name]:
        raise TensorShapeError(
            f"tensor/dequantize: {buf.size} bytes is not a whole number of {name} blocks"
        )
    out = np.empty(buf.size // BLOCK_BYTES[name] * BLOCK_VALUES[name], np.float32)
    DEQUANT_CPU[name](buf, out)
    if shape is not None:
        try:
            out = out.reshape(list(shape))
        except ValueError:
            raise TensorShapeError(
                f"tensor/dequantize: {out.size} values do not fill {fmt_shape(shape)}"
            ) from None
    return wrap(out, "f32")
