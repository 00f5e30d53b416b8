"""The REPL's history: a form typed over several lines is one entry, in the session (Up
recalls all of it) and in the history file.

The history functions are tested against the real readline module; the session itself
is driven through a pseudo-terminal, as a user types.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

readline = pytest.importorskip("readline")

from gene_jit.repl import load_history, record_input, save_history  # noqa: E402


@pytest.fixture
def history() -> Iterator[None]:
    """An empty readline history, and the process's own put back afterwards."""
    saved = [readline.get_history_item(i) for i in range(1, readline.get_current_history_length() + 1)]
    readline.clear_history()
    try:
        yield
    finally:
        readline.clear_history()
        for item in saved:
            if item is not None:
                readline.add_history(item)


def _entries() -> list[str]:
    n = readline.get_current_history_length()
    return [readline.get_history_item(i) for i in range(1, n + 1)]


def test_lines_of_one_form_become_one_entry(history: None) -> None:
    readline.add_history("(+ 1 2)")
    start = readline.get_current_history_length()
    readline.add_history("(fn sq [x]")  # what input() adds, line by line
    readline.add_history("(x * x))")
    record_input(readline, start, "(fn sq [x]\n(x * x))")
    assert _entries() == ["(+ 1 2)", "(fn sq [x]\n(x * x))"]


def test_recalled_form_is_not_added_twice(history: None) -> None:
    form = "(fn sq [x]\n(x * x))"
    readline.add_history(form)
    start = readline.get_current_history_length()
    readline.add_history(form)  # Up, then Enter: input() returns the whole form
    record_input(readline, start, form)
    assert _entries() == [form]


def test_history_file_keeps_multiline_entries(history: None, tmp_path: Path) -> None:
    path = tmp_path / "hist"
    forms = ["(fn sq [x]\n  (x * x))", '"quoted"', "(sq 3)"]
    for form in forms:
        readline.add_history(form)
    save_history(readline, str(path))
    readline.clear_history()
    load_history(readline, str(path))
    assert _entries() == forms


def test_history_file_of_plain_lines_still_loads(history: None, tmp_path: Path) -> None:
    path = tmp_path / "hist"
    path.write_text("(println 1)\n(var x 2)\n", encoding="utf-8")
    load_history(readline, str(path))
    assert _entries() == ["(println 1)", "(var x 2)"]


def _read_until(fd: int, needle: bytes, timeout: float = 60) -> bytes:
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end and needle not in buf:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_up_recalls_a_whole_multiline_form(tmp_path: Path) -> None:
    """Type `(var n` / `5)`, then `(n = 7)`; Up Up Enter runs `(var n 5)` again (with
    history by line it would recall `5)`), and the history file keeps the form whole."""
    import pty

    env = {**os.environ, "HOME": str(tmp_path), "GENE_JIT": "0", "PYTHONPATH": str(REPO),
           "TERM": "xterm", "INPUTRC": os.devnull}
    env.pop("GENE_DEBUG", None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the REPL on the terminal
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-m", "gene_jit", "repl"], env)
    try:
        out = _read_until(fd, b"gene> ")
        for keys in (b"(var n\r", b"5)\r", b"(n = 7)\r", b"\x1b[A\x1b[A\r", b"(n + 100)\r"):
            os.write(fd, keys)
            out += _read_until(fd, b"...   " if keys == b"(var n\r" else b"gene> ")
        os.write(fd, b"\x04")  # Ctrl-D ends the session
        out += _read_until(fd, b"\x00", timeout=10)
    finally:
        _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "105" in text.split(), text
    saved = (tmp_path / ".gene_jit_history").read_text(encoding="utf-8").splitlines()
    assert saved == ['"(var n\\n5)"', '"(n = 7)"', '"(var n\\n5)"', '"(n + 100)"'], saved


def test_session_survives_a_fault_of_gene_jit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug in gene-jit met by one input is reported as one; the session goes on."""
    import io

    from gene_jit.repl import Repl
    from gene_jit.runtime.registry import BUILTINS

    def broken(*_args: object) -> None:
        raise RuntimeError("invariant broken")

    monkeypatch.setitem(BUILTINS, "lib-call", broken)
    out = io.StringIO()
    Repl(history=False, stdin=io.StringIO("(lib-call 1)\n(+ 2 3)\n"), stdout=out).run()
    err = capsys.readouterr().err
    assert "internal error (this is a bug in gene-jit): RuntimeError: invariant broken" in err
    assert out.getvalue().split() == ["5"]
