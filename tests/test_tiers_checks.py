"""Tier 0's int64 checks as emitted: which arithmetic carries one (compiler_ops.arith), which
locals are counters whose small steps need none (compiler_types.counters), and that the
checks that remain still raise. The programs under tests/programs/overflow run the same
cases in both tiers."""

from __future__ import annotations

import ast
from collections.abc import Iterator

import pytest

from gene_jit.frontend import compiler
from gene_jit.frontend.compiler_types import Locals, infer_locals
from gene_jit.frontend.reader import read
from gene_jit.runtime.errors import GeneOverflowError, GeneTypeError

CHECK = "9223372036854775807"


@pytest.fixture(autouse=True)
def tier0_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tier 0's own code and errors (the programs under tests/programs run both tiers)."""
    monkeypatch.setenv("GENE_JIT", "0")
    yield


def python_of(src: str, monkeypatch: pytest.MonkeyPatch) -> str:
    seen: list[str] = []
    monkeypatch.setattr(compiler, "AST_HOOKS", [lambda m, f, e: seen.append(ast.unparse(m))])
    compiler.run_source(src, "<checks>")
    return "\n".join(seen)


def locals_of(src: str) -> Locals:
    (form,) = read(src, "<checks>")
    params, body = form.children[1], form.children[2:]  # type: ignore[attr-defined]
    return infer_locals(body, [p.name for p in params.items], lambda n: False)


def test_counters_are_literal_starts_and_small_literal_steps() -> None:
    found = locals_of(
        "(fn f [n] (var i 0) (var j 5) (var k -3) (var big 4611686018427387904)"
        " (var s 0) (var t 0) (var u 0) (var v 0)"
        " (i += 1) (j = (j - 2)) (k = (1024 + k)) (big += 1)"
        " (s += n) (t = (t + 1025)) (u = (n + 1)) (v *= 2) n)"
    ).counters
    assert set(found) == {"i", "j", "k"}
    assert found["i"] == (0, 2**62)  # never negative
    assert found["k"] == (-(2**62), 2**62)


def test_counters_need_every_binding_seen() -> None:
    # a parameter, a closure's assignment, a loop over a computed range: no counters
    assert not locals_of("(fn f [i] (i += 1) i)").counters
    assert not locals_of("(fn f [n] (var i 0) (var g (fnx [] (i = n))) (i += 1) i)").counters
    assert not locals_of("(fn f [n] (var i 0) (for i in (0 .. n) (i += 1)) i)").counters
    assert locals_of("(fn f [n] (for i in (0 .. 10) (println (i + 1))) n)").counters == {
        "i": (0, 2**62)
    }


def test_counter_steps_carry_no_check(monkeypatch: pytest.MonkeyPatch) -> None:
    code = python_of(
        "(fn loop-sum [n] (var i 0) (var acc 0) (while (i < n) (acc += i) (i += 1)) acc)",
        monkeypatch,
    )
    assert "i = i + 1" in code
    assert code.count(CHECK) == 1  # acc's sum keeps its upper check


def test_arithmetic_on_calls_of_a_proven_function_checks_one_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = python_of("(fn fib [n] (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))", monkeypatch)
    fast = next(line for line in code.splitlines() if "fib(n - 1)" in line)
    # the results of fib's calls of itself are numbers while `fib` holds it: the sum's
    # fast path checks the proof's flag, not each result's class
    assert " proven " in fast and "__class__" not in fast
    assert "check_int(" in code
    # n is checked where a boolean would go (n < 2 holds for both), and no further
    assert code.count("n.__class__") == 1
    # a conditional tail returns from each branch
    assert "return n" in code


@pytest.mark.parametrize(
    ("src", "error"),
    [
        ("(fn f [] 9223372036854775807) ((f) + (f))", GeneOverflowError),
        ("(fn f [] -9223372036854775807) ((f) - 5)", GeneOverflowError),
        ("(fn f [] 3037000500) ((f) * (f))", GeneOverflowError),
        ('(fn f [] "a") ((f) + (f))', GeneTypeError),
        ("(fn f [] [1]) ((f) * 2)", GeneTypeError),
    ],
)
def test_checked_arithmetic_raises(src: str, error: type[Exception]) -> None:
    env = compiler.new_env("<checks>")
    with pytest.raises(error):
        compiler.run_source(src, "<checks>", env)


def test_results_in_range_and_floats_pass() -> None:
    env = compiler.new_env("<checks>")
    src = (
        "(fn f [x] x) [((f -9223372036854775807) - 1) ((f 9223372036854775806) + 1)"
        " ((f 1e300) * 1e10) ((f 9223372036854775807) * 2.0)]"
    )
    assert compiler.run_source(src, "<checks>", env) == [
        -(2**63), 2**63 - 1, float("inf"), 2.0**64,
    ]


def test_tensors_pass_the_checks_and_nothing_else() -> None:
    """A tensor answers the check's comparisons (tensor.py) for exactly its bounds."""
    from gene_jit.frontend.compiler_ops import COMPACT
    from gene_jit.tensor import tensor

    assert tensor._LOWER_BOUNDS == {-(2**63), -COMPACT}
    assert tensor._UPPER_BOUNDS == {2**63 - 1, COMPACT}
    env = compiler.new_env("<checks>")
    src = "(fn f [x] x) (var t (tensor/create [1.0 2.0])) [((f t) + (f t)) ((f t) * 3)]"
    doubled, tripled = compiler.run_source(src, "<checks>", env)
    assert doubled.numpy().tolist() == [2.0, 4.0] and tripled.numpy().tolist() == [3.0, 6.0]
    with pytest.raises(GeneTypeError):
        compiler.run_source("(t <= 5)", "<checks>", env)
