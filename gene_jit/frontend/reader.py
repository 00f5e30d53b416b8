"""The reader: Gene source text to forms (`gene_jit.frontend.forms`) with exact spans.

This module owns the lexical syntax of GENE.md section 1 plus the seed-dialect additions
that gene-jit accepts: `;` line comments (outside strings), `{:a 1}` read as `{^a 1}`,
and character literals `'a'` / `'\\n'`, which read as a one-character string `Lit`.

Entry points: `read`, `read_one`, `is_complete` (for the REPL's multi-line input) and
`dump` (a stable text rendering of forms for the golden tests, defined in form_dump.py).

The parser is a hand-written scanner over the string with an explicit stack of open
frames rather than recursion, so deeply nested input cannot overflow the Python stack.
Only string interpolation (`#"..#{x}.."`) re-enters the parser, once per level of strings
nested inside interpolations.

Spans: `line`/`col` are 1-based and name the first character of the form;
`end_line`/`end_col` name the position just past its last character (exclusive end).

Choices where GENE.md leaves room or describes a VM quirk:
- `1_000`, `0x10`, `1/2`, dates and units are syntax errors (the VM errors on most of
  them; silently reading `1_000` as `1 _000` would only hide a mistake).
- `'x` that is not a character literal is an error with a hint (Gene quotes with `:`).
- `#{...}` inside an interpolated string holds one expression, or a map when its first
  character is `^`.
"""

from __future__ import annotations

import gc
import json
import re
from bisect import bisect_right
from typing import Any

from gene_jit.frontend.form_dump import dump, lit_text
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
from gene_jit.runtime.errors import GeneSyntaxError, remember_source
from gene_jit.runtime.values import INT_MAX, INT_MIN

__all__ = ["IncompleteInputError", "dump", "is_complete", "read", "read_one"]


class IncompleteInputError(GeneSyntaxError):
    """A syntax error caused by the input ending early: an unclosed form, string or
    comment. The REPL asks for another line instead of reporting it."""


# Whitespace and line comments. `#` starts a comment only before space, tab, `!`, `#`,
# CR, LF or the end of the text; otherwise it is a dispatch (`#[`, `#"`, ...) or symbol
# text (`#Str`). Block comments `#<...>#` are handled in code (their end rule is odd).
_WS = re.compile(r"(?:[\s,]+|;[^\n]*|#[ \t!#\r][^\n]*|#(?=\n|\Z))*")
# A token runs up to whitespace, `,`, `"`, `%`, a bracket or `;`. `\c` escapes one char.
_TOKEN = re.compile(r'(?:[^\s,"%()\[\]{};\\]|\\.)+', re.S)
# A property name stops at `^` as well, so that `^a^b` nests.
_KEY = re.compile(r'(?:[^\s,"%()\[\]{};\\^]|\\.)+', re.S)
_TOKEN_ESCAPE = re.compile(r"\\(.)", re.S)
# Whitespace, then either a plain token (group 2: one that cannot start with a dispatch
# character or an escape) or the position of the next character (group 1).
_NEXT = re.compile(_WS.pattern + r'()([^\s,"%()\[\]{};\\#\':^\x00-\x08\x0e-\x1f\x7f]'
                   r'(?:[^\s,"%()\[\]{};\\\x00-\x08\x0e-\x1f\x7f]|\\.)*)?', re.S)
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?")
_DIGITS = frozenset("0123456789")
_SLOW_START = frozenset("0123456789+-")  # tokens that may be numbers
_NAMED: dict[str, Any] = {"nil": None, "true": True, "false": False}

# String bodies: each regex stops at the next character that needs attention.
_PLAIN_CHUNK = re.compile(r'[^"\\]*')
_INTERP_CHUNK = re.compile(r'[^"\\#]*')
_TRIPLE_CHUNK = re.compile(r'(?:[^"\\]|"(?!""))*')
_TRIPLE_INTERP_CHUNK = re.compile(r'(?:[^"\\#]|"(?!""))*')
_TRIPLE_OPEN = re.compile(r"[ \t]*\r?\n")
_TRIPLE_CLOSE = re.compile(r"\r?\n[ \t]*\Z")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}

# Frame kinds of the parser stack.
_ROOT_ALL = 0  # the whole text: forms until the end
_ROOT_ONE = 1  # exactly one form (an interpolated `#(...)`, `#[...]` or `#{^k v}`)
_ROOT_BRACE = 2  # one expression up to `}` (an interpolated `#{expr}`)
_GENE = 3
_ARRAY = 4
_SET = 5
_MAP = 6
_QUOTE = 7
_UNQUOTE = 8
_UNQUOTE_DISCARD = 9
_DECORATOR = 10

_OPEN_KIND = {"(": _GENE, "[": _ARRAY, "{": _MAP}
_OPENER = {_GENE: "(", _ARRAY: "[", _SET: "#[", _MAP: "{", _ROOT_BRACE: "#{"}
_CLOSER = {_GENE: ")", _ARRAY: "]", _SET: "]", _MAP: "}", _ROOT_BRACE: "}"}
_PREFIX = {_QUOTE: ":", _UNQUOTE: "%", _UNQUOTE_DISCARD: "%_", _DECORATOR: "#@"}

# Where a gene is in its single group of properties.
_NO_PROPS, _IN_PROPS, _AFTER_PROPS = 0, 1, 2


class _PropMap(dict[str, Any]):
    """Nested properties under construction (`^a^b 1`), remembering where they began."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        super().__init__()
        self.span = span


class _Frame:
    """An open form on the parser stack."""

    __slots__ = ("kind", "start", "items", "head", "has_head", "props", "pending", "group", "done")

    def __init__(self, kind: int, start: int) -> None:
        self.kind = kind
        self.start = start  # offset of the opener
        self.items: list[Form] = []
        self.head: Form | None = None
        self.has_head = False
        self.props: _PropMap | None = None
        # A `^key` (path and span) still waiting for its value.
        self.pending: tuple[list[str], Span] | None = None
        self.group = _NO_PROPS
        self.done = False


def _describe(form: Form) -> str:
    """A short name for a form in error messages."""
    if isinstance(form, Lit):
        if isinstance(form.value, str):
            return f"the string {json.dumps(form.value, ensure_ascii=False)}"
        return f"the literal {lit_text(form.value)}"
    if isinstance(form, Sym):
        return f"the symbol {form.name}"
    if isinstance(form, Quote):
        return "a quoted form (:...)"
    names = {
        Arr: "an array",
        SetF: "a set",
        MapF: "a map",
        GeneF: "a gene",
        Interp: "an interpolated string",
        Unquote: "an unquote (%...)",
    }
    return names.get(type(form), "a form")


class _Reader:
    """One pass over one text. Offsets index `text`; spans are computed on demand."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.n = len(text)
        self.file = filename
        self.line_starts = [0]
        self.line_starts.extend(m.end() for m in re.finditer("\n", text))

    # -- positions and errors -------------------------------------------------------

    def _loc(self, off: int) -> tuple[int, int]:
        i = bisect_right(self.line_starts, off) - 1
        return i + 1, off - self.line_starts[i] + 1

    def _span(self, start: int, end: int) -> Span:
        starts = self.line_starts
        i = bisect_right(starts, start) - 1
        # Most forms end on the line they start on: skip the second search then.
        if i + 1 < len(starts) and end >= starts[i + 1]:
            j = bisect_right(starts, end) - 1
        else:
            j = i
        return Span(self.file, i + 1, start - starts[i] + 1, j + 1, end - starts[j] + 1)

    def _fail(self, message: str, start: int, end: int | None = None) -> GeneSyntaxError:
        return GeneSyntaxError(message, self._span(start, start + 1 if end is None else end))

    def _incomplete(self, message: str, start: int) -> IncompleteInputError:
        return IncompleteInputError(message, self._span(start, start + 1))

    def _where(self, off: int) -> str:
        line, col = self._loc(off)
        return f"line {line}, col {col}"

    # -- the main loop ----------------------------------------------------------------

    def run(self, root: _Frame, pos: int) -> int:
        """Read forms into `root` from `pos` until `root` is done; return the end offset."""
        text, n, file, starts = self.text, self.n, self.file, self.line_starts
        stack = [root]
        next_match = _NEXT.match
        while not root.done:
            m = next_match(text, pos)
            pos = m.start(1)  # type: ignore[union-attr]
            if m.lastindex == 2:  # type: ignore[union-attr]
                # Fast path: a plain token. Most are symbols on one line, inside a gene
                # or an array, so build and place those inline (this loop is the hot spot).
                end = m.end(2)  # type: ignore[union-attr]
                tok = m.group(2)  # type: ignore[union-attr]
                if tok[0] in _SLOW_START or tok in _NAMED or "\\" in tok:
                    form = self._atom(tok, pos, end)
                else:
                    i = bisect_right(starts, pos) - 1
                    col = pos - starts[i]
                    form = Sym(Span(file, i + 1, col + 1, i + 1, col + 1 + end - pos), tok)
                pos = end
                top = stack[-1]
                if top.kind == _ARRAY or (
                    top.kind == _GENE
                    and top.group != _IN_PROPS
                    and top.pending is None
                    and top.has_head
                ):
                    top.items.append(form)
                else:
                    self._deliver(stack, form)
                continue
            if text.startswith("#<", pos):
                pos = self._block_comment(pos)
                continue
            if pos >= n:
                self._at_eof(stack)
                return pos
            c = text[pos]
            if c in "([{":
                stack.append(_Frame(_OPEN_KIND[c], pos))
                pos += 1
            elif c in ")]}":
                pos = self._close(stack, pos)
            elif c == '"':
                form, pos = self._string(pos, pos, interp=False)
                self._deliver(stack, form)
            elif c == ":":
                stack.append(_Frame(_QUOTE, pos))
                pos += 1
            elif c == "%":
                discard = text.startswith("%_", pos)
                stack.append(_Frame(_UNQUOTE_DISCARD if discard else _UNQUOTE, pos))
                pos += 2 if discard else 1
            elif c == "^" and stack[-1].kind in (_GENE, _MAP):
                pos = self._prop(stack[-1], pos)
            elif c == "#":
                pos = self._hash(stack, pos)
            elif c == "'":
                form, pos = self._char(pos)
                self._deliver(stack, form)
            elif c < " " or c == "\x7f":  # NUL and the like: invisible where the error shows the line
                raise GeneSyntaxError(f"unexpected control character U+{ord(c):04X} in the source",
                                      self._span(pos, pos + 1))
            else:
                form, pos = self._token(pos)
                self._deliver(stack, form)
        return pos

    def _skip(self, pos: int) -> int:
        """Skip whitespace and comments."""
        text = self.text
        while True:
            pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
            if not text.startswith("#<", pos):
                return pos
            pos = self._block_comment(pos)

    def _block_comment(self, pos: int) -> int:
        # It ends at the first `>#` whose `>` is not itself preceded by `>` (GENE.md 1.1).
        i = pos + 2
        while True:
            j = self.text.find(">#", i)
            if j < 0:
                raise self._incomplete(
                    "unterminated block comment: expected '>#' to close the '#<' here", pos
                )
            if j - 1 >= pos + 2 and self.text[j - 1] == ">":
                i = j + 1
                continue
            return j + 2

    def _at_eof(self, stack: list[_Frame]) -> None:
        """The text ended: fine at the top level, an incomplete-input error otherwise."""
        top = stack[-1]
        if len(stack) == 1 and top.kind == _ROOT_ALL:
            return
        end = self._where(self.n)
        if top.kind in _PREFIX:
            what = (
                "the form that '#@' decorates"
                if top.kind == _DECORATOR
                else (f"a form after '{_PREFIX[top.kind]}'")
            )
            err = self._incomplete(f"expected {what}, but the input ended ({end})", top.start)
        elif top.pending is not None:
            path, span = top.pending
            err = IncompleteInputError(
                f"expected a value for property ^{'^'.join(path)}, but the input ended ({end})",
                span,
            )
        else:
            opener = _OPENER.get(top.kind, "(")
            closer = _CLOSER.get(top.kind, ")")
            err = self._incomplete(
                f"expected '{closer}' to close the '{opener}' at {self._where(top.start)}, "
                f"but the input ended ({end})",
                top.start,
            )
        outer = next((f for f in stack if f.kind in _OPENER), None)
        if outer is not None and outer is not top:
            err.add_context(
                f"the outermost unclosed '{_OPENER[outer.kind]}' is at {self._where(outer.start)}"
            )
        raise err

    def _close(self, stack: list[_Frame], pos: int) -> int:
        c = self.text[pos]
        top = stack[-1]
        if top.kind in _PREFIX:
            what = (
                "the form that '#@' decorates"
                if top.kind == _DECORATOR
                else (f"a form after '{_PREFIX[top.kind]}'")
            )
            raise self._fail(f"expected {what}, got '{c}'", pos)
        if top.kind not in _CLOSER:
            raise self._fail(f"unexpected '{c}': there is no open form for it to close", pos)
        expected = _CLOSER[top.kind]
        if c != expected:
            raise self._fail(
                f"expected '{expected}' to close the '{_OPENER[top.kind]}' at "
                f"{self._where(top.start)}, got '{c}'",
                pos,
            )
        if top.pending is not None:
            key = "^".join(top.pending[0])
            raise self._fail(f"expected a value for property ^{key}, got '{c}'", pos)
        if top.kind == _ROOT_BRACE:
            top.done = True
            return pos + 1
        stack.pop()
        self._deliver(stack, self._build(top, pos + 1))
        return pos + 1

    def _build(self, frame: _Frame, end: int) -> Form:
        span = self._span(frame.start, end)
        kind = frame.kind
        if kind == _GENE:
            return GeneF(span, frame.head, self._props(frame.props), tuple(frame.items))
        if kind == _ARRAY:
            return Arr(span, tuple(frame.items))
        if kind == _SET:
            return SetF(span, tuple(frame.items))
        return MapF(span, self._props(frame.props))

    def _props(self, props: _PropMap | None) -> tuple[tuple[str, Form], ...]:
        if not props:
            return ()
        return tuple(
            (key, MapF(value.span, self._props(value)) if isinstance(value, _PropMap) else value)
            for key, value in props.items()
        )

    def _deliver(self, stack: list[_Frame], form: Form) -> None:
        """Hand a finished form to the innermost open frame (closing prefixes it fills)."""
        while True:
            top = stack[-1]
            kind = top.kind
            if kind in (_QUOTE, _UNQUOTE, _UNQUOTE_DISCARD):
                stack.pop()
                line, col = self._loc(top.start)
                span = Span(self.file, line, col, form.span.end_line, form.span.end_col)
                if kind == _QUOTE:
                    form = Quote(span, form)
                else:
                    form = Unquote(span, form, kind == _UNQUOTE_DISCARD)
                continue
            if kind == _DECORATOR:
                if not top.items:
                    top.items.append(form)
                    return
                stack.pop()
                line, col = self._loc(top.start)
                span = Span(self.file, line, col, form.span.end_line, form.span.end_col)
                form = GeneF(span, top.items[0], (), (form,))
                continue
            break
        if top.pending is not None:
            path, key_span = top.pending
            top.pending = None
            self._set_prop(top, path, key_span, form)
        elif kind == _GENE:
            if not top.has_head:
                top.head = form
                top.has_head = True
            else:
                top.items.append(form)
                if top.group == _IN_PROPS:
                    top.group = _AFTER_PROPS
        elif kind == _MAP:
            # Seed dialect: `{:a 1}` means `{^a 1}`.
            if isinstance(form, Quote) and isinstance(form.form, Sym):
                top.pending = ([form.form.name], form.span)
            else:
                raise GeneSyntaxError(
                    f"expected a property '^key value' in a map, got {_describe(form)}",
                    form.span,
                )
        elif kind == _ROOT_BRACE and top.items:
            raise GeneSyntaxError(
                "expected '}' after the interpolated expression (one expression per '#{...}')",
                form.span,
            )
        else:
            top.items.append(form)
            if kind == _ROOT_ONE:
                top.done = True

    # -- properties ---------------------------------------------------------------------

    def _prop(self, frame: _Frame, pos: int) -> int:
        """Read `^k`, `^^k`, `^!k` or a nested `^a^b...` key starting at `pos`."""
        if frame.pending is not None:
            key = "^".join(frame.pending[0])
            raise self._fail(f"expected a value for property ^{key}, got another property", pos)
        if frame.kind == _GENE and frame.group == _AFTER_PROPS:
            raise self._fail(
                "expected children only: a gene has one group of properties, and this one "
                "comes after children that follow the earlier properties",
                pos,
            )
        text, n = self.text, self.n
        start = pos
        path: list[str] = []
        while True:
            flag = text[pos + 1] if pos + 1 < n else ""
            if flag in ("^", "!"):
                key, pos = self._key(pos + 2, pos)
                path.append(key)
                span = self._span(start, pos)
                # `^!k` is nil, but nested `^a^!b` is false (GENE.md 1.6).
                value = True if flag == "^" else (None if len(path) == 1 else False)
                self._set_prop(frame, path, span, Lit(span, value))
                break
            key, pos = self._key(pos + 1, pos)
            path.append(key)
            if pos < n and text[pos] == "^":
                continue
            frame.pending = (path, self._span(start, pos))
            break
        if frame.kind == _GENE:
            frame.group = _IN_PROPS
        return pos

    def _key(self, pos: int, caret: int) -> tuple[str, int]:
        if self.text.startswith('""', pos):  # the empty key, as the printer writes it
            return "", pos + 2
        m = _KEY.match(self.text, pos)
        if m is None:
            raise self._fail(f"expected a property name after '{self.text[caret:pos]}'", caret)
        key = m.group()
        if "\\" in key:
            key = _TOKEN_ESCAPE.sub(r"\1", key)
        return key, m.end()

    def _set_prop(self, frame: _Frame, path: list[str], span: Span, value: Form) -> None:
        if frame.props is None:
            frame.props = _PropMap(span)
        node = frame.props
        for i, key in enumerate(path[:-1]):
            sub = node.get(key)
            if sub is None:
                sub = node[key] = _PropMap(span)
            elif not isinstance(sub, _PropMap):
                raise GeneSyntaxError(
                    f"property ^{'^'.join(path[: i + 1])} is given both a value and nested "
                    "properties",
                    span,
                )
            node = sub
        last = path[-1]
        if last in node:
            what = (
                "both a value and nested properties"
                if isinstance(node[last], _PropMap)
                else "twice"
            )
            raise GeneSyntaxError(f"property ^{'^'.join(path)} is given {what}", span)
        node[last] = value

    # -- atoms --------------------------------------------------------------------------

    def _hash(self, stack: list[_Frame], pos: int) -> int:
        """`#[` set, `#@` decorator, `#"` interpolation, or a symbol like `#Str`."""
        nxt = self.text[pos + 1] if pos + 1 < self.n else ""
        if nxt == "[":
            stack.append(_Frame(_SET, pos))
            return pos + 2
        if nxt == "@":
            stack.append(_Frame(_DECORATOR, pos))
            return pos + 2
        if nxt == '"':
            form, end = self._string(pos, pos + 1, interp=True)
            self._deliver(stack, form)
            return end
        if nxt == "/":
            raise self._fail("regex literals (#/.../) are not supported", pos, pos + 2)
        if nxt in ("{", "("):
            raise self._fail(
                f"unexpected '#{nxt}': '#{{...}}' and '#(...)' interpolate only inside "
                '#"..." strings',
                pos,
                pos + 2,
            )
        form, end = self._token(pos)
        self._deliver(stack, form)
        return end

    def _token(self, pos: int) -> tuple[Form, int]:
        m = _TOKEN.match(self.text, pos)
        if m is None:  # only a lone backslash at the very end
            raise self._fail("expected a character after '\\'", pos)
        end = m.end()
        return self._atom(m.group(), pos, end), end

    def _atom(self, tok: str, pos: int, end: int) -> Form:
        """A symbol, number or named literal from the token text `tok` at `pos`."""
        span = self._span(pos, end)
        if "\\" in tok:
            return Sym(span, _TOKEN_ESCAPE.sub(r"\1", tok))
        c = tok[0]
        if c in _DIGITS or (c in "+-" and len(tok) > 1 and tok[1] in _DIGITS):
            return self._number(tok, span)
        if tok in _NAMED:
            return Lit(span, _NAMED[tok])
        return Sym(span, tok)

    def _number(self, tok: str, span: Span) -> Lit:
        if _NUMBER.fullmatch(tok):
            if "." in tok or "e" in tok or "E" in tok:
                value = float(tok)
                if value in (float("inf"), float("-inf")):
                    raise GeneSyntaxError(f"float literal {tok} is too large for a double", span)
                return Lit(span, value)
            ivalue = int(tok)
            if not INT_MIN <= ivalue <= INT_MAX:
                raise GeneSyntaxError(
                    f"integer literal {tok} is out of the 64-bit range "
                    f"[{INT_MIN}, {INT_MAX}] (write a float such as {tok}.0 instead)",
                    span,
                )
            return Lit(span, ivalue)
        body = tok.lstrip("+-")
        if body[:2] in ("0x", "0X"):
            msg = f"expected a decimal number, got {tok}: hex literals are not supported"
        elif "_" in tok:
            msg = f"expected a number, got {tok}: '_' digit separators are not supported"
        elif re.fullmatch(r"[0-9]+/[0-9]+", body):
            msg = f"expected a number, got {tok}: ratio literals are not supported"
        else:
            msg = (
                f"expected a number, got {tok}: a token that starts with a digit must be a "
                "decimal int or float (dates, times and units are not supported)"
            )
        raise GeneSyntaxError(msg, span)

    def _char(self, pos: int) -> tuple[Lit, int]:
        """A character literal: `'a'` or an escape such as `'\\n'` (a one-char string)."""
        text, n = self.text, self.n
        if pos + 1 < n and text[pos + 1] == "\\":
            ch, end = self._escape(pos + 1, pos)
            if end < n and text[end] == "'":
                return Lit(self._span(pos, end + 1), ch), end + 1
        elif pos + 2 < n and text[pos + 2] == "'" and text[pos + 1] not in "'\n":
            return Lit(self._span(pos, pos + 3), text[pos + 1]), pos + 3
        raise self._fail(
            "expected a character literal like 'a' or '\\n' (Gene quotes with ':', as in "
            ":x, and strings use double quotes)",
            pos,
        )

    # -- strings ------------------------------------------------------------------------

    def _string(self, start: int, quote: int, interp: bool) -> tuple[Form, int]:
        """A string whose first `"` is at `quote`; `start` is where the form begins."""
        text, n = self.text, self.n
        triple = text.startswith('"""', quote)
        pos = quote + (3 if triple else 1)
        if triple:
            chunk_re = _TRIPLE_INTERP_CHUNK if interp else _TRIPLE_CHUNK
        else:
            chunk_re = _INTERP_CHUNK if interp else _PLAIN_CHUNK
        parts: list[Form] = []
        buf: list[str] = []
        seg = pos  # where the current literal segment starts
        if triple and (m := _TRIPLE_OPEN.match(text, pos)):
            # Whitespace then a newline right after the opening quotes is one "\n".
            buf.append("\n")
            pos = m.end()
        while True:
            m = chunk_re.match(text, pos)
            raw = m.group()  # type: ignore[union-attr]
            pos = m.end()  # type: ignore[union-attr]
            if pos >= n:
                raise self._incomplete(
                    "unterminated string: expected a closing '\"' for the string that starts here",
                    start,
                )
            c = text[pos]
            if c == '"':
                if triple:
                    raw = _TRIPLE_CLOSE.sub("\n", raw)
                buf.append(raw)
                break
            buf.append(raw)
            if c == "\\":
                ch, pos = self._escape(pos, start)
                buf.append(ch)
            elif text.startswith("#<", pos):
                pos = self._block_comment(pos)
            elif pos + 1 < n and text[pos + 1] in "{([":
                self._flush(buf, parts, seg, pos)
                expr, pos = self._interpolation(pos)
                parts.append(expr)
                seg = pos
            else:
                buf.append("#")
                pos += 1
        end = pos + (3 if triple else 1)
        if not parts:  # nothing interpolated: a plain string
            return Lit(self._span(start, end), "".join(buf)), end
        self._flush(buf, parts, seg, pos)
        return Interp(self._span(start, end), tuple(parts)), end

    def _flush(self, buf: list[str], parts: list[Form], seg: int, pos: int) -> None:
        """Move the literal text gathered in `buf` into `parts` as one `Lit`."""
        value = "".join(buf)
        buf.clear()
        if value:
            parts.append(Lit(self._span(seg, pos), value))

    def _interpolation(self, pos: int) -> tuple[Form, int]:
        """`#{expr}`, `#{^k v}`, `#(...)` or `#[...]` inside a string; `pos` is at `#`."""
        if self.text[pos + 1] == "{" and not self.text.startswith("^", self._skip(pos + 2)):
            root = _Frame(_ROOT_BRACE, pos)
            end = self.run(root, pos + 2)
            if not root.items:
                raise self._fail("expected an expression inside '#{}'", pos, end)
            return root.items[0], end
        root = _Frame(_ROOT_ONE, pos + 1)
        end = self.run(root, pos + 1)
        return root.items[0], end

    def _escape(self, pos: int, start: int) -> tuple[str, int]:
        """Decode the escape whose backslash is at `pos`; return it and the next offset."""
        text = self.text
        if pos + 1 >= self.n:
            raise self._incomplete(
                "unterminated string: expected a closing '\"' for the string that starts here",
                start,
            )
        c = text[pos + 1]
        if c != "u":
            return _SIMPLE_ESCAPES.get(c, c), pos + 2
        code = self._hex4(pos)
        if 0xD800 <= code <= 0xDBFF:
            # A high surrogate must be followed by `\uDC00`..`\uDFFF`: together one char.
            if text.startswith("\\u", pos + 6):
                low = self._hex4(pos + 6)
                if 0xDC00 <= low <= 0xDFFF:
                    return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), pos + 12
            raise self._fail(
                "bad escape: expected a low surrogate \\uDC00-\\uDFFF after this high surrogate",
                pos,
                pos + 6,
            )
        if 0xDC00 <= code <= 0xDFFF:
            raise self._fail(
                "bad escape: a low surrogate needs a high surrogate before it", pos, pos + 6
            )
        return chr(code), pos + 6

    def _hex4(self, pos: int) -> int:
        m = _HEX4.match(self.text, pos + 2)
        if m is None:
            raise self._fail("bad escape: expected 4 hex digits after \\u", pos, pos + 2)
        return int(m.group(), 16)


def read(text: str, filename: str = "<string>") -> list[Form]:
    """Read all forms of `text`. Raises `GeneSyntaxError` (with a span) on bad syntax."""
    remember_source(filename, text)
    _check_text(text, filename)
    reader = _Reader(text, filename)
    root = _Frame(_ROOT_ALL, 0)
    start = 1 if text.startswith("\ufeff") else 0  # a byte-order mark is not a symbol
    # Reading allocates many small objects and no cycles: cyclic GC passes meanwhile
    # would only rescan the growing tree (they cost a third of the time on big files).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        reader.run(root, start)
    except RecursionError:
        # Only strings nested inside interpolations recurse; depth there is absurd.
        raise GeneSyntaxError(
            "strings are nested too deeply inside interpolations", Span(filename, 1, 1)
        ) from None
    finally:
        if gc_was_enabled:
            gc.enable()
    return root.items


# Lone surrogates: what Python makes of bytes that are not UTF-8 (in argv, piped input),
# which no character of a Gene text can be.
_NOT_TEXT = re.compile("[\ud800-\udfff]")


def _check_text(text: str, filename: str) -> None:
    bad = _NOT_TEXT.search(text)
    if bad is None:
        return
    pos = bad.start()
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    code = ord(bad.group())
    what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X} (a lone surrogate)"
    raise GeneSyntaxError(f"the text is not UTF-8: {what} is not a character",
                          Span(filename, line, col, line, col + 1))


def read_one(text: str, filename: str = "<string>", exact: bool = False) -> Form:
    """The first form of `text` (the rest must still be valid syntax).

    With `exact`, the text must hold exactly one form.
    """
    forms = read(text, filename)
    if not forms:
        reader = _Reader(text, filename)
        raise GeneSyntaxError(
            "expected a form, but the input has none", reader._span(len(text), len(text))
        )
    if exact and len(forms) > 1:
        raise GeneSyntaxError("expected exactly one form, got another one here", forms[1].span)
    return forms[0]


def is_complete(text: str) -> bool:
    """Whether `text` has nothing unclosed (a form, string or block comment).

    Other syntax errors count as complete, so that the REPL runs the text and reports them.
    """
    try:
        read(text, "<input>")
    except IncompleteInputError:
        return False
    except GeneSyntaxError:
        return True
    return True
