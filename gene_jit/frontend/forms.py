"""Forms: what the reader produces and what the compilers consume.

A form is a small node that carries its source span; forms are never mutated after
the reader builds them (they are plain slotted dataclasses because frozen ones cost
twice as much to build). Forms are not runtime
values: `to_value` turns a form into the Gene value it denotes as data (for quote,
`$parse`, macro arguments), and `from_value` turns a value back into a form (for `eval`
and for code that macros build).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, unsafe_hash=True)
class Span:
    """A position in a source text: 1-based line and column, plus the end position."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_SPAN = Span("<generated>", 0, 0)


@dataclass(slots=True, unsafe_hash=True)
class Form:
    span: Span = field(compare=False, repr=False)


@dataclass(slots=True, unsafe_hash=True)
class Lit(Form):
    """nil, true, false, an int, a float or a string (`value` is None/bool/int/float/str)."""

    value: Any = None


@dataclass(slots=True, unsafe_hash=True)
class Sym(Form):
    """A symbol. A complex symbol `a/b/c` keeps its full text; `parts` splits it on `/`."""

    name: str = ""

    @property
    def parts(self) -> list[str]:
        if self.name == "/" or "/" not in self.name:
            return [self.name]
        return self.name.split("/")

    @property
    def is_complex(self) -> bool:
        return self.name != "/" and "/" in self.name


@dataclass(slots=True, unsafe_hash=True)
class Quote(Form):
    """`:datum`."""

    form: Form = None  # type: ignore[assignment]


@dataclass(slots=True, unsafe_hash=True)
class Unquote(Form):
    """`%datum` (discard=False) and `%_datum` (discard=True)."""

    form: Form = None  # type: ignore[assignment]
    discard: bool = False


@dataclass(slots=True, unsafe_hash=True)
class Arr(Form):
    """`[a b c]`."""

    items: tuple[Form, ...] = ()


@dataclass(slots=True, unsafe_hash=True)
class SetF(Form):
    """`#[a b c]`."""

    items: tuple[Form, ...] = ()


@dataclass(slots=True, unsafe_hash=True)
class MapF(Form):
    """`{^k v ...}`; keys are strings, in source order."""

    entries: tuple[tuple[str, Form], ...] = ()


@dataclass(slots=True, unsafe_hash=True)
class GeneF(Form):
    """`(head ^k v child ...)`. `head` is None for `()`.

    Seed-style trailing `:kw value` pairs stay in `children` as `Quote(Sym)` followed by
    the value; the compiler decides per callee whether they become props.
    """

    head: Form | None = None
    props: tuple[tuple[str, Form], ...] = ()
    children: tuple[Form, ...] = ()


@dataclass(slots=True, unsafe_hash=True)
class Interp(Form):
    """`#"a#{x}b"`: string parts (Lit str) and expression forms, in order."""

    parts: tuple[Form, ...] = ()


def to_value(form: Form) -> Any:
    """The Gene value that `form` denotes as data (what `:form` evaluates to)."""
    from gene_jit.frontend.convert import form_to_value

    return form_to_value(form)


def from_value(value: Any, span: Span = NO_SPAN) -> Form:
    """A form that evaluates to / denotes `value` (used by `eval` and macros)."""
    from gene_jit.frontend.convert import value_to_form

    return value_to_form(value, span)
