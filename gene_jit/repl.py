"""The interactive Gene session (`gene-jit repl`).

Reads input until the forms balance (`reader.is_complete`), runs it in one environment
that lives for the whole session, and prints the repr form of the last value. Errors are
printed and the session goes on; Ctrl-C drops the pending input; Ctrl-D (end of input)
or `(exit)` ends it. With a terminal, line editing and history (~/.gene_jit_history)
come from readline; with piped input no prompts are printed.

History holds whole inputs: a form typed over several lines is one entry, so Up recalls
all of it. The history file keeps one entry per line as a JSON string (a form's newlines
stay inside its entry); plain lines of older files are read as they are.
"""

from __future__ import annotations

import json
import os
import sys
from types import ModuleType
from typing import Any, TextIO

from gene_jit import __version__
from gene_jit.runtime.errors import GeneError, InternalError, remember_source

HISTORY_FILE = os.path.join(os.path.expanduser("~"), ".gene_jit_history")
HISTORY_LENGTH = 1000
PROMPT = "gene> "
CONTINUE = "...   "


def record_input(rl: ModuleType, start: int, text: str) -> None:
    """Make the lines that readline added since history length `start` (the lines of one
    input) a single history entry holding the whole input `text`."""
    for pos in range(rl.get_current_history_length() - 1, start - 1, -1):
        rl.remove_history_item(pos)
    length = rl.get_current_history_length()
    if text.strip() and (length == 0 or rl.get_history_item(length) != text):
        rl.add_history(text)


def load_history(rl: ModuleType, path: str) -> None:
    """Add the entries of the history file at `path` (see the module docstring)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return
    for line in lines[-HISTORY_LENGTH:]:
        entry: Any = line
        if line.startswith('"'):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = line
        if isinstance(entry, str) and entry.strip():
            rl.add_history(entry)


def save_history(rl: ModuleType, path: str) -> None:
    """Write the session's history to `path`, one JSON string per entry."""
    n = rl.get_current_history_length()
    entries = [rl.get_history_item(i) for i in range(max(1, n - HISTORY_LENGTH + 1), n + 1)]
    text = "".join(json.dumps(e) + "\n" for e in entries if e)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


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
        self.readline: ModuleType | None = None  # set while readline edits the input

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
        start = self._history_length()
        while True:
            try:
                line = self._read_line(PROMPT if not lines else CONTINUE)
            except KeyboardInterrupt:
                self.stdout.write("\n")
                lines = []
                start = self._history_length()
                continue
            if line is None:
                return "\n".join(lines) if lines else None
            lines.append(line)
            text = "\n".join(lines)
            if is_complete(text):
                if self.readline is not None:
                    record_input(self.readline, start, text)
                return text

    def _history_length(self) -> int:
        return self.readline.get_current_history_length() if self.readline is not None else 0

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
        from gene_jit.cli import format_gene_error, format_internal_error
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
        except InternalError as exc:  # a bug in gene-jit: report it, keep the session
            self._flush()
            sys.stderr.write(format_internal_error(exc) + "\n")
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
        if self.stdin is sys.stdin:
            self.readline = readline
        if self.history:
            load_history(readline, HISTORY_FILE)
            readline.set_history_length(HISTORY_LENGTH)

    def _save_history(self) -> None:
        if not self.history or self.readline is None:
            return
        try:
            save_history(self.readline, HISTORY_FILE)
        except OSError:
            pass
