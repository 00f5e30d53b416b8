"""The IR pass pipeline: one named list that every compile runs, in order.

Each pass is a function from a unit to a unit, in a module of its own whose docstring
says what it assumes and guarantees. After each pass the verifier runs when
`GENE_JIT_VERIFY=1` (tests set it), and the IR is printed to stderr when `GENE_DUMP`
asks for it: `GENE_DUMP=ir-after:PASS` after the pass of that name (several may be
given, `ir-after:inline,ir-after:dce`), `ir-after:all` after every pass, and
`ir-after:build` for the IR as the builder made it, before any pass.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from gene_jit.ir.nodes import Unit
from gene_jit.ir.passes.constfold import constant_fold
from gene_jit.ir.passes.dce import dead_code
from gene_jit.ir.passes.inline import inline_small_calls
from gene_jit.ir.passes.ranges import drop_overflow_checks
from gene_jit.ir.passes.selfinline import inline_self_calls
from gene_jit.ir.passes.tailcall import tail_calls_to_loops

PIPELINE: list[tuple[str, Callable[[Unit], Unit]]] = [
    ("inline", inline_small_calls),
    ("tailcall", tail_calls_to_loops),
    # before the copies are made: each copy keeps what was found in the body it copies
    ("ranges", drop_overflow_checks),
    ("self-inline", inline_self_calls),
    ("constfold", constant_fold),
    ("dce", dead_code),
]
PASS_NAMES = ["build", *(name for name, _ in PIPELINE)]
# passes left out of compiles that count calls for the profiler: an inlined self-call,
# or one made a loop, would not be counted as a call
PROFILE_SKIPS = frozenset({"tailcall", "self-inline"})
_warned: set[str] = set()  # unknown pass names already reported


def dump_after() -> set[str]:
    """The pass names whose output `GENE_DUMP` asks to print ("all" for every one)."""
    wanted = set()
    for part in os.environ.get("GENE_DUMP", "").split(","):
        kind, _, name = part.strip().partition(":")
        if kind == "ir-after" and name:
            wanted.add(name.strip())
    if "all" in wanted:
        return set(PASS_NAMES)
    unknown = wanted - set(PASS_NAMES) - _warned
    if unknown:
        _warned.update(unknown)
        sys.stderr.write(f"gene-jit: GENE_DUMP=ir-after:{sorted(unknown)[0]} names no IR pass "
                         f"(passes: {', '.join(PASS_NAMES)}, or all)\n")
    return wanted


def _dump(name: str, unit: Unit) -> None:
    from gene_jit.ir.printer import format_unit

    root = unit.root
    sig = ", ".join(map(str, root.signature))
    sys.stderr.write(f";; IR after {name}: {root.gene_name}({sig})\n{format_unit(unit)}\n")


def run_passes(unit: Unit, skip: frozenset[str] = frozenset()) -> Unit:
    """Run the pipeline over `unit` (passes named in `skip` left out)."""
    check = os.environ.get("GENE_JIT_VERIFY", "") not in ("", "0")
    if check:
        from gene_jit.ir.verifier import verify_unit
    dump = dump_after() if "GENE_DUMP" in os.environ else set()
    if "build" in dump:
        _dump("build", unit)
    for name, fn in PIPELINE:
        if name in skip:
            continue
        unit = fn(unit)
        if check:
            verify_unit(unit)
        if name in dump:
            _dump(name, unit)
    return unit
