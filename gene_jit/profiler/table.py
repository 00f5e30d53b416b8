"""The profile as rich tables: functions, hot loops, library time."""

from __future__ import annotations

import os
from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gene_jit.profiler.areas import JIT
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
        title=Text(f"gene-jit profile: {data.program}  ({_ms(data.wall_ms)} ms, JIT {data.jit_mode})"),
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
            Text(f.name),  # Text: Gene names and source hold `[..]`, which is not markup
            Text(_where(f.file, f.line)),
            f"{f.calls:,}",
            _ms(f.total_ms) if f.total_ms or not f.native_calls else "",
            _ms(f.self_ms) if f.total_ms or not f.native_calls else "",
            str(f.tier),
            str(len(f.signatures)) if f.signatures else "",
            _ms(f.compile_ms) if f.compile_ms else "",
            str(f.cache_hits) if f.tier else "",
            str(f.guard_misses) if f.tier else "",
            Text(why),
        )
    return t


def loop_table(data: ProfileData, top: int | None) -> Table | None:
    loops = [lp for lp in data.loops if lp.trips > 0]
    if not loops:
        return None
    t = Table(
        title="hot loops (iterations in tier 0 and in native code)",
        title_justify="left",
        header_style="bold",
    )
    for col in ("loop", "where", "in", "trips", "native trips"):
        t.add_column(col, justify="right" if "trips" in col else "left")
    for lp in loops[:top] if top is not None else loops:
        t.add_row(
            Text(lp.kind),
            Text(_where(lp.file, lp.line)),
            Text(lp.function),
            f"{lp.trips:,}",
            f"{lp.native_trips:,}" if lp.native_trips else "",
        )
    return t


def library_note(data: ProfileData) -> str:
    """What the library table's times are, for the rows it has."""
    parts = ["ms: time inside each call, less the timed calls made inside it (their own rows)"]
    if any(lib.name == JIT for lib in data.libraries):
        parts.append(
            "tier-1 compile: type checks, IR, LLVM (and loading it, at the first); native code's run time counts toward "
            "the Gene function that entered it"
        )
    if any(lib.tokens or lib.prompt_tokens for lib in data.libraries):
        parts.append(
            "prompts / generating: time decoding prompts / decoding and sampling new tokens, "
            "part of the calls above; tokens/s divides by it"
        )
    return "; ".join(parts)


def library_table(data: ProfileData, top: int | None = None) -> Table | None:
    if not data.libraries:
        return None
    t = Table(title="libraries, the gene engine and the JIT", title_justify="left", header_style="bold")
    for col in ("library", "calls", "ms", "% of run", "tokens", "tokens/s"):
        t.add_column(col, justify="left" if col == "library" else "right")
    for lib in data.libraries:
        name = f"{lib.name} (sampled)" if lib.sampled else lib.name
        t.add_row(name, f"{lib.calls:,}" if lib.calls else "", _ms(lib.ms), _share(lib.ms, data.wall_ms), style="bold")
        for fn in lib.functions[:top] if top is not None else lib.functions:
            t.add_row(Text(f"  {fn.name}"), f"{fn.calls:,}", _ms(fn.ms), _share(fn.ms, data.wall_ms))
        for label, tokens, ms, rate in (
            ("  prompts", lib.prompt_tokens, lib.prompt_ms, lib.prompt_tokens_per_s),
            ("  generating", lib.tokens, lib.generate_ms, lib.tokens_per_s),
        ):
            if tokens:
                t.add_row(
                    label,
                    "",
                    _ms(ms) if ms is not None else "",
                    _share(ms, data.wall_ms) if ms is not None else "",
                    f"{tokens:,}",
                    f"{rate:,.1f}" if rate else "",
                    style="italic",
                )
    return t


def _share(ms: float, wall_ms: float) -> str:
    return f"{100 * ms / wall_ms:.1f}" if wall_ms else ""


def print_report(
    data: ProfileData, sort: str = "total", top: int | None = None, file: IO[str] | None = None
) -> None:
    probe = Console(file=file)
    # Not a terminal (a file, a pipe): wide enough that rows do not wrap.
    console = probe if probe.is_terminal else Console(file=file, width=160)
    console.print(function_table(data, sort, top))
    if any(f.native_calls for f in data.functions):
        console.print(
            "[dim]times are sampled from Python stacks: time in native code counts toward "
            "the Gene function that entered it from tier 0[/dim]"
        )
    loops = loop_table(data, top)
    if loops is not None:
        console.print(loops)
    libraries = library_table(data, top)
    if libraries is not None:
        console.print(libraries)
        console.print(Text(library_note(data), style="dim"))
