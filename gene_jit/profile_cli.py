"""`gene-jit profile FILE [args]` (and `gene-jit run --profile`): run a program under the
profiler, print the report tables to stderr (the program's own output keeps stdout), and
write the files asked for: `--json`, `--speedscope`, `--flamegraph`.
"""

from __future__ import annotations

import argparse
import sys

from gene_jit.profiler.table import SORT_KEYS

EXIT_OK, EXIT_USAGE = 0, 2


def configure(p: argparse.ArgumentParser) -> None:
    add_output_options(p)
    p.add_argument("file", help="the .gene program")
    rest = p.add_argument("args", nargs=argparse.REMAINDER, help="arguments, visible to Gene as $args")
    rest.required = False  # argparse counts REMAINDER as required in its "missing" message


def add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json", metavar="FILE", help="write the report as JSON (one entry per function)"
    )
    p.add_argument(
        "--speedscope", metavar="FILE", help="write the sampled stacks in speedscope's format"
    )
    p.add_argument(
        "--flamegraph", metavar="FILE.svg", help="write a flame graph (SVG, opens in a browser)"
    )
    p.add_argument(
        "--sort",
        choices=sorted(SORT_KEYS),
        default="total",
        help="order of the functions (default: total)",
    )
    p.add_argument("--top", type=int, metavar="N", help="show only the first N functions and loops")
    p.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="MS",
        help="stack sampling interval (default: 1 ms)",
    )
    p.add_argument("--quiet", action="store_true", help="do not print the tables")


def default_options() -> argparse.Namespace:
    """The options of a plain `gene-jit profile` (for `gene-jit run --profile`)."""
    p = argparse.ArgumentParser(add_help=False)
    add_output_options(p)
    return p.parse_args([])


def run(args: argparse.Namespace) -> int:
    return profile_program(args.file, list(args.args), args)


def profile_program(path: str, argv: list[str], opts: argparse.Namespace) -> int:
    """Run `path` under the profiler and report; the exit status of the run."""
    from gene_jit.api import run_program
    from gene_jit.cli import report_failure
    from gene_jit.profiler import Profiler

    if opts.top is not None and opts.top < 1:
        sys.stderr.write("gene-jit profile: --top needs a positive number\n")
        return EXIT_USAGE
    if opts.interval <= 0:
        sys.stderr.write("gene-jit profile: --interval needs a positive number of milliseconds\n")
        return EXIT_USAGE
    unwritable = _unwritable_output(opts)
    if unwritable:  # found before the run, not after it
        sys.stderr.write(f"gene-jit profile: {unwritable}\n")
        return EXIT_USAGE
    profiler = Profiler(path, sample_interval=opts.interval / 1e3)
    status = EXIT_OK
    profiler.start()
    try:
        run_program(path, argv, "profile")
    except SystemExit as exc:  # (exit n) in the program
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # noqa: BLE001 - reported like `gene-jit run`, then profiled
        data = profiler.stop()
        status = report_failure(exc)
        write_reports(data, opts)
        return status
    data = profiler.stop()
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    return write_reports(data, opts) or status


def _unwritable_output(opts: argparse.Namespace) -> str | None:
    """Why one of the report files asked for cannot be written, or None."""
    import os

    for flag in ("json", "speedscope", "flamegraph"):
        path = getattr(opts, flag)
        if not path:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            return f"--{flag} {path}: a folder, not a file name"
        if not os.path.isdir(folder):
            return f"--{flag} {path}: no such folder {folder}"
        if not os.access(folder, os.W_OK) or os.path.exists(path) and not os.access(path, os.W_OK):
            return f"--{flag} {path}: not writable"
    return None


def write_reports(data: object, opts: argparse.Namespace) -> int:
    from gene_jit.profiler import ProfileData, export, flamegraph, table

    assert isinstance(data, ProfileData)
    if not opts.quiet and data.functions:  # nothing ran: the error said why
        table.print_report(data, opts.sort, opts.top, file=sys.stderr)
    writers = (
        ("JSON", opts.json, lambda p: export.write_json(p, export.json_report(data, opts.sort, opts.top))),
        ("speedscope", opts.speedscope, lambda p: export.write_json(p, export.speedscope(data))),
        ("flame graph", opts.flamegraph, lambda p: _write_text(p, flamegraph.render(data))),
    )
    status = EXIT_OK
    for what, path, write in writers:
        if not path:
            continue
        try:
            write(path)
        except OSError as exc:  # the folder went away or refuses writes during the run
            sys.stderr.write(f"gene-jit profile: cannot write the {what} to {path}: {exc.strerror or exc}\n")
            status = 1
            continue
        if not opts.quiet:
            sys.stderr.write(f"wrote {what} to {path}\n")
    return status


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
