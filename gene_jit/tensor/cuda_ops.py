"""CUDA versions of tensor ops, looked up by name from `ops.on_device`.

Each op here runs Numba CUDA kernels (`gene_jit.tensor_kernels.*_cuda`) on device
arrays for the cases models use: f32 activations (weights may be f16 where a product
reads them), broadcasting by scalar or shape suffix, the last axis for row ops. Any
other case, and every argument mistake, takes `_fallback`: the op's host
implementation on host copies, whose result moves back to the device. So the host code
stays the one place that validates arguments and defines the semantics, and a CUDA op
never silently differs from it; a wrong-shape call costs a copy before it raises, which
only an erroneous program pays."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gene_jit.tensor import ops, ops_nn
from gene_jit.tensor.ops import TensorShapeError, as_tensor, fmt_shape, to
from gene_jit.tensor.tensor import Tensor


def _fallback(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn` (an `on_device` op) on the host, the result back on the CUDA device."""
    dev = ops._cuda_operand(args)
    host = [ops._to_host(a) for a in args]
    result = fn.__wrapped__(*host, **kwargs)  # type: ignore[attr-defined]
    return ops._to_device(result, dev) if dev is not None else result


def _cu() -> Any:
    from gene_jit.tensor_kernels.cuda_support import cuda

    return cuda()


def _empty(shape: tuple[int, ...], dtype: Any = np.float32) -> Any:
    from gene_jit.tensor_kernels.cuda_support import device_empty

    _cu()
    return device_empty(shape, dtype)


def _flat(t: Tensor) -> Any:
    return t.data.reshape(t.size)


def _contiguous(t: Tensor) -> bool:
    return bool(t.data.is_c_contiguous())


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _suffix(shape: tuple[int, ...], out: tuple[int, ...]) -> bool:
    """Whether `shape` (without leading 1s) is a suffix of `out`: then element i of the
    flat output reads element i % size of the operand."""
    s = list(shape)
    while s and s[0] == 1:
        s.pop(0)
    return len(s) <= len(out) and tuple(s) == out[len(out) - len(s):]


# ---- element-wise ----


def _binary(name: str) -> Callable[[Any, Any], Tensor]:
    host = getattr(ops, name)

    def run(a: Any, b: Any) -> Tensor:
        from gene_jit.tensor_kernels import elementwise_cuda as ew

        if isinstance(a, Tensor) and _is_number(b) and a.dtype == "f32" and _contiguous(a):
            out = _empty((a.size,))
            ew.binary_scalar(_flat(a), float(b), out, name, False)
            return Tensor(out.reshape(a.shape), "f32", a.device)
        if isinstance(b, Tensor) and _is_number(a) and b.dtype == "f32" and _contiguous(b):
            out = _empty((b.size,))
            ew.binary_scalar(_flat(b), float(a), out, name, True)
            return Tensor(out.reshape(b.shape), "f32", b.device)
        if isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype == b.dtype == "f32":
            dev = a.device if a.device.is_cuda else b.device
            a, b = to(a, dev), to(b, dev)
            try:
                shape = tuple(np.broadcast_shapes(a.shape, b.shape))
            except ValueError:
                return _fallback(host, a, b)
            if _suffix(a.shape, shape) and _suffix(b.shape, shape) and _contiguous(a) and _contiguous(b):
                out = _empty((math.prod(shape),))
                ew.binary(_flat(a), _flat(b), out, name)
                return Tensor(out.reshape(shape), "f32", dev)
        return _fallback(host, a, b)

    run.__name__ = name
    return run


add = _binary("add")
sub = _binary("sub")
mul = _binary("mul")
div = _binary("div")


def _unary(name: str) -> Callable[[Any], Tensor]:
    host = getattr(ops, name)

    def run(t: Any) -> Tensor:
        from gene_jit.tensor_kernels import elementwise_cuda as ew

        if isinstance(t, Tensor) and t.dtype == "f32" and _contiguous(t):
            out = _empty((t.size,))
            ew.unary(_flat(t), out, name)
            return Tensor(out.reshape(t.shape), "f32", t.device)
        return _fallback(host, t)

    run.__name__ = name
    return run


exp = _unary("exp")
sqrt = _unary("sqrt")
silu = _unary("silu")
gelu = _unary("gelu")


# ---- shape ----


def reshape(t: Any, new_shape: Any) -> Tensor:
    """A view of the same device memory (contiguous tensors)."""
    dims = list(new_shape) if isinstance(new_shape, (list, tuple)) else [new_shape]
    if (isinstance(t, Tensor) and _contiguous(t) and dims.count(-1) <= 1
            and all(isinstance(d, int) and not isinstance(d, bool) and (d >= 0 or d == -1) for d in dims)):
        known = math.prod(d for d in dims if d != -1)
        if -1 in dims and known and t.size % known == 0:
            dims[dims.index(-1)] = t.size // known
        if -1 not in dims and math.prod(dims) == t.size:
            return Tensor(t.data.reshape(tuple(dims)), t.dtype, t.device)
    return _fallback(ops.reshape, t, new_shape)


def _slice_rows(t: Any, start: Any, stop: Any = None, axis: int = 0) -> Tensor:
    """The rows from `start` on of a contiguous tensor: a view of the same device memory."""
    if (isinstance(t, Tensor) and t.ndim > 0 and axis == 0 and stop is None and _contiguous(t)
            and isinstance(start, int) and not isinstance(start, bool) and 0 <= start <= t.shape[0]):
        return Tensor(t.data[start:], t.dtype, t.device)
    return _fallback(ops.slice_, t, start, stop, axis)


globals()["slice"] = _slice_rows  # the name `on_device("slice")` looks up


def transpose(t: Any, axes: Any = None) -> Tensor:
    """Swap the last two axes, or permute by `axes` (up to 4 axes on the device)."""
    from gene_jit.tensor_kernels import elementwise_cuda as ew

    if not isinstance(t, Tensor) or not _contiguous(t) or t.ndim > 4:
        return _fallback(ops.transpose, t, axes)
    if axes is None:
        if t.ndim < 2:
            return t
        perm = list(range(t.ndim - 2)) + [t.ndim - 1, t.ndim - 2]
    else:
        perm = list(axes) if isinstance(axes, (list, tuple)) else []
        if sorted(perm) != list(range(t.ndim)):
            return _fallback(ops.transpose, t, axes)
    shape = tuple(t.shape[p] for p in perm)
    out = _empty((t.size,), t.data.dtype)
    if t.size:
        ew.permute(_flat(t), t.shape, perm, out)
    return Tensor(out.reshape(shape), t.dtype, t.device)


# ---- products ----


def matmul(a: Any, b: Any) -> Tensor:
    """Batched matrix product on the device: f32 a, f32 or f16 b, leading axes equal or
    absent on one side; other cases fall back."""
    from gene_jit.tensor_kernels import matmul_cuda

    if not (isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype == "f32"
            and b.dtype in ("f32", "f16") and a.ndim >= 1 and b.ndim >= 1):
        return _fallback(ops.matmul, a, b)
    dev = a.device if a.device.is_cuda else b.device
    a, b = to(a, dev), to(b, dev)
    sa = (1, *a.shape) if a.ndim == 1 else a.shape
    sb = (*b.shape, 1) if b.ndim == 1 else b.shape
    ba, bb = sa[:-2], sb[:-2]
    batch = ba if math.prod(bb) == 1 and len(ba) >= len(bb) else bb
    ok = (sa[-1] == sb[-2] and _contiguous(a) and _contiguous(b)
          and (ba == bb or math.prod(ba) == 1 and len(ba) <= len(bb)
               or math.prod(bb) == 1 and len(bb) <= len(ba)))
    if not ok:
        return _fallback(ops.matmul, a, b)
    m, k, n = sa[-2], sa[-1], sb[-1]
    nb = math.prod(batch)
    out = _empty((nb, m, n))
    matmul_cuda.matmul(a.data.reshape(math.prod(ba), m, k), b.data.reshape(math.prod(bb), k, n), out)
    shape = [*batch, m, n]
    if a.ndim == 1:
        shape.pop(-2)
    if b.ndim == 1:
        shape.pop(-1)
    return Tensor(out.reshape(tuple(shape)), "f32", dev)


def feed_forward(x: Any, w_gate: Any, w_up: Any, w_down: Any, act: Any = "silu") -> Tensor:
    """Fused gated feed-forward on the device (x f32; weights f32 or f16)."""
    from gene_jit.tensor_kernels import matmul_cuda

    act_name = getattr(act, "name", act)
    ts = [as_tensor(v) for v in (x, w_gate, w_up, w_down)]
    if (act_name not in ("silu", "gelu") or ts[0].dtype != "f32" or ts[0].ndim < 1
            or any(w.dtype not in ("f32", "f16") or w.ndim != 2 for w in ts[1:])):
        return _fallback(ops_nn.feed_forward, x, w_gate, w_up, w_down, act)
    xt, wg, wu, wd = ts
    e, f = xt.shape[-1], wg.shape[0]
    if wg.shape != (f, e) or wu.shape != (f, e) or wd.shape != (e, f):
        raise TensorShapeError(
            f"tensor/feed-forward: x {fmt_shape(xt.shape)} does not fit gate {fmt_shape(wg.shape)}, "
            f"up {fmt_shape(wu.shape)}, down {fmt_shape(wd.shape)}"
        )
    dev = next(t.device for t in ts if t.device.is_cuda)
    xt, wg, wu, wd = (to(t, dev) for t in ts)
    if not all(_contiguous(t) for t in (xt, wg, wu, wd)):
        return _fallback(ops_nn.feed_forward, x, w_gate, w_up, w_down, act)
    rows = xt.size // e if e else 0
    out = _empty((rows, e))
    matmul_cuda.feed_forward(xt.data.reshape(rows, e), wg.data, wu.data, wd.data, act_name, out)
    return Tensor(out.reshape(xt.shape), "f32", dev)


# ---- row ops ----


def _rows(t: Tensor) -> Any:
    return t.data.reshape(t.size // t.shape[-1] if t.shape[-1] else 0, t.shape[-1])


def softmax(t: Any, axis: int = -1) -> Tensor:
    from gene_jit.tensor_kernels import norms_cuda

    if (isinstance(t, Tensor) and t.dtype == "f32" and t.ndim >= 1 and axis in (-1, t.ndim - 1)
            and _contiguous(t) and t.size):
        out = _empty(t.shape)
        norms_cuda.softmax(_rows(t), out.reshape(_rows(t).shape))
        return Tensor(out, "f32", t.device)
    return _fallback(ops_nn.softmax, t, axis)


def _norm_args(x: Any, w: Any, op: str) -> tuple[Tensor, Tensor] | None:
    x, w = as_tensor(x), as_tensor(w)
    if w.shape != (x.shape[-1] if x.ndim else -1,):
        raise TensorShapeError(
            f"{op}: weight shape {fmt_shape(w.shape)} does not match the last axis of {fmt_shape(x.shape)}"
        )
    if x.dtype != "f32" or w.dtype not in ("f32", "f16") or not x.device.is_cuda or not _contiguous(x):
        return None
    return x, to(w, x.device)


def rmsnorm(x: Any, w: Any, eps: float = 1e-6) -> Tensor:
    from gene_jit.tensor_kernels import norms_cuda

    args = _norm_args(x, w, "tensor/rmsnorm")
    if args is None:
        return _fallback(ops_nn.rmsnorm, x, w, eps)
    xt, wt = args
    out = _empty(xt.shape)
    if xt.size:
        norms_cuda.rmsnorm(_rows(xt), wt.data, float(eps), out.reshape(_rows(xt).shape))
    return Tensor(out, "f32", xt.device)


def layernorm(x: Any, w: Any, b: Any = None, eps: float = 1e-5) -> Tensor:
    from gene_jit.tensor_kernels import norms_cuda

    args = _norm_args(x, w, "tensor/layernorm")
    bt = None if b is None else as_tensor(b)
    if args is None or (bt is not None and (bt.shape != (args[0].shape[-1],) or bt.dtype not in ("f32", "f16"))):
        return _fallback(ops_nn.layernorm, x, w, b, eps)
    xt, wt = args
    bd = _cu().to_device(np.zeros(xt.shape[-1], np.float32)) if bt is None else to(bt, xt.device).data
    out = _empty(xt.shape)
    if xt.size:
        norms_cuda.layernorm(_rows(xt), wt.data, bd, float(eps), out.reshape(_rows(xt).shape))
    return Tensor(out, "f32", xt.device)


def rope(x: Any, positions: Any = None, theta: float = 10000.0) -> Tensor:
    """Rotary embedding on the device for f32 x [..., T, D]."""
    from gene_jit.tensor_kernels import norms_cuda

    if not (isinstance(x, Tensor) and x.dtype == "f32" and x.ndim >= 2 and x.shape[-1] % 2 == 0
            and _contiguous(x)):
        return _fallback(ops_nn.rope, x, positions, theta)
    pos = ops_nn.positions_for(x, positions)
    t, d = x.shape[-2], x.shape[-1]
    xs = x.data.reshape(x.size // (t * d) if t * d else 0, t, d)
    out = _empty(x.shape)
    norms_cuda.rope(xs, _cu().to_device(np.ascontiguousarray(pos, np.int64)), float(theta), out.reshape(xs.shape))
    return Tensor(out, "f32", x.device)


def causal_mask(x: Any) -> Tensor:
    from gene_jit.tensor_kernels import elementwise_cuda as ew

    if not (isinstance(x, Tensor) and x.dtype == "f32" and x.ndim >= 2 and _contiguous(x)):
        return _fallback(ops_nn.causal_mask, x)
    tq, tk = x.shape[-2:]
    out = _empty((x.size,))
    if x.size:
        ew.causal_mask(_flat(x), out, tq, tk)
    return Tensor(out.reshape(x.shape), "f32", x.device)


def dequantize(raw: Any, kind: Any, shape: Any = None) -> Tensor:
    """GGUF blocks held in a CUDA tensor (any dtype: its bytes) -> f32 on the device."""
    from gene_jit.tensor_kernels import dequant_cuda
    from gene_jit.tensor_kernels.reference import BLOCK_BYTES

    name = str(getattr(kind, "name", kind)).lower()
    if not isinstance(raw, Tensor) or name not in BLOCK_BYTES or not _contiguous(raw):
        return _fallback(ops_nn.dequantize, raw, kind, shape)
    buf = _flat(raw).view(np.uint8)
    if buf.size % BLOCK_BYTES[name]:
        return _fallback(ops_nn.dequantize, raw, kind, shape)
    n = dequant_cuda.out_size(name, buf.size)
    dims: tuple[int, ...] = (n,)
    if shape is not None:
        dims = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
        if math.prod(dims) != n or any(not isinstance(d, int) or d < 0 for d in dims):
            return _fallback(ops_nn.dequantize, raw, kind, shape)
    out = _empty((n,))
    dequant_cuda.dequantize(buf, name, out)
    return Tensor(out.reshape(dims), "f32", raw.device)


# ---- attention ----


def _f32_3d(t: Tensor, op: str) -> Any:
    from gene_jit.tensor.ops import astype

    if t.dtype != "f32":
        t = astype(t, "f32")
    if t.ndim == 2:
        return t.data.reshape(1, *t.shape)
    if t.ndim == 3:
        return t.data
    raise TensorShapeError(f"{op}: expected [heads tokens dim] or [tokens dim], got {fmt_shape(t.shape)}")


def attention(q: Any, k: Any, v: Any, causal: bool = True, scale: Any = None, offset: int = 0) -> Tensor:
    """Fused attention on the GPU (see ops_nn.attention for the contract)."""
    from gene_jit.tensor_kernels import attention_cuda

    q, k, v = as_tensor(q), as_tensor(k), as_tensor(v)
    dev = q.device if q.device.is_cuda else (k.device if k.device.is_cuda else v.device)
    q, k, v = to(q, dev), to(k, dev), to(v, dev)
    qd, kd, vd = _f32_3d(q, "tensor/attention"), _f32_3d(k, "tensor/attention"), _f32_3d(v, "tensor/attention")
    if kd.shape != vd.shape or qd.shape[2] != kd.shape[2] or qd.shape[0] % kd.shape[0]:
        raise TensorShapeError(
            f"tensor/attention: q {fmt_shape(q.shape)} does not fit k {fmt_shape(k.shape)} and v {fmt_shape(v.shape)}"
        )
    sc = 1.0 / math.sqrt(qd.shape[2]) if scale is None else float(scale)
    out = _empty(qd.shape)
    if qd.shape[1] == 1 and not causal:
        attention_cuda.decode_attention(qd.reshape(qd.shape[0], qd.shape[2]), kd, vd, kd.shape[1], sc,
                                        out.reshape(qd.shape[0], qd.shape[2]))
    else:
        attention_cuda.attention(qd, kd, vd, bool(causal), sc, int(offset), out)
    return Tensor(out.reshape(q.shape), "f32", dev)
