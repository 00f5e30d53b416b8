"""The differential test of the tiers over the language, not only arithmetic.

Generated whole programs (tests/gene_gen.py: comparison chains, logic with side effects,
nested loops with break/continue/return, closures, int/float mixing, boundary integers,
ranges to the int64 limits, redefinitions after compilation) run with `GENE_JIT=0`,
`eager` and the default lazy mode; stdout (caught errors print their kind and message)
and the uncaught error's kind must be the same in all three.

CI runs GENE_DIFF_LANGUAGE=2000 programs, a plain `pytest` 200, `pytest -m slow` 20,000 more.
"""

from __future__ import annotations

import os
import random

import gene_gen
import pytest
from conftest import run_gene_source

from gene_jit.codegen import stats

os.environ.setdefault("GENE_JIT_CACHE", "0")

PROGRAMS = int(os.environ.get("GENE_DIFF_LANGUAGE", os.environ.get("GENE_DIFF_PROGRAMS", "200")))
CHUNK = 50
MODES = ("0", "eager", "1")


def observed(src: str, mode: str, name: str) -> tuple[list[str], str | None]:
    run = run_gene_source(src, mode, filename=name)
    lines = run.stdout.splitlines()
    return lines, (type(run.error).__name__ if run.error is not None else None)


def check_seeds(seeds: range) -> tuple[int, int]:
    """Run each seed's program in every mode; (native functions, functions) seen in eager."""
    native = total = 0
    for seed in seeds:
        src = gene_gen.program(random.Random(seed))
        name = f"difflang_{seed}.gene"
        outs = {mode: observed(src, mode, name if mode != "eager" else "e" + name) for mode in MODES}
        base = outs["0"]
        for mode in MODES[1:]:
            got = outs[mode]
            if got != base:
                line = next(
                    (i for i, (x, y) in enumerate(zip(base[0], got[0], strict=False)) if x != y),
                    min(len(base[0]), len(got[0])),
                )
                raise AssertionError(
                    f"seed {seed}: GENE_JIT={mode} differs from GENE_JIT=0 at output line {line}\n"
                    f"tier 0: {base[0][line:line + 1]} {base[1]}\n{mode}: {got[0][line:line + 1]} {got[1]}\n"
                    f"program:\n{src}"
                )
        for key, st in stats.REGISTRY.items():
            if key[0] == "e" + name:
                total += 1
                native += st.tier == 1
    return native, total


CHUNKS = [range(start, min(start + CHUNK, PROGRAMS)) for start in range(0, PROGRAMS, CHUNK)]


@pytest.mark.parametrize("seeds", CHUNKS, ids=[f"{c.start}-{c.stop}" for c in CHUNKS])
def test_generated_programs_agree_in_every_mode(seeds: range) -> None:
    native, total = check_seeds(seeds)
    # the test compares native code with tier 0, not tier 0 with itself
    assert total and native / total >= 0.4, f"only {native} of {total} functions compiled"


@pytest.mark.slow
def test_twenty_thousand_programs_agree() -> None:
    check_seeds(range(100_000, 120_000))


def test_the_harness_sees_a_difference() -> None:
    """A program whose output depends on the tier would be reported."""
    src = "(fn f [a b] (a + b))\n(println (f 1 2))\n"
    assert observed(src, "0", "h0.gene") == observed(src, "eager", "h1.gene")
    assert observed(src, "0", "h2.gene") != observed(src.replace("2)", "3)"), "0", "h3.gene")
