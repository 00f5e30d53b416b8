"""The `gene-jit` command line, driven as a user drives it (`python -m gene_jit ...`).

run / eval / repl, --version and --help, usage errors (exit 2), program arguments
(`$args`) and stdin.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli


def _program(tmp_path: Path, text: str, name: str = "prog.gene") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("mode", ["0", "eager"])
def test_run_prints_program_output(tmp_path: Path, mode: str) -> None:
    path = _program(tmp_path, '(fn sq [x] (x * x))\n(println "sq" (sq 12))\n(print 1 2)\n')
    proc = run_cli("run", str(path), env={"GENE_JIT": mode})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "sq 144\n1 2"
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("(1 + 2 * 3)", "7"),
        ('"s"', '"s"'),
        ('[1 "a" nil]', '[1 "a" nil]'),
        ("{^k 1}", "{^k 1}"),
        ("(7 / 2)", "3.5"),
        ("nil", "nil"),
        ("(var x 2) (x * 21)", "42"),
    ],
)
def test_eval_prints_repr_of_last_value(code: str, shown: str) -> None:
    proc = run_cli("eval", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == shown + "\n"


def test_eval_output_comes_before_value() -> None:
    proc = run_cli("eval", '(println "hi") 5')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi\n5\n"


def test_eval_error_exits_1() -> None:
    proc = run_cli("eval", "(println nope-not-defined)")
    assert proc.returncode == 1
    assert "nope-not-defined" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_version() -> None:
    import gene_jit

    proc = run_cli("--version")
    assert proc.returncode == 0
    assert gene_jit.__version__ in proc.stdout + proc.stderr


def test_help_lists_commands() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("run", "eval", "repl"):
        assert command in proc.stdout


@pytest.mark.parametrize("argv", [(), ("no-such-command",), ("run",), ("eval",)])
def test_usage_errors_exit_2(argv: tuple[str, ...]) -> None:
    proc = run_cli(*argv)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "usage" in proc.stderr.lower()
    assert "Traceback" not in proc.stderr


def test_program_arguments(tmp_path: Path) -> None:
    path = _program(tmp_path, "(println $args)\n(println ($args .size))\n")
    proc = run_cli("run", str(path), "a", "b c", "3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[a b c 3]\n3\n"


def test_program_without_arguments(tmp_path: Path) -> None:
    path = _program(tmp_path, "(println $args)\n")
    proc = run_cli("run", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\n"


def test_run_reads_stdin(tmp_path: Path) -> None:
    path = _program(
        tmp_path,
        "(var n 0)\n(loop\n  (var line (read-line))\n  (if (= line nil) (break))\n"
        '  (n += 1)\n  (println n line))\n(println "lines:" n)\n',
    )
    proc = run_cli("run", str(path), stdin="alpha\nbeta gamma\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1 alpha\n2 beta gamma\nlines: 2\n"


def test_repl_evaluates_and_keeps_state() -> None:
    proc = run_cli("repl", "--no-history", stdin='(var x 20)\n(x + 22)\n"str"\n')
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert "42" in lines
    assert '"str"' in lines


def test_repl_multiline_input() -> None:
    source = "(fn double [a]\n  (var b\n    (a * 2))\n  b)\n(double 21)\n"
    proc = run_cli("repl", "--no-history", stdin=source)
    assert proc.returncode == 0, proc.stderr
    assert "42" in proc.stdout.split()


def test_repl_survives_errors() -> None:
    source = "(println undefined-in-repl)\n(1 +\n 1)\n(var s ok-too-undefined)\n(10 * 10)\n"
    proc = run_cli("repl", "--no-history", stdin=source)
    assert proc.returncode == 0, proc.stderr
    assert "undefined-in-repl" in proc.stderr
    assert "ok-too-undefined" in proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout.split()
    assert "2" in out
    assert "100" in out


def test_repl_syntax_error_then_recovers() -> None:
    proc = run_cli("repl", "--no-history", stdin="(println 1))\n(+ 2 3)\n")
    assert proc.returncode == 0, proc.stderr
    assert "syntax error" in proc.stderr
    assert "5" in proc.stdout.split()


# ---- the output's reader goes away


@pytest.mark.parametrize("command", ["run", "eval"])
def test_closed_pipe_exits_0_quietly(tmp_path: Path, command: str) -> None:
    """`gene-jit run p.gene | head -1`: once the reader is gone, exit 0 with no message."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    code = "(for i in (range 1000000) (println i))"
    argv = ["run", str(_program(tmp_path, code))] if command == "run" else ["eval", code]
    env = {**os.environ, "GENE_JIT": "0", "PYTHONPATH": str(REPO)}
    env.pop("GENE_DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gene_jit", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"0\n"
    proc.stdout.close()  # as `head -1` does after its line
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert stderr == ""


# ---- Python warnings never reach the user


def test_no_syntax_warning_before_the_gene_error() -> None:
    """Python's compiler warns about some generated code (a call on a list literal); the
    user sees only the Gene error."""
    proc = run_cli("eval", "([1] 2)")
    assert proc.returncode == 1
    assert proc.stderr.startswith("<eval>:1:1: type error"), proc.stderr
    assert "Warning" not in proc.stderr


WARNING_HOST = """
import sys, warnings
from gene_jit import cli
from gene_jit.runtime.registry import builtin

@builtin("noisy")
def noisy(x):
    import numpy as np
    warnings.warn("old way", DeprecationWarning)
    return float(np.float64(x) / np.float64(0.0))  # NumPy's RuntimeWarning

sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("debug", ["0", "1"])
def test_library_warnings_are_not_shown(tmp_path: Path, debug: str) -> None:
    """Warnings from libraries that Gene code calls (NumPy's RuntimeWarning, any
    DeprecationWarning) stay hidden; GENE_DEBUG=1 shows them."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    host = tmp_path / "host.py"
    host.write_text(WARNING_HOST, encoding="utf-8")
    env = {**os.environ, "GENE_JIT": "0", "PYTHONPATH": str(REPO), "GENE_DEBUG": debug,
           "PYTHONWARNINGS": "always"}
    proc = subprocess.run(
        [sys.executable, str(host), "eval", "(println (noisy 1))"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "inf\nnil\n"
    if debug == "0":
        assert proc.stderr == ""
    else:
        assert "DeprecationWarning" in proc.stderr and "RuntimeWarning" in proc.stderr


def test_api_keeps_warnings_inside() -> None:
    import warnings

    import gene_jit

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        gene_jit.eval("(fn f [] ([1] 2))")
    assert seen == []
