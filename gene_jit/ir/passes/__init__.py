"""IR passes, one module each, run in the order of `PIPELINE`; the verifier runs after
each when `GENE_JIT_VERIFY=1` (tests set it)."""

from __future__ import annotations

import os
from collections.abc import Callable

from gene_jit.ir.nodes import Unit
from gene_jit.ir.passes.constfold import constant_fold
from gene_jit.ir.passes.dce import dead_code
from gene_jit.ir.passes.inline import inline_small_calls

PIPELINE: list[tuple[str, Callable[[Unit], Unit]]] = [
    ("inline", inline_small_calls),
    ("constfold", constant_fold),
    ("dce", dead_code),
]


def run_passes(unit: Unit) -> Unit:
    from gene_jit.ir.verifier import verify_unit

    check = os.environ.get("GENE_JIT_VERIFY", "") not in ("", "0")
    for _name, fn in PIPELINE:
        unit = fn(unit)
        if check:
            verify_unit(unit)
    return unit
