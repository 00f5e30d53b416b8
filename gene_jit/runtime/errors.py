"""Error types.

Two families: `GeneError` (and subclasses) for the user's mistakes, each with a span,
printed as `file:line:col: message`, the source line and a caret; and `InternalError`,
which says it is a bug in gene-jit. Python frames are hidden from users unless
`GENE_DEBUG=1`.
"""

from __future__ import annotations

import os
from typing import Any

from gene_jit.frontend.forms import Span

# Source texts by file name, so that errors can show the offending line.
_SOURCES: dict[str, str] = {}


def remember_source(filename: str, text: str) -> None:
    _SOURCES[filename] = text


def source_line(filename: str, line: int) -> str | None:
    text = _SOURCES.get(filename)
    if text is None:
        try:
            with open(filename, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            return None
        _SOURCES[filename] = text
    lines = text.splitlines()
    if 1 <= line <= len(lines):
        return lines[line - 1]
    return None


def debug_enabled() -> bool:
    return os.environ.get("GENE_DEBUG", "") not in ("", "0")


def caret_indent(text: str, col: int) -> str:
    """What goes before a caret under column `col` of `text` on a terminal: the line's
    own tabs, and two columns for each wide (East Asian) character."""
    import unicodedata

    return "".join("\t" if c == "\t" else "  " if unicodedata.east_asian_width(c) in "WF" else " "
                   for c in text[: max(col - 1, 0)])


class GeneError(Exception):
    """A mistake in a Gene program (or a value thrown by one), with its location."""

    kind = "error"

    def __init__(self, message: str, span: Span | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.value = value if value is not None else message
        self.context: list[str] = []

    def with_span(self, span: Span | None) -> GeneError:
        if self.span is None and span is not None:
            self.span = span
        return self

    def add_context(self, note: str) -> GeneError:
        self.context.append(note)
        return self

    def format(self) -> str:
        """`file:line:col: kind: message`, then the source line and a caret."""
        head = f"{self.kind}: {self.message}"
        if self.span is None or self.span.line <= 0:
            lines = [head]
        else:
            lines = [f"{self.span}: {head}"]
            text = source_line(self.span.file, self.span.line)
            if text is not None:
                lines.append("    " + text)
                lines.append("    " + caret_indent(text, self.span.col) + "^")
        for note in self.context:
            lines.append(f"  {note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def __gene_repr__(self) -> str:
        """How Gene prints a caught error (`$ex`): its kind and message."""
        return f"{self.kind}: {self.message}"

    def __gene_get__(self, key: str) -> Any:
        """`$ex/message` and `$ex/kind` of a caught error."""
        if key == "message":
            return self.message
        if key == "kind":
            return self.kind
        raise GeneTypeError(f"a caught {self.kind} has members message and kind, not {key}")


class GeneSyntaxError(GeneError):
    kind = "syntax error"


class GeneNameError(GeneError):
    kind = "name error"


class GeneTypeError(GeneError):
    kind = "type error"


class GeneArityError(GeneError):
    kind = "arity error"


class GeneOverflowError(GeneError):
    kind = "overflow error"


class GeneIndexError(GeneError):
    kind = "index error"


class GeneThrow(GeneError):
    """A value thrown by `(throw v)` that nobody caught."""

    kind = "uncaught exception"


class InternalError(Exception):
    """Something gene-jit itself got wrong. `span` is the Gene code it was running or
    compiling when it happened, if any; the Python exception behind it is the `__cause__`."""

    def __init__(self, message: str, span: Span | None = None, doing: str = "running") -> None:
        super().__init__(f"internal error (this is a bug in gene-jit): {message}")
        self.message = message
        self.span = span
        self.doing = doing  # what gene-jit was doing with the code at `span`

    def format(self) -> str:
        """The message, then where the Gene program was when it happened."""
        lines = [str(self.args[0])]
        if self.span is not None and self.span.line > 0:
            lines.append(f"  while {self.doing} {self.span}")
            text = source_line(self.span.file, self.span.line)
            if text is not None:
                lines.append("    " + text)
        return "\n".join(lines)
