"""`GENE_PROFILE=1`: profile a whole process that runs Gene code (a Python program using
`@gene.jit` or `gene_jit.eval`), and report when it exits.

`GENE_PROFILE=1` prints the tables to stderr; `GENE_PROFILE=out.json`, `out.svg` or
`out.speedscope.json` writes that file instead. The profile starts the first time Gene
code is compiled in the process and covers the thread that did it.
"""

from __future__ import annotations

import atexit
import os
import sys

from gene_jit.profiler.collect import Profiler

_profiler: Profiler | None = None


def requested() -> str | None:
    value = os.environ.get("GENE_PROFILE", "").strip()
    return None if value in ("", "0", "off", "false", "no") else value


def program_name(argv: list[str]) -> str:
    """What the report is titled with: the Gene file of `gene-jit run FILE`, the command
    of other gene-jit commands, else the Python program."""
    if not argv or not argv[0]:
        return "<python>"
    if os.path.basename(argv[0]) not in ("gene-jit", "__main__.py") or len(argv) < 2:
        return argv[0]
    if argv[1] == "run":
        return next((a for a in argv[2:] if not a.startswith("-")), "gene-jit run")
    return f"gene-jit {argv[1]}"


def autostart() -> None:
    """Start the process-wide profile if GENE_PROFILE asks for one (once)."""
    global _profiler
    target = requested()
    if target is None or _profiler is not None:
        return
    _profiler = Profiler(program_name(sys.argv))
    _profiler.start()
    atexit.register(_report, target)


def _report(target: str) -> None:
    from gene_jit.profiler import export, flamegraph, table

    assert _profiler is not None
    data = _profiler.stop()
    try:
        if target.endswith(".svg"):
            with open(target, "w", encoding="utf-8") as f:
                f.write(flamegraph.render(data))
        elif target.endswith(".speedscope.json"):
            export.write_json(target, export.speedscope(data))
        elif target.endswith(".json"):
            export.write_json(target, export.json_report(data))
        else:
            table.print_report(data, file=sys.stderr)
    except OSError as exc:  # at exit: a traceback here would bury the program's own output
        sys.stderr.write(f"gene-jit: GENE_PROFILE={target}: cannot write the profile: {exc.strerror or exc}\n")
