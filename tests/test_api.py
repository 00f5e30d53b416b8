"""The Python API (`gene_jit.eval`, `run_file`, conversions) and the CLI entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gene_jit
from gene_jit import cli
from gene_jit.runtime.errors import (
    GeneError,
    GeneOverflowError,
    GeneThrow,
    GeneTypeError,
    InternalError,
)
from gene_jit.runtime.values import Gene, GeneSet, Range, Symbol

ROOT = Path(__file__).resolve().parent.parent


def test_import_is_light() -> None:
    code = (
        "import sys, gene_jit; print(sorted(m for m in ('numba', 'llvmlite') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"
    assert gene_jit.__version__
    with pytest.raises(AttributeError):
        gene_jit.no_such_thing  # noqa: B018


def test_repr_and_display() -> None:
    assert gene_jit.repr([1, "a", None, 2.0]) == '[1 "a" nil 2.0]'
    assert gene_jit.display([1, "a"]) == "[1 a]"
    assert gene_jit.repr({"k": Symbol("s")}) == "{^k s}"


def test_to_python() -> None:
    v = [Symbol("a"), Range(1, 3), GeneSet([1, 2]), {"k": [1]}]
    assert gene_jit.to_python(v) == ["a", [1, 2, 3], [1, 2], {"k": [1]}]
    g = Gene(Symbol("f"))
    arr = np.zeros(2)
    assert gene_jit.to_python(g) is g
    assert gene_jit.to_python(arr) is arr
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    out = gene_jit.to_python(cyclic)
    assert out[1] is out


def test_from_python() -> None:
    arr = np.arange(3)
    v = gene_jit.from_python(
        {"t": (1, 2), "n": np.int64(5), "f": np.float32(0.5), "a": arr, "s": {1}}
    )
    assert v["t"] == [1, 2] and type(v["n"]) is int and type(v["f"]) is float
    assert v["a"] is arr
    assert isinstance(v["s"], GeneSet)
    with pytest.raises(GeneOverflowError):
        gene_jit.from_python(2**64)
    with pytest.raises(GeneTypeError, match="map keys must be strings"):
        gene_jit.from_python({1: 2})


def test_cli_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert gene_jit.__version__ in capsys.readouterr().out
    assert cli.main(["--help"]) == 0
    help_text = capsys.readouterr().out
    for name in ("run", "eval", "repl", "profile", "ir"):
        assert name in help_text


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert cli.main(["frobnicate"]) == 2
    assert cli.main(["run"]) == 2
    capsys.readouterr()


def test_cli_missing_lazy_subcommand(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.SUBCOMMANDS, "nothere", ("gene_jit.no_such_module", "test only"))
    assert cli.main(["nothere", "x"]) == 2
    assert "not available" in capsys.readouterr().err


def test_report_failure_exit_codes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GENE_DEBUG", raising=False)
    assert cli.report_failure(GeneTypeError("bad thing")) == 1
    err = capsys.readouterr().err
    assert "type error: bad thing" in err and "Traceback" not in err
    assert cli.report_failure(GeneThrow("x", value=[1, "boom"])) == 1
    assert "uncaught exception: [1 boom]" in capsys.readouterr().err
    try:
        raise ZeroDivisionError("oops")
    except ZeroDivisionError as exc:
        assert cli.report_failure(exc) == 70
    err = capsys.readouterr().err
    assert "internal error (this is a bug in gene-jit): ZeroDivisionError: oops" in err
    assert "Traceback" in err
    assert cli.report_failure(InternalError("bad IR")) == 70
    assert cli.report_failure(RecursionError()) == 1
    capsys.readouterr()


# --- through Gene source, once the tier-0 compiler is present -------------------------


@pytest.fixture
def compiler() -> Any:
    return pytest.importorskip("gene_jit.frontend.compiler")


def test_eval(compiler: Any) -> None:
    assert gene_jit.eval("(1 + 2 * 3)") == 7
    assert gene_jit.eval('[1 "a" nil {^k :s}]') == [1, "a", None, {"k": "s"}]
    with pytest.raises(GeneError):
        gene_jit.eval("(undefined-thing 1)")


def test_run_file(compiler: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prog = tmp_path / "p.gene"
    prog.write_text('(println "args:" $args)\n(var x 41)\n(x + 1)\n')
    assert gene_jit.run_file(str(prog), args=["a", "b"]) == 42
    assert capsys.readouterr().out == "args: [a b]\n"


def test_cli_run_and_eval(
    compiler: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prog = tmp_path / "p.gene"
    prog.write_text('(println "hi" $args)\n')
    assert cli.main(["run", str(prog), "x", "--flag"]) == 0
    assert capsys.readouterr().out == "hi [x --flag]\n"
    assert cli.main(["eval", '["a" 1.0]']) == 0
    assert capsys.readouterr().out == '["a" 1.0]\n'
    assert cli.main(["eval", "(assert false)"]) == 1
    assert "assertion failed" in capsys.readouterr().err
    assert cli.main(["eval", "(exit 3)"]) == 3
    assert cli.main(["run", str(tmp_path / "missing.gene")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_cli_subprocess(compiler: Any) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gene_jit", "eval", '(str "a" 1)'],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert (out.returncode, out.stdout) == (0, '"a1"\n')


def test_repl_session(compiler: Any) -> None:
    session = '(var x 2)\n(x\n  * 21)\n(undefined-thing)\n"s"\n'
    out = subprocess.run(
        [sys.executable, "-m", "gene_jit", "repl"],
        input=session,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0
    assert out.stdout == '2\n42\n"s"\n'
    assert "undefined-thing" in out.stderr


def test_dir_shows_the_api_only() -> None:
    assert dir(gene_jit) == sorted(gene_jit.__all__)
    assert {"eval", "jit", "from_python"} <= set(dir(gene_jit))


def test_each_jit_source_shows_its_own_lines_in_errors() -> None:
    add = gene_jit.jit("(fn add_src [a b] (a + b))")
    gene_jit.jit("(fn other_src [x]\n  (var zzz 1)\n  (x * 2))")
    add_again = gene_jit.jit("(fn add_src [a b]\n  (a - b))")

    @gene_jit.jit
    def third() -> None:
        """(fn third [a b]
             (a * b))"""

    cases = [(add, "(a + b)", "<jit add_src>:1:"), (add_again, "(a - b)", "<jit add_src #"),
             (third, "(a * b)", "<jit third>:2:")]
    for f, line, where in cases:
        with pytest.raises(GeneTypeError) as info:
            f("s", 1)
        text = info.value.format()
        assert text.startswith(where) and line in text.splitlines()[1], text


def test_a_decorated_function_without_gene_source_is_named() -> None:
    with pytest.raises(GeneError, match="gene_jit.jit: empty_doc has no docstring holding Gene source"):
        @gene_jit.jit
        def empty_doc() -> None:
            pass


@pytest.mark.parametrize("mode", ["0", "eager", "1"])
def test_a_gene_function_called_from_python_raises_gene_errors(
        monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    from gene_jit.runtime.errors import GeneArityError

    monkeypatch.setenv("GENE_JIT", mode)
    add = gene_jit.eval("(fn [x y] (x + y))")
    assert add(1, 2) == 3 and add(np.int64(2), np.float32(0.5)) == 2.5
    for args in (("a", "b"), ([1], [2]), (None, 1)):
        with pytest.raises(GeneTypeError, match=r"\+ expects numbers") as info:
            add(*args)
        assert info.value.span is not None and info.value.span.file == "<eval>"
    with pytest.raises(GeneOverflowError):
        add(2**70, 1)
    pair = gene_jit.eval("[(fn pair [a b ^k] [a b k])]")[0]
    assert pair(1, (2, 3), k=4) == [1, [2, 3], 4]
    with pytest.raises(GeneArityError, match=r"pair has no parameter \^c"):
        pair(1, c=2)
    # an exception of Python code that the Gene function calls back stays Python's own
    call = gene_jit.eval("(fn [f] (f))")

    def fails() -> None:
        raise KeyError("from python")

    with pytest.raises(KeyError, match="from python"):
        call(fails)


@pytest.mark.parametrize("mode", ["0", "eager", "1"])
def test_jit_calls_with_any_array_give_the_same_result_in_every_mode(
        monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv("GENE_JIT", mode)
    monkeypatch.setenv("GENE_JIT_CACHE", "0")
    total = gene_jit.jit("(fn total_any [a] (var t 0.0) (for x in a (t += x)) t)", fallback=True)
    for dtype in ("float32", "int32", "float64", "int64", "uint8"):
        assert total(np.arange(3, dtype=dtype)) == 3.0, dtype


def test_jit_stays_callable_once_its_module_is_imported() -> None:
    import importlib

    importlib.import_module("gene_jit.jit")  # the import system sets gene_jit.jit to it
    assert gene_jit.jit("(fn one_more [x] (x + 1))")(1) == 2


def test_gene_errors_reach_python_without_gene_jits_own_frames() -> None:
    """A syntax error (raised deep in the compiler) or a runtime error reaches the Python
    caller with the caller's frames only, as a Python library's own errors do."""
    import traceback

    import gene_jit
    from gene_jit.runtime.errors import GeneError

    for call in (lambda: gene_jit.eval("(1 + )"), lambda: gene_jit.eval('(fn f [x] (x + "a")) (f 1)'),
                 lambda: gene_jit.jit("(fn f [x] (x + ))")):
        with pytest.raises(GeneError) as info:
            call()
        files = {f.filename for f in traceback.extract_tb(info.value.__traceback__)}
        assert not [f for f in files if "gene_jit/frontend" in f or "gene_jit/runtime" in f], files


def test_run_file_args_are_strings(tmp_path: Path) -> None:
    """$args holds strings, as a shell gives them: another element is refused by name."""
    import gene_jit
    from gene_jit.runtime.errors import GeneTypeError

    path = tmp_path / "a.gene"
    path.write_text("$args\n")
    assert gene_jit.run_file(str(path), args=("x", "y")) == ["x", "y"]
    for args in ([1], ["a", None]):
        with pytest.raises(GeneTypeError, match="args must be a list of strings, got an element"):
            gene_jit.run_file(str(path), args=args)  # type: ignore[list-item]
