"""Profiling Gene programs: `gene-jit profile`, `gene-jit run --profile`, `GENE_PROFILE=1`.

    from gene_jit.profiler import Profiler
    with Profiler("app.gene") as p:
        gene_jit.run_file("app.gene")
    p.data.function("fib").calls

Collection lives in `collect` (exact counts and times, loop trips, stack samples, tier-1
statistics), the data model in `model`, and the reports in `table` (rich), `export`
(JSON, speedscope) and `flamegraph` (SVG). Nothing here is imported or installed unless a
profile is asked for, so unprofiled runs pay nothing.
"""

from __future__ import annotations

from gene_jit.profiler.collect import Profiler
from gene_jit.profiler.model import (
    CallStats,
    Frame,
    FunctionStats,
    LibraryStats,
    LoopStats,
    ProfileData,
)

__all__ = ["CallStats", "Frame", "FunctionStats", "LibraryStats", "LoopStats", "ProfileData", "Profiler"]
