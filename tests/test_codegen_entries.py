"""Shared entries: functions of one signature enter native code through one entry
trampoline, which reads the function's address, source file and fallback from the
callable; each function's module then holds only its own code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GENE_JIT_CACHE", "0")

from gene_jit.codegen import compile as C  # noqa: E402
from gene_jit.jit import jit as gjit  # noqa: E402
from gene_jit.runtime.errors import GeneError, GeneOverflowError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def natives(f):
    return f._state.natives


def test_one_entry_per_signature() -> None:
    add = gjit("(fn add [a b] (a + b))")
    mul = gjit("(fn mul [a b] (a * b))")
    fadd = gjit("(fn fadd [a b] (a + b))")
    assert (add(2, 3), mul(2, 3), fadd(2.0, 0.5)) == (5, 6, 2.5)
    (na,), (nm,), (nf,) = natives(add), natives(mul), natives(fadd)
    assert na.entry_address == nm.entry_address and na.vcall_address == nm.vcall_address
    assert na.target_address != nm.target_address
    assert nf.entry_address != na.entry_address
    assert "_entry" not in na.llvm_ir  # the module holds only the function itself


def test_errors_through_a_shared_entry_name_each_functions_place() -> None:
    first = gjit("(fn first [a b] (a * b))")

    @gjit
    def second():
        """(fn second [a b]
             (a * (b + 1)))"""

    assert first(3, 4) == 12 and second(3, 4) == 15
    assert natives(first)[0].entry_address == natives(second)[0].entry_address
    with pytest.raises(GeneOverflowError) as one:
        first(2**62, 4)
    with pytest.raises(GeneOverflowError) as two:
        second(2**62, 4)
    # `<jit first #2>` where another source of this process defined a `first` before
    assert re.match(r"<jit first( #\d+)?>:1:", str(one.value)), str(one.value)
    assert re.match(r"<jit second( #\d+)?>:2:", str(two.value)), str(two.value)


def test_guard_misses_reach_each_functions_own_fallback() -> None:
    f = gjit("(fn f [x] (x + 1))")
    g = gjit("(fn g [x] (x - 1))")
    assert (f(1), g(1)) == (2, 0)
    assert (f(1.5), g(1.5)) == (2.5, 0.5)  # misses: a second signature each
    assert (f(10), g(10), f(0.5), g(0.5)) == (11, 9, 1.5, -0.5)


def test_own_entries_still_work() -> None:
    C.SHARED_ENTRIES = False
    try:
        h = gjit("(fn h [a b] (div a b))")
        assert h(7, 2) == 3
        assert natives(h)[0].target_address == 0
        assert "_entry" in natives(h)[0].llvm_ir
        with pytest.raises(GeneError, match="division by zero"):
            h(1, 0)
    finally:
        C.SHARED_ENTRIES = True


def test_shared_entries_in_the_lazy_tier(tmp_path: Path) -> None:
    prog = tmp_path / "p.gene"
    prog.write_text(
        "(fn sq [x] (x * x))\n(fn cube [x] (x * x * x))\n"
        "(var t 0)\n(for i in (range 50) (t += (sq i)) (t += (cube i)))\n"
        "(println t (sq 1.5) (cube 2.0) (sq 3))\n"
        "(println (cube 3000000000))\n")
    env = {**os.environ, "GENE_JIT_THRESHOLD": "2", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "gene_jit", "run", str(prog)], capture_output=True,
                         text=True, env=env, timeout=120)
    total = sum(i * i + i * i * i for i in range(50))
    assert out.stdout.splitlines()[0] == f"{total} 2.25 8.0 9"
    assert out.returncode != 0 and "overflow" in out.stderr and "p.gene:2:" in out.stderr
