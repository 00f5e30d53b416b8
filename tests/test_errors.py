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


# ---- the user's mistakes against gene-jit's own faults
#
# Library functions below are ordinary builtins registered for the test; what they raise
# is what a fault in a gene-jit library (or a user mistake it lets through) raises.

USER_FAULTS = {
    "ZeroDivisionError": (ZeroDivisionError, "division by zero"),
    "OverflowError": (OverflowError, "overflow"),
    "IndexError": (IndexError, "index out of range"),
    "KeyError": (KeyError, "key not found"),
    "TypeError": (TypeError, "bad operand"),
    "ValueError": (ValueError, "math domain error"),
    "FileNotFoundError": (FileNotFoundError, "no such file"),
}

OWN_FAULTS = {
    "RuntimeError": RuntimeError,
    "AssertionError": AssertionError,
    "NotImplementedError": NotImplementedError,
    "ImportError": ImportError,
    "StopIteration": StopIteration,
    # raised inside gene-jit's Python, not by generated code: a bug there
    "NameError": NameError,
    "AttributeError": AttributeError,
}


def _raising_builtin(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> str:
    from gene_jit.runtime.registry import BUILTINS

    def fails(*_args: object) -> None:
        raise exc

    monkeypatch.setitem(BUILTINS, "lib-call", fails)
    return "(fn user-fn [x]\n  (lib-call x))\n(user-fn 1)\n"


@pytest.mark.parametrize("name", sorted(USER_FAULTS))
def test_user_caused_exceptions_are_gene_errors(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import run_gene_source

    from gene_jit.runtime.errors import GeneError

    kind, message = USER_FAULTS[name]
    run = run_gene_source(_raising_builtin(monkeypatch, kind(message)), filename="user.gene")
    assert isinstance(run.error, GeneError), run
    assert run.error.span is not None and run.error.span.line == 2, run.error.format()


@pytest.mark.parametrize("name", sorted(OWN_FAULTS))
def test_own_faults_are_internal_errors(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything but the known user-caused kinds is a bug in gene-jit: an InternalError
    that says so, keeps the Python exception as its cause and names where the Gene
    program was; Gene's `catch *` does not swallow it."""
    from gene_jit.api import eval_source
    from gene_jit.runtime.errors import InternalError

    exc = OWN_FAULTS[name]("broken inside")
    source = _raising_builtin(monkeypatch, exc)
    for text in (source, source.replace("(user-fn 1)", "(try (user-fn 1) catch * 0)")):
        with pytest.raises(InternalError) as info:
            eval_source(text, "own.gene")
        err = info.value
        assert "this is a bug in gene-jit" in str(err)
        assert err.__cause__ is exc
        assert err.span is not None and (err.span.file, err.span.line) == ("own.gene", 2)


def test_missing_module_is_an_internal_error_not_the_users(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A library whose module is missing is gene-jit's fault, not a user error at `fn`."""
    from gene_jit.api import eval_source
    from gene_jit.runtime.registry import BUILTINS, LazyBuiltin
    from gene_jit.runtime.requirements import MissingDependencyError

    monkeypatch.setitem(BUILTINS, "lib-call", LazyBuiltin("lib-call", "gene_jit.no_such_mod", "f"))
    from gene_jit.runtime.errors import InternalError

    with pytest.raises(InternalError, match="No module named 'gene_jit.no_such_mod'") as info:
        eval_source("(fn user-fn [x] (lib-call x))\n(user-fn 1)\n", "own.gene")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    # an optional package that is not installed stays a user-facing error naming it
    monkeypatch.setitem(BUILTINS, "lib-call", LazyBuiltin("lib-call", "gguf.no_such_mod", "f"))
    with pytest.raises(MissingDependencyError, match="gguf"):
        eval_source("(lib-call 1)\n", "own.gene")


INTERNAL_SCRIPT = """
import sys
from gene_jit import cli
from gene_jit.runtime.registry import builtin

@builtin("lib-call")
def lib_call(x):
    raise RuntimeError("invariant broken")

sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("debug", ["0", "1"])
def test_internal_error_report(tmp_path: Path, debug: str) -> None:
    """The CLI reports a fault of gene-jit as one, with exit status 70, where the program
    was, and the Python traceback (shortened, all of it with GENE_DEBUG=1)."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    script = tmp_path / "host.py"
    script.write_text(INTERNAL_SCRIPT, encoding="utf-8")
    prog = tmp_path / "prog.gene"
    prog.write_text("(fn f [x]\n  (lib-call x))\n(f 1)\n", encoding="utf-8")
    env = {**os.environ, "GENE_DEBUG": debug, "GENE_JIT": "0", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(script), "run", str(prog)],
        capture_output=True, text=True, env=env, timeout=60,
    )
    err = proc.stderr
    assert proc.returncode == 70, err
    assert err.startswith("internal error (this is a bug in gene-jit): RuntimeError"), err
    assert f"while running {prog}:2:3" in err, err
    assert "Traceback" in err and "invariant broken" in err and "host.py" in err, err
    assert ("GENE_DEBUG=1 shows" in err) == (debug == "0"), err


# ---- special forms in unusual shapes

SHAPE_ARGS = ("", "1", "x", "nil", "[]", "[x]", "{}", '"s"', "(f)", "^a 1", "_", "*", "catch",
              "finally", "else", "in", "=")


def _shape_crashes(pairs: tuple[str, ...]) -> dict[tuple[str, str], str]:
    """Compile every special form with no argument, one of SHAPE_ARGS, or two of `pairs`
    (at top level and in a function body); the Python exceptions that escaped, and Gene
    errors without a location."""
    import itertools

    from gene_jit.frontend.compiler import compile_forms, new_env
    from gene_jit.frontend.compiler_core import SPECIAL
    from gene_jit.frontend.reader import read
    from gene_jit.runtime.errors import GeneError

    crashes: dict[tuple[str, str], str] = {}
    env = new_env("shape.gene")  # compiled only, never run: one environment serves all
    shapes = [(), *((a,) for a in SHAPE_ARGS), *itertools.product(pairs, repeat=2)]
    for head in sorted(SPECIAL):
        for args in shapes:
            form = f"({' '.join((head, *args))})"
            for text in (form, f"(fn f [x] {form} 1)"):
                try:
                    compile_forms(read(text, "shape.gene"), "shape.gene", env)
                except GeneError as err:
                    if err.span is None or err.span.line <= 0:
                        crashes.setdefault((head, "error without a span"), text)
                except Exception as exc:  # noqa: BLE001 - any escape is the failure
                    crashes.setdefault((head, type(exc).__name__), text)
    return crashes


def test_special_forms_in_any_shape_never_crash_the_compiler() -> None:
    """Every special form with none, one or two arguments of many kinds compiles or gives
    a Gene error: never a Python exception out of the compiler (`(try)` once did)."""
    crashes = _shape_crashes(("", "1", "x", "[x]", "catch", "finally"))
    assert not crashes, crashes


@pytest.mark.slow
def test_special_forms_in_every_shape_of_two_never_crash_the_compiler() -> None:
    crashes = _shape_crashes(SHAPE_ARGS)
    assert not crashes, crashes


@pytest.mark.parametrize(
    ("source", "shown"),
    [("(try 1)", "1"), ("(try)", "nil"), ('(try (print "a") 2 finally)', "a2"),
     ("(fn f [] (try (return 5) 6)) (f)", "5")],
)
def test_try_without_catch_or_finally_is_its_body(source: str, shown: str) -> None:
    proc = run_cli("eval", source)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == shown + "\n"
    assert proc.stderr == ""


def test_compiler_fault_names_the_form_being_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """A special-form handler that fails with a Python exception is a bug in gene-jit,
    reported at the form it was compiling (as Hy's "while compiling")."""
    from gene_jit.api import eval_source
    from gene_jit.frontend import compiler  # noqa: F401 - fills SPECIAL before it is patched
    from gene_jit.frontend.compiler_core import SPECIAL
    from gene_jit.runtime.errors import InternalError

    def broken_handler(*_args: object) -> None:
        raise IndexError("handler assumed a child")

    monkeypatch.setitem(SPECIAL, "void", broken_handler)
    with pytest.raises(InternalError) as info:
        eval_source("(println 1)\n  (void 1)\n", "odd.gene")
    err = info.value
    assert isinstance(err.__cause__, IndexError)
    assert err.format().splitlines()[1] == "  while compiling odd.gene:2:3"


def test_too_deeply_nested_form_is_a_gene_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.gene"
    path.write_text("(println " + "(+ 1 " * 3000 + "1" + ")" * 3001 + "\n", encoding="utf-8")
    proc = run_cli("run", str(path))
    assert proc.returncode == 1, proc.stderr[:300]
    assert "nested too deeply" in proc.stderr.splitlines()[0] or "stack overflow" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_the_caret_stands_under_the_column_on_a_terminal(tmp_path: Path) -> None:
    """The caret line keeps the source line's tabs and gives wide characters two columns,
    so a terminal shows it under the form the location names."""
    from gene_jit.frontend.forms import Span
    from gene_jit.runtime.errors import GeneError

    path = tmp_path / "t.gene"
    path.write_text('(println 1)\n\t(var u "日本語") (println (u + nil))\n', encoding="utf-8")
    err = GeneError("boom", Span(str(path), 2, 25))  # the `(` of (u + nil)
    source, caret = err.format().splitlines()[1:3]
    assert source[4:].index("(u + nil)") == 24
    assert caret == "    \t" + " " * 8 + "  " * 3 + " " * 12 + "^"
