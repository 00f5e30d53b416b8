"""Tensor operations (the Python side of Gene's `tensor/*`), CPU implementations and
device dispatch.

Every op takes Tensors (or numbers and nested lists where an operand may be a
constant) and returns a Tensor, or a Python number for whole-tensor reductions. An op
whose tensor operands live on CUDA runs the CUDA version registered in
`gene_jit.tensor.cuda_ops`; ops without one there run on the host and copy the result
back. f16/bf16 compute in float32 and store the result in the input's dtype. Shape
mistakes raise `TensorShapeError` naming both shapes.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gene_jit.runtime.errors import GeneError, GeneIndexError, GeneTypeError
from gene_jit.tensor import overflow
from gene_jit.tensor.device import CPU, Device, create_device  # noqa: F401  (re-exported)
from gene_jit.tensor.dtypes import (
    FLOATS,
    STORAGE,
    compute_dtype,
    dtype_name,
    promote,
    promote_scalar,
    shown,
    to_storage,
)
from gene_jit.tensor.overflow import INT_LIMITS
from gene_jit.tensor.tensor import Tensor


class TensorShapeError(GeneError):
    kind = "shape error"


def fmt_shape(shape: Sequence[int]) -> str:
    return "[" + " ".join(str(int(d)) for d in shape) + "]"


# ---- conversions ----


def number_array(x: Any, op: str = "tensor/create") -> np.ndarray:
    """The values of a number or nested Gene array of numbers, as NumPy reads them (ints
    as int64, floats as float64), or a Gene error naming `op`."""
    if isinstance(x, bool) or x is None or isinstance(x, str):
        raise GeneTypeError(f"{op}: expected a tensor or numbers, got {_kind(x)}")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError, OverflowError):
        arr = np.asarray(None)
    if arr.dtype == object or arr.dtype.kind not in "fiu":
        what = "text" if arr.dtype.kind in "US" else _kind(x)
        raise GeneTypeError(
            f"{op}: cannot make a tensor from {what}: need numbers in a regular nested array"
        )
    return arr


def default_dtype(arr: np.ndarray) -> str:
    """The dtype of a tensor made from Gene numbers: f32 for floats, i64 for ints."""
    return "f32" if arr.dtype.kind == "f" else "i64"


def as_tensor(x: Any, like: Tensor | None = None, op: str = "tensor") -> Tensor:
    """A Tensor from a Tensor, a number or nested lists (on `like`'s device); a Python
    number next to `like` takes the dtype NumPy gives a scalar there."""
    if isinstance(x, Tensor):
        return x
    arr = number_array(x, op)
    if like is not None and arr.ndim == 0 and not isinstance(x, np.generic):
        dtype = promote_scalar(like.dtype, x)
    else:
        dtype = default_dtype(arr)
    t = wrap(arr, dtype)
    return to(t, like.device) if like is not None and like.device.is_cuda else t


def contiguous(a: np.ndarray) -> np.ndarray:
    """`a` in C order, copied only if it is not (unlike `np.ascontiguousarray`, a 0-d
    array stays 0-d)."""
    return a if a.flags.c_contiguous else a.copy(order="C")


def _kind(x: Any) -> str:
    names = {bool: "bool", int: "int", float: "float", str: "a string", list: "an array",
             dict: "a map"}
    return "nil" if x is None else names.get(type(x), type(x).__name__)


def values(t: Tensor) -> np.ndarray:
    """Host values in the dtype ops compute in (f16/bf16 widen to f32)."""
    v = t.numpy()
    cd = compute_dtype(t.dtype)
    return v if cd == t.dtype and t.dtype != "bf16" else v.astype(np.float32)


def wrap(v: Any, dtype: str, device: Device = CPU) -> Tensor:
    """Host values -> a Tensor of `dtype`, placed on `device`."""
    t = Tensor(to_storage(v, dtype), dtype, CPU)
    return to(t, device) if device.is_cuda else t


def to(t: Tensor, device: Any) -> Tensor:
    """`(tensor/to t :cuda)`: the tensor on another device (itself when already there)."""
    dev = create_device(device)
    t = as_tensor(t)
    if dev == t.device:
        return t
    if dev.is_cuda:
        from gene_jit.tensor_kernels.cuda_support import cuda

        return Tensor(cuda().to_device(np.ascontiguousarray(t.data)), t.dtype, dev)
    return Tensor(t.data.copy_to_host(), t.dtype, CPU)


def astype(t: Tensor, dtype: Any, op: str = "tensor/astype") -> Tensor:
    if dtype is None:  # (nil is the default dtype where a dtype is optional; here it is not)
        raise GeneTypeError(f"{op}: needs a dtype (:f32, :f16, :bf16, :f64, :i32 or :i64), got nil")
    name = dtype_name(dtype)
    t = as_tensor(t, op=op)
    return t if name == t.dtype else converted(values(t), name, op, t.device)


def converted(v: np.ndarray, name: str, op: str, device: Device = CPU) -> Tensor:
    """Values a user gave -> a tensor of dtype `name`, refusing a value that an int dtype
    would not keep as given (out of range, NaN, a fraction)."""
    if name in INT_LIMITS:
        overflow.checked_ints(v, name, op)
    return wrap(v, name, device)


def to_list(t: Tensor) -> Any:
    """Nested Python lists (Gene arrays) of the tensor's values."""
    return values(as_tensor(t)).tolist()


# ---- device dispatch ----


def on_device(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Route an op to `cuda_ops.<name>` when a tensor operand lives on CUDA; ops with
    no CUDA version there run on the host and move the result back. NumPy's floating
    point warnings (overflow to inf, 0/0 to nan) are the IEEE results Gene gives, so
    they never reach the user's stderr."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            dev = _cuda_operand(args)
            if dev is None:
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    return fn(*args, **kwargs)
            from gene_jit.tensor import cuda_ops

            impl = getattr(cuda_ops, name, None)
            if impl is not None:
                return impl(*args, **kwargs)
            host = [_to_host(a) for a in args]
            result = fn(*host, **kwargs)
            return _to_device(result, dev)

        return run

    return deco


def _cuda_operand(args: Sequence[Any]) -> Device | None:
    for a in args:
        if isinstance(a, Tensor) and a.device.is_cuda:
            return a.device
        if isinstance(a, (list, tuple)):
            for x in a:
                if isinstance(x, Tensor) and x.device.is_cuda:
                    return x.device
    return None


def _to_host(a: Any) -> Any:
    if isinstance(a, Tensor):
        return to(a, CPU)
    if isinstance(a, list):
        return [_to_host(x) for x in a]
    return a


def _to_device(r: Any, dev: Device) -> Any:
    if isinstance(r, Tensor):
        return to(r, dev)
    if isinstance(r, list):
        return [_to_device(x, dev) for x in r]
    return r


# ---- creation ----


def _shape_arg(shape: Any, op: str) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = [shape]
    if isinstance(shape, Tensor):
        shape = to_list(shape)
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise GeneTypeError(
            f"{op}: shape must be an array of non-negative integers, got {shown(shape)}"
        )
    return tuple(shape)


def create(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """`(tensor/create [[1 2] [3 4]] ^dtype :f32 ^device :cpu)`: made directly in the
    dtype from the values given (floats default to f32, ints to i64)."""
    if isinstance(data, Tensor):
        t = data if dtype is None else astype(data, dtype, "tensor/create")
    else:
        arr = number_array(data, "tensor/create")
        t = converted(arr, dtype_name(dtype) if dtype is not None else default_dtype(arr),
                      "tensor/create")
    return to(t, device) if device is not None else t


def _filled(fn: Callable[[tuple[int, ...]], np.ndarray], op: str, fill: int | None = None) -> Callable[..., Tensor]:
    def make(shape: Any, dtype: Any = None, device: Any = None) -> Tensor:
        dev = create_device(device)
        dims = _shape_arg(shape, op)
        name = dtype_name(dtype)
        if fill is None and name in INT_LIMITS:
            raise GeneTypeError(f"{op}: draws floats, so ^dtype must be a float dtype "
                                f"({', '.join(FLOATS)}), got :{name}")
        try:
            if fill is not None and name != "bf16":  # in its own dtype, not through float64
                return wrap(np.full(dims, fill, dtype=STORAGE[name]), name, dev)
            return wrap(fn(dims), name, dev)
        except (MemoryError, ValueError) as exc:
            if isinstance(exc, ValueError) and "too big" not in str(exc):
                raise
            size = int(np.prod(dims, dtype=object)) * STORAGE[name].itemsize
            raise GeneError(f"{op}: shape {shown(list(dims))} in {name} needs {size:,} bytes, "
                            "more memory than there is") from None

    return make


_RNG = np.random.default_rng()


def seed(n: int) -> None:
    """`(tensor/seed 42)`: make rand/randn reproducible."""
    global _RNG
    if type(n) is not int or n < 0:
        raise GeneTypeError(f"tensor/seed: expected an int >= 0, got {shown(n)}")
    _RNG = np.random.default_rng(n)


zeros = _filled(np.zeros, "tensor/zeros", 0)
ones = _filled(np.ones, "tensor/ones", 1)
rand = _filled(lambda s: _RNG.random(s), "tensor/rand")
randn = _filled(lambda s: _RNG.standard_normal(s), "tensor/randn")


def arange(
    start: Any, stop: Any = None, step: Any = 1, dtype: Any = None, device: Any = None
) -> Tensor:
    """`(tensor/arange start stop)`; integers give i64 unless a dtype is named."""
    if stop is None:
        start, stop = 0, start
    for v in (start, stop, step):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise GeneTypeError(f"tensor/arange: expected numbers, got {shown(v)}")
    if step == 0:
        raise GeneTypeError("tensor/arange: step must not be 0")
    ints = all(isinstance(v, int) for v in (start, stop, step))
    name = dtype_name(dtype) if dtype is not None else ("i64" if ints else "f32")
    return converted(np.arange(start, stop, step), name, "tensor/arange", create_device(device))


# ---- shape ----


def shape(t: Tensor) -> list[int]:
    return list(as_tensor(t).shape)


@on_device("reshape")
def reshape(t: Tensor, new_shape: Any) -> Tensor:
    t = as_tensor(t)
    dims = list(new_shape) if isinstance(new_shape, (list, tuple)) else [new_shape]
    if dims.count(-1) > 1 or not all(isinstance(d, int) and (d >= 0 or d == -1) for d in dims):
        raise TensorShapeError(f"tensor/reshape: bad target shape {shown(dims)}")
    try:
        out = contiguous(t.data).reshape(dims)
    except ValueError:
        raise TensorShapeError(
            f"tensor/reshape: cannot reshape {fmt_shape(t.shape)} ({t.size} elements) to {fmt_shape(dims)}"
        ) from None
    return Tensor(out, t.dtype, t.device)


@on_device("transpose")
def transpose(t: Tensor, axes: Any = None) -> Tensor:
    """Swap the last two axes, or permute by `axes`."""
    t = as_tensor(t)
    if axes is None:
        if t.ndim < 2:
            return t
        perm = list(range(t.ndim - 2)) + [t.ndim - 1, t.ndim - 2]
    else:
        if not isinstance(axes, (list, tuple)):
            raise GeneTypeError(f"tensor/transpose: axes must be an array, got {_kind(axes)}")
        perm = list(axes)
        if sorted(perm) != list(range(t.ndim)):
            raise TensorShapeError(
                f"tensor/transpose: axes {perm} do not permute {fmt_shape(t.shape)}"
            )
    return Tensor(contiguous(t.data.transpose(perm)), t.dtype, t.device)


def _axis(t: Tensor, axis: int, op: str, extra: int = 0) -> int:
    n = t.ndim + extra
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise GeneTypeError(f"{op}: axis must be an int, got {shown(axis)}")
    if not -n <= axis < n:
        raise GeneIndexError(f"{op}: axis {shown(axis)} out of range for shape {fmt_shape(t.shape)}")
    return axis % n


@on_device("slice")
def slice_(t: Tensor, start: int, stop: Any = None, axis: int = 0) -> Tensor:
    """Elements start..stop (end excluded; negative counts from the end, nil stop is the
    end) along `axis`. Unlike NumPy, a bound outside -n..n is an error rather than
    clamped: a slice past the end is a mistake, not an empty result; start >= stop
    within range gives an empty tensor, as in NumPy."""
    t = as_tensor(t)
    if t.ndim == 0:
        raise TensorShapeError("tensor/slice: a 0-d tensor has no axis to slice")
    ax = _axis(t, axis, "tensor/slice")
    n = t.shape[ax]
    for what, bound in (("start", start), ("stop", stop)):
        if bound is None and what == "stop":
            continue
        if isinstance(bound, bool) or not isinstance(bound, int):
            raise GeneTypeError(f"tensor/slice: {what} must be an int, got {_kind(bound)}")
        if not -n <= bound <= n:
            raise GeneIndexError(
                f"tensor/slice: {what} {bound} is outside -{n}..{n} for axis {ax} of shape "
                f"{fmt_shape(t.shape)}"
            )
    index = [slice(None)] * t.ndim
    index[ax] = slice(start, stop)
    return Tensor(contiguous(t.data[tuple(index)]), t.dtype, t.device)


@on_device("get")
def get(t: Tensor, *index: int) -> Any:
    """`(tensor/get t i j)`: a number when every axis is indexed, else a sub-tensor."""
    t = as_tensor(t)
    if len(index) > t.ndim:
        raise GeneIndexError(f"tensor/get: {len(index)} indexes for shape {fmt_shape(t.shape)}")
    for ax, i in enumerate(index):
        if not isinstance(i, int) or isinstance(i, bool):
            raise GeneTypeError(f"tensor/get: an index is an int, got {shown(i)} for axis {ax}")
        if not -t.shape[ax] <= i < t.shape[ax]:
            raise GeneIndexError(
                f"tensor/get: index {shown(i)} out of range for axis {ax} of shape {fmt_shape(t.shape)}"
            )
    item = t.data[tuple(index)]
    if len(index) == t.ndim:
        return values(Tensor(np.asarray(item), t.dtype)).item()
    return Tensor(contiguous(np.asarray(item)), t.dtype, t.device)


def _same_family(ts: Sequence[Any], op: str) -> list[Tensor]:
    if not isinstance(ts, (list, tuple)) or not ts:
        raise GeneTypeError(f"{op}: expected a non-empty array of tensors")
    for i, x in enumerate(ts):
        if isinstance(x, str):
            raise GeneTypeError(
                f"{op}: item {i} is a string; {op} takes tensors or arrays of numbers "
                "(tokenize text first, e.g. (tokenize text) or (tokenizer/encode tok text))"
            )
    return [as_tensor(x, op=op) for x in ts]


@on_device("stack")
def stack(ts: Sequence[Any], axis: int = 0) -> Tensor:
    tensors = _same_family(ts, "tensor/stack")
    first = tensors[0]
    for i, x in enumerate(tensors[1:], 1):
        if x.shape != first.shape:
            raise TensorShapeError(
                f"tensor/stack: tensor {i} has shape {fmt_shape(x.shape)}, tensor 0 has {fmt_shape(first.shape)}"
            )
    ax = _axis(first, axis, "tensor/stack", extra=1)
    dt = _promote_all(tensors)
    return wrap(np.stack([values(x) for x in tensors], axis=ax), dt)


@on_device("concat")
def concat(ts: Sequence[Any], axis: int = 0) -> Tensor:
    tensors = _same_family(ts, "tensor/concat")
    first = tensors[0]
    ax = _axis(first, axis, "tensor/concat")
    for i, x in enumerate(tensors[1:], 1):
        if x.ndim != first.ndim or any(
            a != b for d, (a, b) in enumerate(zip(x.shape, first.shape, strict=False)) if d != ax
        ):
            raise TensorShapeError(
                f"tensor/concat: tensor {i} has shape {fmt_shape(x.shape)}, tensor 0 has "
                f"{fmt_shape(first.shape)}; they must agree except on axis {ax}"
            )
    return wrap(np.concatenate([values(x) for x in tensors], axis=ax), _promote_all(tensors))


def _promote_all(ts: Sequence[Tensor]) -> str:
    dt = ts[0].dtype
    for x in ts[1:]:
        dt = promote(dt, x.dtype)
    return dt


# ---- element-wise arithmetic ----


def broadcast_shape(op: str, a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError:
        raise TensorShapeError(
            f"{op}: shapes {fmt_shape(a)} and {fmt_shape(b)} do not broadcast"
        ) from None


def _binary(
    name: str, f: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> Callable[[Any, Any], Tensor]:
    op = f"tensor/{name}"

    @on_device(name)
    def run(a: Any, b: Any) -> Tensor:
        ta = a if isinstance(a, Tensor) else None
        tb = b if isinstance(b, Tensor) else None
        if ta is None and tb is None:
            ta = as_tensor(a, op=op)  # numbers and arrays of numbers, as NumPy takes them
        if ta is None:
            ta = as_tensor(a, like=tb, op=op)
        if tb is None:
            tb = as_tensor(b, like=ta, op=op)
        broadcast_shape(op, ta.shape, tb.shape)
        dt = promote(ta.dtype, tb.dtype)
        if name == "div" and dt not in FLOATS:
            dt = "f64"  # true division of ints, as NumPy's
        elif dt in INT_LIMITS:  # overflow raises, as for Gene ints (NumPy would wrap)
            return wrap(overflow.arithmetic(name, f, values(ta), values(tb), dt), dt)
        return wrap(f(values(ta), values(tb)), dt)

    run.__name__ = name
    return run


add = _binary("add", np.add)
sub = _binary("sub", np.subtract)
mul = _binary("mul", np.multiply)
div = _binary("div", np.true_divide)


def _unary(
    name: str, f: Callable[[np.ndarray], np.ndarray], kernel: str | None = None
) -> Callable[[Any], Tensor]:
    @on_device(name)
    def run(t: Any) -> Tensor:
        t = as_tensor(t, op=f"tensor/{name}")
        dt = t.dtype if t.dtype in FLOATS else "f64"  # NumPy's dtype for ints
        v = values(t)
        if kernel is not None and v.dtype == np.float32 and v.size:
            from gene_jit.tensor_kernels import norms_cpu

            flat = np.ascontiguousarray(v).reshape(-1)
            out = np.empty_like(flat)
            getattr(norms_cpu, kernel)(flat, out)
            return wrap(out.reshape(v.shape), dt)
        return wrap(f(v.astype(np.float64) if v.dtype != np.float32 else v), dt)

    run.__name__ = name
    return run


def _silu_np(v: np.ndarray) -> np.ndarray:
    return v / (1.0 + np.exp(-v))


def _gelu_np(v: np.ndarray) -> np.ndarray:
    return 0.5 * v * (1.0 + np.tanh(0.7978845608028654 * (v + 0.044715 * v**3)))


exp = _unary("exp", np.exp)
sqrt = _unary("sqrt", np.sqrt)
silu = _unary("silu", _silu_np, "silu_f32")
gelu = _unary("gelu", _gelu_np, "gelu_f32")


@on_device("matmul")
def matmul(a: Any, b: Any) -> Tensor:
    """Batched matrix product with NumPy's rules (leading axes broadcast)."""
    ta, tb = as_tensor(a), as_tensor(b)
    sa, sb = ta.shape, tb.shape
    if ta.ndim == 0 or tb.ndim == 0:
        raise TensorShapeError(
            f"tensor/matmul: needs tensors of rank >= 1, got {fmt_shape(sa)} and {fmt_shape(sb)}"
        )
    k_a = sa[-1]
    k_b = sb[-2] if tb.ndim >= 2 else sb[0]
    if k_a != k_b:
        raise TensorShapeError(
            f"tensor/matmul: inner dimensions differ: {fmt_shape(sa)} @ {fmt_shape(sb)} ({k_a} != {k_b})"
        )
    if ta.ndim > 2 and tb.ndim > 2:
        broadcast_shape("tensor/matmul", sa[:-2], sb[:-2])
    dt = promote(ta.dtype, tb.dtype)
    if dt in INT_LIMITS:  # overflow raises, as for Gene ints (NumPy would wrap)
        return wrap(overflow.checked_matmul(values(ta), values(tb), dt), dt)
    return wrap(np.matmul(values(ta), values(tb)), dt)
