"""NumPy arrays in tier 0: element access, element store, iteration and spread.

Tier 1 compiles functions over 1-D and 2-D NumPy arrays (`a/i`, `a/i/j`, `(get a i)`,
`(get (get a i) j)`, `(a/i = v)`, `len`, `for x in a`); when such a function runs in tier
0 instead it must give the same results and errors, so these helpers follow tier 1's
semantics rather than Gene arrays' (which return nil out of range, GENE.md 3.2):

* an index is an int; a negative one counts from the end; out of range (after that) is a
  `GeneIndexError`;
* on a 1-D array an index gives the element as a Python int/float/bool; on an array of
  more dimensions it gives the row, a view (so `a/i/j` is an element of a 2-D array);
* a store converts as tier 1 does: an int into a float array reads back as a float, a
  float into an int array is a `GeneTypeError`; the value of the store is what was
  stored;
* `for x in a` reads each element when it is reached (stores made by the loop body are
  seen), over the length the array had when the loop started.

NumPy is never imported here: a value can only be an ndarray once NumPy is loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from gene_jit.runtime.errors import GeneIndexError, GeneOverflowError, GeneTypeError


def is_ndarray(v: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(v, np.ndarray)


def _kind(v: Any) -> str:
    from gene_jit.runtime.ops import kind_name

    return kind_name(v)


def _describe(a: Any) -> str:
    return f"a {a.ndim}-D {a.dtype.name} array"


def _position(a: Any, key: Any) -> int:
    """The checked position of index `key` along the first axis of `a`."""
    if type(key) is not int:
        raise GeneTypeError(f"a NumPy array index must be an int, got {_kind(key)}")
    if a.ndim == 0:
        raise GeneTypeError("cannot index a 0-D array")
    n = a.shape[0]
    i = key + n if key < 0 else key
    if not 0 <= i < n:
        raise GeneIndexError(f"index {key} out of range for {_describe(a)} of length {n}")
    return i


def array_get(a: Any, key: Any) -> Any:
    """`a/i` and `(get a i)`: an element of a 1-D array, a row (a view) otherwise."""
    i = _position(a, key)
    if a.ndim == 1:
        return a.item(i)
    return a[i]


def array_get_default(a: Any, key: Any, default: Any) -> Any:
    """`(get a i default)`: the default instead of an index error."""
    if type(key) is not int or a.ndim == 0:
        return default
    n = a.shape[0]
    if not -n <= key < n:
        return default
    return array_get(a, key)


def _convert(a: Any, value: Any) -> Any:
    """`value` as tier 1 stores it into an array of `a`'s element kind."""
    kind = a.dtype.kind
    t = type(value)
    if kind in "iu":
        if t is not int:
            raise GeneTypeError(f"cannot store a {_kind(value)} into {_describe(a)}")
    elif kind == "f":
        if t is not int and t is not float:
            raise GeneTypeError(f"cannot store a {_kind(value)} into {_describe(a)}")
    elif kind == "b" and t is not bool:
        raise GeneTypeError(f"cannot store a {_kind(value)} into {_describe(a)}")
    return value


def array_set(a: Any, key: Any, value: Any) -> Any:
    """`(a/i = v)`: store an element of a 1-D array; the stored value."""
    i = _position(a, key)
    if a.ndim != 1:
        raise GeneTypeError(
            f"cannot assign a whole row of {_describe(a)}: assign an element, as a/i/j"
        )
    v = _convert(a, value)
    try:
        a[i] = v
    except OverflowError:
        raise GeneOverflowError(f"{v} does not fit in {_describe(a)}") from None
    except (ValueError, TypeError) as exc:
        raise GeneTypeError(f"cannot store into {_describe(a)}: {exc}") from None
    return a.item(i)


def array_values(a: Any) -> Iterator[Any]:
    """What `for x in a` visits: elements of a 1-D array, rows of a deeper one."""
    if a.ndim == 0:
        raise GeneTypeError("cannot iterate over a 0-D array")
    n = a.shape[0]
    if a.ndim == 1:
        return map(a.item, range(n))
    return map(a.__getitem__, range(n))
