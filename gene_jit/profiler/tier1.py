"""What tier 1 did for each Gene function, read from the codegen statistics registry
(`gene_jit.codegen.stats`, filled by the JIT's hooks): tier, signatures, compile time,
cache hits, guard misses, native call and loop-trip counts, and the reason a function
stayed in tier 0.

The registry lives as long as the process, so `Tier1View` takes a baseline when the
profile starts and reports what happened since. For a function tier 1 never tried, the
tier-1 type checker is asked at report time why it would not compile for the argument
types tier 0 ran it with (`argtypes`).

The profiler only reads the registry, and only when the JIT is on and loaded, so
profiling with `GENE_JIT=0` does not load LLVM.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from gene_jit.profiler.argtypes import ArgTypes, Observed
from gene_jit.profiler.model import FunctionStats, LoopStats
from gene_jit.runtime import tiering
from gene_jit.runtime.errors import source_line

_WHERE = re.compile(r" at (?P<file>.+):(?P<line>\d+):(?P<col>\d+)$")
TAKES = "tier 1 takes ints, floats, bools and float64/int64 arrays"


def _stats_module() -> Any:
    if tiering.active() is None:
        return None
    return sys.modules.get("gene_jit.codegen.stats")


def _hooks() -> Any:
    mod = sys.modules.get("gene_jit.codegen.hooks")
    return getattr(mod, "_hooks", None) if mod is not None and tiering.active() else None


class Tier1View:
    """The tier-1 registry, relative to the start of the profile."""

    def __init__(self) -> None:
        self.argtypes = ArgTypes()
        # id(FnStats) -> (the record, calls, native calls, forwarded, guard misses)
        self._fns: dict[int, tuple[Any, int, int, int, int]] = {}
        self._loops: dict[tuple[str, int, int], int] = {}

    def start(self) -> None:
        self.argtypes.install()
        stats = _stats_module()
        if stats is None:
            return
        # the registry holds the latest definition of each (file, name); a function the
        # process defined again (a file run twice) keeps its own record in its state
        hooks = _hooks()
        states = list(hooks.states.values()) if hooks is not None else []
        recs = [*stats.REGISTRY.values(), *(s.stats for s in states if getattr(s, "stats", None) is not None)]
        for rec in recs:
            self._fns[id(rec)] = (
                rec,
                rec.calls,
                rec.native_calls,
                rec.forwarded,
                rec.guard_misses,
            )
        self._loops = {key: lp.trips for key, lp in stats.LOOPS.items()}

    def stop(self) -> None:
        self.argtypes.uninstall()

    def calls(self, rec: Any) -> tuple[int, int, int]:
        """(all calls, native entries, guard misses) of `rec` since the start."""
        base = self._fns.get(id(rec))
        c0, n0, f0, g0 = base[1:] if base is not None and base[0] is rec else (0, 0, 0, 0)
        native = rec.native_calls - n0
        total = (rec.calls - c0) + max(0, native - (rec.forwarded - f0))
        return total, native, rec.guard_misses - g0

    def states(self) -> list[Any]:
        """The tier-1 state of every Gene function tier 0 registered."""
        hooks = _hooks()
        return list(hooks.states.values()) if hooks is not None else []

    def annotate(self, st: FunctionStats, state: Any | None) -> None:
        """Fill the tier-1 fields of `st` (state: its `FnState`, when known)."""
        stats = _stats_module()
        rec = state.stats if state is not None else None
        if rec is None and stats is not None:
            # keyed by (file, name); the latest definition of a name in a file wins
            rec = stats.lookup(st.name, st.file)
        if rec is None:
            st.tier = 0
            st.reason = (
                "the JIT is off (GENE_JIT=0)"
                if tiering.mode() == "off"
                else "the JIT is not loaded"
            )
            return
        st.tier = int(rec.tier)
        total, native, misses = self.calls(rec)
        # Calls from native code, and from tier 0 through a native entry, bypass tier
        # 0's counter; the counting native code saw them.
        st.calls = max(st.calls, total)
        st.native_calls = native
        st.signatures = [f"({s.signature}) -> {s.returns}" for s in rec.signatures]
        st.compile_ms = float(rec.compile_ms)
        st.cache_hits = int(rec.cache_hits)
        st.guard_misses = misses
        if st.tier == 0:
            _set_reason(st, rec.reason or self.explain(state))

    def explain(self, state: Any | None) -> str:
        """Why tier 1 has not compiled `state`'s function, for the argument types tier 0
        ran it with: the type checker's answer, or that it was not hot yet."""
        if state is None:
            return "not compiled (no call went through the JIT's prologue)"
        hot = self.argtypes.hot_of(state)
        observed = hot or self.argtypes.of(state)
        if observed is None:
            return f"not compiled after {state.stats.calls} calls"
        arg_reason = _argument_reason(observed)
        if arg_reason is not None:
            return arg_reason
        sig = tuple(observed.types)
        sig_text = ", ".join(map(str, sig))
        if state.source is not None:
            from gene_jit.ir.builder import NotTypeable
            from gene_jit.ir.program import build_unit

            try:
                build_unit(state.source, sig, _hooks())
            except NotTypeable as exc:
                return f"would not compile for ({sig_text}): {exc.reason}"
            except Exception as exc:  # noqa: BLE001 - a checker bug must not lose the report
                return f"the tier-1 type check failed for ({sig_text}): {exc}"
        calls = state.stats.calls
        plural = "s" if calls != 1 else ""
        if hot is not None or calls >= state.hot_at:
            # hot, yet in tier 0: a later call with these types would compile
            return (f"not compiled: {calls} call{plural}, hot from call {state.hot_at}, but not "
                    f"yet compiled for ({sig_text})")
        return (
            f"not hot: {calls} call{plural}, compiles at call "
            f"{state.hot_at} (GENE_JIT_THRESHOLD); tier 1 takes ({sig_text})"
        )

    def add_native_loops(self, loops: list[LoopStats]) -> None:
        """Add the trips that loops ran in native code (counted while profiling) to
        `loops`, the tier-0 counts, merging loops seen by both."""
        stats = _stats_module()
        if stats is None:
            return
        by_site = {(lp.file, lp.line, lp.column): lp for lp in loops}
        for key, rec in stats.LOOPS.items():
            trips = rec.trips - self._loops.get(key, 0)
            if trips <= 0:
                continue
            lp = by_site.get(key)
            if lp is None:
                lp = LoopStats(rec.kind, rec.file, rec.line, rec.column, rec.function)
                loops.append(lp)
            lp.trips += trips
            lp.native_trips += trips


def _argument_reason(observed: Observed) -> str | None:
    if observed.extra:
        return "called with more arguments, or props, than its parameters"
    bad = [
        f"`{name}` was {kind}"
        for name, t, kind in zip(observed.params, observed.types, observed.kinds, strict=True)
        if t is None
    ]
    if not bad:
        return None
    return f"argument {', '.join(bad)} ({TAKES})"


def _set_reason(st: FunctionStats, reason: str) -> None:
    """Split the `at file:line:col` that tier 1 puts after a reason into the line and the
    source text of the form; argument reasons point at the function's own line."""
    m = _WHERE.search(reason)
    if m is not None:
        reason = reason[: m.start()]
        st.reason_line = int(m.group("line"))
        file = m.group("file")
    elif reason.startswith("argument ") and st.line:
        st.reason_line, file = st.line, st.file
    else:
        file = ""
    if st.reason_line:
        text = source_line(file, st.reason_line)
        st.reason_form = text.strip() if text else None
    st.reason = reason
