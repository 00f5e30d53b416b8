"""The `gene-jit` command line: `run`, `eval`, `repl`, plus subcommands other parts add.

Exit status: 0 on success, and when the reader of the output goes away (`gene-jit run
p.gene | head -1`); 1 when the Gene program fails (a Gene error, printed with its
location and source line, or an uncaught `throw`); 2 for usage errors; 70 for an
internal error, a bug in gene-jit, printed with the end of its Python traceback (all of
it with `GENE_DEBUG=1`). Python frames of Gene errors and Python warnings appear only
with `GENE_DEBUG=1`.

Adding a subcommand: put `"name": ("module", "one-line help")` into `SUBCOMMANDS`. The
module is imported only when the subcommand runs (or `--help` lists it) and provides
`configure(parser: argparse.ArgumentParser) -> None` and `run(args: argparse.Namespace)
-> int`. Built-in subcommands use the same shape through `register_subcommand`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from gene_jit import __version__
from gene_jit.runtime.errors import GeneError, GeneThrow, InternalError, debug_enabled

EXIT_OK = 0
EXIT_GENE_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70


@dataclass
class Subcommand:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# Lazily imported subcommands: name -> (module providing configure/run, help line).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "profile": (
        "gene_jit.profile_cli",
        "run a program and report where time goes and what became native",
    ),
    "ir": ("gene_jit.ir_cli", "show the typed IR, LLVM IR and assembly of a program's functions"),
    "serve": ("gene_jit.serve.cli", "serve a model over an OpenAI-compatible HTTP API"),
    "perplexity": ("gene_jit.llama.perplexity_cli", "a model's perplexity on a text file"),
    "quantize": ("gene_jit.llama.quantize_cli", "write a quantised copy of a GGUF model"),
}

_BUILTIN: dict[str, Subcommand] = {}


def register_subcommand(
    name: str,
    help: str,
    configure: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
) -> None:
    """Add a subcommand whose code is already imported."""
    _BUILTIN[name] = Subcommand(help, configure, run)


# --- run / eval / repl ----------------------------------------------------------------


def _configure_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", action="store_true", help="profile the run (as `gene-jit profile`)")
    p.add_argument("file", help="the .gene program")
    rest = p.add_argument("args", nargs=argparse.REMAINDER, help="arguments, visible to Gene as $args")
    rest.required = False  # argparse counts REMAINDER as required in its "missing" message


def _run(args: argparse.Namespace) -> int:
    from gene_jit.api import run_program

    if args.profile:
        from gene_jit.profile_cli import default_options, profile_program

        return profile_program(args.file, list(args.args), default_options())
    run_program(args.file, list(args.args))
    return EXIT_OK


def _configure_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("code", help="Gene source; the repr form of its last value is printed")


def _eval(args: argparse.Namespace) -> int:
    from gene_jit.api import eval_source
    from gene_jit.runtime.printer import repr_

    value = eval_source(args.code, "<eval>")
    sys.stdout.write(repr_(value) + "\n")
    return EXIT_OK


def _configure_repl(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-history", action="store_true", help="do not read or write ~/.gene_jit_history"
    )


def _repl(args: argparse.Namespace) -> int:
    from gene_jit.repl import Repl

    return Repl(history=not args.no_history).run()


register_subcommand("run", "run a Gene program", _configure_run, _run)
register_subcommand("eval", "evaluate Gene code and print the last value", _configure_eval, _eval)
register_subcommand("repl", "start an interactive session", _configure_repl, _repl)


# --- argument parsing -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gene-jit",
        description="The Gene language on Python, with an LLVM JIT.",
    )
    parser.add_argument("--version", action="version", version=f"gene-jit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in _BUILTIN.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    for name, (module, help_text) in SUBCOMMANDS.items():
        if name not in _BUILTIN:
            # Every argument goes to the module's own parser: none may look like an option here.
            p = sub.add_parser(
                name, help=help_text, description=help_text, add_help=False, prefix_chars="\0"
            )
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(_lazy=(name, module))
    return parser


def _run_lazy(name: str, module: str, rest: list[str]) -> int:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            sys.stderr.write(f"gene-jit: the '{name}' command is not available in this build\n")
            return EXIT_USAGE
        raise
    parser = argparse.ArgumentParser(prog=f"gene-jit {name}", description=SUBCOMMANDS[name][1])
    mod.configure(parser)
    return int(mod.run(parser.parse_args(rest)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gene-jit` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return _exit_code(exc)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if not debug_enabled():
        warnings.simplefilter("ignore")  # Gene reports its own errors; Python's are noise
    try:
        if hasattr(args, "_lazy"):
            name, module = args._lazy
            return _run_lazy(name, module, args.rest)
        return int(args._run(args))
    except SystemExit as exc:  # (exit n) in a Gene program
        return _exit_code(exc)
    except BaseException as exc:  # noqa: BLE001 - every failure gets its exit status here
        return report_failure(exc)
    finally:
        _flush()


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return EXIT_GENE_ERROR


def _flush() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
    except (ValueError, OSError):
        pass


def _drop_stdout() -> None:
    """The reader of stdout is gone: send what is still buffered, and all later writes
    (the interpreter flushes at exit), to the null device, so nothing complains."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a real file
        pass


def _is_broken_pipe(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BrokenPipeError):
            return True
        seen = seen.__cause__
    return False


# Frames of an internal error's traceback shown without GENE_DEBUG=1.
SHORT_TRACEBACK = 6


def report_failure(exc: BaseException) -> int:
    """Print `exc` for the user and return the exit status it calls for."""
    _flush()  # the program's output comes before the error message
    if isinstance(exc, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")
        return 130
    if _is_broken_pipe(exc):
        _drop_stdout()
        return EXIT_OK  # the reader of our output went away (`gene-jit run x | head`)
    if isinstance(exc, GeneError):
        sys.stderr.write(format_gene_error(exc) + "\n")
        if debug_enabled():
            traceback.print_exception(exc)
        return EXIT_GENE_ERROR
    if isinstance(exc, RecursionError):
        sys.stderr.write("error: stack overflow (recursion too deep)\n")
        if debug_enabled():
            traceback.print_exception(exc)
        return EXIT_GENE_ERROR
    sys.stderr.write(format_internal_error(exc) + "\n")
    return EXIT_INTERNAL


def format_internal_error(exc: BaseException) -> str:
    """A fault of gene-jit: what went wrong, where the Gene program was, and the Python
    traceback of the fault (its last frames; all of them with GENE_DEBUG=1)."""
    if not isinstance(exc, InternalError):
        from gene_jit.frontend.compiler_errors import internal_error

        exc = internal_error(exc)
    cause = exc.__cause__ or exc
    if debug_enabled():
        trace = traceback.format_exception(cause)
        hint = ""
    else:
        frames = traceback.extract_tb(cause.__traceback__)[-SHORT_TRACEBACK:]
        trace = [
            "Traceback (most recent call last, shortened):\n",
            *traceback.format_list(frames),
            *traceback.format_exception_only(cause),
        ]
        hint = "GENE_DEBUG=1 shows the whole traceback; please report this with it\n"
    return (exc.format() + "\n" + "".join(trace) + hint).rstrip("\n")


def format_gene_error(exc: GeneError) -> str:
    """The error's own format; an uncaught throw shows the thrown value."""
    if isinstance(exc, GeneThrow):
        from gene_jit.runtime.printer import display

        shown = GeneThrow(display(exc.value), exc.span)
        shown.context = list(exc.context)
        return shown.format()
    return exc.format()
