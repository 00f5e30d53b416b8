"""Tier 1 beside a changing program: redefined callees invalidate compiled callers,
profiling compiles counting variants (native call counts, loop trips), the jit entry is
a vectorcall object, and lone scalar functions take the cheaper pass pipeline."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GENE_JIT_CACHE", "0")

from gene_jit.codegen import stats  # noqa: E402
from gene_jit.jit import jit  # noqa: E402
from gene_jit.runtime.errors import GeneArityError, GeneOverflowError  # noqa: E402


def test_redefined_callee_is_not_called_through_old_native_code(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from gene_jit.frontend.compiler import run_source

    monkeypatch.setenv("GENE_JIT", "eager")
    src = """
(fn step [x] (x + 1))
(fn run [n] (var s 0) (for i in (range n) (s = (step s))) s)
(println (run 10))
(fn step [x] (x + 100))
(println (run 10))
(println (run 10))
"""
    run_source(src, "redef.gene")
    assert capsys.readouterr().out == "10\n1000\n1000\n"
    rec = stats.REGISTRY[("redef.gene", "run")]
    assert rec.tier == 1  # compiled again against the new step


def test_redefinition_relinks_a_jit_object() -> None:
    from gene_jit.frontend.compiler import run_source

    f = jit("(fn helper [x] (x * 2)) (fn user [x] ((helper x) + 1))")
    assert f(5) == 11 and f.signatures == ["(i64) -> i64"]
    run_source("(fn helper [x] (x * 3))", "<jit>", f._pyfunc.__globals__)
    assert f.signatures == []  # invalidated
    assert f(5) == 16
    assert f.signatures == ["(i64) -> i64"]


def test_profiling_counts_native_calls_and_loop_trips(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from gene_jit.frontend.compiler import run_source

    monkeypatch.setenv("GENE_JIT", "eager")
    monkeypatch.setenv("GENE_PROFILE", "1")
    src = """
(fn fibp [n] (if (n < 2) n ((fibp (n - 1)) + (fibp (n - 2)))))
(fn spin [n] (var s 0) (while (s < n) (s += 1)) s)
(println (fibp 15))
(println (spin 12345))
"""
    run_source(src, "prof.gene")
    assert capsys.readouterr().out == "610\n12345\n"
    fib = stats.REGISTRY[("prof.gene", "fibp")]
    assert fib.tier == 1 and fib.total_calls == 1973  # every recursive call, in native code
    (loop,) = [lp for lp in stats.hot_loops() if lp.file == "prof.gene"]
    assert (loop.kind, loop.line, loop.function, loop.trips) == ("while", 3, "spin", 12345)
    assert "12345 trips" in stats.report()


def test_no_counters_without_profiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENE_PROFILE", raising=False)
    f = jit("(fn quiet [n] (if (n < 2) n ((quiet (n - 1)) + (quiet (n - 2)))))")
    assert f(15) == 610
    assert f.stats.native_calls == 0
    assert "inttoptr" not in next(iter(f.inspect_llvm().values()))


def test_jit_object_is_called_through_vectorcall() -> None:
    f = jit("(fn add [a b] (a + b))")
    assert type(f).__name__ == "JitFunction" and type(f).__flags__ & (1 << 11)  # HAVE_VECTORCALL
    assert f(1, 2) == 3
    assert f(1.5, 2.0) == 3.5  # a miss compiles the second signature
    assert f(1, 2) == 3  # the older signature, behind the newer one's guard
    with pytest.raises(GeneOverflowError):
        f(2**70, 1)  # not an i64: tier 0, which has 64-bit ints too
    with pytest.raises(GeneArityError, match=r"no parameter \^c"):  # keywords: the dispatcher
        f(1, c=2)
    assert f.signatures == ["(i64, i64) -> i64", "(f64, f64) -> f64"]


def test_lone_scalar_functions_take_the_function_pipeline() -> None:
    from gene_jit.codegen.compile import full_pipeline
    from gene_jit.codegen.hooks import install
    from gene_jit.ir import types as T
    from gene_jit.ir.program import build_unit

    hooks = install()
    scalar = jit("(fn lone [n] (var s 0) (for i in (range n) (s += i)) s)")
    arrays = jit("(fn arr [a] (get a 0))")
    units = [build_unit(scalar._state.source, (T.I64,), hooks),
             build_unit(arrays._state.source, (T.array(T.F64, 1),), hooks)]
    assert [full_pipeline(u) for u in units] == [False, True]
    assert scalar(10) == 45


def test_a_loop_called_once_runs_native(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A function with a loop compiles on its first call, whatever the call threshold:
    its loop is where the time goes, and it may never be called again."""
    from gene_jit.frontend.compiler import run_source

    monkeypatch.setenv("GENE_JIT", "1")
    monkeypatch.setenv("GENE_JIT_THRESHOLD", "1000")
    run_source("(fn once [n] (var s 0) (for i in (range n) (s += i)) s)\n(println (once 100000))\n"
               "(fn twice [x] (x + 1))\n(println (twice 1))\n", "once.gene")
    assert capsys.readouterr().out == "4999950000\n2\n"
    assert stats.REGISTRY[("once.gene", "once")].tier == 1
    assert stats.REGISTRY[("once.gene", "twice")].tier == 0


def test_callers_keep_their_code_when_tier_1_rebinds_a_callee(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A callee compiled after its caller moves its global name to its native entry:
    that is the same function, so the caller's name check adapts instead of dropping
    the caller's code."""
    from gene_jit.frontend.compiler import run_source

    monkeypatch.setenv("GENE_JIT", "1")
    monkeypatch.setenv("GENE_JIT_THRESHOLD", "3")
    src = """
(fn inc [x] (x + 1))
(fn twice [x] (inc (inc x)))
(println (twice 1) (twice 1) (twice 1) (twice 1))
(println (inc 1) (inc 1) (inc 1) (inc 1))
(println (twice 1) (twice 1) (twice 1))
"""
    run_source(src, "moved.gene")
    assert capsys.readouterr().out == "3 3 3 3\n2 2 2 2\n3 3 3\n"
    twice = stats.REGISTRY[("moved.gene", "twice")]
    assert twice.tier == 1 and len(twice.signatures) == 1 and not twice.reason


def test_an_old_reference_calls_the_current_definitions(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled code reached through a reference taken before a redefinition (a global,
    an array element, a closure) checks its names and runs the old function, which
    calls the new definition by name."""
    from gene_jit.frontend.compiler import run_source

    monkeypatch.setenv("GENE_JIT", "eager")
    src = """
(fn fact [n] (if (n <= 1) 1 (n * (fact (n - 1)))))
(println (fact 5))
(var keep [fact])
(fn caller [] (fnx [n] (fact n)))
(var via (caller))
(fn fact [n] (n + 1000))
(println (keep/0 5) (via 5) (fact 5))
"""
    run_source(src, "oldref.gene")
    assert capsys.readouterr().out == "120\n5020 1005 1005\n"
