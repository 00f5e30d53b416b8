"""Booleans are not numbers (GENE.md): every arithmetic operator, numeric builtin and
ordering comparison with a boolean operand raises the type error a string or nil gives,
in tier 0, eager and lazy mode alike, whatever the operand is (a literal, a variable, a
parameter, a call's result, a container's element); `==` and `!=` compare kinds.

Tier 0 guards operands it cannot prove are not booleans (frontend/compiler_ops.py), and
relies on proofs where it can (frontend/proofs.py): the tests at the end change what a
proven function's name holds in every way a program can, while its calls are running."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import JIT_MODES, run_gene_source

from gene_jit.runtime.errors import GeneTypeError

os.environ.setdefault("GENE_JIT_CACHE", "0")

ARITH = ["+", "-", "*", "/", "**"]
ORDER = ["<", "<=", ">", ">="]
CALLED = ["mod", "div", "rem"]


def _message(op: str, left: str, right: str) -> str:
    if op in ORDER:
        return f"{op} compares numbers only, got {left} and {right}"
    return f"{op} expects numbers, got {left} and {right}"


# How the boolean operand is reached: (definitions, the operand's expression). The
# parameter and the call run once with numbers first, so that lazy mode has compiled
# them by the time the boolean comes.
SHAPES = {
    "literal": ("", "true"),
    "variable": ("(var b true)", "b"),
    "parameter": ("", "x"),
    "call": ("(fn g [v] (if v true 5))", "(g true)"),
    "element": ("(var a [1 true])", "a/1"),
}


def program(op: str, shape: str, bool_left: bool) -> str:
    setup, operand = SHAPES[shape]
    left, right = (operand, "7") if bool_left else ("7", operand)
    if op in CALLED:
        expr = f"({op} {left} {right})"
    else:
        expr = f"({left} {op} {right})"
    if shape == "parameter":
        return f"(fn f [x] {expr})\n(println (f 3))\n(println (f 3))\n(println (f true))"
    if shape == "call":
        number = expr.replace("(g true)", "(g false)")
        return f"{setup}\n(fn h [] {number})\n(println (h))\n(println (h))\n(fn k [] {expr})\n(println (k))"
    return f"{setup}\n(println {expr})"


@pytest.mark.parametrize("mode", JIT_MODES)
@pytest.mark.parametrize("bool_left", [True, False], ids=["bool-left", "bool-right"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("op", ARITH + ORDER + CALLED)
def test_a_boolean_operand_is_a_type_error(op: str, shape: str, bool_left: bool, mode: str) -> None:
    run = run_gene_source(program(op, shape, bool_left), mode)
    assert isinstance(run.error, GeneTypeError), (run.stdout, run.error)
    assert _message(op, *(("bool", "int") if bool_left else ("int", "bool"))) in str(run.error)


@pytest.mark.parametrize("mode", JIT_MODES)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("op", ["neg", "min", "max", "abs"])
def test_a_boolean_argument_of_a_numeric_builtin_is_a_type_error(op: str, shape: str, mode: str) -> None:
    setup, operand = SHAPES[shape]
    call = {"neg": f"(- {operand})", "abs": f"(abs {operand})"}.get(op, f"({op} 2 {operand})")
    if shape == "parameter":
        src = f"(fn f [x] {call})\n(println (f 3))\n(println (f 3))\n(println (f true))"
    elif shape == "call":
        src = f"{setup}\n(fn k [] {call})\n(println (k))"
    else:
        src = f"{setup}\n(println {call})"
    run = run_gene_source(src, mode)
    assert isinstance(run.error, GeneTypeError), (run.stdout, run.error)
    wanted = "- expects a number, got bool" if op == "neg" else f"{op}: expected a number, got bool"
    assert wanted in str(run.error)


@pytest.mark.parametrize("mode", JIT_MODES)
def test_equality_compares_kinds(mode: str) -> None:
    src = (
        "(fn same [a b] (a == b))\n(fn differ [a b] (a != b))\n(var t [true false])\n"
        "(println (true == 1) (false == 0) (1 != true) (same true 1) (same 0 false)"
        " (differ t/0 1) (same true true) (t/1 == false))"
    )
    run = run_gene_source(src, mode)
    assert run.error is None, run.error
    assert run.stdout.split() == ["false", "false", "true", "false", "false", "true", "true", "true"]


@pytest.mark.parametrize("mode", JIT_MODES)
def test_compound_assignment_with_a_boolean_is_a_type_error(mode: str) -> None:
    src = "(fn f [x] (var s 1) (s += x) s)\n(println (f 2))\n(println (f 2))\n(println (f true))"
    run = run_gene_source(src, mode)
    assert isinstance(run.error, GeneTypeError)
    assert "+ expects numbers, got int and bool" in str(run.error)
    assert run.stdout.split() == ["3", "3"]


@pytest.mark.parametrize("mode", JIT_MODES)
def test_a_loop_bound_that_is_a_boolean_fails_at_the_test(mode: str) -> None:
    # the parameter in the while test is checked once, before the loop
    src = (
        "(fn count [n]\n  (var i 0)\n  (println \"before\")\n  (while (i < n)\n    (i += 1))\n  i)\n"
        "(println (count 3))\n(println (count 3))\n(println (count true))"
    )
    run = run_gene_source(src, mode)
    assert isinstance(run.error, GeneTypeError)
    assert "< compares numbers only, got int and bool" in str(run.error)
    assert ":4:" in str(run.error)  # the while test's line
    assert run.stdout.split() == ["before", "3", "before", "3", "before"]


@pytest.mark.parametrize("mode", JIT_MODES)
def test_chains_and_operands_with_side_effects(mode: str) -> None:
    src = (
        "(var n 0)\n(fn step [v] (n += 1) v)\n"
        "(println (try ((step 1) < (step true) < (step 3)) catch * \"caught\") n)\n"
        "(println (try ((step true) + (step 2)) catch * \"caught\") n)\n"
        "(println ((step 1) < (step 2) < (step 3)) n)"
    )
    run = run_gene_source(src, mode)
    assert run.error is None, run.error
    # both operands of a failing comparison or sum are evaluated, the chain stops there
    assert run.stdout.splitlines() == ["caught 2", "caught 4", "true 7"]


# ---- proofs: what a proven function's name holds changes


FIB = "(fn fib [n] (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))\n"


@pytest.mark.parametrize("mode", JIT_MODES)
def test_a_proven_function_still_refuses_a_boolean(mode: str) -> None:
    run = run_gene_source(FIB + "(println (fib 10))\n(println (fib 10))\n(println (fib true))", mode)
    assert isinstance(run.error, GeneTypeError)
    assert "< compares numbers only, got bool and int" in str(run.error)
    assert run.stdout.split() == ["55", "55"]


REBINDINGS = {
    # a reference taken earlier keeps the old function, whose calls by name reach the new
    "redefined": FIB + "(var old fib)\n(fn fib [n] true)\n(println (old 5))",
    "assigned": FIB + "(var old fib)\n(fib = (fnx [n] true))\n(println (old 5))",
    "assigned-by-earlier-code": (
        "(fn swap [] (fib = (fnx [n] true)))\n" + FIB + "(var old fib)\n(swap)\n(println (old 5))"
    ),
    "through-the-namespace": FIB + "(var old fib)\n($ns/fib = (fnx [n] true))\n(println (old 5))",
    # rebound to a boolean-returning function and back while its calls are running
    "during-the-calls": (
        "(var saved nil)\n(fn liar [n] (fib = saved) true)\n"
        "(fn fib [n] (if (n < 2) n (if (n == 4) (do (fib = liar) ((fib (n - 1)) + (fib (n - 2))))"
        " else ((fib (n - 1)) + (fib (n - 2))))))\n"
        "(saved = fib)\n(println (fib 6))"
    ),
    "restored-during-the-calls": (
        FIB + "(var saved fib)\n(fn liar [n] (fib = saved) true)\n(fib = liar)\n(println (saved 3))"
    ),
    "by-eval": FIB + "(var old fib)\n(eval :(fib = (fnx [n] true)))\n(println (old 5))",
}


@pytest.mark.parametrize("mode", JIT_MODES)
@pytest.mark.parametrize("how", list(REBINDINGS))
def test_a_rebound_name_loses_its_proof(how: str, mode: str) -> None:
    run = run_gene_source(REBINDINGS[how], mode)
    assert isinstance(run.error, GeneTypeError), (run.stdout, run.error)
    assert "+ expects numbers, got" in str(run.error) and "bool" in str(run.error)


@pytest.mark.parametrize("mode", JIT_MODES)
def test_a_function_that_returns_early_is_not_proven(mode: str) -> None:
    src = (
        "(fn f [n] (if (n == 0) (return true)) (if (n < 2) n ((f (n - 1)) + (f (n - 2)))))\n"
        "(println (f 1))\n(println (f 5))"
    )
    run = run_gene_source(src, mode)
    assert isinstance(run.error, GeneTypeError), (run.stdout, run.error)
    assert "+ expects numbers, got" in str(run.error) and run.stdout.split() == ["1"]


@pytest.mark.parametrize("mode", JIT_MODES)
def test_a_proven_function_rebound_to_numbers_keeps_working(mode: str) -> None:
    src = FIB + "(var old fib)\n(fn fib [n] 1)\n(println (old 6))\n(fib = old)\n(println (fib 10))"
    run = run_gene_source(src, mode)
    assert run.error is None, run.error
    assert run.stdout.split() == ["2", "55"]


@pytest.mark.parametrize("mode", JIT_MODES)
def test_calls_of_itself_with_unproven_arguments_are_checked(mode: str) -> None:
    # `a` reaches the recursive call unchecked: that call takes the checked entry
    src = (
        "(fn f [a n] (if (n < 1) (a + 0) (f a (n - 1))))\n"
        "(println (f 2 3))\n(println (f 2 3 99))\n(println (f true 3))"
    )
    run = run_gene_source(src, mode)
    assert isinstance(run.error, GeneTypeError), (run.stdout, run.error)
    assert "+ expects numbers, got bool and int" in str(run.error)
    assert run.stdout.split() == ["2", "2"]


def test_a_proven_recursive_function_has_a_second_entry_in_tier_0(monkeypatch: pytest.MonkeyPatch) -> None:
    import ast

    from gene_jit.frontend import compiler

    monkeypatch.setenv("GENE_JIT", "0")
    seen: list[str] = []
    monkeypatch.setattr(compiler, "AST_HOOKS", [lambda m, f, e: seen.append(ast.unparse(m))])
    env = compiler.new_env("<entry>")
    compiler.run_source(FIB + "(fib 15)", "<entry>", env)
    code = "\n".join(seen)
    # the second entry takes exactly fib's arguments and checks no operand
    inner = code.split("def  fi", 1)[1].split("def ", 1)[0]
    assert "(n):" in inner and "__class__" not in inner and "extra" not in inner
    # the calls go through it while the proof's flag holds, else by name
    assert "if  proven " in inner and "else fib(n - 1)" in inner


# ---- from Python


@pytest.fixture(params=["0", "default"])
def jit_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if request.param == "0":
        monkeypatch.setenv("GENE_JIT", "0")
    yield


@pytest.mark.usefixtures("jit_mode")
@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.bool_(False)], ids=repr)
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("(fn f [x] (x + 1))", "+ expects numbers, got bool and int"),
        ("(fn f [x] (2 * x))", "* expects numbers, got int and bool"),
        ("(fn f [x] (x / 2))", "/ expects numbers, got bool and int"),
        ("(fn f [x] (- x))", "- expects a number, got bool"),
        ("(fn f [x] (x < 2))", "< compares numbers only, got bool and int"),
        ("(fn f [x] (x >= 1.5))", ">= compares numbers only, got bool and float"),
        ("(fn f [x] (mod x 2))", "mod expects numbers, got bool and int"),
        (FIB.replace("fib", "f"), "< compares numbers only, got bool and int"),
    ],
    ids=["add", "mul", "div", "neg", "lt", "ge", "mod", "fib"],
)
def test_a_python_boolean_is_not_a_number(source: str, message: str, value: object) -> None:
    from gene_jit.jit import jit

    f = jit(source)
    assert f(3) is not None
    with pytest.raises(GeneTypeError) as info:
        f(value)
    assert message in str(info.value)
