"""Integer overflow in tensor arithmetic raises, as it does for Gene ints (GENE.md: ints
are 64-bit and overflow raises in every tier), instead of wrapping as NumPy does.

The checks stay cheap: i32 results are computed in int64 and range-checked; i64 sums
and differences use the sign rule of two's complement (an overflow is a result whose
sign differs from both operands' for `+`); i64 products and sums are first bounded in
float64, and only elements near the limit are recomputed exactly with Python ints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gene_jit.runtime.errors import GeneOverflowError, GeneTypeError
from gene_jit.tensor.dtypes import shown

INT_LIMITS = {"i32": (-(2**31), 2**31 - 1), "i64": (-(2**63), 2**63 - 1)}
_NEAR = 2.0**62  # below this a float64 estimate cannot hide an int64 overflow
_SYMBOL = {"add": "+", "sub": "-", "mul": "*"}


def overflow(op: str, what: str, dtype: str) -> GeneOverflowError:
    return GeneOverflowError(
        f"{op}: integer overflow in {what}: a result exceeds the range of {dtype} "
        f"({INT_LIMITS[dtype][0]}..{INT_LIMITS[dtype][1]})"
    )


def arithmetic(
    name: str, f: Callable[[Any, Any], Any], a: np.ndarray, b: np.ndarray, dtype: str
) -> np.ndarray:
    """`f(a, b)` (`name` one of add, sub, mul) for a result of int dtype `dtype`, or the
    Gene overflow error when any element leaves that dtype's range."""
    op, what = f"tensor/{name}", _SYMBOL[name]
    a64, b64 = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if dtype == "i32":  # a sum or product of two int32 values always fits int64
        r = f(a64, b64)
        lo, hi = INT_LIMITS["i32"]
        if r.size and (r.min() < lo or r.max() > hi):
            raise overflow(op, what, dtype)
        return r.astype(np.int32)
    with np.errstate(all="ignore"):
        r = f(a64, b64)
    if name == "add":
        bad = ((a64 ^ r) & (b64 ^ r)) < 0
    elif name == "sub":
        bad = ((a64 ^ b64) & (a64 ^ r)) < 0
    else:
        bad = _product_overflows(a64, b64)
    if np.any(bad):
        raise overflow(op, what, dtype)
    return np.asarray(r)


def _product_overflows(a: np.ndarray, b: np.ndarray) -> bool:
    estimate = np.abs(a.astype(np.float64) * b.astype(np.float64))
    near = estimate >= _NEAR
    if not np.any(near):
        return False
    xs, ys = np.broadcast_arrays(a, b)
    lo, hi = INT_LIMITS["i64"]
    return any(not lo <= int(x) * int(y) <= hi for x, y in zip(xs[near], ys[near], strict=True))


def checked_sum(v: np.ndarray, axis: int | None) -> Any:
    """NumPy's int64 sum of int values `v`, or the Gene overflow error when a total
    leaves the int64 range (a total in range is exact even if a partial sum wrapped)."""
    with np.errstate(all="ignore"):
        r = np.sum(v, axis=axis, dtype=np.int64)
    bound = np.sum(np.abs(v.astype(np.float64)), axis=axis)
    if np.any(np.asarray(bound) >= _NEAR):
        exact = np.sum(v.astype(object), axis=axis)
        lo, hi = INT_LIMITS["i64"]
        if any(not lo <= int(x) <= hi for x in np.asarray(exact, dtype=object).reshape(-1)):
            raise overflow("tensor/sum", "sum", "i64")
    return r


def checked_matmul(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    """`a @ b` for int values with a result of int dtype `dtype`, or the Gene overflow
    error when a dot product leaves that dtype's range."""
    a64, b64 = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    with np.errstate(all="ignore"):
        r = np.matmul(a64, b64)
    lo, hi = INT_LIMITS[dtype]
    bound = np.matmul(np.abs(a64.astype(np.float64)), np.abs(b64.astype(np.float64)))
    if np.any(bound >= min(_NEAR, float(hi))):
        exact = np.matmul(a64.astype(object), b64.astype(object))
        if any(not lo <= int(x) <= hi for x in np.asarray(exact, dtype=object).reshape(-1)):
            raise overflow("tensor/matmul", "a product", dtype)
    return r.astype(np.int32) if dtype == "i32" else r


def checked_ints(v: np.ndarray, dtype: str, op: str) -> np.ndarray:
    """`v` when every value is one that int dtype `dtype` holds as given; otherwise the
    Gene error naming `op`, the first such value and the dtype (NumPy's cast would wrap
    an int, turn NaN into the lowest int and drop a fraction, all without a word)."""
    lo, hi = INT_LIMITS[dtype]
    if v.dtype.kind == "f":
        bad = ~np.isfinite(v)
        if np.any(bad):
            raise GeneTypeError(f"{op}: {_first(v, bad)} cannot be an {dtype} value "
                                "(NaN and infinity have no integer value)")
        with np.errstate(all="ignore"):
            bad = v != np.trunc(v)
        if np.any(bad):
            raise GeneTypeError(f"{op}: {_first(v, bad)} is not an integer, and an {dtype} "
                                "tensor holds integers only (use a float dtype, or round "
                                "the values first)")
        wide = v.astype(np.float64)
        bad = (wide < lo) | (wide >= float(hi) + 1.0)  # hi + 1 is exact in float64
    elif v.dtype.kind == "u":
        bad = v > np.uint64(hi)
    else:
        bad = (v < lo) | (v > hi) if v.dtype.itemsize * 8 > int(dtype[1:]) else None
    if bad is not None and np.any(bad):
        raise GeneOverflowError(f"{op}: integer overflow: {_first(v, bad)} is beyond the "
                                f"range of {dtype} ({lo}..{hi})")
    return v


def _first(v: np.ndarray, bad: np.ndarray) -> str:
    """The first element of `v` where `bad` holds, as Gene prints it."""
    x = np.asarray(v).reshape(-1)[np.asarray(bad).reshape(-1)][0].item()
    return str(x) if isinstance(x, int) else shown(x)  # an int past 64 bits, as written
