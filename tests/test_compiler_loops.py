"""Counted loops in tier 0: `for` over ranges runs a Python `for` over a Python `range`
behind an entry guard, with a typed loop variable; every other case takes the generic
path and computes the same. Run in both tier modes where the result is observable."""

from __future__ import annotations

import ast

import pytest
from conftest import run_gene_source

from gene_jit.frontend import compiler
from gene_jit.runtime.errors import GeneError, GeneOverflowError, GeneTypeError


def value(src: str) -> object:
    return compiler.run_source(src, "<loops>")


def python_of(src: str, monkeypatch: pytest.MonkeyPatch) -> str:
    seen: list[str] = []
    monkeypatch.setattr(compiler, "AST_HOOKS", [lambda m, f, e: seen.append(ast.unparse(m))])
    compiler.run_source(src, "<loops>")
    return "\n".join(seen)


SUMS = """
(fn dots [a b] (var acc []) (for i in (a .. b) (acc .add i)) acc)
(fn ranged [a b s] (var acc []) (for i in (range a b s) (acc .add i)) acc)
(fn upto [n] (var acc []) (for i in (range n) (acc .add i)) acc)
"""


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("(dots 0 3)", [0, 1, 2, 3]),
        ("(dots 3 1)", []),
        ("(dots -2 0)", [-2, -1, 0]),
        ("(dots 0.5 2)", [0.5, 1.5]),
        ("(dots 1 2.5)", [1, 2]),
        ("(ranged 0 10 3)", [0, 3, 6, 9]),
        ("(ranged 5 0 -2)", [5, 3, 1]),
        ("(ranged 0 1 0.25)", [0, 0.25, 0.5, 0.75]),
        ("(upto 4)", [0, 1, 2, 3]),
        ("(upto 0)", []),
        ("(dots 9223372036854775805 9223372036854775807)", [2**63 - 3, 2**63 - 2, 2**63 - 1]),
    ],
)
def test_range_loops_visit_the_same_values_as_ranges(call: str, expected: list[object]) -> None:
    assert value(SUMS + call) == expected
    # The generic path (a range value iterated by iter_values) agrees.
    generic = call.replace("(dots", "(for-each-dots").replace("(ranged", "(for-each-ranged")
    defs = """
(fn for-each-dots [a b] (var r (a .. b)) (var acc []) (for i in r (acc .add i)) acc)
(fn for-each-ranged [a b s] (var r (range a b s)) (var acc []) (for i in r (acc .add i)) acc)
"""
    if generic != call:
        assert value(SUMS + defs + generic) == expected


@pytest.mark.parametrize(
    ("src", "error"),
    [
        ("(for i in (0 .. nil) (println i))", GeneError),
        ("(fn f [n] (for i in (range 0 n 0) (println i))) (f 3)", GeneTypeError),
        ('(fn f [n] (for i in (range "a" n) (println i))) (f 3)', GeneTypeError),
        ('(repeat "3" (println 1))', GeneTypeError),
    ],
)
def test_bad_bounds_are_gene_errors(src: str, error: type[GeneError]) -> None:
    with pytest.raises(error):
        value(src)


def test_redefined_range_is_called() -> None:
    src = """
(fn range [a b] [b a])
(fn f [] (var acc []) (for i in (range 1 2) (acc .add i)) acc)
(f)
"""
    assert value(src) == [2, 1]


def test_break_continue_and_closures_per_iteration(jit_mode: str) -> None:
    src = """
(fn f [n]
  (var fs [])
  (var seen [])
  (for i in (0 .. n)
    (if (i == 1) (continue))
    (if (i > 3) (break))
    (seen .add i)
    (fs .add (fnx [] i)))
  [seen (fs .map (fnx [g] (g)))])
(println (f 10))
(var top [])
(for i in (range 3) (top .add (fnx [] (i * 10))))
(println (top .map (fnx [g] (g))))
"""
    run = run_gene_source(src, jit_mode)
    assert run.error is None, run.error
    assert run.stdout == "[[0 2 3] [0 2 3]]\n[0 10 20]\n"


def test_loop_variable_assigned_in_the_body(jit_mode: str) -> None:
    src = """
(fn f [n] (var out []) (for i in (0 .. n) (i = (i .. 1)) (out .add i)) out)
(println (f 1))
(fn g [n] (var s 0) (for i in (range n) (i = "x") (s += 1)) s)
(println (g 4))
"""
    run = run_gene_source(src, jit_mode)
    assert run.error is None, run.error
    assert run.stdout == "[0..1 1..1]\n4\n"


def test_pairs_and_nested_loops(jit_mode: str) -> None:
    src = """
(fn f [n]
  (var acc 0)
  (for i in (1 .. n) (for j in (i .. n) (for k in (range j) (acc += (i * j + k)))))
  acc)
(println (f 4) (f 4.0))
(for [k v] in {^a 1 ^b 2} (println k v))
(for [i v] in ["x" "y"] (println i v))
"""
    run = run_gene_source(src, jit_mode)
    assert run.error is None, run.error
    py = sum(i * j + k for i in range(1, 5) for j in range(i, 5) for k in range(j))
    # `(1 .. 4.0)` still counts in ints from an int start (ranges keep the start kind).
    assert run.stdout == f"{py} {py}\na 1\nb 2\n0 x\n1 y\n"


def test_typed_loop_variable_still_overflows() -> None:
    src = "(fn f [n] (var acc 1) (for i in (0 .. n) (acc = (acc * (i + 4611686018427387904)))) acc) (f 3)"
    with pytest.raises(GeneOverflowError):
        value(src)
    src = "(fn f [a] (var s 0) (for i in (0 .. 3) (s = (a - i))) s) (f -9223372036854775807)"
    with pytest.raises(GeneOverflowError):
        value(src)
    assert (
        value("(fn f [a] (var s 0) (for i in (0 .. 3) (s = (a + i))) s) (f -9223372036854775808)")
        == -(2**63) + 3
    )


def test_range_loops_compile_to_python_range(monkeypatch: pytest.MonkeyPatch) -> None:
    code = python_of(
        """
(fn f [n] (var acc 0) (for i in (0 .. n) (acc = (acc + i))) acc)
(fn g [] (var s 0) (for i in (1 .. 10) (s = (s + i))) s)
(fn h [n] (var t 0) (repeat n ^index j (t = (t + j))) t)
""",
        monkeypatch,
    )
    f_code, g_code = code.split("def  fn", 2)[1:3]
    # A guard at loop entry, a Python range in the fast copy, iter_values in the other.
    assert "n.__class__ is  int" in f_code
    assert "range(0, n + 1)" in f_code and "iter_values( make_range(0, n))" in f_code
    # The typed loop variable (nat) lets `acc + i` skip the lower int64 check.
    fast = f_code.split("else:")[0]
    assert "-9223372036854775808" not in fast
    # Constant int bounds need neither a guard nor a generic copy.
    assert "range(1, 10 + 1)" in g_code and "iter_values" not in g_code
    assert value("(fn g [] (var s 0) (for i in (1 .. 10) (s = (s + i))) s) (g)") == 55


def test_repeat_index_and_total(jit_mode: str) -> None:
    src = "(var acc []) (repeat 3 ^index i ^total t (acc .add [i t])) (println acc) (repeat 0 (println 1))"
    run = run_gene_source(src, jit_mode)
    assert run.error is None, run.error
    assert run.stdout == "[[0 3] [1 3] [2 3]]\n"
