"""String builtins: join, split, case, trim, replace, prefixes, substr, index-of, format.

Each takes the string first, as the matching string method does (`methods.py` reuses
these functions for `(s .split ",")` and friends).
"""

from __future__ import annotations

from typing import Any

from gene_jit.runtime.builtins import expect, gene_builtin, type_name
from gene_jit.runtime.errors import GeneArityError, GeneTypeError
from gene_jit.runtime.printer import display
from gene_jit.runtime.values import GeneSet, Range


def _s(name: str, v: Any) -> str:
    return expect(name, v, str, "a string")


@gene_builtin("join")
def join(coll: Any, sep: Any = "") -> str:
    """`(join coll [sep])`: the display forms of the elements joined by `sep`."""
    _s("join", sep)
    if isinstance(coll, GeneSet):
        coll = coll.items
    if not isinstance(coll, (list, tuple, Range)):
        raise GeneTypeError(f"join: expected an array, got {type_name(coll)}")
    return sep.join(display(x) if x is not None else "nil" for x in coll)


@gene_builtin("split")
def split(s: Any, sep: Any = None) -> list[str]:
    """`(split s [sep])`: the parts between `sep`s; by whitespace without `sep`; the
    characters when `sep` is ""."""
    _s("split", s)
    if sep is None:
        return s.split()
    _s("split", sep)
    if sep == "":
        return list(s)
    return s.split(sep)


@gene_builtin("upper", "to_upper", "to-upper", "to_uppercase")
def upper(s: Any) -> str:
    """`(upper s)`: `s` in upper case."""
    return _s("upper", s).upper()


@gene_builtin("lower", "to_lower", "to-lower", "to_lowercase")
def lower(s: Any) -> str:
    """`(lower s)`: `s` in lower case."""
    return _s("lower", s).lower()


@gene_builtin("trim")
def trim(s: Any) -> str:
    """`(trim s)`: `s` without leading and trailing whitespace."""
    return _s("trim", s).strip()


@gene_builtin("replace")
def replace(s: Any, old: Any, new: Any) -> str:
    """`(replace s old new)`: every `old` in `s` replaced by `new`."""
    return _s("replace", s).replace(_s("replace", old), display(new))


@gene_builtin("starts_with", "starts-with")
def starts_with(s: Any, prefix: Any) -> bool:
    """`(starts_with s prefix)`."""
    return _s("starts_with", s).startswith(_s("starts_with", prefix))


@gene_builtin("ends_with", "ends-with")
def ends_with(s: Any, suffix: Any) -> bool:
    """`(ends_with s suffix)`."""
    return _s("ends_with", s).endswith(_s("ends_with", suffix))


@gene_builtin("substr")
def substr(s: Any, start: Any, end: Any = None) -> str:
    """`(substr s start [end])`: characters start..end, end *included* (as the reference
    does); a negative index counts from the end (-1 is the last character)."""
    _s("substr", s)
    n = len(s)
    first = expect("substr", start, int, "an int start")
    if first < 0:
        first += n
    last = n - 1 if end is None else expect("substr", end, int, "an int end")
    if last < 0:
        last += n
    return s[max(first, 0) : last + 1]


@gene_builtin("index-of", "index_of")
def index_of(coll: Any, x: Any) -> int:
    """`(index-of coll x)`: where `x` first occurs in a string or array, -1 if nowhere."""
    from gene_jit.runtime.equality import gene_equal

    if isinstance(coll, str):
        return coll.find(_s("index-of", x))
    if isinstance(coll, (list, tuple)):
        for i, item in enumerate(coll):
            if gene_equal(item, x):
                return i
        return -1
    raise GeneTypeError(f"index-of: expected a string or array, got {type_name(coll)}")


def rindex_of(s: Any, x: Any) -> int:
    """Where `x` last occurs in string `s`, -1 if nowhere (the `.rindex` method)."""
    return _s("rindex", s).rfind(_s("rindex", x))


@gene_builtin("format")
def gene_format(template: Any, *args: Any) -> str:
    """`(format "a={} b={}" 1 2)`: `{}` takes the next argument, `{0}` a numbered one,
    `{{` and `}}` are literal braces; arguments appear in display form."""
    _s("format", template)
    out: list[str] = []
    i, n, next_arg = 0, len(template), 0
    while i < n:
        c = template[i]
        if c in "{}" and i + 1 < n and template[i + 1] == c:
            out.append(c)
            i += 2
            continue
        if c == "}":
            raise GeneTypeError(f"format: single '}}' at position {i} in {template!r}")
        if c != "{":
            out.append(c)
            i += 1
            continue
        close = template.find("}", i)
        if close < 0:
            raise GeneTypeError(f"format: unclosed '{{' at position {i} in {template!r}")
        field = template[i + 1 : close].strip()
        if field == "":
            index, next_arg = next_arg, next_arg + 1
        elif field.isdigit():
            index = int(field)
        else:
            raise GeneTypeError(f"format: bad placeholder {{{field}}}: use {{}} or {{N}}")
        if index >= len(args):
            raise GeneArityError(
                f"format: placeholder {{{field}}} needs argument {index + 1}, got {len(args)}"
            )
        value = args[index]
        out.append("nil" if value is None else display(value))
        i = close + 1
    return "".join(out)
