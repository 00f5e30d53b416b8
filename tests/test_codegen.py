"""Codegen: LLVM emission (golden), native results, errors, entries and guards."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("GENE_JIT_CACHE", "0")
os.environ["GENE_JIT_VERIFY"] = "1"

from gene_jit.codegen.emit import emit_unit  # noqa: E402
from gene_jit.ir import types as T  # noqa: E402
from gene_jit.jit import jit as gjit  # noqa: E402
from gene_jit.runtime.errors import GeneIndexError, GeneOverflowError  # noqa: E402
from tests.test_ir import FIB, Resolver, check_golden  # noqa: E402

MANDEL = """
(fn mandel [w h maxit]
  (var count 0)
  (for y in (range h)
    (for x in (range w)
      (var cr ((2.0 * x / w) - 1.5))
      (var ci ((2.0 * y / h) - 1.0))
      (var zr 0.0) (var zi 0.0) (var i 0)
      (while ((i < maxit) && ((zr * zr + zi * zi) < 4.0))
        (var t (zr * zr - zi * zi + cr))
        (zi = (2.0 * zr * zi + ci))
        (zr = t)
        (i += 1))
      (if (i == maxit) (count += 1))))
  count)
"""


def test_fib_llvm_golden() -> None:
    text = str(emit_unit(Resolver(FIB).unit("fib", T.I64), "gene"))
    check_golden("fib_i64_llvm", text)
    assert "llvm.sadd.with.overflow.i64" in text


def test_fib_native_and_signatures() -> None:
    fib = gjit(FIB)
    assert fib(20) == 6765
    assert fib(20.0) == 6765.0
    assert fib.signatures == ["(i64) -> i64", "(f64) -> f64"]
    assert "fib__i64" in fib.inspect_ir()["(i64) -> i64"]
    assert "define" in fib.inspect_llvm()["(i64) -> i64"]
    assert "ret" in fib.inspect_asm()["(i64) -> i64"]


def test_mandelbrot_matches_python() -> None:
    m = gjit(MANDEL)
    assert m(40, 30, 50) == m._pyfunc(40, 30, 50)


def test_overflow_raises_gene_error() -> None:
    f = gjit("(fn f [x] (x * x))")
    assert f(3) == 9
    with pytest.raises(GeneOverflowError):
        f(2**40)
    with pytest.raises(GeneOverflowError):
        gjit("(fn g [x] (- x))")(-(2**63))


def test_int_division_semantics() -> None:
    m = gjit("(fn m [a b] (mod a b))")
    r = gjit("(fn r [a b] (rem a b))")
    d = gjit("(fn d [a b] (div a b))")
    for a in (7, -7, 0, 2**63 - 1, -(2**63)):
        for b in (3, -3, 1, -1):
            assert m(a, b) == a % b
            assert r(a, b) == (abs(a) % abs(b)) * (-1 if a < 0 else 1)
            if not (a == -(2**63) and b == -1):
                assert d(a, b) == a // b
    with pytest.raises(GeneOverflowError):
        d(-(2**63), -1)


def test_math_and_float_semantics() -> None:
    g = gjit("(fn g [x] ((sqrt x) + (exp x) + (log x) + (sin x) + (cos x)))")
    import math

    assert g(2.0) == math.sqrt(2) + math.exp(2) + math.log(2) + math.sin(2) + math.cos(2)
    assert math.isnan(g(-1.0))
    fl = gjit("(fn fl [x] (floor x))")
    assert fl(2.5) == 2 and fl(-2.5) == -3 and isinstance(fl(2.5), int)
    div = gjit("(fn dv [a b] (a / b))")
    assert div(1, 0) == math.inf and div(-1, 0) == -math.inf and math.isnan(div(0, 0))
    assert div(7, 2) == 3.5


def test_arrays_read_write_and_bounds() -> None:
    dot = gjit("(fn dot [a b] (var s 0.0) (for i in (range (len a)) (s += ((get a i) * (get b i)))) s)")
    a = np.arange(6.0)
    assert dot(a, a) == float(a @ a)
    assert dot(a[::2], a[::2]) == float(a[::2] @ a[::2])  # strided views
    tot = gjit("(fn tot [m] (var s 0) (for i in (range 2) (for j in (range 3) (s += (get (get m i) j)))) s)")
    assert tot(np.arange(6).reshape(2, 3)) == 15
    first = gjit("(fn first [a] a/0)")
    assert first(np.array([4.5, 1.0])) == 4.5
    with pytest.raises(GeneIndexError):
        first(np.zeros(0))
    setter = gjit("(fn setter [a x] (a/1 = x) (a/1 += 1.0) nil)")
    arr = np.zeros(3)
    assert setter(arr, 2.5) is None
    assert arr[1] == 3.5


def test_guard_miss_falls_back_to_tier0() -> None:
    f = gjit("(fn f [x] (x + 1))")
    assert f(1) == 2
    assert f(2**40) == 2**40 + 1
    assert f(1.5) == 2.5  # a new signature
    assert f.signatures == ["(i64) -> i64", "(f64) -> f64"]


def test_bools_and_nil_returns() -> None:
    f = gjit("(fn f [x] (x > 2))")
    assert f(3) is True and f(1) is False
    g = gjit("(fn g [x] (while false 1))")
    assert g(1) is None
