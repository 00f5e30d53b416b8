"""The interactive Gene session (`gene-jit repl`).

Reads input until the forms balance (`reader.is_complete`), runs it in one environment
that lives for the whole session, and prints the repr form of the last value. Errors are
printed and the session goes on; Ctrl-C drops the pending input; Ctrl-D (end of input)
or `(exit)` ends it. With a terminal, line editing and history (~/.gene_jit_history)
come from readline; with piped input no prompts are printed.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from gene_jit import __version__
from gene_jit.runtime.errors import GeneError, remember_source

HISTORY_FILE = os.path.join(os.path.expanduser("~"), ".gene_jit_history")
PROMPT = "gene> "
CONTINUE = "...   "


class Repl:
    """One session: its environment, its input, its history."""

    def __init__(
        self, history: bool = True, stdin: TextIO | None = None, stdout: TextIO | None = None
    ):
        self.stdin = stdin if stdin is not None else sys.stdin
        self.stdout = stdout if stdout is not None else sys.stdout
        self.interactive = self.stdin.isatty() if hasattr(self.stdin, "isatty") else False
        self.history = history and self.interactive
        self.count = 0
        self.env: Any = None

    def run(self) -> int:
        """Loop until end of input; returns the exit status."""
        if self.interactive:
            self._setup_readline()
            self.stdout.write(f"gene-jit {__version__}; Ctrl-D to quit\n")
        try:
            while True:
                text = self._read_input()
                if text is None:
                    break
                if text.strip():
                    self.eval_and_print(text)
        finally:
            self._save_history()
        if self.interactive:
            self.stdout.write("\n")
        return 0

    def _read_input(self) -> str | None:
        """The next complete input (possibly several lines); None at end of input."""
        from gene_jit.frontend.reader import is_complete

        lines: list[str] = []
        while True:
            try:
                line = self._read_line(PROMPT if not lines else CONTINUE)
            except KeyboardInterrupt:
                self.stdout.write("\n")
                lines = []
                continue
            if line is None:
                return "\n".join(lines) if lines else None
            lines.append(line)
            text = "\n".join(lines)
            if is_complete(text):
                return text

    def _read_line(self, prompt: str) -> str | None:
        if self.interactive and self.stdin is sys.stdin:
            try:
                return input(prompt)
            except EOFError:
                return None
        line = self.stdin.readline()
        if line == "":
            return None
        return line.rstrip("\n")

    def eval_and_print(self, text: str) -> None:
        """Run one input and print its value's repr form, or the error it raised."""
        from gene_jit.api import eval_source
        from gene_jit.cli import format_gene_error
        from gene_jit.runtime.printer import repr_

        self.count += 1
        filename = f"<repl-{self.count}>"
        remember_source(filename, text)
        try:
            if self.env is None:
                self.env = self._new_env()
            value = eval_source(text, filename, self.env)
        except GeneError as exc:
            self._flush()
            sys.stderr.write(format_gene_error(exc) + "\n")
            return
        except RecursionError:
            self._flush()
            sys.stderr.write("error: stack overflow (recursion too deep)\n")
            return
        except KeyboardInterrupt:
            self._flush()
            sys.stderr.write("interrupted\n")
            return
        self.stdout.write(repr_(value) + "\n")
        self._flush()

    def _new_env(self) -> Any:
        import gene_jit.runtime.builtins  # noqa: F401 - registers the standard library
        from gene_jit.frontend.compiler import new_env

        return new_env("<repl>", [])

    def _flush(self) -> None:
        self.stdout.flush()

    def _setup_readline(self) -> None:
        try:
            import readline
        except ImportError:  # no line editing on this platform; input() still works
            return
        if self.history:
            try:
                readline.read_history_file(HISTORY_FILE)
            except OSError:
                pass
            readline.set_history_length(1000)

    def _save_history(self) -> None:
        if not self.history:
            return
        try:
            import readline

            readline.write_history_file(HISTORY_FILE)
        except (ImportError, OSError):
            pass
