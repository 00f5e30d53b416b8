"""Typed IR: builder, inference, printer (golden), verifier and passes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gene_jit.frontend.reader import read
from gene_jit.ir import types as T
from gene_jit.ir.builder import NotTypeable
from gene_jit.ir.passes import run_passes
from gene_jit.ir.printer import format_unit
from gene_jit.ir.program import FnSource, build_unit
from gene_jit.ir.verifier import verify_unit

GOLDEN = Path(__file__).parent / "ir_golden"
BUILTIN_NAMES = {"range", "sqrt", "len", "get", "mod", "min", "max", "floor", "abs", "println"}


class Resolver:
    def __init__(self, src: str) -> None:
        self.fns = {}
        for form in read(src, "t.gene"):
            src_fn = FnSource.from_form(form.children[0].name, form)
            self.fns[src_fn.name] = src_fn

    def resolve(self, name: str, key: object) -> FnSource | str | None:
        return self.fns.get(name) or (name if name in BUILTIN_NAMES else None)

    def unit(self, name: str, *sig: T.Type):
        return build_unit(self.fns[name], tuple(sig), self)


FIB = "(fn fib [n] (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("GENE_UPDATE_GOLDEN") or not path.exists():
        path.write_text(text + "\n")
    assert text + "\n" == path.read_text()


def test_fib_ir_golden() -> None:
    unit = Resolver(FIB).unit("fib", T.I64)
    check_golden("fib_i64", format_unit(unit))
    assert unit.root.ret == T.I64


def test_fib_float_infers_return_through_recursion() -> None:
    unit = Resolver(FIB).unit("fib", T.F64)
    assert unit.root.ret == T.F64


def test_loop_ir_golden_after_passes() -> None:
    src = "(fn s [n] (var t 0) (for i in (range n) (if ((mod i 3) == 0) (t += i) else (continue))) t)"
    unit = run_passes(Resolver(src).unit("s", T.I64))
    verify_unit(unit)
    check_golden("sum_mod_i64", format_unit(unit))


def test_mixed_arithmetic_promotes_to_float() -> None:
    unit = Resolver("(fn f [a b] ((a + b) * 2))").unit("f", T.I64, T.F64)
    assert unit.root.ret == T.F64


@pytest.mark.parametrize("src, why", [
    ('(fn f [x] (println x))', "println"),
    ('(fn f [x] (var y 1) (y = 2.0) y)', "changes type"),
    ('(fn f [x] (if x 1 2.0))', "different types"),
    ('(fn f [x] (g x))', "calls g"),
    ('(fn f [x] "s")', "str"),
    ('(fn f [x] (x + N))', "global"),
])
def test_not_typeable_reasons(src: str, why: str) -> None:
    with pytest.raises(NotTypeable, match=why):
        Resolver(src).unit("f", T.I64)


def test_constant_folding_and_dce() -> None:
    unit = run_passes(Resolver("(fn f [x] (var k (2 * 3 + 1)) (if (k > 5) (x + k) else 0))").unit("f", T.I64))
    text = format_unit(unit)
    assert "mul" not in text and "cbr" not in text
    assert "const 7" in text


def test_constant_folding_keeps_overflow_for_run_time() -> None:
    unit = run_passes(Resolver("(fn f [x] (9223372036854775807 + 1))").unit("f", T.I64))
    assert "add" in format_unit(unit)


def test_small_calls_are_inlined() -> None:
    src = "(fn sq [x] (x * x)) (fn f [a] ((sq a) + (sq 2)))"
    unit = run_passes(Resolver(src).unit("f", T.I64))
    assert list(unit.functions) == ["f__i64"]
    assert "call" not in format_unit(unit)


def test_verifier_rejects_bad_ir() -> None:
    from gene_jit.ir.nodes import Instr, Op
    from gene_jit.runtime.errors import InternalError

    unit = Resolver(FIB).unit("fib", T.I64)
    unit.root.blocks[0].instrs.append(Instr(Op.BR, targets=("nowhere",)))
    with pytest.raises(InternalError):
        verify_unit(unit)
