"""The profile as rich tables: functions, hot loops, library time."""

from __future__ import annotations

import os
from typing import IO

from rich.console import Console
from rich.table import Table

from gene_jit.profiler.model import FunctionStats, ProfileData

SORT_KEYS = {
    "total": lambda f: -f.total_ms,
    "self": lambda f: -f.self_ms,
    "calls": lambda f: -f.calls,
    "name": lambda f: f.name,
    "tier": lambda f: (-f.tier, -f.total_ms),
    "compile": lambda f: -f.compile_ms,
}


def ordered(
    functions: list[FunctionStats], sort: str = "total", top: int | None = None
) -> list[FunctionStats]:
    out = sorted(functions, key=SORT_KEYS[sort])
    return out[:top] if top is not None else out


def _where(file: str, line: int) -> str:
    return f"{os.path.basename(file)}:{line}" if line else os.path.basename(file)


def _ms(v: float) -> str:
    return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"


def function_table(data: ProfileData, sort: str, top: int | None) -> Table:
    t = Table(
        title=f"gene-jit profile: {data.program}  ({_ms(data.wall_ms)} ms, JIT {data.jit_mode})",
        title_justify="left",
        header_style="bold",
    )
    for col in (
        "function",
        "where",
        "calls",
        "total ms",
        "self ms",
        "tier",
        "sigs",
        "compile ms",
        "cache hits",
        "guard misses",
    ):
        t.add_column(
            col,
            justify="left" if col in ("function", "where") else "right",
            no_wrap=col != "function",
        )
    t.add_column("why tier 0", overflow="fold", ratio=1)
    for f in ordered(data.functions, sort, top):
        why = ""
        if f.tier == 0 and f.reason:
            why = f.reason
            if f.reason_line:
                why += f"\n  at line {f.reason_line}"
                if f.reason_form:
                    why += f": {f.reason_form}"
        t.add_row(
            f.name,
            _where(f.file, f.line),
            f"{f.calls:,}",
            _ms(f.total_ms),
            _ms(f.self_ms),
            str(f.tier),
            str(len(f.signatures)) if f.signatures else "",
            _ms(f.compile_ms) if f.compile_ms else "",
            str(f.cache_hits) if f.tier else "",
            str(f.guard_misses) if f.tier else "",
            why,
        )
    return t


def loop_table(data: ProfileData, top: int | None) -> Table | None:
    loops = [lp for lp in data.loops if lp.trips > 0]
    if not loops:
        return None
    t = Table(
        title="hot loops (iterations run in tier 0)", title_justify="left", header_style="bold"
    )
    for col in ("loop", "where", "in", "trips"):
        t.add_column(col, justify="right" if col == "trips" else "left")
    for lp in loops[:top] if top is not None else loops:
        t.add_row(lp.kind, _where(lp.file, lp.line), lp.function, f"{lp.trips:,}")
    return t


def library_table(data: ProfileData) -> Table | None:
    if not data.libraries:
        return None
    t = Table(title="libraries", title_justify="left", header_style="bold")
    for col in ("library", "ms", "% of run", "tokens", "tokens/s"):
        t.add_column(col, justify="left" if col == "library" else "right")
    for lib in data.libraries:
        share = 100 * lib.ms / data.wall_ms if data.wall_ms else 0.0
        tps = lib.tokens_per_s
        t.add_row(
            lib.name,
            _ms(lib.ms),
            f"{share:.1f}",
            str(lib.tokens) if lib.tokens else "",
            f"{tps:,.1f}" if tps else "",
        )
    return t


def print_report(
    data: ProfileData, sort: str = "total", top: int | None = None, file: IO[str] | None = None
) -> None:
    probe = Console(file=file)
    # Not a terminal (a file, a pipe): wide enough that rows do not wrap.
    console = probe if probe.is_terminal else Console(file=file, width=160)
    console.print(function_table(data, sort, top))
    for extra in (loop_table(data, top), library_table(data)):
        if extra is not None:
            console.print(extra)
