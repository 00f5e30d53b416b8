"""Turning Python exceptions that escape Gene code into Gene errors with Gene spans.

Generated code is compiled with the Gene file name and Gene line numbers, so the
innermost traceback frame whose file is a Gene file gives the span of the failing form.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from gene_jit.frontend.core import COMPARE_OPS
from gene_jit.frontend.forms import Form, GeneF, Span
from gene_jit.runtime.builtins import raised_in_gene_code
from gene_jit.runtime.errors import (
    GeneArityError,
    GeneError,
    GeneIndexError,
    GeneNameError,
    GeneOverflowError,
    GeneTypeError,
    InternalError,
)
from gene_jit.runtime.requirements import MissingDependencyError, missing_message

# File names of compiled Gene sources (tracebacks are matched against these).
GENE_FILES: set[str] = set()

_PY_KINDS = {
    "int": "int",
    "float": "float",
    "str": "string",
    "list": "array",
    "dict": "map",
    "NoneType": "nil",
    "bool": "bool",
    "Symbol": "symbol",
    "Gene": "gene",
    "tuple": "array",
    "function": "function",
    "Instance": "instance",
    "GeneClass": "class",
    "Range": "range",
    "Tensor": "tensor",
}


def _kind(py: str) -> str:
    return _PY_KINDS.get(py, py)


def _a(py: str) -> str:
    """The Gene kind of Python type name `py`, with its article: `an array`."""
    kind = _kind(py)
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


# The operator compiled at each Gene position (file, line, column), None where forms
# with different operators share one (a macro's expansion). A comparison that Python
# refuses is either the program's own `<` or the int64 range check of an inline `+ - *`
# whose result is not a number (`("a" * 2)` is "aa" in Python); the position tells.
_OPERATOR_AT: dict[tuple[str, int, int], str | None] = {}
# The operands of an inline `+ - *` at a position, where each is a name or a constant
# (read again from the failed frame to name both kinds, as the slow path would).
Operand = tuple[str, Any]  # ("name", python name) or ("const", value)
_OPERANDS_AT: dict[tuple[str, int, int], tuple[Operand, Operand]] = {}
_MISSING = object()


def _key(span: Span) -> tuple[str, int, int]:
    return (span.file, max(span.line, 1), max(span.col, 1))


def note_operator(span: Span, op: str, operands: tuple[Operand | None, Operand | None] = (None, None)) -> None:
    key = _key(span)
    if _OPERATOR_AT.setdefault(key, op) != op:
        _OPERATOR_AT[key] = None
    left, right = operands
    if left is not None and right is not None:
        _OPERANDS_AT[key] = (left, right)


def _operand_kinds(key: tuple[str, int, int], frame: FrameType | None) -> str | None:
    """`int and string`: the kinds of the operands of the `+ - *` at `key`, read from
    the frame that failed; None when an operand is not a plain name or constant."""
    from gene_jit.runtime.ops import kind_name

    operands = _OPERANDS_AT.get(key)
    if operands is None or frame is None:
        return None
    values = []
    for how, what in operands:
        value = what if how == "const" else frame.f_locals.get(what, frame.f_globals.get(what, _MISSING))
        if value is _MISSING:
            return None
        values.append(kind_name(value))
    return " and ".join(values)


def _compared(m: re.Match[str], span: Span | None, frame: FrameType | None) -> str:
    op, left, right = m.group(1), _kind(m.group(2)), _kind(m.group(3))
    gene_op = _OPERATOR_AT.get(_key(span)) if span else None
    # a chain of comparisons in both directions shares its position; `<=` is also the
    # range check of an inline + - *, which a macro's expansion may share it with
    if gene_op == op or (gene_op is None and op != "<=" and op in COMPARE_OPS):
        return f"{op} compares numbers only, got {left} and {right}"  # as runtime.ops says
    kinds = {left, right} - {"int", "float"}
    got = " and ".join(sorted(kinds)) or "non-numbers"
    if gene_op in ("+", "-", "*"):
        assert span is not None
        if gene_op == "+" and len(kinds) == 1:  # Python's + joins two strings or two arrays only
            got = f"{got} and {got}"
        return f"{gene_op} expects numbers, got {_operand_kinds(_key(span), frame) or got}"
    return f"expected numbers, got {got}"


def _multiplied(m: re.Match[str], span: Span | None, frame: FrameType | None) -> str:
    """`x * y` where Python repeats a sequence (a string or an array) y times and y is
    not an int."""
    kinds = _operand_kinds(_key(span), frame) if span is not None else None
    return f"* expects numbers, got {kinds or 'a string or array and ' + _kind(m.group(1))}"


_MULTIPLIED = re.compile(r"can't multiply sequence by non-int of type '(\w+)'")


_COMPARED = re.compile(r"'(\S+)' not supported between instances of '(\w+)' and '(\w+)'")

# CPython's TypeError wording, and what a Gene user reads instead (first match wins).
_TYPE_ERROR_REWRITES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"unsupported operand type\(s\) for (\S+): '(\w+)' and '(\w+)'"),
        lambda m: f"{m.group(1)} expects numbers, got {_kind(m.group(2))} and {_kind(m.group(3))}",
    ),
    (
        re.compile(r"can only concatenate (\w+) \(not \"(\w+)\"\) to"),
        lambda m: f"+ expects numbers, got {_kind(m.group(1))} and {_kind(m.group(2))}",
    ),
    (
        re.compile(r"bad operand type for unary (\S+): '(\w+)'"),
        lambda m: f"{m.group(1)} expects a number, got {_kind(m.group(2))}",
    ),
    (
        # a macro expands where the compiler already knows it: one defined by code that
        # runs later (inside a function body) reaches a call as a plain value
        re.compile(r"'Macro' object is not callable"),
        lambda m: "a macro defined while the program runs cannot be called; define it at the "
        "top level, before the code that uses it",
    ),
    (
        re.compile(r"'(\w+)' object is not callable"),
        lambda m: f"{_a(m.group(1))} is not callable",
    ),
    (
        re.compile(r"'(\w+)' object is not (iterable|subscriptable)"),
        lambda m: f"{_a(m.group(1))} is not {m.group(2)}",
    ),
]


def _rewrite_type_error(msg: str, span: Span | None = None, frame: FrameType | None = None) -> str:
    compared = _COMPARED.search(msg)
    if compared:
        return _compared(compared, span, frame)
    multiplied = _MULTIPLIED.search(msg)
    if multiplied:
        return _multiplied(multiplied, span, frame)
    for pattern, rewrite in _TYPE_ERROR_REWRITES:
        m = pattern.search(msg)
        if m:
            return rewrite(m)
    return msg


def _params(text: str) -> str:
    """Python's `'a', 'b' and 'c'` as Gene parameter names: `a, b and c`."""
    return re.sub(r"'(\w+)'", lambda m: m.group(1).replace("_", "-"), text)


def _plural(n: str, word: str) -> str:
    return f"{n} {word}" + ("" if n == "1" else "s")


# CPython's arity wording after `f() `, and the Gene wording (`f` is the Gene name that
# gene_jit.runtime.registry gives builtins).
_ARITY_REWRITES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"missing (\d+) required (?:positional |keyword-only )?arguments?: (.*)"),
        lambda m: f"missing {'argument' if m.group(1) == '1' else 'arguments'} "
        f"{_params(m.group(2))}",
    ),
    (
        re.compile(r"takes (?:from (\d+) to )?(\d+) positional arguments? but (\d+) (?:was|were) given"),
        lambda m: f"takes {m.group(1) + ' to ' if m.group(1) else ''}"
        f"{_plural(m.group(2), 'argument')}, got {m.group(3)}",
    ),
    (
        re.compile(r"got an unexpected keyword argument '(\w+)'"),
        lambda m: f"has no parameter ^{m.group(1).replace('_', '-')}",
    ),
    (
        re.compile(r"got multiple values for argument '(\w+)'"),
        lambda m: f"parameter {m.group(1).replace('_', '-')} given twice",
    ),
]


def _arity_message(msg: str) -> str | None:
    """The Gene arity error for CPython's `f() missing 1 required ...` and its kin, or
    None when `msg` is not one."""
    m = re.match(r"(\S+)\(\) (.*)", msg)
    if m is None:
        return None
    for pattern, rewrite in _ARITY_REWRITES:
        found = pattern.fullmatch(m.group(2))
        if found:
            return f"{m.group(1)}: {rewrite(found)}"
    if re.match(r"missing \d+ required |takes .* given", m.group(2)):  # rarer wordings
        return f"{m.group(1)}: {_params(m.group(2))}"
    return None


# Python exception kinds that running a Gene program can cause through the program's
# own mistakes (bad operands, bad indexes, files that are not there, too much memory).
# Anything else escaping Gene code is a fault of gene-jit, reported as an InternalError.
_USER_KINDS: tuple[type[BaseException], ...] = (
    ArithmeticError,
    RecursionError,
    LookupError,
    TypeError,
    ValueError,
    OSError,
    MemoryError,
)

# Not errors of the program at all: the reader of our output went away, or the user
# interrupted; they travel to the CLI unchanged.
_PASS_THROUGH: tuple[type[BaseException], ...] = (BrokenPipeError, KeyboardInterrupt, SystemExit)


def _innermost_frame(exc: BaseException) -> FrameType | None:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame if tb is not None else None


def convert(exc: BaseException) -> GeneError | None:
    """A Gene error for a Python exception raised while running Gene code, or None when
    the exception is not the program's mistake (a fault of gene-jit)."""
    if isinstance(exc, GeneError):
        return exc
    from gene_jit.py.objects import python_error

    raised_by_python = python_error(exc, GENE_FILES)  # a Python library the program called
    if raised_by_python is not None and not isinstance(exc, (*_PASS_THROUGH, RecursionError)):
        return raised_by_python
    if isinstance(exc, ModuleNotFoundError):
        missing = missing_message(exc.name or "", "this operation")
        if missing is not None:
            return MissingDependencyError(missing)
        return None
    if isinstance(exc, (NameError, AttributeError)):
        # Only generated code looks Gene names up; the same error inside gene-jit's
        # own modules is a bug there.
        if not raised_in_gene_code(exc):
            return None
        if isinstance(exc, AttributeError):
            return GeneError(f"no member: {exc}")
        m = re.search(r"name '(.+)' is not defined", str(exc))
        name = m.group(1).strip() if m else str(exc)
        return GeneNameError(f"{name} is not defined")
    if isinstance(exc, _PASS_THROUGH) or not isinstance(exc, _USER_KINDS):
        return None
    return _convert_user_kind(exc)


def _convert_user_kind(exc: BaseException) -> GeneError:
    if isinstance(exc, RecursionError):
        return GeneError("stack overflow (recursion too deep)")
    if isinstance(exc, ZeroDivisionError):
        return GeneError("division by zero")
    if isinstance(exc, OverflowError):
        return GeneOverflowError(f"overflow: {exc}")
    if isinstance(exc, IndexError):
        return GeneIndexError(f"index out of range: {exc}")
    if isinstance(exc, KeyError):
        return GeneError(f"key not found: {exc}")
    if isinstance(exc, TypeError):
        arity = _arity_message(str(exc))
        if arity is not None:
            return GeneArityError(arity)
        frame = _innermost_frame(exc) if raised_in_gene_code(exc) else None
        span = gene_span(exc.__traceback__) if frame is not None else None
        return GeneTypeError(_rewrite_type_error(str(exc), span, frame))
    if isinstance(exc, ValueError) and "truth value of an array" in str(exc):
        # An inline operator's result check met a NumPy array (arithmetic on a row).
        return GeneTypeError("arithmetic expects numbers, got a NumPy array")
    return GeneError(f"{type(exc).__name__}: {exc}")


def gene_span(tb: TracebackType | None) -> Span | None:
    """The span of the innermost traceback frame that runs Gene code."""
    span: Span | None = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename in GENE_FILES:
            line, col = tb.tb_lineno, 0
            for pos in _positions(code, tb.tb_lasti):
                line, col = pos
            span = Span(code.co_filename, line, col + 1)
        tb = tb.tb_next
    return span


def _call_around(span: Span) -> Span:
    """The Gene call that holds the form at `span`: tier 0 runs out of stack at whatever
    Python call comes first (an operator's helper, say), tier 1 at the next Gene call,
    and "stack overflow" is reported at that call's span in both."""
    from gene_jit.frontend import core
    from gene_jit.frontend.special_fn import FN_META

    def path(form: Form) -> list[Form] | None:
        if (form.span.line, form.span.col) == (span.line, span.col):
            return [form]
        for child in _children(form):
            found = path(child)
            if found is not None:
                return [form, *found]
        return None

    for _name, fn_form, *_ in list(FN_META.values()):
        if fn_form.span.file != span.file or fn_form.span.line > span.line:
            continue
        forms = path(fn_form)
        for form in reversed(forms or []):
            if isinstance(form, GeneF) and not form.props:
                try:
                    node = core.resolve(form)
                except GeneError:
                    continue
                if isinstance(node, core.MethodCall | core.Call) or (
                        isinstance(node, core.Named) and node.role in (core.Role.NAME, core.Role.METHOD)):
                    return form.span
        if forms:
            break
    return span


def _children(form: Form) -> list[Form]:
    if isinstance(form, GeneF):
        return [*([form.head] if form.head is not None else []), *form.children]
    items = getattr(form, "items", None)
    return list(items) if items is not None else []


def _positions(code: Any, lasti: int) -> list[tuple[int, int]]:
    try:
        positions = list(code.co_positions())
    except AttributeError:  # pragma: no cover - Python < 3.11
        return []
    idx = lasti // 2
    if 0 <= idx < len(positions):
        line, _, col, _ = positions[idx]
        if line is not None and col is not None:
            return [(line, col)]
    return []


def translate(exc: BaseException) -> GeneError:
    """`convert`, plus the Gene span of where it happened when the error has none.

    An exception that is not the program's mistake is not returned: a fault of gene-jit
    is raised as an `InternalError` (its cause keeps the Python traceback), and a broken
    pipe or an interrupt is raised again unchanged. So `catch` in Gene code never
    swallows them."""
    if isinstance(exc, InternalError):
        raise exc
    err = convert(exc)
    if err is None:
        if isinstance(exc, _PASS_THROUGH):
            raise exc
        raise internal_error(exc, gene_span(exc.__traceback__)) from exc
    if err.span is None:
        err.span = gene_span(exc.__traceback__)
        if isinstance(exc, RecursionError) and err.span is not None:
            err.span = _call_around(err.span)
    if err is not exc:
        err.__cause__ = exc
        err.__traceback__ = exc.__traceback__
    return err


def internal_error(exc: BaseException, span: Span | None = None) -> InternalError:
    """The InternalError reporting `exc`, a fault of gene-jit met at `span` (the Gene
    code that was running)."""
    err = InternalError(f"{type(exc).__name__}: {exc}", span)
    err.__cause__ = exc
    return err


def compile_failure(exc: BaseException, span: Span) -> InternalError:
    """The InternalError for `exc` escaping the compiler while it compiled the form at
    `span`: compiling never fails but with a Gene error, so this is a bug."""
    err = InternalError(f"{type(exc).__name__}: {exc}", span, "compiling")
    err.__cause__ = exc
    return err
