"""Input and output builtins: `read-line`, `gene/io/read|write`, `file/read|write`
(also `gene/File/read|write`), `gene/io/read_async|write_async`, `gene/os/getenv`.

The `_async` forms return futures (ops_async.py) that complete before they are returned,
as the reference VM's do: a read that fails gives a failed future, and `await` raises its
error, so `(try (await (gene/io/read_async p)) catch * ...)` handles a missing file.

File errors (missing file, no permission) are Gene errors naming the path, not Python
tracebacks.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from gene_jit.runtime.builtins import expect, gene_builtin
from gene_jit.runtime.errors import GeneError
from gene_jit.runtime.ops_async import Future, completed
from gene_jit.runtime.printer import display


class GeneIOError(GeneError):
    """A file could not be read or written."""

    kind = "io error"


@gene_builtin("read-line", "read_line")
def read_line() -> str | None:
    """`(read-line)`: one line from stdin without its newline; nil at end of input."""
    line = sys.stdin.readline()
    if line == "":
        return None
    if line.endswith("\n"):
        line = line[:-1]
    if line.endswith("\r"):
        line = line[:-1]
    return line


def read_file(name: str, path: Any) -> str:
    expect(name, path, str, "a file path string")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise GeneIOError(f"{name}: cannot read {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise GeneIOError(f"{name}: {path!r} is not UTF-8 text{first_bad_byte(path)}") from None


def first_bad_byte(path: str) -> str:
    """Where the first byte that is not UTF-8 lies, as `: byte 0xff at line 2, col 10`
    (read again: the text decoder reports offsets within its own chunks)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        col = len(data[line_start:exc.start].decode("utf-8", "replace")) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        return f": byte 0x{data[exc.start]:02x} at line {line}, col {col}"
    except OSError:
        pass
    return ""


def write_file(name: str, path: Any, content: Any, mode: str = "w") -> None:
    expect(name, path, str, "a file path string")
    text = "" if content is None else display(content)
    try:
        with open(path, mode, encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise GeneIOError(f"{name}: cannot write {path!r}: {exc.strerror or exc}") from None


def _register_file_io(ns: str) -> None:
    """`(ns/read path)` and `(ns/write path content)`, each naming itself in errors."""

    @gene_builtin("read", ns=ns)
    def file_read(path: Any) -> str:
        """The whole file as a string."""
        return read_file(f"{ns}/read", path)

    @gene_builtin("write", ns=ns)
    def file_write(path: Any, content: Any) -> None:
        """Replace the file with the display form of content."""
        write_file(f"{ns}/write", path, content)


for _ns in ("file", "gene/File", "gene/io"):
    _register_file_io(_ns)


@gene_builtin("read_async", ns="gene/io")
@gene_builtin("read_async", ns="file")
def file_read_async(path: Any) -> Future:
    """`(gene/io/read_async path)`: a future of the file's text."""
    return completed(lambda: read_file("gene/io/read_async", path))


@gene_builtin("write_async", ns="gene/io")
@gene_builtin("write_async", ns="file")
def file_write_async(path: Any, content: Any) -> Future:
    """`(gene/io/write_async path content)`: a future of nil once the file is written."""
    return completed(lambda: write_file("gene/io/write_async", path, content))


@gene_builtin("append", ns="file")
def file_append(path: Any, content: Any) -> None:
    """`(file/append path content)`: add the display form of content to the file."""
    write_file("file/append", path, content, mode="a")


@gene_builtin("exists", ns="file")
def file_exists(path: Any) -> bool:
    """`(file/exists path)`: whether the path exists."""
    return os.path.exists(expect("file/exists", path, str, "a file path string"))


@gene_builtin("getenv", ns="gene/os")
def getenv(name: Any, default: Any = None) -> Any:
    """`(gene/os/getenv "HOME" [default])`: an environment variable, or default/nil."""
    return os.environ.get(expect("gene/os/getenv", name, str, "a variable name"), default)
