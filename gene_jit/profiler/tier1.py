"""What tier 1 did for each Gene function, read from the codegen statistics registry
(`gene_jit.codegen.stats`, filled by the JIT's hooks): tier, signatures, compile time,
cache hits, guard misses, and the reason a function stayed in tier 0.

The profiler only reads the registry, and only when the JIT is on and loaded, so
profiling with `GENE_JIT=0` does not load LLVM.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from gene_jit.profiler.model import FunctionStats, LoopStats
from gene_jit.runtime import tiering
from gene_jit.runtime.errors import source_line

_WHERE = re.compile(r" at (?P<file>.+):(?P<line>\d+):(?P<col>\d+)$")


def _record(name: str, file: str) -> Any:
    stats = sys.modules.get("gene_jit.codegen.stats")
    if stats is None or tiering.active() is None:
        return None
    # keyed by (file, name); the latest definition of a name in a file wins
    return stats.lookup(name, file) or stats.lookup(name)


def annotate(st: FunctionStats) -> None:
    """Fill the tier-1 fields of `st` from the registry."""
    rec = _record(st.name, st.file)
    if rec is None:
        st.tier = 0
        st.reason = (
            "the JIT is off (GENE_JIT=0)" if tiering.mode() == "off" else "the JIT is not loaded"
        )
        return
    st.tier = int(rec.tier)
    # Calls from native code and through a native entry bypass tier 0's counter; the
    # JIT's prologue saw the tier-0 ones, so the larger figure is the better one.
    # While profiling, native code counts its own entries (rec.total_calls).
    st.calls = max(st.calls, int(rec.total_calls))
    st.signatures = [f"({s.signature}) -> {s.returns}" for s in rec.signatures]
    st.compile_ms = float(rec.compile_ms)
    st.cache_hits = int(rec.cache_hits)
    st.guard_misses = int(rec.guard_misses)
    if st.tier == 0:
        reason = (
            rec.reason
            or f"not compiled after {rec.calls} calls (not hot, or argument types tier 1 does not take)"
        )
        m = _WHERE.search(reason)
        if m is not None:
            reason = reason[: m.start()]
            st.reason_line = int(m.group("line"))
            text = source_line(m.group("file"), st.reason_line)
            st.reason_form = text.strip() if text else None
        st.reason = reason


def add_native_loops(loops: list[LoopStats]) -> None:
    """Add the trips that loops ran in native code (counted while profiling) to
    `loops`, the tier-0 counts, merging loops seen by both."""
    stats = sys.modules.get("gene_jit.codegen.stats")
    if stats is None or tiering.active() is None:
        return
    by_site = {(lp.file, lp.line, lp.column): lp for lp in loops}
    for rec in stats.hot_loops():
        lp = by_site.get((rec.file, rec.line, rec.column))
        if lp is None:
            loops.append(
                LoopStats(rec.kind, rec.file, rec.line, rec.column, rec.function, rec.trips)
            )
        else:
            lp.trips += rec.trips
