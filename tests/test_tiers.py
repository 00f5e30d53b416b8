"""Tier agreement: tier 0 (Python bytecode) and tier 1 (native) compute the same values
and raise the same errors, on hand-written and on hypothesis-generated programs; the
profiling prologue compiles hot functions and records why others stay in tier 0."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

os.environ.setdefault("GENE_JIT_CACHE", "0")

from gene_jit.codegen import stats  # noqa: E402
from gene_jit.runtime.errors import GeneError  # noqa: E402

# Generated programs per run: CI sets GENE_DIFF_PROGRAMS=2000; the plain tier runs 200.
# Each hypothesis example is a batch of programs compiled into one LLVM module (one
# optimisation and code generation), which is what makes thousands affordable.
BATCH = 50
PROGRAMS = int(os.environ.get("GENE_DIFF_PROGRAMS", "200"))
EXAMPLES = max(1, PROGRAMS // BATCH)

BIG = [0, 1, -1, 2, 3, 7, -13, 1000, 2**31, 2**62, -(2**62), 2**63 - 1, -(2**63)]
FLOATS = ["0.5", "-2.25", "1e300", "-1e-300", "0.0", "3.0"]


def int_expr(r: random.Random, depth: int) -> str:
    """A random int expression over a, b, x: overflow, mod/rem/div, branches."""
    kind = r.randrange(5) if depth > 0 else 0
    sub = lambda: int_expr(r, depth - 1)  # noqa: E731
    if kind == 0:
        return r.choice(["a", "b", "x", str(r.choice(BIG))])
    if kind == 1:
        return f"({sub()} {r.choice(['+', '-', '*'])} {sub()})"
    if kind == 2:
        return f"({r.choice(['mod', 'rem', 'div', 'min', 'max'])} {sub()} {sub()})"
    if kind == 3:
        return f"(if ({sub()} {r.choice(['<', '<=', '>', '==', '!='])} {sub()}) {sub()} else {sub()})"
    return f"(- {sub()})"


def float_expr(r: random.Random, depth: int) -> str:
    """A random float expression: IEEE results (inf, nan, -0.0) must agree."""
    kind = r.randrange(4) if depth > 0 else 0
    sub = lambda: float_expr(r, depth - 1)  # noqa: E731
    if kind == 0:
        return r.choice(["x", "(to_f a)", "(to_f b)", r.choice(FLOATS)])
    if kind == 1:
        return f"({sub()} {r.choice(['+', '-', '*', '/'])} {sub()})"
    if kind == 2:
        return f"(if ({sub()} {r.choice(['<', '>=', '==', '!='])} {sub()}) {sub()} else {sub()})"
    return f"(- {sub()})"


def program(r: random.Random) -> str:
    """The rest of `(fn NAME [a b] ...)`: an int or float accumulator updated in a loop."""
    is_float = r.random() < 0.4
    init = r.choice(["0.5", "(to_f a)"] if is_float else ["0", "1", "a"])
    body = float_expr(r, 2) if is_float else int_expr(r, 2)
    brk = r.choice(["", "(if (i > 3) (break))", "(if (i == 2) (continue))"])
    return f"[a b] (var x {init}) (var i 0) (while (i < {r.randrange(6)}) (i += 1) {brk} (x = {body})) x"


def outcome(fn: object, *args: object) -> tuple[str, object]:
    try:
        value = fn(*args)  # type: ignore[operator]
    except GeneError as exc:
        return ("error", type(exc).__name__)
    if isinstance(value, float) and value != value:
        return ("value", "nan")
    return ("value", (type(value).__name__, value))


def compile_batch(bodies: list[str]) -> list[tuple[str, object, object]]:
    """Define every program in one tier-0 module, then compile all of them for (i64,
    i64) into one native module; (source, tier-0 function, native entry) each."""
    from gene_jit.codegen.compile import compile_units
    from gene_jit.codegen.hooks import install
    from gene_jit.frontend.compiler import new_env, run_source
    from gene_jit.frontend.compiler_core import pyid
    from gene_jit.ir import types as T
    from gene_jit.ir.program import build_unit

    hooks = install()
    assert hooks is not None
    sources = [f"(fn p{i} {body})" for i, body in enumerate(bodies)]
    env = new_env("diff.gene")
    run_source("\n".join(sources), "diff.gene", env)
    states = [hooks.by_object[id(env[pyid(f"p{i}")])] for i in range(len(bodies))]
    for s in states:
        s.on = False  # tier 0 must stay tier 0, not compile on its first call
    units = [build_unit(s.source, (T.I64, T.I64), hooks) for s in states]
    natives = compile_units(units, use_cache=False)
    return [(src, s.pyfunc, n.builtin(s.pyfunc)) for src, s, n in zip(sources, states, natives, strict=True)]


# Hypothesis supplies the seed; a plain generator draws the programs (drawing each
# one through strategies costs more than compiling it). No shrinking: a failure names
# its program.
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate], database=None)
@given(st.randoms(use_true_random=False))
def test_random_programs_agree(r: random.Random) -> None:
    batch = [(program(r), r.choice(BIG), r.choice(BIG)) for _ in range(BATCH)]
    compiled = compile_batch([body for body, _, _ in batch])
    for (src, tier0, native), (_, a, b) in zip(compiled, batch, strict=True):
        assert outcome(native, a, b) == outcome(tier0, a, b), (src, a, b)


def test_batch_compile_reports_disagreement() -> None:
    """The differential harness can fail: a native entry is really native, and a
    deliberately different tier-0 result is noticed."""
    ((_, tier0, native),) = compile_batch(["[a b] (a + b)"])
    assert type(native).__name__ == "builtin_function_or_method"
    assert outcome(native, 2**62, 2**62) == ("error", "GeneOverflowError") == outcome(tier0, 2**62, 2**62)
    assert outcome(native, 1, 2) != outcome(lambda a, b: a - b, 1, 2)


def test_eager_mode_compiles_hot_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from gene_jit.frontend.compiler import run_source

    monkeypatch.setenv("GENE_JIT", "eager")
    src = """
(fn tri [n] (var s 0) (for i in (1 .. n) (s += i)) s)
(fn shout [x] (println "x is" x) x)
(println (tri 100))
(shout 1)
"""
    run_source(src, "tiers.gene")
    assert capsys.readouterr().out == "5050\nx is 1\n"
    by_name = {name: s for (file, name), s in stats.REGISTRY.items() if file == "tiers.gene"}
    assert by_name["tri"].tier == 1 and by_name["tri"].signatures[0].signature == "i64"
    assert by_name["shout"].tier == 0 and "println" in by_name["shout"].reason
    assert "tri" in stats.report()


def test_lazy_mode_waits_for_the_threshold(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from gene_jit.frontend.compiler import run_source

    monkeypatch.setenv("GENE_JIT", "1")
    monkeypatch.setenv("GENE_JIT_THRESHOLD", "3")
    run_source("(fn sq3 [x] (x * x)) (println (sq3 2)) (println (sq3 3))", "lazy.gene")
    state = stats.REGISTRY[("lazy.gene", "sq3")]
    assert state.tier == 0 and state.calls == 2
    run_source("(fn sq4 [x] (x * x)) (sq4 1) (sq4 2) (println (sq4 3)) (println (sq4 4))", "lazy.gene")
    state = stats.REGISTRY[("lazy.gene", "sq4")]
    assert state.tier == 1
    assert capsys.readouterr().out == "4\n9\n9\n16\n"


def test_jit_off_installs_nothing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from gene_jit.frontend.compiler import run_source

    monkeypatch.setenv("GENE_JIT", "0")
    before = len(stats.REGISTRY)
    run_source("(fn off [x] (x + 1)) (println (off 1))", "off.gene")
    assert capsys.readouterr().out == "2\n"
    assert len(stats.REGISTRY) == before


def test_overflow_error_points_at_the_operation(monkeypatch: pytest.MonkeyPatch) -> None:
    from gene_jit.frontend.compiler import run_source

    monkeypatch.setenv("GENE_JIT", "eager")
    src = "(fn fact [n] (if (n < 2) 1 (n * (fact (n - 1)))))\n(fact 30)\n"
    with pytest.raises(GeneError) as info:
        run_source(src, "fact.gene")
    assert info.value.kind == "overflow error"
    assert info.value.span is not None and info.value.span.line == 1


def test_disk_cache_skips_compilation_in_a_second_process(tmp_path: object) -> None:
    import subprocess
    import sys

    code = ("from gene_jit.jit import jit\n"
            "f = jit('(fn cached [n] (var s 0) (for i in (range n) (s += i)) s)', cache=True)\n"
            "print(f(10), f.stats.cache_hits)\n")
    env = {**os.environ, "GENE_JIT_CACHE_DIR": str(tmp_path), "GENE_JIT_CACHE": "1"}
    outs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    assert outs == [["45", "0"], ["45", "1"]]


def test_ir_command_shows_ir_llvm_and_asm(tmp_path: object) -> None:
    import subprocess
    import sys
    from pathlib import Path

    path = Path(str(tmp_path)) / "fib.gene"
    path.write_text("(fn fib [n] (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))\n")
    out = subprocess.run([sys.executable, "-m", "gene_jit", "ir", str(path), "--fn", "fib",
                          "--emit", "ir,llvm,asm"], capture_output=True, text=True, check=True).stdout
    assert "fn fib__i64(%n: i64) -> i64" in out
    assert "define i64 @gj_fib__i64" in out
    assert "gj_fib__i64:" in out
