"""Printing Gene values: the display form and the repr form (GENE.md 4.3 and 4.4).

* `display(v)`: what `print`/`println`/`str` write. Strings are raw; inside arrays, maps
  and sets the elements are in display form too (strings unquoted); the parts of a gene
  are in repr form. Nil prints `nil` here: dropping a top-level nil argument is the job
  of `print`/`str`, since a nested nil always prints `nil`.
* `repr_(v)`: what `gene-jit eval` and the REPL print. The same, except that strings are
  quoted and escaped everywhere.

Floats follow Nim's `$` (shortest round-trip digits; fixed notation for decimal-point
positions -6..17, else `1e+20` style). Values that are not core Gene values print through
`__gene_repr__()` when they have one (tensors, models), through a printer that another
part registered with `register_printer` (classes, instances), gene-jit's other objects
as `#<kind ...>`, and a Python library's values as `<python TYPE ...>`.
Cyclic containers print `[...]` (or `{...}`, `(...)`, `#[...]`) where they recur.
"""

from __future__ import annotations

import math
import numbers
import re
import types
from collections.abc import Callable
from functools import partial
from typing import Any

from gene_jit.runtime.registry import BUILTINS, LazyBuiltin, Namespace
from gene_jit.runtime.values import (
    PLACEHOLDER,
    EnumMember,
    Gene,
    GeneClass,
    GeneEnum,
    GeneSet,
    Instance,
    Range,
    Symbol,
)

# Extra printers by exact Python type: fn(value, quote) -> text. `quote` is True in repr
# form. Used by parts whose values are not defined in values.py (classes, instances).
_PRINTERS: dict[type, Callable[[Any, bool], str]] = {}


def register_printer(cls: type, fn: Callable[[Any, bool], str]) -> None:
    """Print instances of exactly `cls` with `fn(value, quote)`."""
    _PRINTERS[cls] = fn


def display(v: Any) -> str:
    """The display form of `v` (strings raw, nested strings unquoted)."""
    cls = type(v)
    if cls is str:
        return v
    if cls is int and -_INT_LIMIT <= v < _INT_LIMIT:
        return str(v)
    if cls is float:
        return format_float(v)
    return _fmt(v, False, set())


def repr_(v: Any) -> str:
    """The repr form of `v` (strings quoted and escaped)."""
    return _fmt(v, True, set())


def format_float(x: float) -> str:
    """Nim's `$` for floats: `3.0`, `0.30000000000000004`, `1e+20`, `0.0000001`."""
    text = repr(x)
    if "e" not in text and text[-1] not in "fn":
        # Python's fixed notation (1e-4 <= |x| < 1e16) is already Nim's for that range.
        return text
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    digits, point = _shortest_digits(abs(x))
    n = len(digits)
    if -6 <= point <= 17:
        if point <= 0:
            body = "0." + "0" * (-point) + digits
        elif point >= n:
            body = digits + "0" * (point - n) + ".0"
        else:
            body = digits[:point] + "." + digits[point:]
    else:
        exp = point - 1
        rest = "." + digits[1:] if n > 1 else ""
        body = f"{digits[0]}{rest}e{'+' if exp >= 0 else '-'}{abs(exp)}"
    return sign + body


def _shortest_digits(x: float) -> tuple[str, int]:
    """Digits d (no leading/trailing zeros) and point p with x = 0.d * 10**p, taken from
    Python's repr, which already gives the shortest round-trip digits."""
    text = repr(x)
    mantissa, _, exp_text = text.partition("e")
    exp = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    point = len(int_part) + exp
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0"), point


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def quote_string(s: str) -> str:
    """`"..."` with inner quotes, backslashes and control characters escaped."""
    if not any(c in _ESCAPES for c in s):
        return f'"{s}"'
    return '"' + "".join(_ESCAPES.get(c, c) for c in s) + '"'


def builtin_name(fn: Any) -> str:
    """The Gene name a native function is registered under (`tensor/matmul`)."""
    name = getattr(fn, "__gene_builtin__", None)
    if isinstance(name, str):
        return name
    if isinstance(fn, LazyBuiltin):
        return fn.gene_name
    for key, value in BUILTINS.items():
        if value is fn:
            return key
        if isinstance(value, Namespace):
            for member, mvalue in value.members.items():
                if mvalue is fn:
                    return f"{value.full_name()}/{member}"
    return getattr(fn, "__name__", type(fn).__name__)


_NATIVE_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    partial,
    LazyBuiltin,
)


_INT_LIMIT = 2**63


def _fmt(v: Any, quote: bool, seen: set[int]) -> str:
    if v is None:
        return "nil"
    cls = type(v)
    if cls is str:
        return quote_string(v) if quote else v
    if cls is bool:
        return "true" if v else "false"
    if cls is int:
        if -_INT_LIMIT <= v < _INT_LIMIT:
            return str(v)
        return f"<python int {v}>"  # from Python code: Gene ints are 64-bit (GENE.md)
    if cls is float:
        return format_float(v)
    if cls is Symbol:
        return v.name
    if cls is list or cls is dict or cls is Gene or cls is GeneSet or cls is Instance:
        if id(v) in seen:
            return _CYCLE[cls]
        seen.add(id(v))
        try:
            return _fmt_container(v, quote, seen)
        finally:
            seen.discard(id(v))
    return _fmt_other(v, quote, seen)


_CYCLE: dict[type, str] = {
    list: "[...]",
    dict: "{...}",
    Gene: "(...)",
    GeneSet: "#[...]",
    Instance: "(...)",
}


def _fmt_container(v: Any, quote: bool, seen: set[int]) -> str:
    if type(v) is list:
        return "[" + " ".join(_fmt(x, quote, seen) for x in v) + "]"
    if type(v) is dict:
        if not all(type(k) is str for k in v):  # a Python dict: Gene map keys are strings
            from gene_jit.py.objects import describe

            return describe(v)
        if not quote:  # display form: the text of the keys, as strings show theirs
            return "{" + " ".join(f"^{k} {_fmt(x, quote, seen)}" for k, x in v.items()) + "}"
        return "{" + " ".join(f"^{prop_key(k)} {_fmt(x, quote, seen)}" for k, x in v.items()) + "}"
    if type(v) is GeneSet:
        return "#[" + " ".join(_fmt(x, quote, seen) for x in v.items) + "]"
    if type(v) is Instance:
        parts = [v.cls.name]
        parts.extend(f"^{prop_key(k)} {_fmt(x, True, seen)}" for k, x in v.props.items())
        return "(" + " ".join(parts) + ")"
    if (v.type is _UNQUOTE or v.type is _UNQUOTE_DISCARD) and len(v.children) == 1 and not v.props:
        return v.type.name + _fmt(v.children[0], True, seen)  # `%x` as it was read
    # A gene's parts print in repr form even inside display form (GENE.md 4.3).
    parts = [_fmt(v.type, True, seen)]
    parts.extend(f"^{prop_key(k)} {_fmt(x, True, seen)}" for k, x in v.props.items())
    parts.extend(_fmt(x, True, seen) for x in v.children)
    return "(" + " ".join(parts) + ")"


# A property key the reader takes as written (GENE.md 1.1, 1.6): no character that ends a
# token or starts another property, and no leading `!` (`^!k` is a nil property).
_PLAIN_KEY = re.compile(r'[^\s,"%()\[\]{};\\^!][^\s,"%()\[\]{};\\^]*')
_KEY_SPECIAL = re.compile(r'([\s,"%()\[\]{};\\^])')


def prop_key(key: Any) -> str:
    """`key` as a property name that reads back as the same key: other characters are
    escaped with a backslash (GENE.md 1.1: a backslash escapes a character inside a
    token), and the empty key is written `""`."""
    if type(key) is str and _PLAIN_KEY.fullmatch(key):
        return key
    key = str(key)
    if not key:
        return '""'
    escaped = _KEY_SPECIAL.sub(r"\\\1", key)
    return "\\" + escaped if escaped.startswith("!") else escaped


_UNQUOTE = Symbol("%")
_UNQUOTE_DISCARD = Symbol("%_")


def _fmt_other(v: Any, quote: bool, seen: set[int]) -> str:
    if v is PLACEHOLDER:
        return "_"
    printer = _PRINTERS.get(type(v))
    if printer is not None:
        return printer(v, quote)
    gene_repr = getattr(type(v), "__gene_repr__", None)
    if gene_repr is not None:
        return str(gene_repr(v))
    type_repr = getattr(v, "__gene_type_repr__", None) if isinstance(v, type) else None
    if type_repr is not None:  # a type gene-jit made (an ffi struct)
        return str(type_repr())
    if isinstance(v, Range):
        return _fmt_range(v, quote, seen)
    if isinstance(v, Namespace):
        return f"(ns {v.full_name()})"
    if isinstance(v, GeneClass):
        return f"(class {v.name})"
    if isinstance(v, GeneEnum):
        return f"(enum {v.name})"
    if isinstance(v, EnumMember):
        return f"{v.enum.name}/{v.name}"
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Rational):  # Fraction: exact
        return format_float(float(v))
    if isinstance(v, str):  # subclasses of the core types print as the core type
        return _fmt(str(v), quote, seen)
    if isinstance(v, (list, tuple)):
        return _fmt(list(v), quote, seen)
    if callable(v):
        gene_name = getattr(v, "__gene_name__", _NO_NAME)
        if gene_name is not _NO_NAME:
            return f"(fn {gene_name})" if gene_name else "(fn)"
        own = (getattr(v, "__module__", None) or "").startswith("gene_jit")  # not a library's
        if (isinstance(v, _NATIVE_TYPES) and own) or hasattr(v, "__gene_builtin__"):
            return f"(native-fn {builtin_name(v)})"
    from gene_jit.py.objects import describe, module_of

    if module_of(type(v)).startswith("gene_jit"):  # gene-jit's own object, not a library's
        return _own_object(v)
    return describe(v)


_NO_NAME = object()


def _own_object(v: Any) -> str:
    """A gene-jit object without a printer of its own (a model, a chat session, a
    generation): `#<model ...>` from its `<model ...>` repr, a `(macro m)` repr as it is,
    `#<kind text>` from another repr, else `#<chat-session>`."""
    name = "".join("-" + c.lower() if c.isupper() else c for c in type(v).__name__).lstrip("-")
    text = ""
    if type(v).__repr__ is not object.__repr__:
        try:
            text = repr(v)
        except Exception:  # noqa: BLE001 - printing never fails on a broken __repr__
            text = ""
    if "\n" in text or len(text) > 200:
        text = ""
    if text.startswith("<") and text.endswith(">"):
        return "#" + text
    if text.startswith("(") and text.endswith(")"):  # already in Gene's form: (macro m)
        return text
    return f"#<{name} {text}>" if text else f"#<{name}>"


def _fmt_range(r: Range, quote: bool, seen: set[int]) -> str:
    start, end, step = (_fmt(x, quote, seen) for x in (r.start, r.end, r.step))
    if not r.inclusive:
        # `(range a b)` excludes the end, `a..b` would read back as including it.
        return f"(range {start} {end})" if r.step == 1 else f"(range {start} {end} {step})"
    return f"{start}..{end}" if r.step == 1 else f"{start}..{end} step {step}"
