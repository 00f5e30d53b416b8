"""The Python API: run Gene code from Python and move values across the boundary.

    gene_jit.eval("(1 + 2 * 3)")             # 7
    gene_jit.run_file("app.gene", args=["x"])
    gene_jit.repr({"a": [1, "s"]})           # '{^a [1 "s"]}'
    gene_jit.to_python(v) / gene_jit.from_python(v)

`eval` and `run_file` return plain Python data (`to_python`): ints, floats, strings, bools,
None, lists and dicts. NumPy arrays, tensors, genes, functions and other objects pass
through unchanged. `eval_source` and `run_program` return the raw Gene value (the CLI
uses them). Gene mistakes raise `gene_jit.runtime.errors.GeneError` subclasses; a fault
of gene-jit itself raises `InternalError` (its `__cause__` is the Python exception).
Python warnings raised while Gene code compiles or runs (SyntaxWarnings about generated
code, NumPy's RuntimeWarnings) are not shown unless `GENE_DEBUG=1`.
"""

from __future__ import annotations

import faulthandler
import numbers
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable
from types import FunctionType
from typing import Any

from gene_jit.py.objects import PythonError, module_of, through_gene_code
from gene_jit.runtime import printer
from gene_jit.runtime.errors import (
    GeneArityError,
    GeneError,
    GeneOverflowError,
    GeneTypeError,
    InternalError,
    debug_enabled,
)
from gene_jit.runtime.values import INT_MAX, INT_MIN, GeneSet, Range, Symbol


def _compiler() -> Any:
    # Imported on first use: importing gene_jit must stay cheap, and builtins register
    # themselves when the runtime library loads.
    import gene_jit.runtime.builtins  # noqa: F401
    from gene_jit.frontend import compiler

    if os.environ.get("GENE_PROFILE"):  # profile the process (gene_jit.profiler.auto)
        from gene_jit.profiler.auto import autostart

        autostart()

    return compiler


class gene_boundary:  # noqa: N801 - used as `with gene_boundary():`, like a function
    """Where Python hands control to Gene code: Python warnings stay inside (Gene has its
    own errors), an exception that is neither a Gene error nor an interrupt or broken
    pipe leaves as an `InternalError`, and a Gene error leaves without gene-jit's own
    frames (the compiler's, for a syntax error; all of them with GENE_DEBUG=1)."""

    def __enter__(self) -> None:
        _report_crashes()
        _report_thread_errors()
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        if not debug_enabled():
            warnings.simplefilter("ignore")

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        self._warnings.__exit__(kind, exc, tb)
        if exc is None or isinstance(exc, InternalError | BrokenPipeError):
            return
        if isinstance(exc, GeneError):
            if not debug_enabled():
                exc.__traceback__ = None  # re-raised from here up
            return
        if isinstance(exc, RecursionError):  # forms nested deeper than the compiler can go
            raise GeneError("stack overflow (recursion too deep)") from None
        if isinstance(exc, Exception):
            from gene_jit.frontend.compiler_errors import internal_error

            raise internal_error(exc) from exc
        # KeyboardInterrupt, SystemExit: on their way


def _report_thread_errors() -> None:
    """A Gene function that Python runs as a thread's target reports its error as Gene
    code does (kind, message, the Gene line), not as the Python exception beneath it;
    any other thread's error goes to the hook that was there before."""
    previous = threading.excepthook
    if getattr(previous, "__gene_hook__", False):
        return

    def hook(args: Any) -> None:
        exc = args.exc_value
        if exc is None or debug_enabled() or not through_gene_code(exc):
            previous(args)
            return
        from gene_jit.frontend.compiler_errors import translate

        try:
            err: BaseException = translate(exc)
        except InternalError as internal:
            err = internal
        except BaseException:  # an interrupt or a broken pipe: Python's own report
            previous(args)
            return
        name = args.thread.name if args.thread is not None else "?"
        text = err.format() if isinstance(err, (GeneError, InternalError)) else str(err)
        if sys.stderr is not None:
            sys.stderr.write(f"Exception in thread {name}:\n{text}\n")

    hook.__gene_hook__ = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _report_crashes() -> None:
    """A crash in native code prints a report instead of ending the process silently
    (gene_jit/ffi/crash.py names the foreign call that crashed)."""
    if not faulthandler.is_enabled():
        try:
            faulthandler.enable()
        except (RuntimeError, ValueError, OSError):  # no stderr to report to
            pass


def eval_source(source: str, filename: str = "<eval>", env: Any = None) -> Any:
    """Run Gene `source` and return the raw Gene value of its last form."""
    if not isinstance(source, str):
        raise GeneTypeError(
            f"gene_jit.eval: expected source text (str), got {type(source).__name__}"
        )
    with gene_boundary():
        return _compiler().run_source(source, filename, env)


def run_program(path: str, args: Iterable[str] = (), command: str = "run") -> Any:
    """Run the Gene file at `path` with `$args` = `args`; the raw value of its last form.
    `command` names the CLI command in the error when the file cannot be read."""
    from gene_jit.runtime.stdlib_io import read_file

    path = str(path)
    text = read_file(command, path)
    with gene_boundary():
        compiler = _compiler()
        env = compiler.new_env(path, [str(a) for a in args])
        return compiler.run_source(text, path, env)


def eval(source: str) -> Any:  # noqa: A001 - the public name is gene_jit.eval
    """Run Gene `source`; the value of the last form, as Python data."""
    return to_python(eval_source(source))


def run_file(path: str, args: Iterable[str] = ()) -> Any:
    """Run a .gene file with `$args` = `args`; the value of its last form, as Python data."""
    if isinstance(args, str | bytes):  # would become one argument per character
        raise GeneTypeError(f"gene_jit.run_file: args must be a list of strings, got {type(args).__name__}")
    args = list(args)
    bad = [a for a in args if not isinstance(a, str)]  # $args holds strings, as from a shell
    if bad:
        raise GeneTypeError(f"gene_jit.run_file: args must be a list of strings, got an element "
                            f"{type(bad[0]).__name__} {bad[0]!r}")
    return to_python(run_program(path, args))


def repr(value: Any) -> str:  # noqa: A001 - the public name is gene_jit.repr
    """The Gene repr text of a value (`[1 "a"]`)."""
    return printer.repr_(value)


def display(value: Any) -> str:
    """The Gene display text of a value, as `println` writes it (`[1 a]`)."""
    return printer.display(value)


def to_python(v: Any) -> Any:
    """A Gene value as plain Python data: symbols become their names, arrays, ranges and
    sets become lists, maps dicts. Everything else passes through."""
    return _to_python(v, {})


def _to_python(v: Any, memo: dict[int, Any]) -> Any:
    cls = type(v)
    if v is None or cls in (bool, int, float, str):
        return v
    if cls is Symbol:
        return v.name
    if id(v) in memo:  # shared or cyclic structure keeps its shape
        return memo[id(v)]
    if cls is list:
        out: list[Any] = []
        memo[id(v)] = out
        out.extend(_to_python(x, memo) for x in v)
        return out
    if cls is dict:
        d: dict[str, Any] = {}
        memo[id(v)] = d
        for k, x in v.items():
            d[k] = _to_python(x, memo)
        return d
    if cls is Range:
        return list(v)
    if cls is GeneSet:
        return [_to_python(x, memo) for x in v.items]
    if cls is FunctionType and hasattr(v, "__gene_name__"):
        return GeneFunction(v)
    return v


class GeneFunction:
    """A Gene function handed to Python (in what `eval` or `run_file` returns). Python
    calls it as a Gene call: a keyword names a Gene `^param` or is an arity error,
    arguments cross as `gene_jit.jit` takes them (NumPy scalars as numbers, ints of 64
    bits), its mistakes leave as the Gene errors Gene code gets, and the result comes
    back as Python data. The Gene function itself is `__wrapped__`."""

    __slots__ = ("__wrapped__", "__name__", "__qualname__")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.__wrapped__ = fn
        self.__name__ = self.__qualname__ = getattr(fn, "__gene_name__", None) or "fn"

    def __call__(self, *args: Any, **kw: Any) -> Any:
        fn = self.__wrapped__
        declared: Any = getattr(fn, "__gene_kwonly__", frozenset())
        for key in kw:
            if key not in declared:
                raise GeneArityError(f"{self.__name__} has no parameter ^{key}")
        gene_args = [_argument(self.__name__, a) for a in args]
        with warnings.catch_warnings():  # as gene_boundary, but Python's errors pass
            if not debug_enabled():
                warnings.simplefilter("ignore")
            try:
                result = fn(*gene_args, **kw)
            except Exception as exc:
                from gene_jit.frontend.compiler_errors import translate

                err = translate(exc)  # raises for a fault of gene-jit
                if isinstance(err, PythonError):
                    raise  # Python code's own exception, from a callback it passed
                raise err from (exc if debug_enabled() and err is not exc else None)
        return to_python(result)

    def __repr__(self) -> str:
        return f"<gene fn {self.__name__}>"


def _argument(name: str, a: Any) -> Any:
    """A Python argument of a Gene function as the Gene value it stands for."""
    cls = type(a)
    if cls is tuple:
        return list(a)
    if cls is int or isinstance(a, numbers.Integral) and not isinstance(a, bool):
        if not INT_MIN <= int(a) <= INT_MAX:
            raise GeneOverflowError(f"{name}: argument {a} does not fit in a 64-bit Gene int")
        return int(a)
    if cls is not float and isinstance(a, numbers.Real) and not isinstance(a, bool):
        return float(a)  # NumPy float scalars
    if module_of(cls) == "numpy" and cls.__name__ in ("bool_", "bool"):
        return bool(a)
    return a


def from_python(v: Any) -> Any:
    """A Python value as a Gene value: tuples become arrays, sets become Gene sets, dict
    keys must be strings, ints must fit in 64 bits, NumPy scalars become ints/floats.
    NumPy arrays, tensors and other objects are kept as they are."""
    return _from_python(v, {})


def _from_python(v: Any, memo: dict[int, Any]) -> Any:
    cls = type(v)
    if v is None or cls is bool or cls is float or cls is str:
        return v
    if cls is int:
        if not INT_MIN <= v <= INT_MAX:
            raise GeneOverflowError(f"from_python: {v} does not fit in a 64-bit Gene int")
        return v
    if id(v) in memo:
        return memo[id(v)]
    if isinstance(v, (list, tuple)):
        out: list[Any] = []
        memo[id(v)] = out
        out.extend(_from_python(x, memo) for x in v)
        return out
    if isinstance(v, dict):
        d: dict[str, Any] = {}
        memo[id(v)] = d
        for k, x in v.items():
            if not isinstance(k, str):
                raise GeneTypeError(
                    f"from_python: map keys must be strings, got {type(k).__name__} {k!r}"
                )
            d[k] = _from_python(x, memo)
        return d
    if isinstance(v, (set, frozenset)):
        return GeneSet([_from_python(x, memo) for x in v])
    if isinstance(v, numbers.Integral):  # NumPy integer scalars (arrays are not Integral)
        return _from_python(int(v), memo)
    if isinstance(v, numbers.Real):  # NumPy float scalars
        return float(v)
    if type(v).__module__ == "numpy" and type(v).__name__ in ("bool_", "bool"):
        return bool(v)
    return v
