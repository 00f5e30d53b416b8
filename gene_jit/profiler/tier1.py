"""What tier 1 did for each Gene function, read from the codegen statistics registry
(`gene_jit.codegen.stats`) when the JIT is on: tier, signatures, compile time, cache
hits, guard misses, and the reason a function stayed in tier 0.

The profiler only reads the registry; nothing here imports codegen unless the JIT is
enabled, so profiling with `GENE_JIT=0` does not load LLVM.
"""

from __future__ import annotations

import importlib
from typing import Any

from gene_jit.profiler.functions import GeneFn
from gene_jit.profiler.model import FunctionStats
from gene_jit.runtime import tiering
from gene_jit.runtime.errors import source_line

_BUILTIN_LABEL = "<built-in method "


def _registry() -> Any:
    if tiering.mode() == "off":
        return None
    try:
        return importlib.import_module("gene_jit.codegen.stats")
    except ImportError:
        return None


def _record(name: str, file: str) -> Any:
    reg = _registry()
    if reg is None:
        return None
    return reg.lookup(name, file)


def native_entry(label: str) -> GeneFn | None:
    """The Gene function whose native entry lsprof reports as `label`, if any: entries
    are builtins named after their Gene function (`<built-in method fib>`)."""
    if not label.startswith(_BUILTIN_LABEL):
        return None
    reg = _registry()
    if reg is None:
        return None
    name = label[len(_BUILTIN_LABEL):-1]
    rec = reg.lookup(name, None)
    if rec is None or getattr(rec, "tier", 0) != 1:
        return None
    return GeneFn(rec.name, rec.file, rec.line)


def annotate(st: FunctionStats) -> None:
    """Fill the tier-1 fields of `st` from the registry."""
    mode = tiering.mode()
    rec = _record(st.name, st.file)
    if rec is None:
        st.tier = 0
        st.reason = "the JIT is off (GENE_JIT=0)" if mode == "off" else "never became hot enough to compile"
        return
    st.tier = int(rec.tier)
    st.signatures = [str(s) for s in rec.signatures]
    st.compile_ms = float(rec.compile_ms)
    st.cache_hits = int(rec.cache_hits)
    st.guard_misses = int(rec.guard_misses)
    if st.tier == 0:
        st.reason = rec.reason or "not compiled"
        span = getattr(rec, "reason_span", None)
        if span is not None:
            st.reason_line = span.line
            text = source_line(span.file, span.line)
            st.reason_form = text.strip() if text else None
