"""Gene equality (`==`, `!=`, `contains`, sets, `case`): structural, kinds must match.

Int and float are never equal (`1 == 1.0` is false), nor bool and int, nor string and
symbol (GENE.md 2.5). Arrays, maps, genes and sets compare deeply; maps ignore order.
Values that define `__gene_equal__` compare by it (tensors: same dtype, same shape, equal
elements), NumPy arrays the same way, with each other and with tensors. Other Python objects (models, functions) are equal
when they are the same object or when their own `==` says a plain `True`. Cyclic structures do not hang: a pair of
containers already being compared counts as equal.
"""

from __future__ import annotations

import numbers
from typing import Any

from gene_jit.runtime.values import Gene, GeneSet, Range

# Kind of each core Python type; values of different kinds are never equal.
_KINDS: dict[type, str] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    list: "array",
    tuple: "array",
    dict: "map",
    Gene: "gene",
    GeneSet: "set",
}


def _kind(v: Any) -> str | None:
    kind = _KINDS.get(type(v))
    if kind is not None:
        return kind
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, numbers.Integral):
        return "int"
    if isinstance(v, numbers.Real):
        return "float"
    return None


def gene_equal(a: Any, b: Any) -> bool:
    """Structural equality with matching kinds."""
    ta = type(a)
    if ta is type(b) and (ta is int or ta is str):
        return bool(a == b)
    return _equal(a, b, None)


def _equal(a: Any, b: Any, active: set[tuple[int, int]] | None) -> bool:
    if a is b and type(a) is not float:
        return True
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        return False
    if ka is None:
        return _equal_other(a, b)
    if ka in ("bool", "int", "float", "str"):
        return bool(a == b)
    key = (id(a), id(b))
    if active is None:
        active = set()
    elif key in active:
        return True
    active.add(key)
    try:
        return _equal_container(ka, a, b, active)
    finally:
        active.discard(key)


def _equal_container(kind: str, a: Any, b: Any, active: set[tuple[int, int]]) -> bool:
    if kind == "array":
        return len(a) == len(b) and all(_equal(x, y, active) for x, y in zip(a, b, strict=True))
    if kind == "map":
        return _equal_maps(a, b, active)
    if kind == "gene":
        return (
            _equal(a.type, b.type, active)
            and _equal_maps(a.props, b.props, active)
            and _equal(a.children, b.children, active)
        )
    # sets: same size and every member of one is in the other
    if len(a.items) != len(b.items):
        return False
    return all(any(_equal(x, y, active) for y in b.items) for x in a.items)


def _equal_maps(a: dict[str, Any], b: dict[str, Any], active: set[tuple[int, int]]) -> bool:
    if len(a) != len(b):
        return False
    for key, value in a.items():
        if key not in b or not _equal(value, b[key], active):
            return False
    return True


def _equal_other(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return _array_equals_tensor(a, b) or _array_equals_tensor(b, a)
    own = getattr(type(a), "__gene_equal__", None)
    if own is not None:  # values that define Gene equality themselves (tensors)
        return bool(own(a, b))
    if isinstance(a, Range):
        return (
            gene_equal(a.start, b.start)
            and gene_equal(a.end, b.end)
            and gene_equal(a.step, b.step)
            and a.inclusive == b.inclusive
        )
    if _is_ndarray(a):  # as tensors
        import numpy as np

        return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))
    try:
        result = a == b
    except Exception:  # an object whose == refuses to compare is simply not equal
        return False
    # numpy arrays answer elementwise: only a plain True counts as equality.
    return result is True


def _is_ndarray(v: Any) -> bool:
    return type(v).__name__ == "ndarray" and getattr(type(v), "__module__", "") == "numpy"


def _array_equals_tensor(arr: Any, t: Any) -> bool:
    """A NumPy array equals a tensor as a tensor would: the same dtype (a NumPy dtype
    that a tensor stores as is, so bool or int8 never equal an i32 tensor), the same
    shape, equal elements."""
    if not (_is_ndarray(arr) and hasattr(t, "__gene_tensor__")):
        return False
    import numpy as np

    from gene_jit.tensor.dtypes import STORAGE

    if t.dtype == "bf16" or STORAGE.get(t.dtype) != arr.dtype:
        return False
    return tuple(arr.shape) == tuple(t.shape) and bool(np.array_equal(arr, t.numpy()))
