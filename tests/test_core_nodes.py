"""Core nodes (gene_jit/frontend/core.py): one reading of Gene syntax for both tiers.

The chain programs (tests/programs/chains) run in all three modes: `GENE_JIT=0`, eager,
and the default lazy mode, where a function runs in tier 0 until it is hot and natively
after; the functions a program names on its `# Native:` line must really reach tier 1,
so that the test compares the tiers and not tier 0 with itself. Operator pairs are
compiled by both tiers and compared value by value. The syntax tables live in core.py
only.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import os
from pathlib import Path

import pytest
from conftest import run_gene_file
from test_programs import parse_spec

os.environ.setdefault("GENE_JIT_CACHE", "0")

from gene_jit.frontend import core  # noqa: E402
from gene_jit.frontend.forms import GeneF, Lit, Sym  # noqa: E402
from gene_jit.frontend.reader import read_one  # noqa: E402
from gene_jit.runtime.errors import GeneError, GeneSyntaxError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CHAINS = sorted((REPO / "tests" / "programs" / "chains").glob("*.gene"))
MODES = {"0": "0", "eager": "eager", "lazy": "1"}


def _native_names(text: str) -> list[str]:
    return [n for line in text.splitlines() if line.startswith("# Native:") for n in line[9:].split()]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("path", CHAINS, ids=[p.stem for p in CHAINS])
def test_chain_programs_agree_in_every_mode(
    path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gene_jit.codegen import stats

    monkeypatch.setenv("GENE_JIT_THRESHOLD", "2")
    text = path.read_text(encoding="utf-8")
    spec = parse_spec(text)
    result = run_gene_file(path, MODES[mode])
    assert result.error is None, result.error
    assert [line.rstrip() for line in result.stdout.splitlines()] == spec.expected
    if mode == "0":
        return
    for name in _native_names(text):
        state = stats.REGISTRY[(str(path), name)]
        assert state.tier == 1, f"{name} stayed in tier 0: {state.reason}"


def test_every_chain_program_names_native_functions() -> None:
    assert len(CHAINS) >= 5
    for path in CHAINS:
        assert _native_names(path.read_text(encoding="utf-8")), path


# ---------------------------------------------------------------- both tiers, operator pairs

OPS = ["<", "<=", ">", ">=", "==", "!=", "+", "-", "*", "&&", "||"]
VALUES = [-1, 0, 1, 2]


def _compile_both(bodies: list[str]) -> list[tuple[str, object, object]]:
    """(source, tier-0 function, native entry) for each body that tier 1 can type for
    (i64, i64); bodies it cannot type are left out."""
    from gene_jit.codegen.compile import compile_units
    from gene_jit.codegen.hooks import install
    from gene_jit.frontend.compiler import new_env, run_source
    from gene_jit.frontend.compiler_core import pyid
    from gene_jit.ir import types as T
    from gene_jit.ir.builder import NotTypeable
    from gene_jit.ir.program import build_unit

    hooks = install()
    assert hooks is not None
    sources = [f"(fn p{i} {body})" for i, body in enumerate(bodies)]
    env = new_env("pairs.gene")
    run_source("\n".join(sources), "pairs.gene", env)
    kept, units = [], []
    for i, src in enumerate(sources):
        state = hooks.by_object[id(env[pyid(f"p{i}")])]
        state.on = False  # tier 0 stays tier 0
        assert state.source is not None
        try:
            units.append(build_unit(state.source, (T.I64, T.I64), hooks))
        except NotTypeable:
            continue
        kept.append((src, state))
    natives = compile_units(units, use_cache=False)
    return [(src, s.pyfunc, n.builtin(s.pyfunc)) for (src, s), n in zip(kept, natives, strict=True)]


def _outcome(fn: object, a: int, b: int) -> tuple[str, object]:
    try:
        value = fn(a, b)  # type: ignore[operator]
    except GeneError as exc:
        return ("error", type(exc).__name__)
    return ("value", (type(value).__name__, value))


def test_operator_pairs_agree_between_tiers() -> None:
    """Every pair of infix operators, in every operand order: tier 1 reads the chain as
    tier 0 does (precedence, associativity, comparison chains)."""
    bodies = [
        f"[a b] ({x} {o1} {y} {o2} {z})"
        for o1, o2 in itertools.product(OPS, repeat=2)
        for x, y, z in (("a", "b", "1"), ("a", "1", "b"), ("1", "a", "b"), ("b", "a", "a"))
    ]
    compiled = _compile_both(bodies)
    assert len(compiled) >= len(bodies) * 2 // 3  # most pairs really are native
    for src, tier0, native in compiled:
        for a, b in itertools.product(VALUES, repeat=2):
            assert _outcome(native, a, b) == _outcome(tier0, a, b), (src, a, b)


FORMS = [
    "[a b] (if (a < b) then a else b)",
    "[a b] (if not (a < b) a b)",
    "[a b] (if (a == b) a elif (a < b) then b else 0)",
    "[a b] (if (a == b) then 1 elif not (a < b) 2 else 3)",
    "[a b] (if (a == b == 1) 1 elif (a != b != 1) 2 else 3)",
    "[a b] (not (a < b))",
    "[a b] (! (a == b))",
    "[a b] (- a)",
    "[a b] (/ (a + 1))",
    "[a b] (+ a b 1)",
    "[a b] (- a b 1)",
    "[a b] (* a)",
    "[a b] (&& a b)",
    "[a b] (|| (a < b) (a == b))",
    "[a b] (< a b 3)",
    "[a b] (= a b)",
    "[a b] (var x a) (x -= b) (x *= 2) (x += (x - 1)) x",
    "[a b] (var x (a < b)) (x ||= (a == b)) x",
    "[a b] (var x (a < b)) (x &&= (a == b)) x",
]


def test_special_and_prefix_forms_agree_between_tiers() -> None:
    compiled = _compile_both(FORMS)
    assert [src for src, _, _ in compiled] == [f"(fn p{i} {body})" for i, body in enumerate(FORMS)]
    for src, tier0, native in compiled:
        for a, b in itertools.product(VALUES, repeat=2):
            assert _outcome(native, a, b) == _outcome(tier0, a, b), (src, a, b)


# ---------------------------------------------------------------- the nodes


def node_of(src: str) -> core.Node:
    form = read_one(src, "<core>")
    assert isinstance(form, GeneF)
    return core.resolve(form)


def shape(e: core.Expr) -> object:
    """A compact picture of an operator tree: forms by their text."""
    if isinstance(e, core.Binary | core.Logic):
        return (shape(e.left), e.op, shape(e.right))
    if isinstance(e, core.Compare):
        pairs = zip(map(shape, e.operands[:-1]), e.ops, strict=True)
        return ("cmp", *(x for pair in pairs for x in pair), shape(e.operands[-1]))
    if isinstance(e, core.Unary):
        return (e.op, shape(e.operand))
    if isinstance(e, Sym):
        return e.name
    if isinstance(e, Lit):
        return e.value
    return type(e).__name__


@pytest.mark.parametrize("src, tree", [
    ("(a + b * c)", ("a", "+", ("b", "*", "c"))),
    ("(a - b - c)", (("a", "-", "b"), "-", "c")),
    ("(a / b * c ** d)", (("a", "/", "b"), "*", ("c", "**", "d"))),
    ("(x == y == z)", ("cmp", "x", "==", "y", "==", "z")),
    ("(a + 1 == b + 1 == 3)", ("cmp", ("a", "+", 1), "==", ("b", "+", 1), "==", 3)),
    ("(a < b == c)", ("cmp", "a", "<", "b", "==", "c")),
    ("(a < b && b != c || d)", ((("cmp", "a", "<", "b"), "&&", ("cmp", "b", "!=", "c")), "||", "d")),
    ("(a || b && c)", ("a", "||", ("b", "&&", "c"))),
])  # fmt: skip
def test_infix_precedence_and_chains(src: str, tree: object) -> None:
    assert shape(node_of(src)) == tree


@pytest.mark.parametrize("src, tree", [
    ("(+ a b c)", (("a", "+", "b"), "+", "c")),
    ("(- a)", ("-", "a")),
    ("(/ a)", (1, "/", "a")),
    ("(+)", 0),
    ("(*)", 1),
    ("(&&)", True),
    ("(< a b c)", ("cmp", "a", "<", "b", "<", "c")),
    ("(= a b)", ("cmp", "a", "==", "b")),
    ("(not x)", ("not", "x")),
    ("(! x)", ("not", "x")),
    ("(&& a b c)", (("a", "&&", "b"), "&&", "c")),
])  # fmt: skip
def test_prefix_operators(src: str, tree: object) -> None:
    node = node_of(src)
    assert isinstance(node, core.Named) and node.role is core.Role.OPERATOR
    assert shape(core.prefix(node.form)) == tree


def test_nodes_are_frozen_and_carry_the_span_of_their_form() -> None:
    node = node_of("  (a + b * c == d)")
    assert isinstance(node, core.Compare)
    assert (node.span.line, node.span.col) == (1, 3)
    inner = node.operands[0]
    assert isinstance(inner, core.Binary) and inner.span == node.span
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.ops = ()  # type: ignore[misc]
    assert not hasattr(node, "__dict__")


@pytest.mark.parametrize("op", sorted(core.ASSIGN_OPS))
def test_assignment_operators(op: str) -> None:
    for target in ("x", "a/0", "m/key", "/p", "$ns/x"):
        node = node_of(f"({target} {op} (f 1))")
        assert isinstance(node, core.Assign)
        assert (node.target.name, node.op) == (target, op)
        assert node.base == (None if op == "=" else op[:-1])
        assert node.base is None or node.base in core.INFIX_PREC


@pytest.mark.parametrize("src, kind", [
    ("(a .. b)", core.Range),
    ("(m ./ k)", core.Select),
    ("(m ./k 0)", core.Select),
    ("(./ m k)", core.Select),
    ("([a] -> a)", core.Lambda),
    ("(s .size)", core.MethodCall),
    ("(.greet 1)", core.Named),
    ("(:t 1)", core.GeneData),
    ("(_ 1)", core.GeneData),
    ("()", core.GeneData),
    ("(\"n=\" n)", core.LiteralHead),
    ("((f) 1)", core.Call),
    ("(f x)", core.Named),
])  # fmt: skip
def test_second_position_keywords_and_heads(src: str, kind: type) -> None:
    assert type(node_of(src)) is kind


@pytest.mark.parametrize("head", sorted(core.NOT_INFIX_HEADS - {"$", "."}))
def test_blocking_heads_are_never_read_as_infix(head: str) -> None:
    for second in ("==", "=", "+=", "..", ".m"):
        node = node_of(f"({head} {second} x)")
        assert isinstance(node, core.Named) and node.name == head


def test_head_roles() -> None:
    assert core.head_role("if") is core.Role.SPECIAL
    assert core.head_role("+") is core.Role.OPERATOR
    assert core.head_role(".m") is core.Role.METHOD
    assert core.head_role("println") is core.Role.NAME
    node = node_of("(super .m 1)")  # a special form reads its own keywords
    assert isinstance(node, core.Named) and node.role is core.Role.SPECIAL


def test_if_clauses() -> None:
    node = core.if_node(read_one("(if not a 1 elif b then 2 3 else 4)", "<core>"))  # type: ignore[arg-type]
    assert [(c.negate, shape(c.cond), [shape(f) for f in c.body]) for c in node.clauses] == [
        (True, "a", [1]), (False, "b", [2, 3])]
    assert node.else_body is not None and [shape(f) for f in node.else_body] == [4]
    plain = core.if_node(read_one("(if c 1 2)", "<core>"))  # type: ignore[arg-type]
    assert len(plain.clauses) == 1 and plain.else_body is not None


@pytest.mark.parametrize("src, where, message", [
    ("(a +)", 1, "operands between operators"),
    ("(a + b c d)", 8, "expects an operator here"),
    ("(x = 1 2)", 1, "assignment expects (target = value)"),
    ("(1 = 2)", 1, "assignment expects"),
    ("(a .. b c)", 1, "range expects"),
    ("(m ./ k 1 2)", 1, "selector expects"),
])  # fmt: skip
def test_malformed_forms_are_syntax_errors_at_their_span(src: str, where: int, message: str) -> None:
    with pytest.raises(GeneSyntaxError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        node_of(src)
    assert info.value.span is not None and info.value.span.col == where


# ---------------------------------------------------------------- one source of truth


def _literal_strings(node: ast.expr) -> tuple[set[str], bool]:
    """The string elements (or keys) of a literal table, and whether it maps to ints."""
    if isinstance(node, ast.Dict):
        keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        ints = all(isinstance(v, ast.Constant) and type(v.value) is int for v in node.values)
        return keys, ints
    if isinstance(node, ast.Set | ast.List | ast.Tuple):
        return {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}, False
    if isinstance(node, ast.Call) and node.args:  # frozenset({...}), set([...])
        return _literal_strings(node.args[0])
    return set(), False


# Heads that only a list of infix-blocking heads names together (lists of special forms
# by what they bind or evaluate name a few of them at most).
_DEFINING_HEADS = frozenset({"fn", "fnx", "fnxx", "macro", "ns", "class", "$", "."})


def test_syntax_tables_are_defined_only_in_core() -> None:
    """No other module of the package spells a precedence table, a set of comparison or
    assignment operators, or a list of heads that block infix reading."""
    compound = core.ASSIGN_OPS - {"="}
    offenders = []
    for path in sorted((REPO / "gene_jit").rglob("*.py")):
        if path.name == "core.py" and path.parent.name == "frontend":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Dict | ast.Set | ast.List | ast.Tuple | ast.Call):
                continue
            names, to_ints = _literal_strings(node)
            found = (
                (to_ints and len(names & set(core.INFIX_PREC)) >= 3)
                or (not isinstance(node, ast.Dict) and len(names & core.COMPARE_OPS) >= 3)
                or len(names & compound) >= 2
                or (not isinstance(node, ast.Dict) and len(names & _DEFINING_HEADS) >= 5)
            )
            if found:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_special_form_tables_agree() -> None:
    from gene_jit.frontend import compiler  # noqa: F401  (registers the tier-0 handlers)
    from gene_jit.frontend.compiler_core import SPECIAL
    from gene_jit.ir.build_exprs import SPECIAL as TIER1_SPECIAL

    assert set(SPECIAL) == core.SPECIAL_FORMS
    assert set(TIER1_SPECIAL) <= core.SPECIAL_FORMS
    assert not core.SPECIAL_FORMS & core.PREFIX_OPS
