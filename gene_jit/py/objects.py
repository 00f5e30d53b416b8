"""Python objects seen from Gene: which values are foreign, their members, methods,
printing, and the Gene error for an exception that Python code raised.

Python values cross into Gene as themselves, never wrapped: a call from Gene to a Python
function is then the same Python call that Python code makes (tier 0 emits `f(x)`), and
Gene values are already Python values (lists, str-keyed dicts, ints, floats, None). The
runtime's member access (`obj/attr`), method calls (`(obj .m x)`) and printer ask this
module about a value only after every Gene meaning of it has failed, so Gene data pays
nothing. Nothing here imports a third-party package.
"""

from __future__ import annotations

import os
from types import FunctionType, ModuleType, TracebackType
from typing import Any

from gene_jit.runtime.errors import GeneError, GeneTypeError
from gene_jit.runtime.values import Symbol

# Values that are Gene data, whatever Python class they have: never Python objects.
_GENE_TYPES: frozenset[type] = frozenset({type(None), bool, int, float, str, list, dict})

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPR_LIMIT = 120  # characters of a Python repr shown when a Python object prints


class PythonError(GeneError):
    """An exception raised by Python code that a Gene program called."""

    kind = "python error"

    def __init__(self, py_type: str, message: str) -> None:
        super().__init__(f"{py_type}: {message}" if message else py_type)
        self.py_type = py_type
        self.py_message = message

    def __gene_get__(self, key: str) -> Any:
        """`$ex/type`: the Python exception's class name; message and kind as any error."""
        if key == "type":
            return self.py_type
        return super().__gene_get__(key)


class PythonAttributeError(PythonError, GeneTypeError):
    """A member that a Python object does not have (Python's AttributeError)."""


def is_python_object(v: Any) -> bool:
    """`v` is a value of a Python library: neither Gene data, nor a Gene function, nor an
    object of gene-jit itself (tensors, models, namespaces keep their own meanings)."""
    t = type(v)
    if t in _GENE_TYPES:
        return False
    if t is FunctionType and hasattr(v, "__gene_name__"):
        return False
    return not (t.__module__ or "").startswith("gene_jit")


def attribute(obj: Any, key: str) -> Any:
    """`obj/key` on a Python object: its attribute (`np/linalg/norm`); a Gene name with
    dashes also finds the Python name with underscores (`obj/dtype-name`)."""
    try:
        return getattr(obj, key)
    except AttributeError as exc:
        if "-" in key and hasattr(obj, key.replace("-", "_")):
            return getattr(obj, key.replace("-", "_"))
        if isinstance(obj, ModuleType):
            found = _submodule(obj, key)
            if found is not None:
                return found
        raise PythonAttributeError(
            "AttributeError", f"cannot get member {key}: {_no_attribute(obj, key)}") from exc


def _submodule(module: ModuleType, key: str) -> ModuleType | None:
    """`os/path` style access to a submodule that its package does not import itself."""
    import importlib

    try:
        return importlib.import_module(f"{module.__name__}.{key}")
    except ImportError:
        return None


def _no_attribute(obj: Any, key: str) -> str:
    if isinstance(obj, ModuleType):
        return f"module '{obj.__name__}' has no attribute '{key}'"
    return f"'{type(obj).__name__}' object has no attribute '{key}'"


def member(obj: Any, key: Any) -> Any:
    """`obj/key` on a Python object: an attribute for a name, an item for an int
    (`xs/0` on a tuple or any sequence, with Python's errors for a bad index)."""
    if type(key) is str:
        return attribute(obj, key)
    if hasattr(type(obj), "__getitem__"):
        return obj[key]
    raise GeneTypeError(f"cannot get member {key} of a Python {type(obj).__name__}")


def set_member(obj: Any, key: Any, value: Any) -> None:
    """`(obj/key = v)` on a Python object: set the attribute (an item for an int key)."""
    try:
        if type(key) is str:
            setattr(obj, key, value)
        else:
            obj[key] = value
    except (AttributeError, TypeError, LookupError, ValueError) as exc:
        raise PythonError(type(exc).__name__, str(exc)) from exc


def call_method(obj: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`(obj .name args...)` on a Python object: the bound method called. A trailing run
    of seed-style `:kw value` pairs is keyword arguments, as in a call of a Python
    function (method calls reach here with them as positional symbols)."""
    n = len(args)
    while n >= 2 and type(args[n - 2]) is Symbol:
        n -= 2
    if n < len(args):
        kwargs = {**kwargs, **{args[i].name.replace("-", "_"): args[i + 1]
                               for i in range(n, len(args), 2)}}
        args = args[:n]
    return attribute(obj, name)(*args, **kwargs)


def describe(v: Any) -> str:
    """How a Python object prints in Gene: `<python module numpy>`, or its class and
    its Python repr, cut to a line."""
    if isinstance(v, ModuleType):
        return f"<python module {v.__name__}>"
    if isinstance(v, type):
        return f"<python class {v.__module__}.{v.__qualname__}>"
    if type(v).__repr__ is object.__repr__:  # only an address: nothing worth showing
        return f"<python {type(v).__name__}>"
    if type(v).__name__ == "ndarray" and type(v).__module__ == "numpy":
        return _ndarray(v)
    try:
        text = repr(v)
    except Exception:  # a library's broken __repr__ must not break printing
        text = ""
    text = " ".join(text.split())
    if len(text) > REPR_LIMIT:
        text = text[: REPR_LIMIT - 3] + "..."
    name = type(v).__name__
    return f"<python {name} {text}>" if text else f"<python {name}>"


def _ndarray(a: Any) -> str:
    """`<python ndarray [2 3] float32 [[1. 2. 3.] [4. 5. 6.]]>`, elided when large."""
    import numpy as np

    values = np.array2string(a, threshold=8, edgeitems=2, max_line_width=10**6)
    dims = " ".join(str(d) for d in a.shape)
    return f"<python ndarray [{dims}] {a.dtype} {' '.join(values.split())}>"


# ---------------------------------------------------------------- errors


def python_error(exc: BaseException, gene_files: set[str]) -> PythonError | None:
    """The Gene error for `exc` when Python code that the Gene program called raised it,
    else None (gene-jit's own code raised it, or the program's own operation did).

    The traceback tells: after the innermost frame of Gene code, the next frame that is
    not one of the runtime's call helpers belongs to a Python library. A function written
    in C leaves no frame; its exception is then told by its class, which is neither a
    builtin one nor gene-jit's."""
    install_helpers()
    tb = _after_gene_code(exc.__traceback__, gene_files)
    if tb is _NOT_GENE:
        return None
    if tb is None:
        module = type(exc).__module__ or ""
        if module == "builtins" or module.startswith("gene_jit"):
            return None
        return _from(exc, None)
    assert isinstance(tb, TracebackType)
    return _from(exc, tb)


_NOT_GENE = object()


def _after_gene_code(tb: TracebackType | None, gene_files: set[str]) -> Any:
    """The first traceback entry after the innermost Gene frame that is not a runtime
    call helper; None when there is none, `_NOT_GENE` when no Gene frame or gene-jit's
    own code comes first."""
    last = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in gene_files:
            last = tb
        tb = tb.tb_next
    if last is None:
        return _NOT_GENE
    tb = last.tb_next
    while tb is not None and tb.tb_frame.f_code.co_filename in _CALL_HELPERS:
        tb = tb.tb_next
    if tb is None:
        return None
    if tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR + os.sep) or _is_builtin(
            tb.tb_frame.f_code):
        return _NOT_GENE
    return tb


def _is_builtin(code: Any) -> bool:
    """`code` is the body of a function registered as a Gene builtin (a library's own
    function, wherever its module lives), not code of a Python library."""
    from gene_jit.runtime.registry import BUILTINS, Namespace

    values = list(BUILTINS.values())
    values += [m for v in values if isinstance(v, Namespace) for m in v.members.values()]
    for fn in values:
        while fn is not None:
            if getattr(fn, "__code__", None) is code:
                return True
            fn = getattr(fn, "__wrapped__", None)
    return False


def _helper_files() -> frozenset[str]:
    """Modules whose functions only pass a Gene call on (`call_props`, `call_kw_tail`,
    `call_method`, member access) or are this bridge."""
    from gene_jit.runtime import ops

    here = os.path.dirname(os.path.abspath(__file__))
    files = {os.path.abspath(ops.__file__), *(
        os.path.join(here, f) for f in os.listdir(here) if f.endswith(".py"))}
    return frozenset(files)


_CALL_HELPERS: frozenset[str] = frozenset()


def _from(exc: BaseException, tb: TracebackType | None) -> PythonError:
    err = PythonError(type(exc).__name__, str(exc))
    where = _innermost(tb)
    if where:
        err.add_context(f"raised in Python at {where}")
    return err


def _innermost(tb: TracebackType | None) -> str:
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f"{code.co_filename}:{tb.tb_lineno} in {code.co_name}"


def install_helpers() -> None:
    """List the call helpers' files once (the runtime imports this module first)."""
    global _CALL_HELPERS
    if not _CALL_HELPERS:
        _CALL_HELPERS = _helper_files()
