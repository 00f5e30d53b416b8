"""Conversion between forms (syntax with spans) and runtime values (data).

This module owns the one mapping between the two, used by quote, `$parse` and macro
arguments (`form_to_value`) and by `eval` and macro results (`value_to_form`):

| form                 | value                                          |
|----------------------|------------------------------------------------|
| Lit                  | its value (None, bool, int, float, str)        |
| Sym                  | Symbol (also `_`: as data it is the symbol)    |
| Quote(x)             | the value of x (`:x` as data is the symbol x)  |
| Arr / SetF / MapF    | list / GeneSet / dict with str keys            |
| GeneF                | Gene(type = value of head or None, props, children) |
| Interp               | Gene(Symbol("#Str"), children = the parts' values) |
| Unquote(x)           | Gene(Symbol("%"), children = [value of x]); `%_x` uses Symbol("%_") |

`value_to_form` inverts it; parts of a value that `remember_origin` tied to a form get
that form's spans back, so code rebuilt by `eval` and macros points at its source. The
placeholder `_` becomes `Sym("_")`; a Python value that
has no form (a function, a tensor, a dict with non-string keys) becomes a `Lit` holding
it, which the compiler embeds as a constant.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from gene_jit.frontend.forms import (
    NO_SPAN,
    Arr,
    Form,
    GeneF,
    Interp,
    Lit,
    MapF,
    Quote,
    SetF,
    Span,
    Sym,
    Unquote,
)
from gene_jit.runtime.errors import GeneError, InternalError
from gene_jit.runtime.values import PLACEHOLDER, Gene, GeneSet, Symbol

STR_TYPE = Symbol("#Str")
UNQUOTE_TYPE = Symbol("%")
UNQUOTE_DISCARD_TYPE = Symbol("%_")

__all__ = [
    "STR_TYPE",
    "UNQUOTE_DISCARD_TYPE",
    "UNQUOTE_TYPE",
    "form_to_value",
    "origin_of",
    "remember_origin",
    "value_to_form",
]


def form_to_value(form: Form) -> Any:
    """The Gene value that `form` denotes as data (what `:form` evaluates to)."""
    try:
        return _to_value(form)
    except RecursionError:
        raise GeneError("the form is nested too deeply to turn into data", form.span) from None


def _to_value(form: Form) -> Any:
    convert = _TO_VALUE.get(type(form))
    if convert is None:
        raise InternalError(f"form_to_value got a {type(form).__name__}, which is not a form")
    return convert(form)


def _gene_value(form: GeneF) -> Gene:
    head = None if form.head is None else _to_value(form.head)
    props = {key: _to_value(value) for key, value in form.props}
    return Gene(head, props, [_to_value(child) for child in form.children])


def _unquote_value(form: Unquote) -> Gene:
    kind = UNQUOTE_DISCARD_TYPE if form.discard else UNQUOTE_TYPE
    return Gene(kind, {}, [_to_value(form.form)])


_TO_VALUE: dict[type, Callable[[Any], Any]] = {
    Lit: lambda f: f.value,
    Sym: lambda f: Symbol(f.name),
    Quote: lambda f: _to_value(f.form),
    Unquote: _unquote_value,
    Arr: lambda f: [_to_value(x) for x in f.items],
    SetF: lambda f: GeneSet([_to_value(x) for x in f.items]),
    MapF: lambda f: {key: _to_value(value) for key, value in f.entries},
    GeneF: _gene_value,
    Interp: lambda f: Gene(STR_TYPE, {}, [_to_value(p) for p in f.parts]),
}


# Containers made by `remember_origin` (quote and macro arguments) -> the form they
# came from, so that code rebuilt from them by `eval`/`$caller_eval` reports the
# original file, line and column (Hy's lost-position problem after macros). Keyed by id;
# each entry holds its value, so the id cannot be reused while the entry lives. Bounded:
# the oldest entries go first, which only costs the precision of error positions.
_ORIGINS: OrderedDict[int, tuple[Any, Form]] = OrderedDict()
ORIGINS_MAX = 4096
_CONTAINERS = (list, dict, GeneSet, Gene)


def remember_origin(value: Any, form: Form) -> Any:
    """Note that container `value` was made from `form` (by `form_to_value`); returns it."""
    if isinstance(value, _CONTAINERS):
        if len(_ORIGINS) >= ORIGINS_MAX:
            _ORIGINS.popitem(last=False)
        _ORIGINS[id(value)] = (value, form)
    return value


def origin_of(value: Any) -> Form | None:
    """The form container `value` was made from, if it is remembered."""
    entry = _ORIGINS.get(id(value))
    return entry[1] if entry is not None and entry[0] is value else None


def value_to_form(value: Any, span: Span = NO_SPAN, *, file: str | None = None) -> Form:
    """A form that denotes `value`.

    Parts of `value` that came from forms (see `remember_origin`) keep those forms'
    spans, as long as the value still has the form's shape there; every other node gets
    the span of its nearest located parent, or `span`. With `file`, only spans in that
    file are reused (generated code is compiled under one file name).
    Raises `GeneError` for a value that contains itself (it has no finite form).
    """
    try:
        return _Unparse(file).form(value, span, None)
    except RecursionError:
        raise GeneError("the value is nested too deeply to turn into code", span) from None


_HINT_KIND: dict[type, tuple[type, ...]] = {
    list: (Arr,),
    dict: (MapF,),
    GeneSet: (SetF,),
    Gene: (GeneF, Interp, Unquote),
}


class _Unparse:
    """One `value_to_form` walk. `hint` is the form a value is believed to come from."""

    def __init__(self, file: str | None) -> None:
        self.file = file
        self.active: set[int] = set()  # containers on the current path, to catch cycles

    def span_of(self, hint: Form | None, kinds: tuple[type, ...], span: Span) -> Span:
        if hint is None or not isinstance(hint, kinds):
            return span
        s = hint.span
        ok = s.line > 0 and (self.file is None or s.file == self.file)
        return s if ok else span

    def form(self, value: Any, span: Span, hint: Form | None) -> Form:
        if isinstance(hint, Quote):
            hint = hint.form  # `:x` denotes x's value
        if value is None or isinstance(value, (bool, int, float, str)):
            return Lit(self.span_of(hint, (Lit,), span), value)
        if isinstance(value, Symbol):
            return Sym(self.span_of(hint, (Sym,), span), value.name)
        if value is PLACEHOLDER:
            return Sym(self.span_of(hint, (Sym,), span), "_")
        if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
            return Lit(span, value)
        if not isinstance(value, _CONTAINERS):
            return Lit(span, value)
        origin = origin_of(value)
        if origin is not None:
            hint = origin
        kinds = _HINT_KIND[type(value)] if type(value) in _HINT_KIND else ()
        if hint is not None and not isinstance(hint, kinds):
            hint = None
        span = self.span_of(hint, kinds, span)
        if id(value) in self.active:
            raise GeneError("cannot turn a value that contains itself into code", span)
        self.active.add(id(value))
        try:
            return self.container(value, span, hint)
        finally:
            self.active.discard(id(value))

    def items(
        self, values: list[Any], span: Span, hints: tuple[Form, ...] | None
    ) -> tuple[Form, ...]:
        if hints is None or len(hints) != len(values):
            return tuple(self.form(x, span, None) for x in values)
        return tuple(self.form(x, span, h) for x, h in zip(values, hints, strict=True))

    def entries(
        self, values: dict[str, Any], span: Span, hints: tuple[tuple[str, Form], ...]
    ) -> tuple[tuple[str, Form], ...]:
        by_key = dict(hints)
        return tuple((k, self.form(v, span, by_key.get(k))) for k, v in values.items())

    def container(self, value: Any, span: Span, hint: Form | None) -> Form:
        if isinstance(value, list):
            return Arr(span, self.items(value, span, hint.items if isinstance(hint, Arr) else None))
        if isinstance(value, dict):
            return MapF(
                span, self.entries(value, span, hint.entries if isinstance(hint, MapF) else ())
            )
        if isinstance(value, GeneSet):
            hints = hint.items if isinstance(hint, SetF) else None
            return SetF(span, self.items(list(value.items), span, hints))
        return self.gene(value, span, hint)

    def gene(self, value: Gene, span: Span, hint: Form | None) -> Form:
        kind = value.type
        children = value.children
        if not value.props:
            if (kind is UNQUOTE_TYPE or kind is UNQUOTE_DISCARD_TYPE) and len(children) == 1:
                inner = hint.form if isinstance(hint, Unquote) else None
                return Unquote(
                    span, self.form(children[0], span, inner), kind is UNQUOTE_DISCARD_TYPE
                )
            if kind is STR_TYPE:
                parts = hint.parts if isinstance(hint, Interp) else None
                return Interp(span, self.items(children, span, parts))
        g = hint if isinstance(hint, GeneF) else None
        head = None if kind is None else self.form(kind, span, g.head if g else None)
        props = self.entries(value.props, span, g.props if g else ())
        return GeneF(span, head, props, self.items(children, span, g.children if g else None))
