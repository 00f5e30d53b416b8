"""A stable text rendering of forms, one line per node with its span: what the reader's
golden tests compare, and a debugging view of what the reader produced."""

from __future__ import annotations

import json
from typing import Any

from gene_jit.frontend.forms import (
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


def lit_text(value: Any) -> str:
    """A literal as Gene writes it (`nil`, `true`, `false`, numbers)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def dump(forms: list[Form] | tuple[Form, ...]) -> str:
    """One line per node, children indented: `Kind detail @line:col-end_line:end_col`."""
    lines: list[str] = []
    for form in forms:
        _dump(form, "", 0, lines)
    return "\n".join(lines) + ("\n" if lines else "")


def _where_span(span: Span) -> str:
    return f"@{span.line}:{span.col}-{span.end_line}:{span.end_col}"


def _dump(form: Form, label: str, depth: int, out: list[str]) -> None:
    pad = "  " * depth + label
    at = _where_span(form.span)
    if isinstance(form, Lit):
        out.append(f"{pad}Lit {_dump_value(form.value)} {at}")
    elif isinstance(form, Sym):
        out.append(f"{pad}Sym {form.name} {at}")
    elif isinstance(form, Quote):
        out.append(f"{pad}Quote {at}")
        _dump(form.form, "", depth + 1, out)
    elif isinstance(form, Unquote):
        out.append(f"{pad}Unquote{' discard' if form.discard else ''} {at}")
        _dump(form.form, "", depth + 1, out)
    elif isinstance(form, (Arr, SetF)):
        out.append(f"{pad}{'Arr' if isinstance(form, Arr) else 'Set'} {at}")
        for item in form.items:
            _dump(item, "", depth + 1, out)
    elif isinstance(form, MapF):
        out.append(f"{pad}Map {at}")
        for key, value in form.entries:
            _dump(value, f"^{key} = ", depth + 1, out)
    elif isinstance(form, GeneF):
        out.append(f"{pad}Gene {at}")
        if form.head is None:
            out.append("  " * (depth + 1) + "head = none")
        else:
            _dump(form.head, "head = ", depth + 1, out)
        for key, value in form.props:
            _dump(value, f"^{key} = ", depth + 1, out)
        for child in form.children:
            _dump(child, "", depth + 1, out)
    elif isinstance(form, Interp):
        out.append(f"{pad}Interp {at}")
        for part in form.parts:
            _dump(part, "", depth + 1, out)
    else:
        out.append(f"{pad}{type(form).__name__} {at}")


def _dump_value(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return lit_text(value)
    if isinstance(value, int):
        return f"int {value}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        return f"str {json.dumps(value, ensure_ascii=False)}"
    return f"object {value!r}"
