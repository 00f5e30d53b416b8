"""Per-function tier-1 statistics, for `gene-jit profile`.

One `FnStats` per Gene function that tier 0 registered: calls seen by the profiling
prologue, the current tier, compiled signatures with their compile times and whether
they came from the disk cache, guard misses, and the reason a function stays in tier 0.
"""

from __future__ import annotations

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
    calls: int = 0
    tier: int = 0
    signatures: list[SigStats] = field(default_factory=list)
    guard_misses: int = 0
    reason: str = ""

    @property
    def compile_ms(self) -> float:
        return sum(s.compile_ms for s in self.signatures)

    @property
    def cache_hits(self) -> int:
        return sum(1 for s in self.signatures if s.cache_hit)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "calls": self.calls, "tier": self.tier,
            "signatures": [f"({s.signature}) -> {s.returns}" for s in self.signatures],
            "compile_ms": round(self.compile_ms, 2), "cache_hits": self.cache_hits,
            "guard_misses": self.guard_misses, "reason": self.reason,
        }


REGISTRY: list[FnStats] = []


def new(name: str) -> FnStats:
    stats = FnStats(name)
    REGISTRY.append(stats)
    return stats


def snapshot() -> list[dict[str, Any]]:
    """Every function's stats as plain dicts, most called first."""
    return [s.as_dict() for s in sorted(REGISTRY, key=lambda s: -s.calls)]


def report() -> str:
    """A text table of the stats (what `gene-jit profile` prints)."""
    lines = [f"{'function':<24} {'calls':>8} {'tier':>4} {'compile ms':>10} {'cache':>5} {'misses':>6}  signatures / reason"]
    for s in sorted(REGISTRY, key=lambda s: -s.calls):
        sigs = "; ".join(f"({x.signature}) -> {x.returns}" for x in s.signatures)
        detail = sigs if s.tier else f"tier 0: {s.reason or 'not hot'}"
        lines.append(f"{s.name:<24} {s.calls:>8} {s.tier:>4} {s.compile_ms:>10.2f} "
                     f"{s.cache_hits:>5} {s.guard_misses:>6}  {detail}")
    return "\n".join(lines)
