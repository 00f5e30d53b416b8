"""Per-function tier-1 statistics, for `gene-jit profile`.

One `FnStats` per Gene function that tier 0 registered, keyed by (file, name) in
`REGISTRY` (a later definition of the same name in the same file replaces the earlier
one): calls seen by the profiling prologue, the current tier, compiled signatures with
their compile times and whether they came from the disk cache, guard misses, and the
reason a function stays in tier 0.

While profiling is on (`profiling()`), tier 1 compiles counting variants: each native
function bumps its `native_calls` cell on entry, and each loop bumps a trip cell per
iteration (`LOOPS`, keyed by the loop's file, line and column). Calls between native
functions never pass through tier 0, so without these cells the profiler would see one
call where there were millions. Outside profiling nothing is counted in native code.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SigStats:
    signature: str
    returns: str
    compile_ms: float
    cache_hit: bool


@dataclass
class FnStats:
    name: str
    file: str = ""
    calls: int = 0  # entries through the tier-0 prologue
    tier: int = 0
    signatures: list[SigStats] = field(default_factory=list)
    guard_misses: int = 0
    reason: str = ""
    # entries through the prologue that went on into native code (counted twice)
    forwarded: int = 0
    native_cell: ctypes.c_int64 = field(default_factory=ctypes.c_int64, repr=False)

    @property
    def native_calls(self) -> int:
        return int(self.native_cell.value)

    @property
    def total_calls(self) -> int:
        """Every call: tier-0 entries plus native entries (counting variants only)."""
        return self.calls + max(0, self.native_calls - self.forwarded)

    @property
    def compile_ms(self) -> float:
        return sum(s.compile_ms for s in self.signatures)

    @property
    def cache_hits(self) -> int:
        return sum(1 for s in self.signatures if s.cache_hit)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "file": self.file, "calls": self.total_calls, "tier": self.tier,
            "native_calls": self.native_calls,
            "signatures": [f"({s.signature}) -> {s.returns}" for s in self.signatures],
            "compile_ms": round(self.compile_ms, 2), "cache_hits": self.cache_hits,
            "guard_misses": self.guard_misses, "reason": self.reason,
        }


@dataclass
class LoopTrips:
    """Iterations a loop ran in native code (counted while profiling)."""

    kind: str
    file: str
    line: int
    column: int
    function: str
    cell: ctypes.c_int64 = field(default_factory=ctypes.c_int64, repr=False)

    @property
    def trips(self) -> int:
        return int(self.cell.value)


REGISTRY: dict[tuple[str, str], FnStats] = {}
LOOPS: dict[tuple[str, int, int], LoopTrips] = {}


def new(name: str, file: str = "") -> FnStats:
    stats = FnStats(name, file)
    REGISTRY[(file, name)] = stats
    return stats


def lookup(name: str, file: str | None = None) -> FnStats | None:
    """The stats of `name` defined in `file` (any file when None: the latest)."""
    if file is not None:
        return REGISTRY.get((file, name))
    found = None
    for (_, n), rec in REGISTRY.items():
        if n == name:
            found = rec
    return found


def loop_cell(kind: str, file: str, line: int, column: int, function: str) -> int:
    """The address of the trip cell of the loop at file:line:column."""
    key = (file, line, column)
    rec = LOOPS.get(key)
    if rec is None:
        rec = LOOPS[key] = LoopTrips(kind, file, line, column, function)
    return ctypes.addressof(rec.cell)


def hot_loops() -> list[LoopTrips]:
    """Loops that ran in native code while profiling, most iterations first."""
    return sorted((lp for lp in LOOPS.values() if lp.trips), key=lambda lp: -lp.trips)


def profiling() -> bool:
    """Whether a profile is being taken: `GENE_PROFILE`, or the profiler's counters
    installed in the tier-0 compiler (`gene-jit profile`, `Profiler.start`)."""
    if os.environ.get("GENE_PROFILE", "").strip() not in ("", "0", "off", "false", "no"):
        return True
    compiler = sys.modules.get("gene_jit.frontend.compiler")
    return bool(getattr(compiler, "AST_HOOKS", None))


def snapshot() -> list[dict[str, Any]]:
    """Every function's stats as plain dicts, most called first."""
    return [s.as_dict() for s in sorted(REGISTRY.values(), key=lambda s: -s.total_calls)]


def report() -> str:
    """A text table of the stats (what `gene-jit profile` prints)."""
    lines = [f"{'function':<24} {'calls':>8} {'tier':>4} {'compile ms':>10} {'cache':>5} {'misses':>6}  signatures / reason"]
    for s in sorted(REGISTRY.values(), key=lambda s: -s.total_calls):
        sigs = "; ".join(f"({x.signature}) -> {x.returns}" for x in s.signatures)
        detail = sigs if s.tier else f"tier 0: {s.reason or 'not hot'}"
        lines.append(f"{s.name:<24} {s.total_calls:>8} {s.tier:>4} {s.compile_ms:>10.2f} "
                     f"{s.cache_hits:>5} {s.guard_misses:>6}  {detail}")
    loops = hot_loops()
    if loops:
        lines.append("\nhot loops in native code")
        lines.extend(f"  {lp.kind:<6} {lp.file}:{lp.line}:{lp.column} in {lp.function}: {lp.trips} trips"
                     for lp in loops)
    return "\n".join(lines)
