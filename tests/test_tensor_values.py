"""Values are kept as given: every way of making an int tensor from values (`create`,
`astype`, `arange`) refuses a value its dtype cannot hold exactly, naming the function,
the value and the dtype, instead of NumPy's silent wrap, clamp or truncation; the bounds
themselves are kept. Also the argument checks that share the rule (axis, rand dtypes)."""

from __future__ import annotations

import numpy as np
import pytest

from gene_jit.runtime.errors import GeneError, GeneOverflowError, GeneTypeError
from gene_jit.runtime.values import Symbol
from gene_jit.tensor import Tensor, ops, ops_nn
from gene_jit.tensor.gene_api import dtype as tensor_dtype

LIMITS = {"i32": (-(2**31), 2**31 - 1), "i64": (-(2**63), 2**63 - 1)}
NAN, INF = float("nan"), float("inf")

# (value, dtype, error class, words of the message)
BAD = [
    (2**31, "i32", GeneOverflowError, "overflow: 2147483648"),
    (-(2**31) - 1, "i32", GeneOverflowError, "overflow: -2147483649"),
    (3e9, "i32", GeneOverflowError, "is beyond the range of i32"),
    (-1e20, "i64", GeneOverflowError, "is beyond the range of i64"),
    (2.0**63, "i64", GeneOverflowError, "is beyond the range of i64"),
    (NAN, "i32", GeneTypeError, "nan cannot be an i32 value"),
    (INF, "i64", GeneTypeError, "inf cannot be an i64 value"),
    (-INF, "i32", GeneTypeError, "-inf cannot be an i32 value"),
    (1.7, "i32", GeneTypeError, "1.7 is not an integer, and an i32 tensor"),
    (-2.5, "i64", GeneTypeError, "-2.5 is not an integer, and an i64 tensor"),
]


def _make(how: str, value: float | int, dtype: str) -> Tensor:
    if how == "create":
        return ops.create([0, value], dtype=Symbol(dtype))
    if how == "create-tensor":  # a tensor given to create with another dtype
        return ops.create(ops.create([0.0, value], dtype="f64"), dtype=dtype)
    return ops.astype(ops.create([0.0, value], dtype="f64"), Symbol(dtype))


@pytest.mark.parametrize("how", ["create", "create-tensor", "astype"])
@pytest.mark.parametrize(("value", "dtype", "kind", "words"), BAD)
def test_a_value_an_int_dtype_cannot_keep_is_refused(how: str, value: float, dtype: str,
                                                     kind: type[GeneError], words: str) -> None:
    if how == "create" and isinstance(value, int) and dtype == "i64":
        pytest.skip("a Gene int is an i64 already")
    with pytest.raises(kind) as info:
        _make(how, value, dtype)
    op = "tensor/astype" if how == "astype" else "tensor/create"
    assert info.value.message.startswith(op + ": ") and words in info.value.message


@pytest.mark.parametrize("dtype", ["i32", "i64"])
def test_the_bounds_and_integral_floats_are_kept(dtype: str) -> None:
    lo, hi = LIMITS[dtype]
    assert ops.create([lo, hi], dtype=dtype).numpy().tolist() == [lo, hi]
    assert ops.astype(ops.create([-3.0, 4.0, 0.0]), dtype).numpy().tolist() == [-3, 4, 0]
    small = ops.create([lo, hi], dtype="i64")
    assert ops.astype(small, dtype).numpy().tolist() == [lo, hi]
    assert ops.astype(ops.create([-(2.0**31)], dtype="f64"), "i32").numpy().tolist() == [lo if dtype == "i32" else -(2**31)]
    assert ops.arange(0, 3, dtype=dtype).numpy().tolist() == [0, 1, 2]


def test_unsigned_values_beyond_the_dtype_are_refused() -> None:
    big = np.array([2**63], dtype=np.uint64)
    with pytest.raises(GeneOverflowError, match="tensor/create: integer overflow: 9223372036854775808 "):
        ops.create(big)
    wide = ops.create([2**32 - 1], dtype="i64")
    with pytest.raises(GeneOverflowError, match="tensor/astype: integer overflow: 4294967295 "):
        ops.astype(wide, "i32")


def test_arange_with_fractional_steps_needs_a_float_dtype() -> None:
    with pytest.raises(GeneTypeError, match="tensor/arange: 0.5 is not an integer, and an i64"):
        ops.arange(0, 2, 0.5, dtype="i64")
    assert ops.arange(0, 2, 0.5, dtype="f32").numpy().tolist() == [0.0, 0.5, 1.0, 1.5]


@pytest.mark.parametrize("make", [ops.rand, ops.randn])
@pytest.mark.parametrize("dtype", ["i32", "i64"])
def test_random_draws_refuse_int_dtypes(make: object, dtype: str) -> None:
    with pytest.raises(GeneTypeError, match=f"draws floats, so .dtype must be a float dtype .*got :{dtype}"):
        make([2], dtype=Symbol(dtype))  # type: ignore[operator]


@pytest.mark.parametrize("axis", [0.5, 1.0, "0", True, None])
@pytest.mark.parametrize("op", ["sum", "softmax", "slice", "stack"])
def test_an_axis_must_be_an_int(op: str, axis: object) -> None:
    a = ops.create([[1.0, 2.0], [3.0, 4.0]])
    calls = {"sum": lambda: ops_nn.sum_(a, axis=axis), "softmax": lambda: ops_nn.softmax(a, axis=axis),
             "slice": lambda: ops.slice_(a, 0, 1, axis=axis), "stack": lambda: ops.stack([a, a], axis=axis)}
    if axis is None and op == "sum":
        return  # no axis: the whole tensor
    with pytest.raises(GeneTypeError, match=f"tensor/{op}: axis must be an int, got "):
        calls[op]()


def test_dtype_is_the_symbol_dtype_options_take() -> None:
    for name in ("f32", "f16", "bf16", "f64", "i32", "i64"):
        t = ops.zeros([1], dtype=name)
        assert tensor_dtype(t) is Symbol(name)
        assert ops.zeros([1], dtype=tensor_dtype(t)).dtype == name


def test_fields_read_as_numpy_attributes() -> None:
    a = ops.create([[1, 2, 3], [4, 5, 6]], dtype="i32")
    got = [a.__gene_get__(k) for k in ("shape", "dtype", "ndim", "size")]
    assert got == [[2, 3], Symbol("i32"), 2, 6] and a.__gene_get__("device") is a.device
    with pytest.raises(GeneTypeError, match=r'a tensor has no field "T": .*\(tensor/shape t\)'):
        a.__gene_get__("T")
