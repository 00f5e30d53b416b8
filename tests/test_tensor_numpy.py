"""`tensor/*` against NumPy over generated shapes: 0-d, empty, broadcast and
non-contiguous operands of every dtype NumPy has (f16 f32 f64 i32 i64). Each op must
give NumPy's shape, dtype and values (f16 within its rounding, since it computes in f32),
raise a Gene error exactly where NumPy raises, and let no NumPy warning out."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from gene_jit.runtime.errors import GeneError
from gene_jit.tensor import Tensor, ops, ops_nn

DTYPES = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "i32": np.int32,
          "i64": np.int64}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
SHAPES = [(), (0,), (1,), (5,), (2, 3), (2, 0), (0, 3), (3, 1), (1, 3), (2, 3, 4), (4, 1, 3)]
RNG = np.random.default_rng(14)


def sample(shape: tuple[int, ...], dtype: str, contiguous: bool = True) -> np.ndarray:
    """Values of `dtype` (no zeros, so that division stays finite unless a test wants
    it), C-contiguous or a transposed view."""
    full = shape[::-1] if not contiguous else shape
    if dtype.startswith("i"):
        a = RNG.integers(1, 50, size=full) * RNG.choice([-1, 1], size=full)
    else:
        a = RNG.standard_normal(full) * 4 + 0.5
    a = np.asarray(a, dtype=DTYPES[dtype])
    return a.T if not contiguous else a


def tol(dtype: Any) -> float:
    return {np.float16: 2e-3, np.float32: 2e-6}.get(np.dtype(dtype).type, 1e-12)


def same(got: Any, want: Any, what: str) -> None:
    """`got` (a Tensor or a number) equals NumPy's `want` in shape, dtype and values."""
    if not isinstance(got, Tensor):
        assert np.ndim(want) == 0, what
        np.testing.assert_allclose(got, np.asarray(want, np.float64), rtol=tol(np.asarray(want).dtype),
                                   err_msg=what)
        return
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == NAMES[want.dtype], f"{what}: dtype {got.dtype} != {want.dtype}"
    have = got.numpy()
    if want.dtype.kind == "i":
        np.testing.assert_array_equal(have, want, err_msg=what)
    else:
        np.testing.assert_allclose(have.astype(np.float64), want.astype(np.float64),
                                   rtol=tol(want.dtype), atol=tol(want.dtype), err_msg=what)


def agree(ours: Callable[[], Any], theirs: Callable[[], Any], what: str) -> None:
    """Both succeed and agree, or both refuse (ours with a Gene error); no warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            want = theirs()
        except (ValueError, IndexError, np.exceptions.AxisError):
            want = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if want is None:
            with pytest.raises(GeneError):
                ours()
            return
        got = ours()
    same(got, want, what)


BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide}


def _pairs() -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    return [(a, b) for a, b in itertools.product(SHAPES, SHAPES)
            if len(a) <= 2 and len(b) <= 3]


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_broadcast_like_numpy(name: str) -> None:
    fn = getattr(ops, name)
    for (sa, sb), (da, db) in itertools.product(
            _pairs(), [("f32", "f32"), ("f64", "f64"), ("i64", "i64"), ("i32", "f32"),
                       ("f16", "f16"), ("i32", "i64"), ("f16", "f64"), ("i32", "i32")]):
        a, b = sample(sa, da), sample(sb, db, contiguous=len(sb) < 2)
        agree(lambda a=a, b=b: fn(Tensor.from_numpy(a), Tensor.from_numpy(b)),
              lambda a=a, b=b: BINARY[name](a, b), f"{name} {da}{list(sa)} {db}{list(sb)}")


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("scalar", [3, -2, 2.5])
def test_python_numbers_with_tensors_as_numpy(name: str, scalar: Any) -> None:
    fn = getattr(ops, name)
    for shape, dt in itertools.product([(), (0,), (2, 3)], DTYPES):
        a = sample(shape, dt)
        what = f"{name} {dt}{list(shape)} {scalar!r}"
        agree(lambda a=a: fn(Tensor.from_numpy(a), scalar),
              lambda a=a: BINARY[name](a, scalar), what)
        agree(lambda a=a: fn(scalar, Tensor.from_numpy(a)),
              lambda a=a: BINARY[name](scalar, a), f"reflected {what}")


def test_division_by_zero_gives_ieee_values_without_warnings() -> None:
    for dt in DTYPES:
        a = np.array([1, -1, 0], dtype=DTYPES[dt])
        zero = np.zeros(3, dtype=DTYPES[dt])
        agree(lambda a=a, z=zero: ops.div(Tensor.from_numpy(a), Tensor.from_numpy(z)),
              lambda a=a, z=zero: a / z, f"div by zero {dt}")


@pytest.mark.parametrize("name", ["exp", "sqrt"])
def test_unary_ops(name: str) -> None:
    for shape, dt in itertools.product(SHAPES, DTYPES):
        a = np.abs(sample(shape, dt, contiguous=len(shape) != 2))
        agree(lambda a=a: getattr(ops, name)(Tensor.from_numpy(a)),
              lambda a=a: getattr(np, name)(a), f"{name} {dt}{list(shape)}")


@pytest.mark.parametrize("name", ["sum", "mean", "max", "argmax"])
def test_reductions(name: str) -> None:
    ours = {"sum": ops_nn.sum_, "mean": ops_nn.mean, "max": ops_nn.max_,
            "argmax": ops_nn.argmax}[name]
    for shape, dt in itertools.product(SHAPES, DTYPES):
        a = sample(shape, dt, contiguous=len(shape) != 2)
        if dt == "f16" and name in ("sum", "mean"):
            continue  # NumPy accumulates f16 in f16; tensors accumulate f16 in f32
        for axis in [None, *range(len(shape))]:
            agree(lambda a=a, ax=axis: ours(Tensor.from_numpy(a), axis=ax),
                  lambda a=a, ax=axis: getattr(np, name)(a, axis=ax),
                  f"{name} {dt}{list(shape)} axis={axis}")


def _softmax(a: np.ndarray, axis: int) -> np.ndarray:
    x = a.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    r = e / e.sum(axis=axis, keepdims=True)
    return r.astype(a.dtype if a.dtype.kind == "f" else np.float32)


def test_softmax_including_empty_axes_and_float64_range() -> None:
    for shape, dt in itertools.product([(5,), (2, 3), (2, 0), (0, 3), (2, 3, 4)],
                                       ["f32", "f64"]):
        a = sample(shape, dt)
        for axis in range(len(shape)):
            if 0 in shape:
                got = ops_nn.softmax(Tensor.from_numpy(a), axis=axis)
                assert got.shape == shape and got.dtype == dt
                continue
            agree(lambda a=a, ax=axis: ops_nn.softmax(Tensor.from_numpy(a), axis=ax),
                  lambda a=a, ax=axis: _softmax(a, ax), f"softmax {dt}{list(shape)} {axis}")
    big = ops.create([1e300, 1e300], dtype="f64")
    assert ops_nn.softmax(big).numpy().tolist() == [0.5, 0.5]


def test_shape_ops() -> None:
    for shape, dt in itertools.product(SHAPES, DTYPES):
        a = sample(shape, dt, contiguous=len(shape) != 2)
        t = Tensor.from_numpy(a)
        agree(lambda t=t: ops.reshape(t, [-1]), lambda a=a: a.reshape(-1), f"reshape {shape}")
        agree(lambda t=t: ops.transpose(t, list(range(t.ndim))[::-1]),
              lambda a=a: a.transpose(list(range(a.ndim))[::-1]), f"transpose {shape}")
        agree(lambda t=t: ops.stack([t, t]), lambda a=a: np.stack([a, a]), f"stack {shape}")
        if shape:
            agree(lambda t=t: ops.concat([t, t]), lambda a=a: np.concatenate([a, a]),
                  f"concat {shape}")
            n = shape[0]
            for start, stop in [(0, n), (0, 1), (-1, None), (n, n), (1, 0)]:
                if abs(start) > n or (stop is not None and abs(stop) > n):
                    continue  # outside the axis: an error (test below), where NumPy clamps
                agree(lambda t=t, s=start, e=stop: ops.slice_(t, s, e),
                      lambda a=a, s=start, e=stop: a[s:e], f"slice {shape} {start}:{stop}")


def test_slice_outside_the_axis_is_an_error() -> None:
    t = ops.ones([2, 3])
    for start, stop in [(5, 10), (0, 3), (-3, None), (0, -3)]:
        with pytest.raises(GeneError, match="tensor/slice: (start|stop) .* is outside -2..2"):
            ops.slice_(t, start, stop)


def test_matmul() -> None:
    for (sa, sb), dt in itertools.product(
            [((2, 3), (3, 4)), ((3,), (3, 2)), ((2, 3), (3,)), ((4, 2, 3), (3, 5)),
             ((2, 0), (0, 3)), ((0, 3), (3, 2)), ((2, 3), (4, 5))], ["f32", "f64", "i64"]):
        a, b = sample(sa, dt), sample(sb, dt, contiguous=False)
        agree(lambda a=a, b=b: ops.matmul(Tensor.from_numpy(a), Tensor.from_numpy(b)),
              lambda a=a, b=b: np.matmul(a, b), f"matmul {dt} {sa} {sb}")


def test_created_directly_in_their_dtype() -> None:
    values = [0.1, 1e300, 16777217.5, -2.5e-310]
    t = ops.create(values, dtype="f64")
    assert t.numpy().tolist() == values
    big = ops.create([16777217, -(2**62)], dtype="i64")
    assert big.numpy().tolist() == [16777217, -(2**62)]
    q = ops.div(ops.create([16777217]), ops.create([1]))
    assert q.dtype == "f64" and q.numpy().tolist() == [16777217.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ops.create([1e300], dtype="f32").numpy().tolist() == [float("inf")]


def test_bf16_rounds_what_f32_computes() -> None:
    a, b = sample((2, 3), "f32"), sample((3,), "f32")
    for name, fn in BINARY.items():
        x = ops.create(a, dtype="bf16")
        y = ops.create(b, dtype="bf16")
        got = getattr(ops, name)(x, y)
        assert got.dtype == "bf16" and got.shape == (2, 3)
        want = fn(x.numpy(), y.numpy())
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-2, err_msg=name)
    assert ops.add(ops.create(a, dtype="bf16"), ops.create(b, dtype="f16")).dtype == "f32"


def test_every_op_on_empty_and_0d_tensors_gives_a_result_or_a_gene_error() -> None:
    """Any `tensor/*` function on 0-d, empty and ordinary tensors (and on wrong
    arguments) returns or raises a Gene error: no Python exception, no warning. (A wrong
    number of arguments is a TypeError that tier 0 turns into an arity error at the call.)"""
    from gene_jit.tensor.gene_api import TENSOR_NAMES

    tensors = [ops.zeros(list(s)) for s in [(), (0,), (4, 0), (0, 3), (2, 3), (1, 2, 4)]]
    tensors += [ops.ones([2, 2], dtype="i64"), ops.ones([3], dtype="f64")]
    extras = [None, 0, 1, -1, 2, [0], [2, -1], [], "x", 1.5]
    calls = itertools.chain(
        ((a,) for a in tensors), ((a, e) for a in tensors for e in extras),
        ((a, b) for a in tensors for b in tensors),
        ((a, b, c) for a in tensors[:5] for b in tensors[:5] for c in tensors[:5]))
    leaks = []
    for args in calls:
        for name, fn in TENSOR_NAMES.items():
            if name == "seed":
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                try:
                    fn(*args)
                except GeneError:
                    pass
                except TypeError as exc:
                    if "positional argument" not in str(exc):
                        leaks.append(f"{name} {args}: {exc!r}")
                except Exception as exc:  # noqa: BLE001 - what the test looks for
                    leaks.append(f"{name} {args}: {exc!r}")
    assert not leaks, "\n".join(leaks[:20])
