"""Where tier 1 used to differ from tier 0 (GENE.md's decision table): an int against a
float compares exactly, ranges near the int64 limits count without overflow, float pow
is C's, and calls from compiled code follow global rebinding. Checked against Python's
own answers on many values, in native code and in tier 0."""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import math
import os
import random

import pytest

os.environ.setdefault("GENE_JIT_CACHE", "0")

from gene_jit.frontend.compiler import new_env, run_source  # noqa: E402
from gene_jit.frontend.forms import NO_SPAN  # noqa: E402
from gene_jit.ir import types as T  # noqa: E402
from gene_jit.ir.nodes import Block, Function, Instr, Op, Value  # noqa: E402
from gene_jit.ir.verifier import verify  # noqa: E402
from gene_jit.jit import jit  # noqa: E402
from gene_jit.runtime.errors import InternalError  # noqa: E402

M = 2**63
ORDERINGS = ["<", "<=", ">", ">="]


def _compare_cases() -> list[tuple[object, object]]:
    r = random.Random(12)
    ints = [0, 1, -1, 2**53, 2**53 + 1, 2**53 - 1, -(2**53) - 1, M - 1, -M, -M + 1, 2**62 + 1]
    ints += [r.randrange(-M, M) for _ in range(20)]
    ints += [int(float(2 ** r.randrange(53, 63))) + r.randrange(-3, 4) for _ in range(20)]
    floats = [0.0, -0.0, 1.5, -1.5, 2.0**53, 2.0**53 + 2, 2.0**63, -(2.0**63), 2.0**62, math.inf,
              -math.inf, math.nan, 1e300, -1e300]
    floats += [float(i) for i in ints[:30]] + [math.nextafter(float(i), math.inf) for i in ints[:30]]
    pairs: list[tuple[object, object]] = []
    for i, f in itertools.product(ints, floats):
        pairs += [(i, f), (f, i)]
    return pairs


@pytest.mark.parametrize("op", ORDERINGS)
def test_int_against_float_compares_exactly_in_native_code(op: str) -> None:
    f = jit(f"(fn c [a b] (a {op} b))")
    cases = _compare_cases()
    wrong = [(a, b) for a, b in cases if f(a, b) is not eval(f"a {op} b")]  # noqa: S307
    assert wrong == []
    assert f.signatures == ["(i64, f64) -> bool", "(f64, i64) -> bool"]


@pytest.mark.parametrize("mode", ["0", "eager"])
def test_mixed_comparison_chains_agree(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                       mode: str) -> None:
    monkeypatch.setenv("GENE_JIT", mode)
    run_source("(fn between [lo x hi] (lo < x <= hi))\n"
               "(println (between 9007199254740992.0 9007199254740993 9007199254740994.0))\n"
               "(println (between 9007199254740992 9007199254740992.0 9007199254740993))\n",
               "chain.gene")
    assert capsys.readouterr().out == "true\nfalse\n"


def test_verifier_takes_mixed_orderings_but_not_mixed_equality() -> None:
    a, b = Value(1, T.I64, "a"), Value(2, T.F64, "b")

    def fn(op: Op) -> Function:
        r = Value(3, T.BOOL)
        block = Block("entry", [Instr(op, r, (a, b), span=NO_SPAN), Instr(Op.RET, None, (r,))])
        return Function("f", "f", [a, b], T.BOOL, [block])

    for op in (Op.LT, Op.LE, Op.GT, Op.GE):
        verify(fn(op))
    for op in (Op.EQ, Op.NE):
        with pytest.raises(InternalError, match="comparison"):
            verify(fn(op))


def _range_sources() -> list[tuple[int, str]]:
    """(step, source of a function counting and summing a range with that step)."""
    steps = [1, -1, 2, -2, 3, -7, 2**62, -(2**62), M - 1, -(M - 1), -M, 10**18, -(10**18)]
    return [(s, f"(fn r [a b] (var n 0) (var last 0) (for i in (range a b {s}) (n += 1) (last = i)) "
                f"(if (n > 3) n last))") for s in steps]


def _range_bounds(step: int) -> list[tuple[int, int]]:
    r = random.Random(step)
    edges = [-M, -M + 1, -M + 2, -1, 0, 1, M - 3, M - 2, M - 1]
    pairs = [(a, b) for a in edges for b in edges]
    pairs += [(r.randrange(-M, M), r.choice(edges)) for _ in range(30)]
    return pairs


@pytest.mark.parametrize(("step", "source"), _range_sources(), ids=lambda v: str(v)[:12])
def test_ranges_near_the_int64_limits_count_exactly(step: int, source: str) -> None:
    f = jit(source)

    def count(a: int, b: int) -> int:
        return max(0, -((a - b) // step))  # ceil((b - a) / step); len() stops at 2^63

    def expected(a: int, b: int) -> int:
        n = count(a, b)
        return n if n > 3 else (a + (n - 1) * step if n else 0)

    bounds = [(a, b) for a, b in _range_bounds(step) if count(a, b) < 10**5]
    assert len(bounds) > 40
    wrong = [(a, b) for a, b in bounds if f(a, b) != expected(a, b)]
    assert wrong == []
    assert f.signatures == ["(i64, i64) -> i64"]  # all of it ran natively


def test_inclusive_ranges_reach_int64_max_and_min() -> None:
    f = jit("(fn r [a b] (var n 0) (for i in (a .. b) (n += 1)) n)")
    for a, b in [(M - 2, M - 1), (M - 1, M - 1), (-M, -M + 2), (-M, -M), (5, 4), (M - 1, M - 2)]:
        assert f(a, b) == len(range(a, b + 1))


def _libm_pow(x: float, y: float) -> float:
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    libm.pow.restype = ctypes.c_double
    libm.pow.argtypes = [ctypes.c_double, ctypes.c_double]
    return float(libm.pow(x, y))


POW_VALUES = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -8.0, 10.0, -10.0, 401.0, 400.0, -1.0, -3.0,
              0.3333333333333333, 1e308, -1e308, math.inf, -math.inf, math.nan, 1e-320]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


@pytest.mark.parametrize("mode", ["0", "eager"])
def test_float_pow_is_c_pow_in_both_tiers(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv("GENE_JIT", mode)
    env = new_env("pow.gene")
    run_source("(fn p [a b] (pow a b)) (fn q [a b] (a ** b))", "pow.gene", env)
    wrong = []
    for x, y in itertools.product(POW_VALUES, POW_VALUES):
        want = _libm_pow(x, y)
        for name in ("p", "q"):
            got = env[name](x, y)
            if not _same(got, want):
                wrong.append((name, x, y, got, want))
    assert wrong == []


@pytest.mark.parametrize("mode", ["0", "eager"])
def test_sqrt_and_log_domain_errors_are_nan(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv("GENE_JIT", mode)
    env = new_env("m.gene")
    run_source("(fn s [x] (sqrt x)) (fn l [x] (log x))", "m.gene", env)
    for x in (-1.0, -1e-300, -math.inf, math.nan):
        assert math.isnan(env["s"](x)) and math.isnan(env["l"](x))
    assert env["l"](0.0) == -math.inf and env["l"](-0.0) == -math.inf and env["s"](-0.0) == 0.0


@pytest.mark.parametrize("mode", ["0", "eager", "1"])
def test_compiled_callers_follow_global_rebinding(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], mode: str) -> None:
    """Each way a global name can change under a compiled caller: assignment at top
    level, assignment inside a function, `fn` redefinition, shadowing a builtin, and a
    name that was a builtin being assigned."""
    monkeypatch.setenv("GENE_JIT", mode)
    src = """
(var h (fnx [x] (x + 1)))
(fn user [x] ((h x) + (max x 0)))
(fn report [] (println (user 3) (user 3) (user 3)))
(report)
(h = (fnx [x] (x * 100)))
(report)
(fn change [] (h = (fnx [x] (x - 1))))
(change)
(report)
(fn h [x] 7)
(report)
(max = (fnx [a b] -1000))
(report)
"""
    run_source(src, f"rebind{mode}.gene")
    assert capsys.readouterr().out == "7 7 7\n303 303 303\n5 5 5\n10 10 10\n-993 -993 -993\n"


def test_names_resolve_lexically_as_in_tier_0(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A captured variable shadows a global function and a builtin of its name: the
    closure that calls one stays in tier 0 and says why; a loop variable and a local that
    shadow a global are compiled, as is a call of a global that a top-level `var`
    redeclared (through the variable, not the function it replaced)."""
    from gene_jit.codegen import stats

    monkeypatch.setenv("GENE_JIT", "eager")
    src = """
(fn sq [v] (v * v))
(fn make [n] (var sq (fn [v] (v * n))) (fn callsq [v] (sq v)))
(fn mkabs [k] (var abs (fn [x] (x + k))) (fn callabs [x] (abs x)))
(fn loops [n] (var s 0) (for sq in (range 0 n) (s += sq)) s)
(fn local [v] (var abs (v * 2)) (abs + 1))
(fn tw [x] (x * 2))
(var tw (fn [x] (x + 100)))
(fn after [x] (tw x))
(var g (make 3))
(var h (mkabs 10))
(println (g 4) (g 5) (h -4) (h 2) (loops 4) (local 5) (after 1) (after 2))
"""
    run_source(src, "lexical_names.gene")
    assert capsys.readouterr().out == "12 15 6 12 6 11 101 102\n"
    by_name = {n: s for (f, n), s in stats.REGISTRY.items() if f == "lexical_names.gene"}
    assert by_name["callsq"].tier == 0 and by_name["callabs"].tier == 0
    assert by_name["callsq"].reason.startswith("calls captured variable sq at lexical_names.gene:3:")
    assert by_name["callabs"].reason.startswith("calls captured variable abs at lexical_names.gene:4:")
    assert by_name["loops"].tier == 1 and by_name["local"].tier == 1
