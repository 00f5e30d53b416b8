"""The IR pass pipeline: its names, `GENE_DUMP=ir-after:PASS`, and the self-inlining of
recursive calls (same results, same errors, same recursion depth)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GENE_JIT_CACHE", "0")
os.environ["GENE_JIT_VERIFY"] = "1"

from gene_jit.ir import types as T  # noqa: E402
from gene_jit.ir.nodes import Op, Unit  # noqa: E402
from gene_jit.ir.passes import PASS_NAMES, PIPELINE, run_passes, selfinline  # noqa: E402
from gene_jit.ir.verifier import verify_unit  # noqa: E402
from gene_jit.jit import jit as gjit  # noqa: E402
from gene_jit.runtime.errors import GeneError, GeneOverflowError  # noqa: E402
from tests.test_ir import FIB, Resolver  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def fib_unit() -> Unit:
    return Resolver(FIB).unit("fib", T.I64)


def count(unit: Unit, op: Op, attr: object = None) -> int:
    return sum(1 for f in unit.functions.values() for b in f.blocks for i in b.instrs
               if i.op is op and (attr is None or i.attr == attr))


# -- the named pipeline and its dumps ------------------------------------------------------


def test_pipeline_names_are_unique_and_dumpable() -> None:
    names = [name for name, _ in PIPELINE]
    assert len(names) == len(set(names))
    assert names.index("self-inline") < names.index("constfold") < names.index("dce")
    assert PASS_NAMES == ["build", *names]


def test_dump_after_one_pass(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GENE_DUMP", "ir-after:self-inline")
    run_passes(fib_unit())
    err = capsys.readouterr().err
    assert err.count(";; IR after") == 1
    assert ";; IR after self-inline: fib(i64)" in err
    assert "fn fib__i64(%n: i64) -> i64 {" in err
    assert "@i1" in err  # the slots of the first inlined copy


def test_dump_after_all_passes_in_order(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GENE_DUMP", "ir-after:all")
    run_passes(fib_unit())
    err = capsys.readouterr().err
    heads = [line.split(":")[0].removeprefix(";; IR after ") for line in err.splitlines()
             if line.startswith(";; IR after")]
    assert heads == PASS_NAMES


def test_dump_of_an_unknown_pass_names_the_passes(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GENE_DUMP", "ir-after:no-such-pass-here")
    run_passes(fib_unit())
    err = capsys.readouterr().err
    assert "names no IR pass" in err and "self-inline" in err
    assert ";; IR after" not in err


def test_dump_after_a_pass_from_the_command_line(tmp_path: Path) -> None:
    prog = tmp_path / "p.gene"
    prog.write_text(FIB + "\n(println (fib 15))\n")
    env = {**os.environ, "GENE_DUMP": "ir-after:dce", "GENE_JIT": "eager", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "gene_jit", "run", str(prog)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "610\n"
    assert ";; IR after dce: fib(i64)" in out.stderr
    assert ";; IR after inline" not in out.stderr


# -- self-inlining ---------------------------------------------------------------------------


def test_self_inlining_is_bounded_and_counts_every_inlined_call() -> None:
    unit = run_passes(fib_unit())
    verify_unit(unit)
    fn = unit.root
    copies = sum(2**k for k in range(1, selfinline.MAX_LEVELS + 1))  # fib makes two calls a level
    assert count(unit, Op.CALL, fn.name) == 2 ** (selfinline.MAX_LEVELS + 1)
    assert count(unit, Op.DEPTH, 1) == count(unit, Op.DEPTH, -1) == copies
    assert fn.instr_count() <= selfinline.MAX_INSTRS


def test_self_inlining_stops_at_the_size_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selfinline, "MAX_INSTRS", 30)  # fib's body is about 20: no room
    unit = run_passes(fib_unit())
    assert count(unit, Op.CALL, unit.root.name) == 2
    assert count(unit, Op.DEPTH) == 0
    monkeypatch.setattr(selfinline, "MAX_INSTRS", 10_000)
    monkeypatch.setattr(selfinline, "MAX_TEMPLATE", 10)  # too big a body to copy at all
    unit = run_passes(fib_unit())
    assert count(unit, Op.CALL, unit.root.name) == 2


RECURSIVE = [
    (FIB, [0, 1, 2, 10, 20, -5]),
    # a value made before the first call and used after the second (kept in a slot)
    ("(fn g [n] (var k (n * 3)) (if (n < 2) k ((g (n - 1)) + k - (g (n - 2)))))", [0, 1, 5, 12]),
    ("(fn ack [m n] (if (m == 0) (n + 1) (if (n == 0) (ack (m - 1) 1) (ack (m - 1) (ack m (n - 1))))))",
     [(0, 0), (1, 3), (2, 3), (3, 3)]),
    ("(fn h [x] (if (x < 1.0) x ((h (x / 2.0)) + (h (x - 1.5)))))", [0.5, 3.0, 7.25]),
    ("(fn ev [n] (if (n == 0) true (if (n == 1) false (ev (n - 2)))))", [0, 1, 7, 10]),
    # recursion inside a loop, and a loop inside the function being copied
    ("(fn s [n] (var t 0) (for i in (range n) (t += (s i))) (t + 1))", [0, 1, 5, 8]),
    ("(fn p [n] (var t n) (while (t > 3) (t = (p (t - 3)))) t)", [2, 9, 20]),
]


@pytest.mark.parametrize("src, cases", RECURSIVE)
def test_self_inlined_functions_agree_with_tier0(src: str, cases: list) -> None:
    f = gjit(src)
    for case in cases:
        args = case if isinstance(case, tuple) else (case,)
        assert f(*args) == f._pyfunc(*args), (src, args)
    assert f.signatures, "the function was not compiled"


def test_self_inlined_nil_function_writes_like_tier0() -> None:
    f = gjit("(fn fill [a i] (if (i < 6) (do (a/0 += 1.0) (fill a (i + 1)) (fill a (i + 2)))) nil)")
    a, b = np.zeros(2), np.zeros(2)
    assert f(a, 0) is None
    assert f._pyfunc(b, 0) is None
    assert list(a) == list(b) == [20.0, 0.0]  # one add per call made with i < 6
    assert f.signatures


def test_overflow_inside_an_inlined_copy_is_the_same_error(monkeypatch: pytest.MonkeyPatch) -> None:
    src = "(fn f [n] (if (n == 0) 9223372036854775000 ((f (n - 1)) + 100)))"
    inlined = gjit(src)
    assert inlined(5) == inlined._pyfunc(5)
    monkeypatch.setattr(selfinline, "MAX_LEVELS", 0)
    plain = gjit(src)
    assert plain(5) == inlined(5)
    errors = []
    for f in (inlined, plain, inlined._pyfunc):
        with pytest.raises(GeneOverflowError) as exc:
            f(9)
        errors.append(str(exc.value))
    assert errors[0] == errors[1]  # the copy raises at the span of the code it copies
    assert ":1:44:" in errors[0]


def _deepest(f, limit: int = 1 << 16) -> int:
    """The largest n for which f(n) returns, not a stack overflow (binary search)."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            f(mid)
            lo = mid
        except GeneError as exc:
            assert "stack overflow" in str(exc)
            hi = mid - 1
    return lo


def test_inlined_calls_count_against_the_depth_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    src = "(fn d [n] (if (n <= 0) 0 (1 + (d (n - 1)))))"
    inlined = gjit(src)
    assert inlined(3) == 3  # compiled now, with the copies
    monkeypatch.setattr(selfinline, "MAX_LEVELS", 0)
    plain = gjit(src)
    assert plain(3) == 3
    assert "depth 1" in next(iter(inlined.inspect_ir().values()))
    assert "depth" not in next(iter(plain.inspect_ir().values()))
    deepest = _deepest(inlined)
    assert 1000 < deepest < (1 << 16)
    assert deepest == _deepest(plain)
    with pytest.raises(GeneError, match="stack overflow"):
        inlined(1_000_000)


# -- tail calls made loops ---------------------------------------------------------------

SUM = "(fn sum [n acc] (if (n == 0) acc (sum (n - 1) (acc + n))))"


def test_tail_self_calls_become_loops_that_count_depth() -> None:
    unit = run_passes(Resolver(SUM).unit("sum", T.I64, T.I64))
    assert count(unit, Op.CALL) == 0
    assert count(unit, Op.DEPTH, 1) == 1 and count(unit, Op.DEPTH, -1) == 0
    assert any(b.name.startswith("tailloop") for b in unit.root.blocks)


def test_calls_not_in_tail_position_stay_calls() -> None:
    # the result is used (+ 1), or something happens after the call (a second call)
    for src, name in (("(fn d [n] (if (n <= 0) 0 (1 + (d (n - 1)))))", "d"), (FIB, "fib")):
        unit = Resolver(src).unit(name, T.I64)
        from gene_jit.ir.passes.tailcall import loopify

        assert not loopify(unit.root)


@pytest.mark.parametrize("src, cases", [
    (SUM, [(0, 0), (10, 0), (100, 7)]),
    ("(fn gcd [a b] (if (b == 0) a (gcd b (mod a b))))", [(12, 18), (17, 5), (0, 9)]),
    # a tail call through nested ifs, and one beside a call that is not in tail position
    ("(fn c [n k] (if (n < 1) k (if ((mod n 2) == 0) (c (n / 2) (k + 1)) (c (n - 1) (k + 1)))))"
     .replace("(n / 2)", "(div n 2)"), [(1, 0), (27, 0), (1000, 5)]),
    ("(fn ack [m n] (if (m == 0) (n + 1) (if (n == 0) (ack (m - 1) 1) (ack (m - 1) (ack m (n - 1))))))",
     [(0, 0), (2, 3), (3, 3)]),
    # arguments that read the parameters being rewritten
    ("(fn sw [a b n] (if (n == 0) (a - b) (sw b a (n - 1))))", [(1, 2, 0), (1, 2, 3), (5, 9, 4)]),
])
def test_tail_loops_agree_with_tier0(src: str, cases: list) -> None:
    f = gjit(src)
    for args in cases:
        assert f(*args) == f._pyfunc(*args), (src, args)
    assert f.signatures
    assert "tailloop" in next(iter(f.inspect_ir().values()))


def test_a_tail_loop_overflows_the_stack_where_calls_would(monkeypatch: pytest.MonkeyPatch) -> None:
    from gene_jit.ir.passes import tailcall

    looped = gjit("(fn down [n] (if (n == 0) 0 (down (n - 1))))")
    assert looped(5) == 0
    assert "tailloop" in next(iter(looped.inspect_ir().values()))
    monkeypatch.setattr(tailcall, "loopify", lambda fn: False)
    called = gjit("(fn down [n] (if (n == 0) 0 (down (n - 1))))")
    assert called(5) == 0
    assert "tailloop" not in next(iter(called.inspect_ir().values()))
    deepest = _deepest(looped)
    assert 1000 < deepest < (1 << 16)
    assert deepest == _deepest(called)
    with pytest.raises(GeneError, match="stack overflow"):
        gjit("(fn f [n] (f (n + 1)))")(0)  # endless: a Gene error, never a hang


def test_ir_command_prints_the_ir_after_a_pass(tmp_path: Path) -> None:
    prog = tmp_path / "f.gene"
    prog.write_text(FIB + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GENE_DUMP", None)
    out = subprocess.run([sys.executable, "-m", "gene_jit", "ir", str(prog), "--fn", "fib", "--after", "all"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [line.split(":")[0][12:] for line in out.stderr.splitlines() if line.startswith(";; IR after")] \
        == PASS_NAMES
    assert out.stdout.startswith(";; typed IR")


def _recursive_program(r: random.Random, name: str) -> str:
    """A random recursive function of (n a): self-calls in and out of tail position,
    results used in arithmetic that may overflow, in branches of random shape."""

    def leaf() -> str:
        return r.choice(["n", "a", "(n * a)", "(a - n)", str(r.choice([0, 1, 3, -7, 2**40, 2**62]))])

    def call() -> str:
        return f"({name} (n - {r.randint(1, 3)}) {leaf()})"

    def expr(depth: int) -> str:
        kind = r.randrange(4) if depth > 0 else 0
        if kind == 0:
            return leaf()
        if kind == 1:
            return f"({expr(depth - 1)} {r.choice(['+', '-', '*'])} {call()})"
        if kind == 2:
            return call()  # in tail position when the branch is
        return f"(if ({leaf()} {r.choice(['<', '>', '=='])} {leaf()}) {expr(depth - 1)} {expr(depth - 1)})"

    return f"(fn {name} [n a] (if (n <= 0) {leaf()} {expr(3)}))"


def test_random_recursive_functions_agree_with_tier0() -> None:
    r = random.Random(12)
    for k in range(40):
        src = _recursive_program(r, f"rec{k}")
        f = gjit(src)
        for n, a in ((0, 1), (1, 2), (5, 3), (9, -1), (14, 2)):
            outcomes = []
            for run in (f, f._pyfunc):
                try:
                    outcomes.append(("ok", run(n, a)))
                except GeneError as exc:
                    outcomes.append((type(exc).__name__, str(exc).split(": ", 1)[-1][:30]))
            assert outcomes[0][0] == outcomes[1][0], (src, n, a, outcomes)
            if outcomes[0][0] == "ok":
                assert outcomes[0] == outcomes[1], (src, n, a)
        assert f.signatures, src
