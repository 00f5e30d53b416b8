"""The core Gene builtins and the `gene_builtin` decorator that the stdlib modules use.

Importing this module registers the whole standard library into `registry.BUILTINS`:
the core functions below (printing, `str`, `assert`, `len`, `get`, `range`, number
parsing, `type-of`, `rand`, `exit`) and the `stdlib_*` modules (strings, collections,
io, json, time, math).

Builtins receive Python values (see values.py). A call with the wrong number of
arguments, or an unknown named argument, raises `GeneArityError` naming the builtin; a
wrong kind of argument raises `GeneTypeError`. Either way no Python traceback reaches
the user.
"""

from __future__ import annotations

import functools
import inspect
import random
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from gene_jit.runtime.errors import GeneArityError, GeneError, GeneTypeError
from gene_jit.runtime.ops_ndarray import array_get, array_get_default, is_ndarray
from gene_jit.runtime.printer import display, repr_
from gene_jit.runtime.registry import Namespace, builtin
from gene_jit.runtime.values import (
    INT_MAX,
    INT_MIN,
    PLACEHOLDER,
    EnumMember,
    Gene,
    GeneClass,
    GeneEnum,
    GeneSet,
    Instance,
    Range,
    Symbol,
    as_gene_number,
)

F = TypeVar("F", bound=Callable[..., Any])


def raised_in_gene_code(exc: BaseException) -> bool:
    """`exc` was raised by compiled Gene code (a function a builtin called back), whose
    own line the error shows once the program's boundary converts it."""
    from gene_jit.frontend.compiler_errors import GENE_FILES

    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename in GENE_FILES


def gene_builtin(name: str, *aliases: str, ns: str | None = None) -> Callable[[F], F]:
    """Register `fn` under Gene `name` (and `aliases`), inside namespace `ns` if given.

    The registered callable turns a Python binding failure (wrong argument count,
    unknown keyword) into a `GeneArityError`, and a `TypeError`/`ValueError` raised while
    running on bad input into a `GeneTypeError`, both naming the builtin.
    """

    def decorate(wrapped: F) -> F:
        # Stacked registrations wrap the original function, each naming itself in errors.
        fn: Callable[..., Any] = getattr(wrapped, "__gene_raw__", wrapped)
        sig = inspect.signature(fn)
        primary = f"{ns}/{name}" if ns else name
        wrappers = [_wrapped(fn, sig, f"{ns}/{n}" if ns else n, primary) for n in (name, *aliases)]
        for gene_name, wrapper in zip((name, *aliases), wrappers, strict=True):
            builtin(gene_name, ns=ns)(wrapper)
        return wrappers[0]  # type: ignore[return-value]

    return decorate


def _wrapped(fn: Callable[..., Any], sig: inspect.Signature, full: str, primary: str) -> Callable[..., Any]:
    """`fn` registered as `full`; an alias names itself in the errors `fn` raises under
    its first name (`(int x)` says `int:`, not `to_i:`)."""
    prefix = f"{primary}: "

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GeneError as exc:
            if full != primary and exc.message.startswith(prefix) and not raised_in_gene_code(exc):
                exc.message = f"{full}: {exc.message[len(prefix):]}"
                exc.args = (exc.message,)
            raise
        except (TypeError, ValueError) as exc:
            if raised_in_gene_code(exc):
                raise  # a Gene function this builtin called: the error is at its line
            try:
                sig.bind(*args, **kwargs)
            except TypeError:
                raise arity_error(full, sig, args, kwargs) from None
            raise GeneTypeError(f"{full}: {exc}") from exc
        except MemoryError as exc:  # a size the program asked for (a tensor of 2^40 values)
            raise GeneError(f"{full}: not enough memory: {exc}") from None

    wrapper.__gene_builtin__ = full  # type: ignore[attr-defined]
    wrapper.__gene_raw__ = fn  # type: ignore[attr-defined]
    return wrapper


def arity_error(
    name: str, sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> GeneArityError:
    """A message such as `len: expected 1 argument, got 2`."""
    params = list(sig.parameters.values())
    named = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    for key in kwargs:
        if key not in named and not has_var_kw:
            return GeneArityError(f"{name}: unknown named argument ^{key.replace('_', '-')}")
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    low = sum(1 for p in positional if p.default is p.empty)
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        expected = f"at least {low}"
    elif low == len(positional):
        expected = str(low)
    else:
        expected = f"{low} to {len(positional)}"
    plural = "" if expected in ("1", "at least 1") else "s"
    return GeneArityError(f"{name}: expected {expected} argument{plural}, got {len(args)}")


def type_name(v: Any) -> str:
    """The Gene name of `v`'s kind, as `type-of` returns it and error messages use it."""
    if v is None:
        return "nil"
    kind = _TYPE_NAMES.get(type(v))
    if kind is not None:
        return kind
    if v is PLACEHOLDER:
        return "placeholder"
    if isinstance(v, Namespace):
        return "namespace"
    if callable(v) and not isinstance(v, GeneClass):
        return "fn" if hasattr(v, "__gene_name__") else "native-fn"
    gene_type = getattr(v, "__gene_type__", None)
    if isinstance(gene_type, str):
        return gene_type
    return type(v).__name__


_TYPE_NAMES: dict[type, str] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    Symbol: "symbol",
    list: "array",
    dict: "map",
    Gene: "gene",
    GeneSet: "set",
    Range: "range",
    GeneClass: "class",
    Instance: "instance",
    GeneEnum: "enum",
    EnumMember: "enum-member",
}


def expect(name: str, v: Any, kinds: type | tuple[type, ...], what: str) -> Any:
    """`v` if it is one of `kinds` (bools never pass as ints), else a GeneTypeError."""
    if isinstance(v, kinds) and not (isinstance(v, bool) and bool not in _as_tuple(kinds)):
        return v
    n = as_gene_number(v)  # a NumPy scalar as the int or float it holds
    if n is not v and isinstance(n, kinds):
        return n
    got = "nil" if v is None else f"{type_name(v)} {repr_(v)}"
    raise GeneTypeError(f"{name}: expected {what}, got {got}")


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def check_int(name: str, v: int) -> int:
    """`v`, or a GeneOverflowError when it left the 64-bit range."""
    if INT_MIN <= v <= INT_MAX:
        return v
    from gene_jit.runtime.errors import GeneOverflowError

    raise GeneOverflowError(f"{name}: integer overflow ({v} does not fit in 64 bits)")


def truthy(v: Any) -> bool:
    """Gene truthiness: only nil and false are false."""
    return v is not None and v is not False


# --- printing and strings -------------------------------------------------------------


def _print_text(args: tuple[Any, ...]) -> str:
    # A top-level nil prints as nothing (GENE.md decisions); nested nils print `nil`.
    return " ".join("" if a is None else display(a) for a in args)


@gene_builtin("print")
def gene_print(*args: Any, stderr: Any = False) -> None:
    """`(print a b ...)`: display forms joined by one space, no newline."""
    out = sys.stderr if truthy(stderr) else sys.stdout
    out.write(_print_text(args))


@gene_builtin("println")
def gene_println(*args: Any, stderr: Any = False) -> None:
    """`(println a b ...)`: as `print`, then a newline."""
    out = sys.stderr if truthy(stderr) else sys.stdout
    out.write(_print_text(args) + "\n")


@gene_builtin("str", "$")
def gene_str(*args: Any) -> str:
    """`(str a b ...)`: the display forms concatenated; nil adds nothing."""
    return "".join(display(a) for a in args if a is not None)


@gene_builtin("repr")
def gene_repr(v: Any) -> str:
    """`(repr v)`: the repr form of `v` (strings quoted)."""
    return repr_(v)


@gene_builtin("assert")
def gene_assert(cond: Any, message: Any = None) -> None:
    """`(assert c ["msg"])`: a Gene error `assertion failed: msg` when `c` is falsy."""
    if truthy(cond):
        return None
    if message is None:
        raise GeneError("assertion failed")
    raise GeneError(f"assertion failed: {display(message)}")


@gene_builtin("type-of", "type_of")
def type_of(v: Any) -> str:
    """`(type-of v)`: the kind of `v` as a string (`"int"`, `"array"`, `"fn"`, ...)."""
    return type_name(v)


# --- sizes and element access ---------------------------------------------------------


@gene_builtin("len", "size", "length")
def gene_len(coll: Any) -> int:
    """`(len x)`: characters of a string, elements of an array/set/range, entries of a
    map, children of a gene."""
    if isinstance(coll, (str, list, dict, tuple)):
        return len(coll)
    if isinstance(coll, Gene):
        return len(coll.children)
    if isinstance(coll, GeneSet):
        return len(coll.items)
    if coll is not None and hasattr(coll, "__len__") and not isinstance(coll, type):
        return len(coll)
    raise GeneTypeError(
        f"len: expected a string, array, map, set, gene or range, got {type_name(coll)}"
    )


@gene_builtin("get")
def gene_get(coll: Any, key: Any, default: Any = None) -> Any:
    """`(get coll key [default])`: an array/string element by index, a map value or gene
    prop by key, a gene child by index, a namespace member; `default` when missing."""
    if isinstance(key, Symbol):
        key = key.name
    if isinstance(coll, dict):
        return coll.get(key, default) if isinstance(key, str) else default
    if isinstance(coll, (list, str, tuple)):
        return _index(coll, key, default)
    if isinstance(coll, Gene):
        if isinstance(key, str):
            return coll.props.get(key, default)
        return _index(coll.children, key, default)
    if isinstance(coll, Instance):
        return coll.props.get(key, default) if isinstance(key, str) else default
    if isinstance(coll, Namespace):
        return coll.get(key, default) if isinstance(key, str) else default
    if coll is None:
        return default
    if is_ndarray(coll):  # tier 1's semantics: wraps negative indexes, raises out of range
        return array_get(coll, key) if default is None else array_get_default(coll, key, default)
    raise GeneTypeError(f"get: cannot look up a key in {type_name(coll)} {repr_(coll)}")


def _index(seq: Any, key: Any, default: Any) -> Any:
    if type(key) is not int:
        return default
    if 0 <= key < len(seq):
        return seq[key]
    return default


# --- numbers --------------------------------------------------------------------------


@gene_builtin("to_i", "int", "to-i")
def to_i(v: Any) -> int:
    """`(to_i x)`: an int from a string (decimal), a float (truncated) or an int."""
    if type(v) is int:
        return v
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise GeneTypeError(f"to_i: cannot convert {display(v)} to an int")
        return check_int("to_i", int(v))
    if isinstance(v, str):
        try:
            return check_int("to_i", int(v.strip(), 10))
        except ValueError:
            raise GeneTypeError(f"to_i: cannot parse {repr_(v)} as an int") from None
    raise GeneTypeError(f"to_i: expected a string or number, got {type_name(v)}")


@gene_builtin("to_f", "float", "to-f")
def to_f(v: Any) -> float:
    """`(to_f x)`: a float from a string, an int or a float."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            raise GeneTypeError(f"to_f: cannot parse {repr_(v)} as a float") from None
    raise GeneTypeError(f"to_f: expected a string or number, got {type_name(v)}")


_ONE_ARGUMENT: Any = object()  # `(range n)` (a nil end is the program's mistake)


@gene_builtin("range")
def gene_range(start: Any, end: Any = _ONE_ARGUMENT, step: Any = 1) -> Range:
    """`(range a b [step])`: a range from a to b, end excluded; `(range n)` is 0..n-1."""
    if end is _ONE_ARGUMENT:
        start, end = 0, start
    for v in (start, end, step):
        expect("range", v, (int, float), "a number")
    if step == 0:
        raise GeneTypeError("range: step must not be 0")
    return Range(start, end, step, inclusive=False)


@gene_builtin("rand", ns="gene")
@gene_builtin("rand")
def gene_rand(a: Any = None, b: Any = None) -> Any:
    """`(rand)`: a float in [0, 1); `(rand n)`: an int in [0, n); `(rand a b)`: [a, b)."""
    if a is None:
        return random.random()
    lo, hi = (0, a) if b is None else (a, b)
    expect("rand", lo, int, "an int")
    expect("rand", hi, int, "an int")
    if hi <= lo:
        raise GeneTypeError(f"rand: empty range [{lo}, {hi})")
    return random.randrange(lo, hi)


@gene_builtin("exit")
def gene_exit(code: Any = 0) -> None:
    """`(exit [code])`: end the program with exit status `code`."""
    expect("exit", code, int, "an int exit code")
    if not 0 <= code <= 255:
        # the system keeps only the low 8 bits: 300 would end the program with status 44
        raise GeneError(f"exit: the exit status must be from 0 to 255, got {code}")
    sys.stdout.flush()
    raise SystemExit(code)


def _register_stdlib() -> None:
    # The stdlib modules register themselves on import; they import this module for
    # `gene_builtin`, so they are loaded last.
    from gene_jit.runtime import (  # noqa: F401
        methods,
        stdlib_collections,
        stdlib_io,
        stdlib_json,
        stdlib_math,
        stdlib_strings,
        stdlib_time,
    )


_register_stdlib()
