"""Display and repr forms (GENE.md 4.3, 4.4 and the decision table) and equality."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gene_jit.runtime.equality import gene_equal
from gene_jit.runtime.printer import display, format_float, register_printer, repr_
from gene_jit.runtime.registry import namespace
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

# GENE.md 4.4, each example verbatim, plus the 4.3 table's float cells.
FLOATS = [
    (1e16, "10000000000000000.0"),
    (1e-7, "0.0000001"),
    (1.5e-7, "0.00000015"),
    (5e3, "5000.0"),
    (1e17, "1e+17"),
    (1e-8, "1e-8"),
    (1.5e300, "1.5e+300"),
    (1.2345678901234567e19, "1.2345678901234567e+19"),
    (3.0, "3.0"),
    (3.14, "3.14"),
    (0.1 + 0.2, "0.30000000000000004"),
    (1e20, "1e+20"),
    (-0.0, "-0.0"),
    (0.0, "0.0"),
    (math.inf, "inf"),
    (-math.inf, "-inf"),
    (math.nan, "nan"),
    (1e-6, "0.000001"),
    (0.5, "0.5"),
    (-2.5, "-2.5"),
    (123456.789, "123456.789"),
    (12345678901234567.0, "12345678901234568.0"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (5e-324, "5e-324"),
]


@pytest.mark.parametrize(("value", "text"), FLOATS)
def test_float_format(value: float, text: str) -> None:
    assert format_float(value) == text
    assert display(value) == text
    assert repr_(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_format_round_trips(x: float) -> None:
    text = format_float(x)
    assert float(text) == x
    assert "." in text or "e" in text  # never reads back as an int


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=1e-300))
def test_float_notation_follows_point_position(x: float) -> None:
    # value = 0.d * 10**p; fixed notation exactly for -6 <= p <= 17
    p = math.floor(math.log10(x)) + 1
    if 10 ** (p - 1) > x:  # log10 rounding near powers of ten
        p -= 1
    text = format_float(x)
    if -5 <= p <= 16:
        assert "e" not in text
    elif p < -7 or p > 18:
        assert "e" in text


# GENE.md 4.3 display table: (value, display, repr)
TABLE = [
    (None, "nil", "nil"),
    (True, "true", "true"),
    (False, "false", "false"),
    (-10, "-10", "-10"),
    (2**63 - 1, "9223372036854775807", "9223372036854775807"),
    ("hi there", "hi there", '"hi there"'),
    ("", "", '""'),
    (Symbol("sym"), "sym", "sym"),
    (Symbol("a/b"), "a/b", "a/b"),
    ([1, "a", 3.0], "[1 a 3.0]", '[1 "a" 3.0]'),
    ([], "[]", "[]"),
    ([1, None, [2, "x"]], "[1 nil [2 x]]", '[1 nil [2 "x"]]'),
    ({"a": 1, "b": "x"}, "{^a 1 ^b x}", '{^a 1 ^b "x"}'),
    ({"b": 1, "a": 2}, "{^b 1 ^a 2}", "{^b 1 ^a 2}"),
    ({}, "{}", "{}"),
    (Gene(PLACEHOLDER, {}, ["s", [1, "t"]]), '(_ "s" [1 "t"])', '(_ "s" [1 "t"])'),
    (Gene(None), "(nil)", "(nil)"),
    (Gene(Symbol("a"), {}, [Symbol("b")]), "(a b)", "(a b)"),
    (Gene(Symbol("f"), {"k": "v", "n": None}, [1]), '(f ^k "v" ^n nil 1)', '(f ^k "v" ^n nil 1)'),
    (Range(1, 5), "1..5", "1..5"),
    (Range(0, 10, 2), "0..10 step 2", "0..10 step 2"),
    (Range(0, 3, 1, inclusive=False), "(range 0 3)", "(range 0 3)"),
    (PLACEHOLDER, "_", "_"),
    (GeneSet([1, 2, 1]), "#[1 2]", "#[1 2]"),
    (GeneSet(["a"]), "#[a]", '#["a"]'),
]


@pytest.mark.parametrize(("value", "shown", "quoted"), TABLE)
def test_display_and_repr_table(value: object, shown: str, quoted: str) -> None:
    assert display(value) == shown
    assert repr_(value) == quoted


def test_string_escapes_in_repr() -> None:
    assert repr_('q"q') == '"q\\"q"'
    assert repr_("a\\b") == '"a\\\\b"'
    assert repr_("line1\nline2") == '"line1\\nline2"'
    assert repr_("tab\t") == '"tab\\t"'
    assert display('q"q\n') == 'q"q\n'


def test_functions_and_natives() -> None:
    def f() -> None: ...

    f.__gene_name__ = "fib"  # type: ignore[attr-defined]
    assert display(f) == "(fn fib)"

    def anon() -> None: ...

    anon.__gene_name__ = None  # type: ignore[attr-defined]
    assert display(anon) == "(fn)"
    import gene_jit.runtime.builtins  # noqa: F401 - registers println
    from gene_jit.runtime.registry import BUILTINS

    assert display(BUILTINS["println"]) == "(native-fn println)"
    assert display(BUILTINS["gene"].get("time").get("now")) == "(native-fn gene/time/now)"
    assert display(len) == "<python function builtins.len>"  # a Python library's function


def test_classes_instances_namespaces_enums() -> None:
    cls = GeneClass("A")
    inst = Instance(cls)
    inst.props["x"] = 1
    inst.props["s"] = "t"
    assert display(cls) == "(class A)"
    assert display(inst) == '(A ^x 1 ^s "t")'
    assert display([inst]) == '[(A ^x 1 ^s "t")]'
    assert display(namespace("gene/time")) == "(ns gene/time)"
    enum = GeneEnum("Color")
    red = EnumMember(enum, "red", 0)
    assert display(enum) == "(enum Color)"
    assert display(red) == "Color/red"


def test_other_python_objects() -> None:
    class WithRepr:
        def __gene_repr__(self) -> str:
            return "(tensor f32 [2 3])"

    class Plain:
        pass

    assert display(WithRepr()) == "(tensor f32 [2 3])"
    assert display([WithRepr()]) == "[(tensor f32 [2 3])]"
    assert display(Plain()) == "<python Plain>"

    class Registered:
        pass

    register_printer(Registered, lambda v, quote: "reg-q" if quote else "reg")
    assert display([Registered()]) == "[reg]"
    assert repr_(Registered()) == "reg-q"


def test_cycles_do_not_hang() -> None:
    a: list[object] = [1]
    a.append(a)
    assert display(a) == "[1 [...]]"
    m: dict[str, object] = {"k": 1}
    m["self"] = m
    assert display(m) == "{^k 1 ^self {...}}"
    g = Gene(Symbol("g"))
    g.children.append(g)
    assert display(g) == "(g (...))"
    # the same list twice (shared, not cyclic) prints in full both times
    shared = [1]
    assert display([shared, shared]) == "[[1] [1]]"


EQUAL = [
    (1, 1, True),
    (1, 1.0, False),
    (True, 1, False),
    (False, 0, False),
    (1.5, 1.5, True),
    (math.nan, math.nan, False),
    ("a", "a", True),
    ("a", Symbol("a"), False),
    (Symbol("a"), Symbol("a"), True),
    (None, None, True),
    (None, False, False),
    ([1, [2, "x"]], [1, [2, "x"]], True),
    ([1, 2], [1, 2, 3], False),
    ([1], [1.0], False),
    ({"a": 1, "b": [2]}, {"b": [2], "a": 1}, True),
    ({"a": 1}, {"a": 2}, False),
    (Gene(Symbol("f"), {"k": 1}, [2]), Gene(Symbol("f"), {"k": 1}, [2]), True),
    (Gene(Symbol("f"), {}, [2]), Gene(Symbol("g"), {}, [2]), False),
    (GeneSet([1, 2]), GeneSet([2, 1]), True),
    (GeneSet([1, 2]), GeneSet([1, 3]), False),
    (Range(1, 5), Range(1, 5), True),
    (Range(1, 5), Range(1, 5, 1, inclusive=False), False),
    ([1, 2], (1, 2), True),
]


@pytest.mark.parametrize(("a", "b", "expected"), EQUAL)
def test_gene_equal(a: object, b: object, expected: bool) -> None:
    assert gene_equal(a, b) is expected
    assert gene_equal(b, a) is expected


def test_equality_of_cycles_and_foreign_objects() -> None:
    import numpy as np

    a: list[object] = [1]
    a.append(a)
    b: list[object] = [1]
    b.append(b)
    assert gene_equal(a, b)
    x = np.zeros(3)
    assert gene_equal(x, x)
    # as tensors: the same dtype, shape and values, never NumPy's elementwise answer
    assert gene_equal(x, np.zeros(3)) and not gene_equal(x, np.ones(3))
    assert not gene_equal(x, np.zeros(3, dtype=np.float32)) and not gene_equal(x, np.zeros((3, 1)))
    inst = Instance(GeneClass("A"))
    assert gene_equal(inst, inst)
    assert not gene_equal(inst, Instance(inst.cls))
