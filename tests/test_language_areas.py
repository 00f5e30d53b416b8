"""Templates, `compile` forms, finally rules, futures: the nodes core.py gives for them,
the error classes they raise, and that functions using them stay in tier 0 with a reason
(the programs under tests/programs/{templates,compile_forms,finally_rules,async_io} check
the output in every mode)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_gene_file, run_gene_source

os.environ.setdefault("GENE_JIT_CACHE", "0")

from gene_jit.frontend import core  # noqa: E402
from gene_jit.frontend.forms import GeneF, Sym  # noqa: E402
from gene_jit.frontend.reader import read_one  # noqa: E402
from gene_jit.runtime.errors import GeneError, GeneSyntaxError  # noqa: E402


def _form(src: str) -> GeneF:
    form = read_one(src, "<areas>")
    assert isinstance(form, GeneF)
    return form


# ---------------------------------------------------------------- nodes


def test_try_node_splits_clauses() -> None:
    node = core.try_node(_form("(try a b catch E c catch * d e finally f)"))
    assert [getattr(f, "name", None) for f in node.body] == ["a", "b"]
    assert [(getattr(c.pattern, "name", None), len(c.body)) for c in node.catches] == [
        ("E", 1),
        ("*", 2),
    ]
    assert node.final is not None and len(node.final) == 1
    assert core.try_node(_form("(try x)")).final is None


@pytest.mark.parametrize(
    "src, message",
    [
        ("(try 1 finally 2 catch * 3)", "catch after finally"),
        ("(try 1 finally 2 finally 3)", "one finally"),
        ("(try 1 catch)", "catch expects"),
    ],
)
def test_try_node_rejects_bad_shapes(src: str, message: str) -> None:
    with pytest.raises(GeneSyntaxError, match=message):
        core.try_node(_form(src))


def test_compile_node() -> None:
    node = core.compile_node(_form("(compile f [a b] ($vm/load a) %more)"))
    assert isinstance(node.name, Sym) and node.name.name == "f"
    assert [p.name for p in node.params] == ["a", "b"]
    assert len(node.code) == 2
    anon = core.compile_node(_form("(compile [] ($vm/push 1))"))
    assert anon.name is None and anon.params == ()
    for bad in ("(compile f)", "(compile f [a/b])", "(compile [x...])"):
        with pytest.raises(GeneSyntaxError):
            core.compile_node(_form(bad))


def test_new_heads_are_special_forms() -> None:
    from gene_jit.frontend import compiler  # noqa: F401  (registers the handlers)
    from gene_jit.frontend.compiler_core import SPECIAL

    for head in ("compile", "try", "throw", "$render"):
        assert head in core.SPECIAL_FORMS and head in SPECIAL


# ---------------------------------------------------------------- finally rules


LEAVING = [
    "(fn f [] (try 1 finally (return 2)))",
    "(fn f [] (try 1 catch * 2 finally (if true (return))))",
    "(loop (try 1 finally (break)))",
    "(loop (try 1 finally (break 5)))",
    "(for i in [1] (try 1 finally (continue)))",
    "(while true (try 1 finally (do (break))))",
    "(fn f [] (try 1 finally (try 2 finally (return 3))))",
    "(fn f [] (try 1 finally (try (return 3) catch * 0)))",
    "(loop (try 1 finally (for j in [1] (println j)) (break)))",
]
STAYING = [
    "(fn f [] (try 1 finally ((fnx [] (return 2)))))",
    "(try 1 finally (loop (break)))",
    "(for i in [1] (try 1 finally (for j in [1 2] (continue))))",
    "(fn f [] (try (return 1) catch * (return 2) finally 3))",
    "(loop (try (break) finally 1))",
    "(fn f [] (try 1 finally (compile [] ($vm/push 1) ($vm/return))))",
]


@pytest.mark.parametrize("src", LEAVING)
def test_control_leaving_finally_is_a_syntax_error(src: str) -> None:
    result = run_gene_source(src)
    assert isinstance(result.error, GeneSyntaxError), result
    assert "inside finally is not allowed" in result.error.message


@pytest.mark.parametrize("src", STAYING)
def test_control_inside_finally_is_allowed(src: str) -> None:
    result = run_gene_source(src)
    assert result.error is None, result.error


# ---------------------------------------------------------------- compile errors


@pytest.mark.parametrize(
    "code, message",
    [
        ("($vm/pop)", "takes 1 value from a stack of 0"),
        ("($vm/push 1) ($vm/call 1)", "takes 2 values from a stack of 1"),
        ("($vm/swap)", "takes 2 values"),
        ("($vm/return)", "takes 1 value"),
        ("($vm/label a) ($vm/label a)", "label a is defined twice"),
        ("($vm/jump b)", "label b, which is not defined"),
        ("($vm/push 1 2)", "$vm/push expects one value"),
        ("($vm/load 3)", "$vm/load expects a name"),
        ("($vm/add 1)", "$vm/add takes no operand"),
        ("($vm/push ^x 1 2)", "compile expects $vm instructions"),
        ("[1]", "compile expects $vm instructions"),
        ("($vm/label top) ($vm/push 1) ($vm/jump top)", "holds 0 values on one path"),
    ],
)
def test_bad_instruction_lists(code: str, message: str) -> None:
    result = run_gene_source(f"(compile f [] {code})")
    assert isinstance(result.error, GeneError), result
    assert result.error.kind == "compile error"
    assert message in result.error.message
    assert result.error.span is not None and result.error.span.line == 1


def test_spliced_lists_are_checked_when_the_form_runs() -> None:
    src = "(fn make [c] (compile [] %c))\n(println ((make [:($vm/push 2)])))\n(make [:($vm/add)])"
    result = run_gene_source(src)
    assert result.stdout == "2\n"
    assert isinstance(result.error, GeneError) and result.error.kind == "compile error"
    assert "takes 2 values" in result.error.message


# ---------------------------------------------------------------- tiers


PROGRAM = """
(fn t-static [x] ($render :(f %x)))
(fn t-value [x] ($render tp))
(fn t-try [x] (try (x + 1) finally 0))
(fn t-compile [x] (compile [a] ($vm/load a)) (x + 1))
(fn t-await [x] (await (async (x * 2))))
(var tp :[%x])
(repeat 3 (println (t-static 1) (t-value 2) (t-try 3) (t-compile 4) (t-await 5)))
"""
REASONS = {
    "t-static": "$render forms are left to tier 0",
    "t-value": "$render forms are left to tier 0",
    "t-try": "try forms are left to tier 0",
    "t-compile": "compile forms are left to tier 0",
    "t-await": "await forms are left to tier 0",
}


@pytest.mark.parametrize("mode", ["0", "eager", "1"])
def test_functions_using_the_areas_stay_in_tier_0_with_a_reason(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENE_JIT_THRESHOLD", "2")
    path = tmp_path / "areas.gene"
    path.write_text(PROGRAM, encoding="utf-8")
    result = run_gene_file(path, mode)
    assert result.error is None, result.error
    assert result.stdout.splitlines() == ["(f 1) [2] 4 5 10"] * 3
    if mode == "0":
        return
    from gene_jit.codegen import stats

    for name, reason in REASONS.items():
        state = stats.REGISTRY[(str(path), name)]
        assert state.tier == 0 and state.reason is not None and reason in state.reason, (
            name,
            state.reason,
        )
