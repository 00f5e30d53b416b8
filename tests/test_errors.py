"""Malformed programs through the CLI: one clear Gene error each, exit status 1.

Every report starts with `file:line:col: kind: message`, then shows the offending source
line and a caret under the reported column. No Python traceback reaches the user unless
`GENE_DEBUG=1`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_cli

LOCATION = re.compile(r"^(?P<file>.+?\.gene):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    line: int  # the line the error must be reported at
    needles: tuple[str, ...]  # each must appear in the report (case-insensitive)
    caret_at: str | None = None  # the text the caret must point at, when it is exact


CASES = [
    Case("unbalanced_parens", '(println "a")\n(println (1 + 2)\n', 2, ("syntax error", ")")),
    Case("extra_close_paren", "(println 1))\n", 1, ("syntax error", ")"), caret_at=")"),
    Case("bad_escape", '(var s 1)\n(println "x \\uZZ12 y")\n', 2, ("syntax error", "escape")),
    Case(
        "unknown_symbol",
        "(var a 1)\n(println (a + no-such-name))\n",
        2,
        ("no-such-name",),
        caret_at="no-such-name",
    ),
    Case("builtin_arity", "(var x 7)\n\n(println (mod x))\n", 3, ("arity error", "mod")),
    Case("type_error_in_plus", '(var s "a")\n(println (s + 1))\n', 2, ("type error", "+")),
    # Code that a macro evaluates is reported where the caller wrote it.
    Case(
        "macro_caller_eval",
        '(macro twice [e] ($caller_eval e) ($caller_eval e))\n(var s "a")\n\n'
        "(twice (println (s + 1)))\n",
        4,
        ("type error", "+"),
        caret_at="(s + 1)",
    ),
    Case(
        "nested_macros_in_fn",
        "(macro inner [e] ($caller_eval e))\n"
        "(macro outer [e] ($caller_eval ($render :(inner %e))))\n"
        '(fn f [x]\n  (outer\n    (println (x + 1))))\n(f 1)\n(f "b")\n',
        5,
        ("type error", "+"),
        caret_at="(x + 1)",
    ),
    Case(
        "macro_defined_after_use",
        '(fn g []\n  (later\n    (println (1 + "x"))))\n(macro later [e] ($caller_eval e))\n(g)\n',
        3,
        ("type error", "+"),
        caret_at='(1 + "x")',
    ),
    Case(
        "macro_body_error",
        "(macro bad [e]\n  (var n 1)\n  (n + e))\n(bad (1 2))\n",
        3,
        ("type error", "+"),
        caret_at="(n + e)",
    ),
    Case(
        "eval_of_quoted_code",
        "(var code :(do\n  (println 1)\n  (println (1 + no-such-name))))\n(eval code)\n",
        3,
        ("no-such-name",),
        caret_at="no-such-name",
    ),
]


def _write(tmp_path: Path, case: Case) -> Path:
    path = tmp_path / f"{case.name}.gene"
    path.write_text(case.source, encoding="utf-8")
    return path


def _location_line(stderr: str) -> tuple[re.Match[str], int]:
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        m = LOCATION.match(line.strip())
        if m:
            return m, i
    raise AssertionError(f"no `file:line:col:` prefix in stderr:\n{stderr}")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_error_report(tmp_path: Path, case: Case) -> None:
    path = _write(tmp_path, case)
    proc = run_cli("run", str(path))
    err = proc.stderr
    assert proc.returncode == 1, f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{err}"
    assert "Traceback" not in err, err
    for needle in case.needles:
        assert needle.lower() in err.lower(), f"{needle!r} missing from:\n{err}"

    m, at = _location_line(err)
    assert Path(m["file"]).name == path.name
    assert int(m["line"]) == case.line, err
    col = int(m["col"])
    source_line = case.source.splitlines()[case.line - 1]

    lines = err.splitlines()
    assert len(lines) > at + 2, f"source line and caret missing:\n{err}"
    shown, caret = lines[at + 1], lines[at + 2]
    assert shown.strip() == source_line.strip(), err
    indent = shown.index(source_line.strip()) - (len(source_line) - len(source_line.lstrip()))
    assert caret.strip() == "^", err
    assert caret.index("^") - indent == col - 1, f"caret not under column {col}:\n{err}"
    if case.caret_at is not None:
        assert source_line[col - 1 :].startswith(case.caret_at), (
            f"caret not at {case.caret_at!r}:\n{err}"
        )


MACRO_SOURCES = {
    "caller_eval": (
        '(macro twice [e] ($caller_eval e) ($caller_eval e))\n(var s "a")\n'
        "(twice\n  (println (s + 1)))\n",
        4,
        12,
    ),
    "nested": (
        "(macro inner [e] ($caller_eval e))\n"
        "(macro outer [e] ($caller_eval ($render :(inner %e))))\n"
        "(outer (do (println 1)\n  (println (2 * nil))))\n",
        4,
        12,
    ),
    "eval_in_macro_body": ('(macro m [e] (eval e))\n(var x 1)\n(m (x + "q"))\n', 3, 4),
}


@pytest.mark.parametrize("name", sorted(MACRO_SOURCES))
def test_macro_errors_in_process(name: str, jit_mode: str) -> None:
    """In-process runs report the caller's file, line and column for code that macros
    evaluate, in both tier modes."""
    from conftest import run_gene_source

    from gene_jit.runtime.errors import GeneError

    source, line, col = MACRO_SOURCES[name]
    run = run_gene_source(source, jit_mode, filename="macros.gene")
    assert isinstance(run.error, GeneError), run
    span = run.error.span
    assert span is not None, run.error
    assert (span.file, span.line, span.col) == ("macros.gene", line, col), run.error.format()
    shown = run.error.format().splitlines()
    assert shown[1].strip() == source.splitlines()[line - 1].strip()


def test_macro_from_imported_module_reports_caller(tmp_path: Path) -> None:
    """A macro defined in another file evaluates the caller's code at the caller's line."""
    (tmp_path / "lib.gene").write_text(
        "(macro $ns/twice [e] ($caller_eval e) ($caller_eval e))\n", encoding="utf-8"
    )
    main = tmp_path / "main.gene"
    main.write_text(
        '(import twice from "lib")\n(var s "a")\n(twice (println (s - 1)))\n', encoding="utf-8"
    )
    proc = run_cli("run", str(main))
    assert proc.returncode == 1, proc.stderr
    m, _ = _location_line(proc.stderr)
    assert Path(m["file"]).name == "main.gene", proc.stderr
    assert (int(m["line"]), int(m["col"])) == (3, 17), proc.stderr


def test_error_has_no_stdout_garbage(tmp_path: Path) -> None:
    """Output printed before the failure stays on stdout; the report goes to stderr."""
    path = tmp_path / "partial.gene"
    path.write_text('(println "before")\n(println missing)\n', encoding="utf-8")
    proc = run_cli("run", str(path))
    assert proc.returncode == 1
    assert proc.stdout == "before\n"
    assert "missing" in proc.stderr


def test_uncaught_throw_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "throw.gene"
    path.write_text('(throw "kaboom")\n', encoding="utf-8")
    proc = run_cli("run", str(path))
    assert proc.returncode == 1
    assert "kaboom" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_debug_shows_python_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, CASES[3])
    proc = run_cli("run", str(path), env={"GENE_DEBUG": "1"})
    assert proc.returncode == 1
    assert "no-such-name" in proc.stderr
    assert "Traceback" in proc.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli("run", str(tmp_path / "nope.gene"))
    assert proc.returncode in (1, 2)
    assert "nope.gene" in proc.stderr
    assert "Traceback" not in proc.stderr
