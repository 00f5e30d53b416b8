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

import dis
import os
import re
from collections.abc import Mapping
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType, TracebackType
from typing import Any

from gene_jit.runtime.errors import GeneError, GeneTypeError
from gene_jit.runtime.values import Symbol

# Values that are Gene data, whatever Python class they have: never Python objects.
_GENE_TYPES: frozenset[type] = frozenset({type(None), bool, int, float, str, list, dict})

_FUNCTIONS = (FunctionType, BuiltinFunctionType, MethodType)
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPR_LIMIT = 120
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # characters of a Python repr shown when a Python object prints


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
        if key in ("message", "kind"):
            return super().__gene_get__(key)
        raise GeneTypeError(f"a caught {self.kind} has members message, kind and type, not {key}")


class PythonAttributeError(PythonError, GeneTypeError):
    """A member that a Python object does not have (Python's AttributeError)."""


def through_gene_code(exc: BaseException) -> bool:
    """`exc` is a Gene error, or was raised in Gene code that Python called back (a Gene
    function given as a key, a callback): it is the program's own error, to be reported
    where it happened, never as one of the Python code in between."""
    if isinstance(exc, GeneError):
        return True
    from gene_jit.frontend.compiler_errors import GENE_FILES

    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in GENE_FILES:
            return True
        tb = tb.tb_next
    return False


def is_python_object(v: Any) -> bool:
    """`v` is a value of a Python library: neither Gene data, nor a Gene function, nor an
    object of gene-jit itself (tensors, models, namespaces keep their own meanings)."""
    t = type(v)
    if t in _GENE_TYPES:
        return False
    if t is FunctionType and (hasattr(v, "__gene_name__") or hasattr(v, "__gene_builtin__")):
        return False  # a Gene function or a builtin
    return not module_of(t).startswith("gene_jit")


def module_of(cls: type) -> str:
    """The module a class was defined in; "" for one made where there was no `__name__`
    (`type(...)` inside `exec`), which has no `__module__` at all."""
    name = getattr(cls, "__module__", None)
    return name if isinstance(name, str) else ""


def attribute(obj: Any, key: str, method: bool = False) -> Any:
    """`obj/key` on a Python object: its attribute (`np/linalg/norm`); a Gene name with
    dashes also finds the Python name with underscores (`obj/dtype-name`). `method`: the
    attribute is wanted for a method call `(obj .key)`, which the error then names."""
    try:
        return getattr(obj, key)
    except AttributeError as exc:
        if "-" in key and hasattr(obj, key.replace("-", "_")):
            return getattr(obj, key.replace("-", "_"))
        if isinstance(obj, ModuleType):
            found = _submodule(obj, key)
            if found is not None:
                return found
        what = f"no method .{key}" if method else f"cannot get member {key}"
        raise PythonAttributeError(
            "AttributeError", f"{what}: {_no_attribute(obj, key, not method)}") from exc


def _submodule(module: ModuleType, key: str) -> ModuleType | None:
    """`os/path` style access to a submodule that its package does not import itself."""
    import importlib

    try:
        return importlib.import_module(f"{module.__name__}.{key}")
    except ImportError:
        return None


def _no_attribute(obj: Any, key: str, item_hint: bool) -> str:
    if isinstance(obj, ModuleType):
        return f"module '{obj.__name__}' has no attribute '{key}'"
    text = f"'{type(obj).__name__}' object has no attribute '{key}'"
    if item_hint and isinstance(obj, Mapping):  # a Counter or an OrderedDict: `obj/key` means attributes
        text += f"; it is a mapping: (py/item x \"{key}\") gets its item"
    return text


def member(obj: Any, key: Any) -> Any:
    """`obj/key` on a Python object: an attribute for a name, an item for an int
    (`xs/0` on a tuple or any sequence, with Python's errors for a bad index)."""
    if type(key) is str:
        return attribute(obj, key)
    if hasattr(type(obj), "__getitem__"):
        return obj[key]
    raise GeneTypeError(f"cannot get member {key} of a Python {type(obj).__name__}")


def select(obj: Mapping[Any, Any], key: Any, default: Any) -> Any:
    """`(m ./ key default)` on a Python mapping: the item, as `py/item` gets it (not an
    attribute, as `m/key` is); `default` for a key it does not hold or a nil item."""
    try:
        if key not in obj:
            return default
        val = obj[key]
    except (LookupError, TypeError):  # an unhashable key, a key of another type
        return default
    return default if val is None else val


def set_member(obj: Any, key: Any, value: Any) -> None:
    """`(obj/key = v)` on a Python object: set the attribute (an item for an int key); a
    Gene name with dashes sets the Python name with underscores, as reading finds it
    (`(o/max-len = 3)` is `o.max_len = 3`), unless the object has the dashed name."""
    try:
        if type(key) is str:
            if "-" in key and not hasattr(obj, key):
                key = key.replace("-", "_")
            setattr(obj, key, value)
        else:
            obj[key] = value
    except (AttributeError, TypeError, LookupError, ValueError) as exc:
        if through_gene_code(exc):
            raise
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
    return attribute(obj, name, method=True)(*args, **kwargs)


def describe(v: Any) -> str:
    """How a Python object prints in Gene: `<python module numpy>`, or its class and
    its Python repr, cut to a line."""
    if isinstance(v, ModuleType):
        return f"<python module {v.__name__}>"
    if isinstance(v, type):
        module = module_of(v)
        return f"<python class {module + '.' if module else ''}{v.__qualname__}>"
    if isinstance(v, _FUNCTIONS):  # `<python function math.sqrt>`
        where = getattr(v, "__module__", None)
        name = getattr(v, "__qualname__", None) or getattr(v, "__name__", "?")
        return f"<python function {where + '.' if isinstance(where, str) else ''}{name}>"
    if type(v).__repr__ is object.__repr__:  # only an address: nothing worth showing
        return f"<python {type(v).__name__}>"
    if type(v).__name__ == "ndarray" and module_of(type(v)) == "numpy":
        return _ndarray(v)
    try:
        text = repr(v)
    except Exception:  # a library's broken __repr__ must not break printing
        text = ""
    # an address changes from run to run: printed output would never repeat
    text = _ADDRESS.sub("", " ".join(text.split()))
    if len(text) > REPR_LIMIT:
        text = text[: REPR_LIMIT - 3] + "..."
    name = type(v).__name__
    return f"<python {name} {text}>" if text else f"<python {name}>"


def _ndarray(a: Any) -> str:
    """`<python ndarray [2 3] float32 [[1. 2. 3.] [4. 5. 6.]]>`, elided when large."""
    import numpy as np

    values = np.array2string(a, threshold=8, edgeitems=2, max_line_width=10**6)
    dims = " ".join(str(d) for d in a.shape)
    values = re.sub(r"\[ +", "[", " ".join(values.split()))  # NumPy's column padding
    return f"<python ndarray [{dims}] {a.dtype} {values}>"


# ---------------------------------------------------------------- errors


def python_error(exc: BaseException, gene_files: set[str]) -> GeneError | None:
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
    arity = gene_binding_error(exc)
    if arity is not None:
        return arity
    if tb is None:
        module = module_of(type(exc))
        if module.startswith("gene_jit"):
            return None
        if module == "builtins" and not _raised_by_c_callee(exc, gene_files):
            return None
        return _from(exc, None)
    assert isinstance(tb, TracebackType)
    return _from(exc, tb)


_NOT_GENE = object()
_GENE_BINDING = re.compile(r"^(\S+)\(\) (?:got an unexpected keyword argument '(\w+)'"
                           r"|got multiple values for argument '(\w+)')")


def gene_binding_error(exc: BaseException) -> GeneError | None:
    """The Gene arity error for Python code calling a Gene function with a keyword it
    does not declare (or an argument twice), as Gene code and `gene_jit.jit` report it:
    Python's TypeError names only the function, which the calling frame holds."""
    found = _GENE_BINDING.match(str(exc)) if type(exc) is TypeError else None
    tb = exc.__traceback__
    if found is None or tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    values = list(tb.tb_frame.f_locals.values())
    values += [x for v in values if type(v) in (tuple, list) for x in v]
    for fn in values:
        if (type(fn) is FunctionType and hasattr(fn, "__gene_name__")
                and fn.__qualname__ == found.group(1)):
            from gene_jit.runtime.errors import GeneArityError

            name = fn.__gene_name__ or "fn"
            if found.group(2):
                return GeneArityError(f"{name} has no parameter ^{found.group(2)}")
            return GeneArityError(f"{name} got argument {found.group(3)} twice")
    return None


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


# Frames that call a callable the program handed them, as their last act: a C function
# failing there is the callee's failure (`(x .m)` reaches a Python method through them).
_PASS_ON = frozenset({"call_method", "call_props", "call_kw_tail"})
_CALL_OPS = frozenset(op for op, name in enumerate(dis.opname)
                      if name in ("CALL", "PRECALL", "CALL_FUNCTION_EX", "CALL_KW"))
# Raised by the call itself before any callee runs: a Gene function's or builtin's own
# parameters, or a value that is not callable; those keep their Gene meanings.
_BINDING = re.compile(r"\S+\(\) (missing \d+ required|got an unexpected keyword|takes \d+ "
                      r"positional|takes from|got multiple values|argument after)"
                      r"|object is not callable")


def _raised_by_c_callee(exc: BaseException, gene_files: set[str]) -> bool:
    """A builtin exception (ValueError, TypeError, ...) with no Python frame after the
    Gene code came from a function written in C that the program called: `math/log`,
    a `datetime` constructor, a method of a NumPy array. Told by the instruction the
    innermost frame stopped at, a call made by the Gene code itself or by a helper that
    only passes the call on: gene-jit's own operators fail inside frames of their own."""
    tb = exc.__traceback__
    if tb is None or _BINDING.search(str(exc)):
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    if code.co_filename not in gene_files and not (
            code.co_name in _PASS_ON and code.co_filename in _CALL_HELPERS):
        return False
    lasti = tb.tb_lasti
    return 0 <= lasti < len(code.co_code) and code.co_code[lasti] in _CALL_OPS


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
    # Python's message shows a symbol as gene-jit's internal `Symbol('float32')`
    err = PythonError(type(exc).__name__, _SYMBOL_REPR.sub(r":\1", str(exc)))
    where = _innermost(tb)
    if where:
        err.add_context(f"raised in Python at {where}")
    symbol = _SYMBOL.search(str(exc))
    if symbol is not None:  # `^dtype :float32`: Gene style, which Python cannot read
        name = symbol.group(1)
        err.add_context(
            f"the symbol :{name} went to Python as a gene-jit Symbol; Python code wants the "
            f"string \"{name}\"" if name else "a Gene symbol (:name) went to Python as a "
            "gene-jit Symbol; Python code wants a string (\"name\")")
    if _RANGE.search(str(exc)):
        err.add_context("a Gene range went to Python as a gene-jit Range; (py/list r) makes "
                        "it a list")
    return err


_RANGE = re.compile(r"\btype Range\b|'Range'")
_SYMBOL_REPR = re.compile(r"Symbol\('([^']*)'\)")
_SYMBOL = re.compile(r"Symbol\('([^']*)'\)|type Symbol\b()|'Symbol' object()")


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
