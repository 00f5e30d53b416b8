"""Gene names for Python: `py/*`.

`(var np (py/import "numpy"))` gives the module itself; `np/linalg/norm`, `(np/array
[1 2 3] ^dtype "float32")`, `(x .tolist)` then work on it as on any Python object
(gene_jit.py.objects). The functions here cover what the syntax does not: attributes
by a computed name, items by any key, slices, conversions to Gene data, evaluation of
a Python expression.
"""

from __future__ import annotations

import builtins as _builtins
import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from gene_jit.py.objects import (
    PythonError,
    attribute,
    describe,
    module_of,
    through_gene_code,
)
from gene_jit.runtime.errors import GeneOverflowError, GeneTypeError
from gene_jit.runtime.registry import builtin, namespace
from gene_jit.runtime.requirements import MissingDependencyError, missing_message
from gene_jit.runtime.values import INT_MAX, INT_MIN, GeneSet, Symbol


def _name(value: Any, what: str) -> str:
    if isinstance(value, Symbol):
        return value.name
    if isinstance(value, str):
        return value
    raise GeneTypeError(f"{what} must be a string, got {_shown(value)}")


def _shown(value: Any) -> str:
    from gene_jit.runtime.printer import repr_

    text = repr_(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _raised(exc: Exception) -> PythonError:
    return PythonError(type(exc).__name__, str(exc))


@builtin("import", ns="py")
def py_import(name: Any) -> Any:
    """`(py/import "numpy")`, `(py/import "os.path")`: the module."""
    module = _name(name, "py/import: the module name")
    if module == "builtins":
        return PYTHON_BUILTINS
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = missing_message(exc.name or "", f"py/import \"{module}\"")
        if missing is not None:
            raise MissingDependencyError(missing) from exc
        raise _raised(exc) from exc
    except Exception as exc:  # the module's own code failed while importing
        if through_gene_code(exc):
            raise
        raise _raised(exc) from exc


def _runner(run: Any) -> Any:
    """Python's `exec` or `eval` as Gene code calls it. Called from a Gene frame, the
    builtins they fall back on would be that frame's, Gene's own: code run with globals
    lacking `__builtins__` (or none) could not even define a class. Here such code gets
    Python's builtins, and no globals means fresh ones rather than the Gene module's."""

    def call(source: Any, globals_: Any = None, locals_: Any = None, /, **kwargs: Any) -> Any:
        if globals_ is None:
            globals_ = {}
        if isinstance(globals_, dict) and "__builtins__" not in globals_:
            globals_["__builtins__"] = _builtins
        return run(source, globals_, locals_, **kwargs)

    call.__name__ = call.__qualname__ = run.__name__
    call.__doc__ = run.__doc__
    return call


def _python_builtins() -> ModuleType:
    """`py/builtins` (and `(py/import "builtins")`): Python's builtins module as Gene code
    needs it, with `exec` and `eval` that run code on Python's builtins."""
    module = ModuleType("builtins", _builtins.__doc__)
    module.__dict__.update(vars(_builtins))
    module.exec = _runner(_builtins.exec)  # type: ignore[attr-defined]
    module.eval = _runner(_builtins.eval)  # type: ignore[attr-defined]
    return module


PYTHON_BUILTINS = _python_builtins()


namespace("py").members["builtins"] = PYTHON_BUILTINS


@builtin("get", ns="py")
def py_get(obj: Any, name: Any, *default: Any) -> Any:
    """`(py/get obj "name" [default])`: an attribute by a computed name."""
    key = _name(name, "py/get: the attribute name")
    if default:
        return getattr(obj, key, default[0])
    return attribute(obj, key)


@builtin("set", ns="py")
def py_set(obj: Any, name: Any, value: Any) -> Any:
    """`(py/set obj "name" value)`: set an attribute; the value."""
    key = _name(name, "py/set: the attribute name")
    try:
        setattr(obj, key, value)
    except (AttributeError, TypeError) as exc:
        if through_gene_code(exc):
            raise
        err = _raised(exc)
        if isinstance(obj, Mapping | list):  # a dict (a Gene map too) has items, not attributes
            err.add_context(f"py/set sets an attribute; (py/set-item x {_quoted(key)} v) sets "
                            "an item of a mapping or a list")
        raise err from exc
    return value


def _quoted(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


@builtin("item", ns="py")
def py_item(obj: Any, key: Any) -> Any:
    """`(py/item obj key)`: `obj[key]` with Python's meaning (any key, slices, tuples)."""
    try:
        return obj[_index(key)]
    except Exception as exc:
        if through_gene_code(exc):
            raise
        raise _raised(exc) from exc


@builtin("set-item", ns="py")
def py_set_item(obj: Any, key: Any, value: Any) -> Any:
    """`(py/set-item obj key value)`: `obj[key] = value`; the value."""
    try:
        obj[_index(key)] = value
    except Exception as exc:
        if through_gene_code(exc):
            raise
        raise _raised(exc) from exc
    return value


def _index(key: Any) -> Any:
    """A Gene array used as an index means a tuple (`a[1, 2]`), as NumPy wants it."""
    return tuple(key) if type(key) is list else key


@builtin("slice", ns="py")
def py_slice(start: Any = None, stop: Any = None, step: Any = None) -> slice:
    """`(py/slice 1 3)`: Python's `slice(1, 3)`, for `py/item`."""
    return slice(start, stop, step)


@builtin("tuple", ns="py")
def py_tuple(*items: Any) -> tuple[Any, ...]:
    """`(py/tuple 1 2)`: a Python tuple, where a library wants one rather than a list."""
    return tuple(items)


@builtin("list", ns="py")
def py_list(iterable: Any) -> list[Any]:
    """`(py/list it)`: the items of any Python iterable as a Gene array."""
    try:
        return list(iterable)
    except TypeError as exc:
        if through_gene_code(exc):
            raise
        raise _raised(exc) from exc


@builtin("to-gene", ns="py")
def to_gene(value: Any) -> Any:
    """Python data as Gene data, deeply: tuples and other sequences become arrays,
    mappings with string keys maps (other keys, or an int beyond 64 bits, are refused:
    Gene could not hold them), sets sets, NumPy scalars numbers. Anything else
    (a NumPy array, an object) is kept as it is."""
    return _to_gene(value, 0)


def _to_gene(v: Any, depth: int) -> Any:
    if depth > 200:
        raise GeneTypeError("py/to-gene: data nested more than 200 levels deep")
    t = type(v)
    if t in (type(None), bool, float, str):
        return v
    if t in (list, tuple) or (t.__name__ == "deque"):
        return [_to_gene(x, depth + 1) for x in v]
    if t is int:
        if not INT_MIN <= v <= INT_MAX:
            raise GeneOverflowError(f"py/to-gene: {v} does not fit in a 64-bit Gene int")
        return v
    if isinstance(v, Mapping):
        for k in v:
            if type(k) is not str:  # as gene_jit.from_python: "1" and 1 would be one key
                raise GeneTypeError(f"py/to-gene: map keys must be strings, got "
                                    f"{type(k).__name__} {k!r}; convert them in Python first")
        return {k: _to_gene(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (set, frozenset)):
        return GeneSet([_to_gene(x, depth + 1) for x in v])
    item = getattr(v, "item", None)
    if module_of(t) == "numpy" and getattr(v, "ndim", None) == 0 and callable(item):
        return item()  # a NumPy scalar
    return v


@builtin("type", ns="py")
def py_type(value: Any) -> Any:
    """`(py/type x)`: the Python class of any value."""
    return type(value)


@builtin("repr", ns="py")
def py_repr(value: Any) -> str:
    """`(py/repr x)`: Python's repr of a value."""
    return repr(value)


@builtin("str", ns="py")
def py_str(value: Any) -> str:
    """`(py/str x)`: Python's str of a value."""
    return str(value)


@builtin("describe", ns="py")
def py_describe(value: Any) -> str:
    """How Gene prints a Python object."""
    return describe(value)


@builtin("isinstance", ns="py")
def py_isinstance(value: Any, cls: Any) -> bool:
    try:
        return isinstance(value, tuple(cls) if type(cls) is list else cls)
    except TypeError as exc:
        if through_gene_code(exc):
            raise
        raise _raised(exc) from exc


@builtin("eval", ns="py")
def py_eval(source: Any, names: Any = None) -> Any:
    """`(py/eval "lambda x: x * 2")`, `(py/eval "a + b" {^a 1 ^b 2})`: a Python expression
    evaluated with the names of the map."""
    text = _name(source, "py/eval: the expression")
    if names is not None and not isinstance(names, dict):
        raise GeneTypeError(f"py/eval: the names must be a map, got {_shown(names)}")
    try:
        code = compile(text, "<py/eval>", "eval")
    except SyntaxError as exc:
        raise PythonError("SyntaxError", f"{exc.msg} in {text!r}") from exc
    try:
        # the names as globals: a lambda in the expression sees them when called later
        return eval(code, {**(names or {}), "__builtins__": _builtins})
    except Exception as exc:
        if through_gene_code(exc):
            raise
        raise _raised(exc) from exc
