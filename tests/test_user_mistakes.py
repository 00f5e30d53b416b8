"""Mistakes a first-time user makes, found by trying the documented surface with inputs
it was not written for: each must be a Gene error that speaks Gene, never a Python
traceback, a Python repr in a message, or an option silently dropped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gene_jit.llama.options import ENTRY_POINTS, OPTIONS, OptionError, check_options
from gene_jit.runtime.values import Symbol


@pytest.mark.parametrize("entry", [e for e, names in ENTRY_POINTS.items()
                                   if "grammar" in names and "json_schema" in names])
def test_grammar_and_schema_together_are_refused(entry: str) -> None:
    with pytest.raises(OptionError, match="give :grammar or :json-schema, not both"):
        check_options(entry, {"grammar": 'root ::= "a"', "json_schema": {"type": "string"}})
    # either alone, or one of them nil, is fine
    assert check_options(entry, {"grammar": 'root ::= "a"', "json_schema": None}) == {"grammar": 'root ::= "a"'}


@pytest.mark.parametrize("value", [Symbol("foo"), "foo", 3, [Symbol("gene")], {"a": Symbol("b")}])
def test_option_errors_show_values_as_gene_prints_them(value: object) -> None:
    for entry, names in ENTRY_POINTS.items():
        for name in names:
            try:
                check_options(entry, {name: value})
            except OptionError as e:
                assert "Symbol(" not in e.message and "'" not in e.message.split("got", 1)[-1], e.message


def test_engine_option_is_checked_with_the_others() -> None:
    assert OPTIONS["engine"].kind != "any"
    with pytest.raises(OptionError, match=r"model/create: :engine expects :gene or :llama, got foo$"):
        check_options("model/create", {"engine": Symbol("foo")})
    for ok in (Symbol("gene"), "llama"):
        assert check_options("model/create", {"engine": ok}) == {"engine": ok}


def _gene(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "gene_jit", *args], capture_output=True, input=stdin,
                          timeout=120, cwd=cwd)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                                       proc.stderr.decode("utf-8", "replace"))


@pytest.mark.parametrize("flag", ["--json", "--speedscope", "--flamegraph"])
def test_profile_refuses_report_paths_it_cannot_write_before_running(tmp_path: Path, flag: str) -> None:
    program = tmp_path / "p.gene"
    program.write_text('(println "ran")\n')
    for target, why in ((tmp_path / "no" / "such" / "r.out", "no such folder"), (tmp_path, "a folder")):
        proc = _gene("profile", flag, str(target), str(program))
        assert proc.returncode == 2, proc.stderr
        assert f"gene-jit profile: {flag} {target}: {why}" in proc.stderr
        assert "ran" not in proc.stdout and "internal error" not in proc.stderr


def test_gene_jit_objects_never_print_as_foreign_python_objects() -> None:
    from gene_jit.llama.generate import Generation
    from gene_jit.runtime.printer import display, repr_

    class WithRepr:  # a gene-jit object with a `<kind ...>` repr, as Model has
        def __repr__(self) -> str:
            return "<model m.gguf (3 tokens)>"

    class ChatThing:
        pass

    WithRepr.__module__ = ChatThing.__module__ = "gene_jit.llama.model"
    assert display(WithRepr()) == "#<model m.gguf (3 tokens)>"
    assert repr_(ChatThing()) == "#<chat-thing>"
    assert display(object.__new__(Generation)) == "#<generation>"

    class Foreign:  # a Python library's value keeps the <python ...> form
        pass

    assert display(Foreign()).startswith("<python Foreign")


@pytest.mark.parametrize(("name", "message"), [
    ("", "the model name is empty"),
    ("   ", "the model name is empty"),
    (5, "must be a name or a path (a string), got 5"),
    ([1], "must be a name or a path (a string), got [1]"),
    (Symbol("no-such-model-here"), "no model file 'no-such-model-here' exists"),
])
def test_model_create_refuses_names_that_are_not_names(name: object, message: str) -> None:
    from gene_jit.llama.gene_api import model_create
    from gene_jit.runtime.errors import GeneError

    with pytest.raises(GeneError) as info:
        model_create(name)
    assert message in info.value.message and "Symbol(" not in info.value.message


@pytest.mark.parametrize("source", ['(println "\udcff")', '(var x 1)\n  (f \udce9t\udce9)', "(println \ud800)"])
def test_text_that_is_not_utf8_is_a_syntax_error_at_its_place(source: str) -> None:
    import gene_jit
    from gene_jit.runtime.errors import GeneSyntaxError

    with pytest.raises(GeneSyntaxError) as info:
        gene_jit.eval(source)
    pos = min(i for i, c in enumerate(source) if "\ud800" <= c <= "\udfff")
    span = info.value.span
    assert span is not None and (span.line, span.col) == (source.count("\n", 0, pos) + 1,
                                                           pos - source.rfind("\n", 0, pos))
    assert "is not UTF-8" in info.value.message


def test_repl_and_eval_refuse_bytes_that_are_not_utf8_without_a_traceback(tmp_path: Path) -> None:
    proc = _gene("repl", stdin=b'(println 1)\n(println "a\xc3(")\n(println 2)\n')
    assert proc.returncode == 0
    assert proc.stdout.split() == ["1", "nil", "2", "nil"]
    assert "<repl-2>:1:12: syntax error: the text is not UTF-8: byte 0xc3" in proc.stderr
    assert "Traceback" not in proc.stderr and "UnicodeEncodeError" not in proc.stderr
    program = tmp_path / "bad.gene"
    program.write_bytes(b'(println 1)\n(println "caf\xe9")\n')
    proc = _gene("run", str(program))
    assert proc.returncode == 1
    assert "is not UTF-8 text: byte 0xe9 at line 2, col 14" in proc.stderr


@pytest.mark.parametrize("command", ["run", "profile"])
def test_missing_program_names_only_the_file_as_required(command: str) -> None:
    proc = _gene(command)
    assert proc.returncode == 2
    assert proc.stderr.rstrip().endswith("the following arguments are required: file")


@pytest.mark.parametrize("op", ["zeros", "ones", "rand", "randn"])
def test_tensors_too_big_for_memory_are_a_gene_error_naming_the_op(op: str) -> None:
    import gene_jit
    from gene_jit.runtime.errors import GeneError

    with pytest.raises(GeneError) as info:
        gene_jit.eval(f"(tensor/{op} [100000 100000 100000] ^dtype :f32)")
    assert info.value.message == (f"tensor/{op}: shape [100000 100000 100000] in f32 needs "
                                  "4,000,000,000,000,000 bytes, more memory than there is")


@pytest.mark.parametrize("dtype", ["f32", "f16", "f64", "i32", "i64"])
def test_zeros_and_ones_are_made_in_their_own_dtype(dtype: str) -> None:
    import tracemalloc

    from gene_jit.tensor import ops

    for op, value in ((ops.zeros, 0), (ops.ones, 1)):
        tracemalloc.start()
        try:
            t = op([512, 1024], dtype)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert t.dtype == dtype and t.shape == (512, 1024) and ops.to_list(t)[7][9] == value
        assert peak < 1.25 * t.data.nbytes, (peak, t.data.nbytes)  # no wider copy on the way


@pytest.mark.parametrize("args", ["xy", b"xy"])
def test_run_file_refuses_a_string_for_its_argument_list(tmp_path: Path, args: object) -> None:
    import gene_jit
    from gene_jit.runtime.errors import GeneTypeError

    program = tmp_path / "app.gene"
    program.write_text("$args\n")
    assert gene_jit.run_file(str(program), args=["xy"]) == ["xy"]
    with pytest.raises(GeneTypeError, match="args must be a list of strings"):
        gene_jit.run_file(str(program), args=args)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["run", "profile", "ir"])
def test_a_missing_program_is_reported_by_the_command_that_was_given(command: str, tmp_path: Path) -> None:
    proc = _gene(command, str(tmp_path / "nope.gene"), *(["--fn", "f"] if command == "ir" else []))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"io error: {command}: cannot read ")


def test_ir_refuses_unknown_emit_kinds_and_text_that_is_not_utf8(tmp_path: Path) -> None:
    program = tmp_path / "f.gene"
    program.write_text("(fn f [n] (n + 1))\n")
    for emit in ("bogus", "ir,zz", ""):
        proc = _gene("ir", str(program), "--fn", "f", "--emit", emit)
        assert proc.returncode == 2 and "--emit takes ir, llvm, asm" in proc.stderr, proc.stderr
        assert proc.stdout == ""
    bad = tmp_path / "bad.gene"
    bad.write_bytes(b"(fn f [n] (n + 1))\n; caf\xe9\n")
    proc = _gene("ir", str(bad), "--fn", "f")
    assert proc.returncode == 1  # as `run` reports the same file
    assert proc.stderr == f"io error: ir: '{bad}' is not UTF-8 text: byte 0xe9 at line 2, col 6\n"


def _three_modes(program: Path) -> list[subprocess.CompletedProcess[str]]:
    import os

    out = []
    for mode in ("0", "eager", None):
        env = {k: v for k, v in os.environ.items() if k != "GENE_JIT"}
        if mode is not None:
            env["GENE_JIT"] = mode
        out.append(subprocess.run([sys.executable, "-m", "gene_jit", "run", str(program)], capture_output=True,
                                  text=True, timeout=120, env=env))
    return out


def test_new_takes_classes_only_in_every_mode(tmp_path: Path) -> None:
    program = tmp_path / "n.gene"
    program.write_text(
        "(class P (.ctor [x] (/x = x)))\n"
        "(var c (py/import \"collections\"))\n(var os (py/import \"os\"))\n"
        "(println ((new P 2) ./ \"x\") ((new c/Counter \"aab\") .get \"a\") ((new gene/Future) .state))\n"
        "(fn f [] 1)\n"
        "(for g in [f (fnx [] 2) os/getcwd 5]\n"
        "  (try (new g) catch * (println $ex)))\n")
    for proc in _three_modes(program):
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == ["2 2 pending"] + [
            f"type error: new expects a class, got {kind}" for kind in ("function", "function", "function", "int")]


def test_a_macro_defined_at_run_time_says_so_in_every_mode(tmp_path: Path) -> None:
    program = tmp_path / "m.gene"
    program.write_text("(fn g [] (macro m2 [x] x) (m2 1))\n(try (g) catch * (println $ex))\n(g)\n")
    for proc in _three_modes(program):
        assert proc.returncode == 1
        assert proc.stdout.startswith("type error: a macro defined while the program runs cannot be called")
        assert proc.stderr.startswith(f"{program}:1:27: type error: a macro defined while the program runs "
                                      "cannot be called; define it at the top level"), proc.stderr
        assert "Macro" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("call", ["(exit nil)", "(sleep nil)", '(gene/io/read nil)', "(repeat nil 1)", "(range nil 3)"])
def test_nil_where_a_value_is_expected_is_named_once(call: str) -> None:
    import gene_jit
    from gene_jit.runtime.errors import GeneError

    with pytest.raises(GeneError) as info:
        gene_jit.eval(call)
    assert "nil nil" not in info.value.message and "None" not in info.value.message, info.value.message


@pytest.mark.parametrize(("name", "value", "message"), [
    ("GENE_JIT", "eagre", "GENE_JIT must be 0 (tier 1 off), eager"),
    ("GENE_JIT", "2", "GENE_JIT must be 0 (tier 1 off), eager"),
    ("GENE_JIT_THRESHOLD", "ten", "GENE_JIT_THRESHOLD must be a whole number of calls, got 'ten'"),
    ("GENE_JIT_THRESHOLD", "-3", "GENE_JIT_THRESHOLD must be a whole number of calls, got '-3'"),
])
def test_misspelt_tier_settings_stop_the_program_before_it_runs(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    import gene_jit
    from gene_jit.runtime.errors import GeneError

    monkeypatch.setenv(name, value)
    with pytest.raises(GeneError, match=message.replace("(", r"\(").replace(")", r"\)")):
        gene_jit.eval("(println 1)")


@pytest.mark.parametrize("value", ["0", "eager", "1", "lazy", "EAGER", "off", ""])
def test_the_documented_tier_settings_run(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    import gene_jit

    monkeypatch.setenv("GENE_JIT", value)
    monkeypatch.setenv("GENE_JIT_THRESHOLD", "3")
    assert gene_jit.eval("(fn f [n] (n + 1)) [(f 1) (f 2) (f 3) (f 4)]") == [2, 3, 4, 5]


def test_a_profile_file_that_cannot_be_written_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    import os

    program = tmp_path / "p.gene"
    program.write_text("(fn f [n] (n + 1))\n(println (f (f 1)))\n")
    target = tmp_path / "no" / "x.json"
    proc = subprocess.run([sys.executable, "-m", "gene_jit", "run", str(program)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "GENE_PROFILE": str(target), "GENE_JIT": "eager"})
    assert proc.stdout == "3\n"
    assert proc.stderr == f"gene-jit: GENE_PROFILE={target}: cannot write the profile: No such file or directory\n"


def test_a_process_profile_is_titled_with_the_program_not_the_executable(tmp_path: Path) -> None:
    import os

    from gene_jit.profiler.auto import program_name

    program = tmp_path / "p.gene"
    program.write_text("(fn f [n] (n + 1))\n(println (f (f 1)))\n")
    proc = subprocess.run([sys.executable, "-m", "gene_jit", "run", str(program)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "GENE_PROFILE": "1", "COLUMNS": "200"})
    assert proc.stdout == "3\n"
    assert f"gene-jit profile: {program}  (" in proc.stderr, proc.stderr
    assert program_name(["/venv/bin/gene-jit", "run", "--profile", "app.gene", "x"]) == "app.gene"
    assert program_name(["/venv/bin/gene-jit", "eval", "(+ 1 2)"]) == "gene-jit eval"
    assert program_name(["serve.py", "--port", "1"]) == "serve.py"
    assert program_name([]) == "<python>"


def test_negating_a_numpy_scalar_works_as_the_binary_operators_do() -> None:
    import gene_jit
    from gene_jit.runtime.errors import GeneError, GeneOverflowError

    pytest.importorskip("numpy")
    assert gene_jit.eval('(var np (py/import "numpy")) [(- (np/int64 5)) (- (np/float32 1.5)) (- (np/uint8 3))]') \
        == [-5, -1.5, -3]
    with pytest.raises(GeneOverflowError, match="integer overflow in -"):
        gene_jit.eval('(var np (py/import "numpy")) (- (np/int64 -9223372036854775808))')
    for bad in ("(- true)", '(- "a")', "(- nil)"):
        with pytest.raises(GeneError, match="- expects a number"):
            gene_jit.eval(bad)


def test_gene_jit_objects_with_other_reprs_keep_them() -> None:
    from gene_jit.runtime.printer import display

    class Selectorish:
        def __repr__(self) -> str:
            return "(@ a)"

    class Odd:
        def __repr__(self) -> str:
            return "odd 1"

    Selectorish.__module__ = Odd.__module__ = "gene_jit.runtime.ops"
    assert display(Selectorish()) == "(@ a)"
    assert display(Odd()) == "#<odd odd 1>"
    assert display([Selectorish()]) == "[(@ a)]"


def test_method_arity_errors_name_the_method_and_count_what_the_call_gave(tmp_path: Path) -> None:
    program = tmp_path / "a.gene"
    program.write_text('(println (try ("abc" .index) catch * $ex))\n'
                       '(println (try ("a,b" .split "," 2) catch * $ex))\n'
                       '(println (try ({} .contains) catch * $ex))\n'
                       '(println (try ([1 2] .map (fn [a] (len a 1))) catch * $ex))\n')
    expected = ("arity error: .index on string: expected 1 argument, got 0\n"
                "arity error: .split on string: expected 0 to 1 arguments, got 2\n"
                "arity error: .contains on map: expected 1 argument, got 0\n"
                "arity error: len: expected 1 argument, got 2\n")
    for proc in _three_modes(program):
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, expected, "")


@pytest.mark.parametrize("index", ["1.0", "true", '"0"', "nil"])
def test_a_tensor_index_that_is_no_int_is_a_type_error(index: str) -> None:
    import gene_jit
    from gene_jit.runtime.errors import GeneTypeError

    with pytest.raises(GeneTypeError, match="tensor/get: an index is an int, got "):
        gene_jit.eval(f"(tensor/get (tensor/create [1 2]) {index})")
    assert gene_jit.eval(f"((tensor/create [1 2]) ./ {index} 7)") == 7  # ./ still gives its default


def test_operators_on_non_numbers_name_themselves_in_every_mode(tmp_path: Path) -> None:
    # Python computes "a" * 2 and [1] + [2]; the inline int64 check then compares a
    # non-number, which must still be reported as the operator the program wrote
    program = tmp_path / "o.gene"
    program.write_text('(fn f [x y] (x * y))\n(fn le [x y] (x <= y))\n'
                       '(var s "b")\n(fn g [] "x")\n'
                       '(for t in [(fn [] ("a" * 2)) (fn [] (2 * "a")) (fn [] ([1] + [2])) (fn [] (f "a" 3))\n'
                       '           (fn [] (f 3 [1])) (fn [] (s += "a")) (fn [] ((g) * 2))\n'
                       '           (fn [] ("a" < 1)) (fn [] (1 >= "a")) (fn [] (le "a" 3)) (fn [] (le 3 "a"))]\n'
                       '  (try (t) catch * (println $ex/message)))\n')
    expected = ("* expects numbers, got string and int\n* expects numbers, got int and string\n"
                "+ expects numbers, got array and array\n* expects numbers, got string and int\n"
                "* expects numbers, got int and array\n+ expects numbers, got string and string\n"
                "* expects numbers, got string\n"  # an operand that is a call is not read again
                "< compares numbers only, got string and int\n>= compares numbers only, got int and string\n"
                "<= compares numbers only, got string and int\n<= compares numbers only, got int and string\n")
    for proc in _three_modes(program):
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, expected, "")


def test_errors_name_the_builtin_or_operator_the_program_called(tmp_path: Path) -> None:
    program = tmp_path / "n.gene"
    program.write_text('(for f in [gene/io/read file/read gene/File/read] (try (f "/no/such") catch * (println $ex)))\n'
                       '(try (gene/io/write "/no/such/x" 1) catch * (println $ex))\n'
                       '(println (try (- (tensor/create [-9223372036854775808])) catch * $ex))\n')
    for proc in _three_modes(program):
        lines = proc.stdout.splitlines()
        assert [ln.split(":")[1].strip() for ln in lines[:4]] == [
            "gene/io/read", "file/read", "gene/File/read", "gene/io/write"], proc.stdout + proc.stderr
        assert lines[4].startswith("overflow error: -: integer overflow in negation"), lines[4]


def test_serve_settings_errors_show_values_as_gene_prints_them() -> None:
    from gene_jit.llama.errors import LlamaError
    from gene_jit.serve.server import Settings

    cases: list[tuple[str, Any, str]] = [("port", "x", '"x"'), ("parallel", "2", '"2"'), ("threads", "4", '"4"'),
                                         ("host", "", '""'), ("engine", "vm", '"vm"'), ("port", None, "nil")]
    for field, value, shown in cases:
        with pytest.raises(LlamaError) as info:
            Settings(**{field: value}).check()
        assert info.value.message.endswith(f"got {shown}"), info.value.message


@pytest.mark.parametrize("status", ["300", "256", "-1"])
def test_an_exit_status_outside_0_to_255_is_an_error(tmp_path: Path, status: str) -> None:
    program = tmp_path / "e.gene"
    program.write_text(f"(exit {status})\n")
    for proc in _three_modes(program):
        assert proc.returncode == 1
        assert f"exit: the exit status must be from 0 to 255, got {status}" in proc.stderr
    program.write_text("(exit 255)\n")
    assert all(p.returncode == 255 and p.stderr == "" for p in _three_modes(program))


def test_ex_is_the_thrown_value_nil_included(tmp_path: Path) -> None:
    program = tmp_path / "t.gene"
    program.write_text("(fn f [x] (try (throw x) catch * [$ex]))\n(println (f nil) (f false) (f 1))\n"
                       "(try (throw) catch * (println $ex))\n(throw nil)\n")
    for proc in _three_modes(program):
        assert proc.stdout == "[nil] [false] [1]\nexception\n"
        assert proc.returncode == 1 and "uncaught exception: nil" in proc.stderr


def test_freeing_ffi_memory_twice_is_an_error() -> None:
    import gene_jit
    from gene_jit.runtime.errors import GeneError

    for make, kind in (("(ffi/buffer 8)", "buffer"), ("(ffi/new :int32 2)", "buffer"),
                       ("(do (ffi/defstruct pt [:x :int32]) (ffi/new pt ^x 1))", "pt struct")):
        with pytest.raises(GeneError, match=f"ffi/free: this {kind} was already freed"):
            gene_jit.eval(f"(var b {make}) (ffi/free b) (ffi/free b)")
    assert gene_jit.eval("(var b (ffi/buffer 8)) (ffi/free b) nil") is None


def test_numpy_arrays_equal_tensors_of_the_same_dtype_shape_and_values() -> None:
    import gene_jit

    pytest.importorskip("numpy")
    got = gene_jit.eval('(var np (py/import "numpy")) (var t (tensor/create [1 2]))'
                        '[((np/array [1 2]) == t) (t == (np/array [1 2])) (t != (np/array [1 2]))'
                        ' ((np/array [1 3]) == t) ((np/array [1.0 2.0]) == t) ((np/array [[1 2]]) == t)'
                        ' ((np/array [true false]) == (tensor/create [1 0] ^dtype :i32))'
                        ' ((np/array [1 2] ^dtype "int32") == (tensor/create [1 2] ^dtype :i32))]')
    assert got == [True, True, False, False, False, False, False, True]


def test_transformer_layer_example_runs_on_the_device_its_argument_names() -> None:
    example = str(Path(__file__).resolve().parents[1] / "examples" / "transformer_layer.gene")
    cpu = _gene("run", example, "cpu")
    assert cpu.returncode == 0 and "device: #<device cpu>" in cpu.stdout, cpu.stderr
    bad = _gene("run", example, "tpu")
    assert bad.returncode == 1 and "the device argument must be cpu or cuda, got tpu" in bad.stderr
    from gene_jit.tensor.device import cuda_problem, parse_device

    if cuda_problem(parse_device("cuda"))[1]:  # no usable GPU: said loudly, then the CPU
        cuda = _gene("run", example, "cuda")
        assert cuda.returncode == 0 and "device: #<device cpu>" in cuda.stdout
        assert "cuda was asked for but no GPU is usable here" in cuda.stderr


@pytest.mark.parametrize("value", ["bogus", "py:x", "ir,lvm", "PY"])
def test_an_unknown_dump_kind_stops_the_program_before_it_runs(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    import gene_jit
    from gene_jit.runtime.errors import GeneError

    monkeypatch.setenv("GENE_DUMP", value)
    with pytest.raises(GeneError, match="GENE_DUMP is a comma-separated list of py, ir, llvm, asm"):
        gene_jit.eval("(println 1)")


def test_the_documented_dump_kinds_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import gene_jit

    monkeypatch.setenv("GENE_DUMP", "ir, llvm,ir-after:dce")
    monkeypatch.setenv("GENE_JIT", "0")
    assert gene_jit.eval("(1 + 1)") == 2


@pytest.mark.parametrize(("source", "text"), [
    ('(tensor/rmsnorm (tensor/ones [2 3]) (tensor/ones [3]) ^eps "a")', "type error: tensor/rmsnorm: "),
    ("(tensor/arange 0 10000000000000)", "error: tensor/arange: not enough memory"),
    ('(tensor/seed "a")', 'type error: tensor/seed: expected an int >= 0, got "a"'),
    ("(tensor/astype (tensor/ones [2] ^dtype :i32) nil)", "tensor/astype: needs a dtype"),
])
def test_tensor_ops_name_themselves_in_errors_numpy_raised(source: str, text: str) -> None:
    """Bad input that NumPy refuses (or memory a size asks for) is a Gene error naming the
    tensor op, never NumPy's exception; a nil dtype is refused, not taken for f32."""
    import gene_jit
    from gene_jit.runtime.errors import GeneError

    pytest.importorskip("numba")
    with pytest.raises(GeneError) as info:
        gene_jit.eval(source)
    shown = f"{info.value.kind}: {info.value.message}"
    assert text in shown and "ValueError" not in shown and "MemoryError" not in shown
