"""The `ranges` pass (overflow checks that cannot fail are dropped) and the slimmer copies
of self-inlining: the checks that go are exactly those whose operands' ranges prove the
result fits, and compiled code keeps raising every overflow tier 0 raises."""

from __future__ import annotations

import os
import random

import pytest

os.environ.setdefault("GENE_JIT_CACHE", "0")
os.environ["GENE_JIT_VERIFY"] = "1"

from gene_jit.ir import types as T  # noqa: E402
from gene_jit.ir.nodes import Op, Unit  # noqa: E402
from gene_jit.ir.passes import run_passes  # noqa: E402
from gene_jit.ir.passes.ranges import drop_overflow_checks  # noqa: E402
from gene_jit.jit import jit as gjit  # noqa: E402
from gene_jit.runtime.errors import GeneError, GeneOverflowError  # noqa: E402
from tests.test_ir import FIB, Resolver  # noqa: E402

INT_MAX, INT_MIN = 2**63 - 1, -(2**63)


def unchecked(unit: Unit, op: Op) -> list[bool]:
    """Per `op` instruction of the root, in order: whether it lost its overflow check."""
    return [i.attr == "nowrap" for b in unit.root.blocks for i in b.instrs if i.op is op]


def test_the_else_side_of_a_comparison_knows_the_bound() -> None:
    unit = drop_overflow_checks(Resolver(FIB).unit("fib", T.I64))
    assert unchecked(unit, Op.SUB) == [True, True]  # n - 1, n - 2 with n >= 2
    assert unchecked(unit, Op.ADD) == [False]  # the sum of two results: anything


@pytest.mark.parametrize("src, expected", [
    # n >= 1 bounds n + INT_MAX from below only: it may overflow
    ("(fn f [n] (if (n > 0) (n + 9223372036854775807) 0))", [False]),
    # the true side of n < 10 bounds n from above: n + 5 fits, n - 5 may not
    ("(fn f [n] (if (n < 10) ((n + 5) * (n - 5)) 0))", [True, False]),
    # a write replaces what the comparison said about the slot: 0 - m fits (m >= 6),
    # and m is then at most -6, which m - (2**63 - 8) may take past the limit
    ("(fn f [n] (var m n) (if (m > 5) (do (m = (0 - m)) (m - 9223372036854775800)) 0))", [True, False]),
    # a write of a value of unknown range forgets it
    ("(fn f [n] (var m n) (if (m > 5) (do (m = (m * m)) (m - 1)) 0))", [False]),
    # a loop head is entered from the loop's end too: nothing is known there
    ("(fn f [n] (var i n) (while (i != 0) (i = (i - 1))) i)", [False]),
])
def test_checks_stay_where_the_range_does_not_prove_the_result(src: str, expected: list[bool]) -> None:
    unit = drop_overflow_checks(Resolver(src).unit("f", T.I64))
    found = [i.attr == "nowrap" for b in unit.root.blocks for i in b.instrs if i.op in (Op.ADD, Op.SUB)]
    assert found == expected, src


def test_compiled_code_still_raises_the_overflows_tier0_raises() -> None:
    f = gjit("(fn f [n] (var m n) (if (m > 5) (do (m = (0 - m)) (m - 9223372036854775800)) 0))")
    assert f(6) == f._pyfunc(6) == -9223372036854775806
    for run in (f, f._pyfunc):
        with pytest.raises(GeneOverflowError):
            run(9)
    assert f.signatures


_EDGES = [0, 1, 2, -1, -2, 7, 1000, 2**62, INT_MAX, INT_MAX - 1, INT_MIN, INT_MIN + 1, -(2**62)]


def _program(r: random.Random) -> str:
    """A function of (n a) that compares with boundary constants and adds or subtracts
    near the int64 limits on each side of the comparison."""

    def arith() -> str:
        x, y = r.choice(["n", "a"]), r.choice(["n", "a", str(r.choice(_EDGES))])
        return f"({x} {r.choice(['+', '-'])} {y})"

    def cond() -> str:
        return f"({r.choice(['n', 'a'])} {r.choice(['<', '<=', '>', '>='])} {r.choice(_EDGES)})"

    inner = f"(if {cond()} {arith()} {arith()})"
    return f"(fn f [n a] (if {cond()} {inner} (if {cond()} {arith()} {inner})))"


def test_random_comparisons_and_boundary_arithmetic_agree_with_tier0() -> None:
    r = random.Random(7)
    cases = [(n, a) for n in _EDGES for a in (0, -1, INT_MAX, INT_MIN, 3)]
    for _ in range(25):
        src = _program(r)
        f = gjit(src)
        for n, a in cases:
            outcomes = []
            for run in (f, f._pyfunc):
                try:
                    outcomes.append(("ok", run(n, a)))
                except GeneError as exc:
                    outcomes.append((type(exc).__name__, ""))
            assert outcomes[0] == outcomes[1], (src, n, a, outcomes)
        assert f.signatures, src


def test_self_inlined_copies_reuse_the_bodys_parameter_and_result_slots() -> None:
    unit = run_passes(Resolver(FIB).unit("fib", T.I64))
    assert any("@i" in slot for slot in unit.root.locals)  # copies were made
    assert not [slot for slot in unit.root.locals if slot.startswith(("$arg", "$ret"))]
    fib = gjit(FIB)
    assert [fib(n) for n in range(12)] == [fib._pyfunc(n) for n in range(12)]
