"""Collection builtins: keys, values, map, filter, reduce, append, concat, first, last,
rest, reverse, sort, contains.

They never mutate their input: `append` and `concat` return a new array or string (the
mutating form is the `.add` method). Functions passed in are called as plain Python
callables; a map's entries go to them as two arguments, key and value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from gene_jit.runtime.builtins import expect, gene_builtin, truthy, type_name
from gene_jit.runtime.equality import gene_equal
from gene_jit.runtime.errors import GeneTypeError
from gene_jit.runtime.printer import display
from gene_jit.runtime.values import Gene, GeneSet, Instance, Range


def elements(name: str, coll: Any) -> Iterable[Any]:
    """The elements of an array-like value (array, range, set, gene children, string)."""
    if isinstance(coll, (list, tuple, Range, str)):
        return coll
    if isinstance(coll, GeneSet):
        return coll.items
    if isinstance(coll, Gene):
        return coll.children
    raise GeneTypeError(f"{name}: expected an array, got {type_name(coll)}")


def _fn(name: str, f: Any) -> Callable[..., Any]:
    if not callable(f):
        raise GeneTypeError(f"{name}: expected a function, got {type_name(f)}")
    return f


def _fn_and_coll(name: str, f: Any, coll: Any) -> tuple[Callable[..., Any], Any]:
    # The seed writes `(map f coll)`; method-style `(map coll f)` is accepted too.
    if not callable(f) and callable(coll):
        f, coll = coll, f
    return _fn(name, f), coll


@gene_builtin("keys")
def keys(m: Any) -> list[str]:
    """`(keys m)`: the keys of a map (or a gene's prop names), in insertion order."""
    return list(_mapping("keys", m))


@gene_builtin("values")
def values(m: Any) -> list[Any]:
    """`(values m)`: the values of a map (or a gene's props), in insertion order."""
    return list(_mapping("values", m).values())


def _mapping(name: str, m: Any) -> dict[str, Any]:
    if isinstance(m, dict):
        return m
    if isinstance(m, (Gene, Instance)):
        return m.props
    raise GeneTypeError(f"{name}: expected a map, got {type_name(m)}")


@gene_builtin("map")
def gene_map(f: Any, coll: Any) -> list[Any]:
    """`(map f coll)`: a new array of `(f x)` for each element; for a map, `(f k v)`."""
    f, coll = _fn_and_coll("map", f, coll)
    if isinstance(coll, dict):
        return [f(k, v) for k, v in coll.items()]
    return [f(x) for x in elements("map", coll)]


@gene_builtin("filter")
def gene_filter(f: Any, coll: Any) -> Any:
    """`(filter f coll)`: the elements for which `(f x)` is truthy (a new array); for a
    map, a new map of the entries for which `(f k v)` is truthy."""
    f, coll = _fn_and_coll("filter", f, coll)
    if isinstance(coll, dict):
        return {k: v for k, v in coll.items() if truthy(f(k, v))}
    return [x for x in elements("filter", coll) if truthy(f(x))]


@gene_builtin("reduce")
def gene_reduce(f: Any, init_or_coll: Any, *rest: Any) -> Any:
    """`(reduce f coll)` folds with the first element as the start; `(reduce f init coll)`
    starts from `init`. `f` gets the accumulator and the element."""
    fn = _fn("reduce", f)
    if len(rest) > 1:
        raise GeneTypeError(f"reduce: expected 2 or 3 arguments, got {2 + len(rest)}")
    if rest:
        acc, items = init_or_coll, list(elements("reduce", rest[0]))
    else:
        items = list(elements("reduce", init_or_coll))
        if not items:
            raise GeneTypeError("reduce: empty collection and no initial value")
        acc, items = items[0], items[1:]
    for x in items:
        acc = fn(acc, x)
    return acc


@gene_builtin("append")
def append(coll: Any, *xs: Any) -> Any:
    """`(append coll x y ...)`: a NEW array with the xs added; for a string, a new string
    with their display forms added."""
    if isinstance(coll, str):
        return coll + "".join(display(x) for x in xs if x is not None)
    if isinstance(coll, (list, tuple)):
        return [*coll, *xs]
    if coll is None:
        return list(xs)
    raise GeneTypeError(f"append: expected an array or string, got {type_name(coll)}")


@gene_builtin("concat")
def concat(*colls: Any) -> Any:
    """`(concat a b ...)`: arrays joined into a new array, or strings into a new string."""
    if not colls:
        return []
    if isinstance(colls[0], str):
        return "".join(expect("concat", c, str, "strings only") for c in colls)
    out: list[Any] = []
    for c in colls:
        if isinstance(c, str) or c is None:
            raise GeneTypeError(f"concat: expected arrays only, got {type_name(c)}")
        out.extend(elements("concat", c))
    return out


@gene_builtin("first")
def first(coll: Any) -> Any:
    """`(first coll)`: the first element, nil when empty."""
    for x in elements("first", coll):
        return x
    return None


@gene_builtin("last")
def last(coll: Any) -> Any:
    """`(last coll)`: the last element, nil when empty."""
    items = list(elements("last", coll)) if not isinstance(coll, (list, str)) else coll
    return items[-1] if items else None


@gene_builtin("rest")
def rest(coll: Any) -> Any:
    """`(rest coll)`: all but the first element (a new array, or a string)."""
    if isinstance(coll, str):
        return coll[1:]
    return list(elements("rest", coll))[1:]


@gene_builtin("reverse")
def reverse(coll: Any) -> Any:
    """`(reverse coll)`: a new array (or string) in reverse order."""
    if isinstance(coll, str):
        return coll[::-1]
    return list(elements("reverse", coll))[::-1]


@gene_builtin("sort")
def sort(coll: Any, compare: Any = None, *, key: Any = None, cmp: Any = None) -> list[Any]:
    """`(sort coll)` sorts numbers or strings ascending into a new array.
    `(sort coll f)` or `^cmp f`: `f` compares two elements, answering a number
    (negative, 0, positive) or a bool meaning "a goes before b". `^key f` sorts by `(f x)`."""
    items = list(elements("sort", coll))
    compare = compare if compare is not None else cmp
    if compare is not None:
        fn = _fn("sort", compare)
        return sorted(items, key=functools.cmp_to_key(lambda a, b: _compare_result(fn, a, b)))
    if key is not None:
        kf = _fn("sort", key)
        keyed = [(kf(x), x) for x in items]
        _check_sortable([k for k, _ in keyed])
        return [x for _, x in sorted(keyed, key=lambda pair: pair[0])]
    _check_sortable(items)
    return sorted(items)


def _compare_result(fn: Callable[..., Any], a: Any, b: Any) -> int:
    r = fn(a, b)
    if isinstance(r, bool):
        if r:
            return -1
        return 1 if truthy(fn(b, a)) else 0
    if isinstance(r, (int, float)):
        return (r > 0) - (r < 0)
    raise GeneTypeError(
        f"sort: the compare function must return a number or a bool, got {type_name(r)}"
    )


def _check_sortable(items: list[Any]) -> None:
    kinds = {
        "number" if isinstance(x, (int, float)) and not isinstance(x, bool) else type_name(x)
        for x in items
    }
    if len(kinds) > 1 or (kinds and kinds.isdisjoint({"number", "string"})):
        raise GeneTypeError(
            f"sort: can only sort numbers or strings, got {', '.join(sorted(kinds))}"
        )


@gene_builtin("contains")
def contains(coll: Any, x: Any) -> bool:
    """`(contains coll x)`: substring of a string, element of an array/set/range, key of
    a map."""
    if isinstance(coll, str):
        return expect("contains", x, str, "a string to look for") in coll
    if isinstance(coll, dict):
        return x in coll if isinstance(x, str) else False
    if isinstance(coll, Range):
        return _range_contains(coll, x)
    return any(gene_equal(item, x) for item in elements("contains", coll))


def _range_contains(r: Range, x: Any) -> bool:
    bounds = (r.start, r.end, r.step)
    if type(x) is int and all(type(v) is int for v in bounds):
        # integer ranges answer in constant time, as Python's range does
        stop = r.end + (1 if r.step > 0 else -1) if r.inclusive else r.end
        return x in range(r.start, stop, r.step)
    return any(gene_equal(item, x) for item in r)
