"""Tests of the reader (gene_jit.frontend.reader) and of form/value conversion.

Golden cases live in tests/reader_golden/: NAME.gene is read with the file name
NAME.gene and `dump` of the forms must equal NAME.out. After an intended change of the
reader, regenerate with `GENE_UPDATE_GOLDEN=1 pytest tests/test_reader.py` and review the
diff of the .out files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gene_jit.frontend.convert import form_to_value, value_to_form
from gene_jit.frontend.forms import (
    Arr,
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
from gene_jit.frontend.reader import IncompleteInputError, dump, is_complete, read, read_one
from gene_jit.runtime.equality import gene_equal
from gene_jit.runtime.errors import GeneError, GeneSyntaxError
from gene_jit.runtime.values import PLACEHOLDER, Gene, GeneSet, Symbol

GOLDEN = Path(__file__).parent / "reader_golden"
GOLDEN_CASES = sorted(p.stem for p in GOLDEN.glob("*.gene"))


def test_enough_golden_cases() -> None:
    assert len(GOLDEN_CASES) >= 25


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden(name: str) -> None:
    # Bytes, not text mode: CRLF in a golden input must reach the reader unchanged.
    source = (GOLDEN / f"{name}.gene").read_bytes().decode("utf-8")
    got = dump(read(source, f"{name}.gene"))
    expected_path = GOLDEN / f"{name}.out"
    if os.environ.get("GENE_UPDATE_GOLDEN"):
        expected_path.write_bytes(got.encode("utf-8"))
    assert got == expected_path.read_bytes().decode("utf-8")


# -- values of single forms ------------------------------------------------------------


def one(text: str) -> object:
    return read_one(text, exact=True)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-1", -1),
        ("+7", 7),
        ("1.", 1.0),
        ("10e10", 1e11),
        ("+5.0E5", 5e5),
        ("2.5e-1", 0.25),
        ("nil", None),
        ("true", True),
        ("false", False),
        ('"a\\tb"', "a\tb"),
        ('"\\f"', "\x0c"),
        ('"\\b"', "\x08"),
        ('"\\uD83D\\uDE00"', "\U0001f600"),
        ('"\\q"', "q"),
        ("'a'", "a"),
        ("'\\n'", "\n"),
        ("' '", " "),
        ('"""\n  a\n  """', "\n  a\n"),
        ('"""  \n x"""', "\n x"),
        ('#"plain"', "plain"),
    ],
)
def test_literal_values(text: str, value: object) -> None:
    form = one(text)
    assert isinstance(form, Lit)
    assert form.value == value and type(form.value) is type(value)


def test_minus_number_is_not_subtraction() -> None:
    form = one("(x -1)")
    assert isinstance(form, GeneF)
    assert form.head == Sym(form.span, "x")
    assert [c.value for c in form.children if isinstance(c, Lit)] == [-1]
    spaced = one("(x - 1)")
    assert isinstance(spaced, GeneF)
    assert isinstance(spaced.children[0], Sym) and spaced.children[0].name == "-"


def test_symbols() -> None:
    for name in ["a/b/c", "/x", "$ns", "get-next-token", "λ", "#Str", "a:b", "a#b", "_", ".5"]:
        form = one(name)
        assert isinstance(form, Sym) and form.name == name
    form = one("a/b/c")
    assert isinstance(form, Sym) and form.parts == ["a", "b", "c"] and form.is_complex
    lead = one("/x")
    assert isinstance(lead, Sym) and lead.parts == ["", "x"]


def test_gene_structure() -> None:
    form = one("(f a ^x 1 b)")
    assert isinstance(form, GeneF)
    assert isinstance(form.head, Sym) and form.head.name == "f"
    assert [k for k, _ in form.props] == ["x"]
    assert [c.name for c in form.children if isinstance(c, Sym)] == ["a", "b"]
    empty = one("()")
    assert isinstance(empty, GeneF) and empty.head is None and empty.children == ()


def test_nested_props_build_maps() -> None:
    form = one("(f ^a^b 1 ^a^^c ^a^!d ^!e ^^g)")
    assert isinstance(form, GeneF)
    props = dict(form.props)
    inner = props["a"]
    assert isinstance(inner, MapF)
    values = {k: v.value for k, v in inner.entries if isinstance(v, Lit)}
    assert values == {"b": 1, "c": True, "d": False}
    assert isinstance(props["e"], Lit) and props["e"].value is None
    assert isinstance(props["g"], Lit) and props["g"].value is True


def test_collections_and_prefixes() -> None:
    assert isinstance(one("[1 2]"), Arr)
    assert isinstance(one("#[1 2]"), SetF)
    m = one("{^a 1 :b 2}")
    assert isinstance(m, MapF) and [k for k, _ in m.entries] == ["a", "b"]
    q = one(":x")
    assert isinstance(q, Quote) and isinstance(q.form, Sym)
    u = one("%_x")
    assert isinstance(u, Unquote) and u.discard
    spaced = read("(a % b)")[0]
    assert isinstance(spaced, GeneF) and isinstance(spaced.children[0], Unquote)
    interp = one('#"a#{x}b"')
    assert isinstance(interp, Interp) and len(interp.parts) == 3
    deco = one("#@d x")
    assert isinstance(deco, GeneF) and isinstance(deco.head, Sym) and deco.head.name == "d"


def test_spans() -> None:
    forms = read('(a\n  "x"\n  [1 2])  :q', "s.gene")
    gene = forms[0]
    assert gene.span == Span("s.gene", 1, 1, 3, 9)
    assert isinstance(gene, GeneF)
    assert gene.children[0].span == Span("s.gene", 2, 3, 2, 6)
    arr = gene.children[1]
    assert arr.span == Span("s.gene", 3, 3, 3, 8)
    assert isinstance(arr, Arr) and arr.items[1].span == Span("s.gene", 3, 6, 3, 7)
    assert forms[1].span == Span("s.gene", 3, 11, 3, 13)


def test_comments() -> None:
    text = "# c\n#! x\n#<\nblock >#\n; seed\na ; tail\n#\nb #<x>#c"
    assert [f.name for f in read(text) if isinstance(f, Sym)] == ["a", "b", "c"]


def test_deep_nesting_does_not_overflow() -> None:
    depth = 5000
    form = one("[" * depth + "]" * depth)
    for _ in range(depth - 1):
        assert isinstance(form, Arr)
        form = form.items[0]
    assert form == Arr(form.span)


def test_read_one() -> None:
    assert isinstance(read_one("a b"), Sym)
    with pytest.raises(GeneSyntaxError, match="exactly one"):
        read_one("a b", exact=True)
    with pytest.raises(GeneSyntaxError, match="has none"):
        read_one("  # only a comment\n")


# -- syntax errors: message, position, caret ---------------------------------------------

ERRORS = [
    # text, message fragment, line, col
    ("(a (b c)", "expected ')' to close the '(' at line 1, col 1", 1, 1),
    ("(a\n  [b c)", "expected ']' to close the '[' at line 2, col 3, got ')'", 2, 7),
    ("a)", "unexpected ')'", 1, 2),
    ("  }", "unexpected '}'", 1, 3),
    ('x "abc\ndef', "unterminated string", 1, 3),
    ('#"a#{x', "expected '}' to close the '#{'", 1, 4),
    ('"\\u12G4"', "expected 4 hex digits", 1, 2),
    ('"\\uD800x"', "low surrogate", 1, 2),
    ('"\\uDC00"', "high surrogate", 1, 2),
    ("{^a 1 b}", "expected a property '^key value' in a map, got the symbol b", 1, 7),
    ("{1 2}", "got the literal 1", 1, 2),
    ("{^a}", "expected a value for property ^a, got '}'", 1, 4),
    ("(f ^a)", "expected a value for property ^a, got ')'", 1, 6),
    ("(f ^a ^b 1)", "expected a value for property ^a, got another property", 1, 7),
    ("(f ^a 1 ^a 2)", "property ^a is given twice", 1, 9),
    ("(f ^a 1 ^a^b 2)", "property ^a is given both a value and nested properties", 1, 9),
    ("(f ^a^b 1 ^a 2)", "property ^a is given both a value and nested properties", 1, 11),
    ("(f ^x 1 a ^y 2)", "a gene has one group of properties", 1, 11),
    ("(f ^ 1)", "expected a property name after '^'", 1, 4),
    ("0x10", "hex literals are not supported", 1, 1),
    ("(+ 1_000 2)", "digit separators", 1, 4),
    ("1/2", "ratio literals", 1, 1),
    ("12abc", "expected a number, got 12abc", 1, 1),
    ("9223372036854775808", "out of the 64-bit range", 1, 1),
    ("-9223372036854775809", "out of the 64-bit range", 1, 1),
    ("1e999", "too large", 1, 1),
    ("(f :)", "expected a form after ':', got ')'", 1, 5),
    ("[#@d]", "expected the form that '#@' decorates, got ']'", 1, 5),
    ("'abc'", "expected a character literal", 1, 1),
    ("#/x/", "regex literals", 1, 1),
    ("(f #{x})", "interpolate only inside", 1, 4),
    ("a\n#< never closed", "unterminated block comment", 2, 1),
    ('#"#{}"', "expected an expression inside '#{}'", 1, 3),
    ('#"#{a b}"', "one expression per", 1, 7),
]


@pytest.mark.parametrize(("text", "message", "line", "col"), ERRORS)
def test_syntax_errors(text: str, message: str, line: int, col: int) -> None:
    with pytest.raises(GeneSyntaxError) as info:
        read(text, "bad.gene")
    err = info.value
    assert message in err.message
    assert err.span is not None
    assert (err.span.file, err.span.line, err.span.col) == ("bad.gene", line, col)


def test_error_format_shows_line_and_caret() -> None:
    with pytest.raises(GeneSyntaxError) as info:
        read("(ok)\n(f ^x 1\n   [a b)\n", "prog.gene")
    text = info.value.format()
    assert text.splitlines() == [
        "prog.gene:3:8: syntax error: expected ']' to close the '[' at line 3, col 4, got ')'",
        "       [a b)",
        "           ^",
    ]


def test_unclosed_reports_outermost_too() -> None:
    with pytest.raises(IncompleteInputError) as info:
        read("(fn f [x]\n  (if x\n    (g x)\n", "u.gene")
    text = info.value.format()
    assert text.splitlines()[:3] == [
        "u.gene:2:3: syntax error: expected ')' to close the '(' at line 2, col 3, "
        "but the input ended (line 4, col 1)",
        "      (if x",
        "      ^",
    ]
    assert "the outermost unclosed '(' is at line 1, col 1" in text


def test_unterminated_string_points_at_start() -> None:
    with pytest.raises(IncompleteInputError) as info:
        read('(print "hello\n  world)\n', "s.gene")
    assert info.value.format().splitlines()[1:] == ['    (print "hello', "           ^"]


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("", True),
        ("(f x)", True),
        ("(f x", False),
        ("(f [1 2", False),
        ('(f "abc', False),
        ('"""a""', False),
        ("#< comment", False),
        (":", False),
        ("(f ^a", False),
        ("#@d", False),
        ('#"x#{y', False),
        ("(f x))", True),  # a syntax error, not unfinished: the REPL reports it
        ("0x10 (", True),
        ("(a ; (\n)", True),
        ('(a "(")', True),
    ],
)
def test_is_complete(text: str, complete: bool) -> None:
    assert is_complete(text) is complete


# -- conversion between forms and values ----------------------------------------------


def value(text: str) -> object:
    return form_to_value(one(text))


def test_form_to_value() -> None:
    assert value("42") == 42
    assert value("x") is Symbol("x")
    assert value(":x") is Symbol("x")
    assert value("[1 :a nil]") == [1, Symbol("a"), None]
    assert value("{^a [1] ^b^c 2}") == {"a": [1], "b": {"c": 2}}
    s = value("#[1 2 1]")
    assert isinstance(s, GeneSet) and s.items == [1, 2]
    g = value("(f ^x 1 :y %z)")
    assert isinstance(g, Gene)
    assert g.type is Symbol("f") and g.props == {"x": 1}
    assert g.children[0] is Symbol("y")
    unq = g.children[1]
    assert isinstance(unq, Gene) and unq.type is Symbol("%") and unq.children == [Symbol("z")]
    interp = value('#"a#{b}"')
    assert isinstance(interp, Gene) and interp.type is Symbol("#Str")
    assert interp.children == ["a", Symbol("b")]
    empty = value("()")
    assert isinstance(empty, Gene) and empty.type is None


def test_value_to_form() -> None:
    span = Span("v", 1, 1)
    form = value_to_form([1, Symbol("a"), {"k": None}, PLACEHOLDER], span)
    assert isinstance(form, Arr) and form.span == span
    assert dump([form]).splitlines()[1:] == [
        "  Lit int 1 @1:1-0:0",
        "  Sym a @1:1-0:0",
        "  Map @1:1-0:0",
        "    ^k = Lit nil @1:1-0:0",
        "  Sym _ @1:1-0:0",
    ]
    fn = len
    assert value_to_form(fn) == Lit(span, fn)
    odd = {1: 2}
    assert value_to_form(odd) == Lit(span, odd)
    assert isinstance(value_to_form(Gene(Symbol("%_"), {}, [1])), Unquote)
    assert isinstance(value_to_form(Gene(Symbol("#Str"), {}, ["a", Symbol("b")])), Interp)


def test_value_to_form_rejects_cycles() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    with pytest.raises(GeneError, match="contains itself"):
        value_to_form(loop)
    shared = [1]
    assert isinstance(value_to_form([shared, shared]), Arr)  # shared is not a cycle


ROUND_TRIP_SOURCES = [
    "(f ^a 1 ^b^c [x :y] z)",
    '#[1 "s" 2.5 nil true]',
    '{^a {^b "c"} ^d (g %h %_i)}',
    '#"x#{(f y)}z"',
    "(_ 1 2)",
    "()",
]


@pytest.mark.parametrize("text", ROUND_TRIP_SOURCES)
def test_round_trip(text: str) -> None:
    v = value(text)
    assert gene_equal(form_to_value(value_to_form(v)), v)


# -- properties --------------------------------------------------------------------------

_atoms = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.sampled_from(["a", "b/c", "x-y", "#Str"]).map(Symbol),
)
_values = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(min_size=1, max_size=3), inner, max_size=3),
        st.builds(
            Gene,
            st.sampled_from([Symbol("f"), Symbol("g"), 1]),
            st.dictionaries(st.text(min_size=1, max_size=3), inner, max_size=2),
            st.lists(inner, max_size=3),
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(_values)
def test_value_round_trip_property(v: object) -> None:
    assert gene_equal(form_to_value(value_to_form(v)), v)


_SOURCE_ALPHABET = st.sampled_from(list("()[]{}#@^!:%_\"\\'; \n,abx019.-+/<>uD"))


@settings(max_examples=400, deadline=None)
@given(st.text(_SOURCE_ALPHABET, max_size=30))
def test_any_text_reads_or_raises_syntax_error(text: str) -> None:
    try:
        forms = read(text, "fuzz.gene")
    except GeneSyntaxError as err:
        assert err.span is not None and err.span.line >= 1
        err.format()
        return
    for form in forms:
        form_to_value(form)
    dump(forms)
    assert is_complete(text)


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x7f"])
def test_control_characters_outside_strings_are_syntax_errors(char: str) -> None:
    """A NUL or other control character between forms (invisible where an error shows the
    line) is a syntax error naming it, not a symbol named by it; inside a string it is
    the string's."""
    with pytest.raises(GeneSyntaxError, match=f"unexpected control character U\\+{ord(char):04X}") as info:
        read(f'(println "a"){char}(println "b")', "c.gene")
    assert (info.value.span.line, info.value.span.col) == (1, 14)
    assert read(f'"a{char}b"', "c.gene")[0].value == f"a{char}b"
