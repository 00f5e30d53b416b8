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

`value_to_form` inverts it. The placeholder `_` becomes `Sym("_")`; a Python value that
has no form (a function, a tensor, a dict with non-string keys) becomes a `Lit` holding
it, which the compiler embeds as a constant.
"""

from __future__ import annotations

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

__all__ = ["STR_TYPE", "UNQUOTE_DISCARD_TYPE", "UNQUOTE_TYPE", "form_to_value", "value_to_form"]


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


def value_to_form(value: Any, span: Span = NO_SPAN) -> Form:
    """A form that denotes `value`; every node gets `span`.

    Raises `GeneError` for a value that contains itself (it has no finite form).
    """
    try:
        return _to_form(value, span, set())
    except RecursionError:
        raise GeneError("the value is nested too deeply to turn into code", span) from None


def _to_form(value: Any, span: Span, active: set[int]) -> Form:
    if value is None or isinstance(value, (bool, int, float, str)):
        return Lit(span, value)
    if isinstance(value, Symbol):
        return Sym(span, value.name)
    if value is PLACEHOLDER:
        return Sym(span, "_")
    if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
        return Lit(span, value)
    if not isinstance(value, (list, dict, GeneSet, Gene)):
        return Lit(span, value)
    # `active` holds the containers on the current path, to catch cycles.
    if id(value) in active:
        raise GeneError("cannot turn a value that contains itself into code", span)
    active.add(id(value))
    try:
        return _container_form(value, span, active)
    finally:
        active.discard(id(value))


def _container_form(value: Any, span: Span, active: set[int]) -> Form:
    if isinstance(value, list):
        return Arr(span, tuple(_to_form(x, span, active) for x in value))
    if isinstance(value, dict):
        return MapF(span, tuple((k, _to_form(v, span, active)) for k, v in value.items()))
    if isinstance(value, GeneSet):
        return SetF(span, tuple(_to_form(x, span, active) for x in value.items))
    return _gene_form(value, span, active)


def _gene_form(value: Gene, span: Span, active: set[int]) -> Form:
    kind = value.type
    children = value.children
    if not value.props:
        if (kind is UNQUOTE_TYPE or kind is UNQUOTE_DISCARD_TYPE) and len(children) == 1:
            inner = _to_form(children[0], span, active)
            return Unquote(span, inner, kind is UNQUOTE_DISCARD_TYPE)
        if kind is STR_TYPE:
            return Interp(span, tuple(_to_form(x, span, active) for x in children))
    head = None if kind is None else _to_form(kind, span, active)
    props = tuple((k, _to_form(v, span, active)) for k, v in value.props.items())
    return GeneF(span, head, props, tuple(_to_form(x, span, active) for x in children))
