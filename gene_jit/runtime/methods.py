"""Methods of the core values, for `(x .method args)` and `x/.method` in tier 0.

`call_method(obj, name, args, kwargs)` serves strings, arrays, maps, genes and ranges
from the tables below, then methods every value has (`to_s`, `class`, `is`, `to_json`,
`to_bool`). Importing this module also installs the tables into `ops.METHODS`, which is
what compiled `(x .m)` calls look up. Class instances go to `ops.call_method`; other
Python objects (tensors, models) fall back to a public Python method of the same name
(`-` read as `_`). A wrong argument count is a `GeneArityError` naming the method; an
unknown method a `GeneTypeError` naming the value's kind.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from gene_jit.runtime import stdlib_collections as coll
from gene_jit.runtime import stdlib_strings as strs
from gene_jit.runtime.builtins import arity_error, expect, gene_len, to_f, to_i, truthy, type_name
from gene_jit.runtime.equality import gene_equal
from gene_jit.runtime.errors import GeneArityError, GeneError, GeneIndexError, GeneTypeError
from gene_jit.runtime.printer import display
from gene_jit.runtime.stdlib_json import json_stringify
from gene_jit.runtime.values import Gene, GeneClass, Instance, Range

Method = Callable[..., Any]


def _char_at(s: str, i: Any) -> str:
    expect("char_at", i, int, "an int index")
    if not 0 <= i < len(s):
        raise GeneIndexError(f"char_at: index {i} out of range for a string of length {len(s)}")
    return s[i]


def _str_append(s: str, *xs: Any) -> str:
    return coll.append(s, *xs)


STRING_METHODS: dict[str, Method] = {
    "length": gene_len,
    "size": gene_len,
    "to_i": to_i,
    "to_f": to_f,
    "append": _str_append,
    "substr": strs.substr,
    "split": strs.split,
    "contains": coll.contains,
    "index": strs.index_of,
    "rindex": strs.rindex_of,
    "char_at": _char_at,
    "trim": strs.trim,
    "starts_with": strs.starts_with,
    "ends_with": strs.ends_with,
    "to_upper": strs.upper,
    "to_lower": strs.lower,
    "to_uppercase": strs.upper,
    "to_lowercase": strs.lower,
    "replace": strs.replace,
    "reverse": coll.reverse,
}


def _arr_add(a: list[Any], x: Any, *more: Any) -> list[Any]:
    a.append(x)
    a.extend(more)
    return a


def _arr_del(a: list[Any], i: Any) -> Any:
    expect("del", i, int, "an int index")
    if not 0 <= i < len(a):
        raise GeneIndexError(f"del: index {i} out of range for an array of length {len(a)}")
    return a.pop(i)


def _arr_each(a: Any, f: Any) -> Any:
    fn = _callable("each", f)
    for x in coll.elements("each", a):
        fn(x)
    return a


def _arr_get(a: list[Any], i: Any, default: Any = None) -> Any:
    from gene_jit.runtime.builtins import gene_get

    return gene_get(a, i, default)


ARRAY_METHODS: dict[str, Method] = {
    "size": gene_len,
    "length": gene_len,
    "add": _arr_add,
    "push": _arr_add,
    "del": _arr_del,
    "empty": lambda a: len(a) == 0,
    "contains": coll.contains,
    "each": _arr_each,
    "map": lambda a, f: coll.gene_map(f, a),
    "filter": lambda a, f: coll.gene_filter(f, a),
    "reduce": lambda a, f, *init: coll.gene_reduce(f, *init, a),
    "join": strs.join,
    "get": _arr_get,
    "first": coll.first,
    "last": coll.last,
    "rest": coll.rest,
    "reverse": coll.reverse,
    "sort": coll.sort,
    "index": strs.index_of,
}


def _map_each(m: dict[str, Any], f: Any) -> dict[str, Any]:
    fn = _callable("each", f)
    for k, v in list(m.items()):
        fn(k, v)
    return m


def _map_get(m: dict[str, Any], key: Any, default: Any = None) -> Any:
    from gene_jit.runtime.builtins import gene_get

    return gene_get(m, key, default)


MAP_METHODS: dict[str, Method] = {
    "size": gene_len,
    "length": gene_len,
    "keys": coll.keys,
    "values": coll.values,
    "contains": coll.contains,
    "map": lambda m, f: coll.gene_map(f, m),
    "filter": lambda m, f: coll.gene_filter(f, m),
    "each": _map_each,
    "get": _map_get,
    "empty": lambda m: len(m) == 0,
}

GENE_METHODS: dict[str, Method] = {
    "type": lambda g: g.type,
    "props": lambda g: g.props,
    "children": lambda g: g.children,
    "size": gene_len,
    "length": gene_len,
}

RANGE_METHODS: dict[str, Method] = {
    "size": gene_len,
    "length": gene_len,
    "contains": coll.contains,
    "each": _arr_each,
    "map": lambda r, f: coll.gene_map(f, r),
    "filter": lambda r, f: coll.gene_filter(f, r),
    "to_a": list,
}


def _is(v: Any, cls: Any) -> bool:
    if isinstance(cls, GeneClass):
        return isinstance(v, Instance) and v.cls.is_subclass(cls)
    if isinstance(cls, type):
        return isinstance(v, cls)
    if isinstance(cls, str):
        return type_name(v) == cls
    return False


ANY_METHODS: dict[str, Method] = {
    "to_s": lambda v: "" if v is None else display(v),
    "class": lambda v: v.cls if isinstance(v, Instance) else type_name(v),
    "is": _is,
    "to_json": json_stringify,
    "to_bool": truthy,
    "eq": gene_equal,
}


def _callable(name: str, f: Any) -> Callable[..., Any]:
    if not callable(f):
        raise GeneTypeError(f".{name}: expected a function, got {type_name(f)}")
    return f


def _checked(kind: str, name: str, fn: Method) -> Method:
    """`fn` with a wrong argument count reported as a GeneArityError naming the method."""
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):  # some C callables have no signature
        sig = None

    own = getattr(fn, "__gene_builtin__", None)  # a builtin behind the method (`index-of`)

    def method(obj: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(obj, *args, **kwargs)
        except (TypeError, GeneError) as exc:
            if isinstance(exc, GeneError) and not isinstance(exc, GeneArityError):
                if own and exc.message.startswith(f"{own}: "):  # name what the program wrote
                    exc.message = f".{name}: {exc.message[len(own) + 2:]}"
                    exc.args = (exc.message,)
                raise
            # the builtin reports its own arity, counting the receiver: the binding
            # decides whose call it was
            if sig is not None:
                try:
                    sig.bind(obj, *args, **kwargs)
                except TypeError:
                    params = list(sig.parameters.values())
                    if params and params[0].kind is not params[0].VAR_POSITIONAL:
                        params = params[1:]  # the receiver is not an argument at the call site
                    call_sig = sig.replace(parameters=params)
                    raise arity_error(f".{name} on {kind}", call_sig, args, kwargs) from None
            raise

    method.__gene_builtin__ = f".{name}"  # type: ignore[attr-defined]
    return method


_KIND_LABELS: dict[type, str] = {
    str: "string",
    list: "array",
    dict: "map",
    Gene: "gene",
    Range: "range",
    object: "value",
}

# The checked tables, by receiver type; `object` holds the methods every value has.
TABLES: dict[type, dict[str, Method]] = {
    ty: {n: _checked(_KIND_LABELS[ty], n, f) for n, f in table.items()}
    for ty, table in (
        (str, STRING_METHODS),
        (list, ARRAY_METHODS),
        (dict, MAP_METHODS),
        (Gene, GENE_METHODS),
        (Range, RANGE_METHODS),
        (object, ANY_METHODS),
    )
}


def install() -> None:
    """Make these methods what tier 0's `(x .m)` finds (ops.METHODS); entries that the
    operators module registered itself take precedence."""
    from gene_jit.runtime import ops

    for ty, table in TABLES.items():
        target = ops.METHODS.setdefault(ty, {})
        for name, fn in table.items():
            target.setdefault(name, fn)


def find_method(obj: Any, name: str) -> Method | None:
    """The method `name` of a core value, or None."""
    table = TABLES.get(type(obj))
    if table is not None:
        method = table.get(name) or table.get(name.replace("-", "_"))
        if method is not None:
            return method
    return TABLES[object].get(name)


def call_method(
    obj: Any, name: str, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]
) -> Any:
    """`(obj .name args... ^k v)`."""
    if isinstance(obj, (Instance, GeneClass)):
        from gene_jit.runtime import ops

        return ops.call_method(obj, name, *args, **kwargs)
    method = find_method(obj, name)
    if method is None:
        return _python_method(obj, name, args, kwargs)
    return method(obj, *args, **kwargs)


def _python_method(obj: Any, name: str, args: Any, kwargs: dict[str, Any]) -> Any:
    attr = name.replace("-", "_")
    if not isinstance(obj, (str, list, dict, Gene, Range, int, float, bool)) and obj is not None:
        if not attr.startswith("_"):
            target = getattr(obj, attr, None)
            if callable(target):
                return target(*args, **kwargs)
    raise GeneTypeError(f"{type_name(obj)} has no method .{name}")


install()
