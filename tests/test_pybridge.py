"""Python from Gene (`py/*`, gene_jit/py): modules, attributes, methods, keyword
arguments in both spellings, iteration, indexing, printing, Python exceptions as Gene
errors at the Gene call, Gene functions as Python callbacks; in every tier mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, run_gene_source

from gene_jit.runtime.errors import GeneError, InternalError


def out(source: str, mode: str) -> str:
    run = run_gene_source(source, mode, filename="pyb.gene")
    assert run.error is None, run.error
    return run.stdout


def fails(source: str, mode: str = "0") -> GeneError:
    run = run_gene_source(source, mode, filename="pyb.gene")
    assert isinstance(run.error, GeneError), run.stdout
    return run.error


def test_numpy_attributes_methods_and_keywords(jit_mode: str) -> None:
    text = out("""
        (var np (py/import "numpy"))
        (var a (np/array [[1 2] [3 4]] ^dtype "float64"))
        (println (np/linalg/norm (np/array [3 4])))
        (println a/shape (a .sum) (np/sum a ^axis 0) (np/sum a :axis 1))
        (println (a .tolist) a/T/0 (py/to-gene a/shape))
        (println ((a .sum :axis 1 :keepdims true) .tolist) ((a .sum ^axis 0) .tolist))
        (println a)
        (println np)
    """, jit_mode)
    assert text.splitlines() == [
        "5.0",
        "[2 2] 10.0 <python ndarray [2] float64 [4. 6.]> <python ndarray [2] float64 [3. 7.]>",
        "[[1.0 2.0] [3.0 4.0]] <python ndarray [2] float64 [1. 3.]> [2 2]",
        "[[3.0] [7.0]] [4.0 6.0]",
        "<python ndarray [2 2] float64 [[1. 2.] [3. 4.]]>",
        "<python module numpy>",
    ]


def test_iteration_indexing_and_conversions(jit_mode: str) -> None:
    text = out("""
        (var collections (py/import "collections"))
        (var dq (collections/deque [1 2 3]))
        (var total 0)
        (for x in dq (total += x))
        (println total dq/0 (py/to-gene dq) (py/list (py/builtins/range 3)))
        (var od (collections/OrderedDict))
        (py/set-item od "5" "five")
        (println (py/item od "5") (py/to-gene od) (py/item [1 2 3 4] (py/slice 1 3)))
        (var frac (py/import "fractions"))
        (println (py/str (frac/Fraction 1 3)) (py/repr (py/tuple 1 "a")))
        (println (py/eval "a * b" {^a 6 ^b 7}) (py/get dq "maxlen" 9) (py/type dq))
    """, jit_mode)
    assert text.splitlines() == [
        "6 1 [1 2 3] [0 1 2]",
        "five {^5 five} [2 3]",
        "1/3 (1, 'a')",
        "42  <python class collections.deque>",
    ]


def test_gene_functions_as_python_callbacks(jit_mode: str) -> None:
    text = out("""
        (var functools (py/import "functools"))
        (fn add [a b] (a + b))
        (fn by-length [s] (s .size))
        (println (functools/reduce add [1 2 3 4]))
        (println (py/builtins/sorted ["ccc" "a" "bb"] ^key by-length))
        (println (py/builtins/list (py/builtins/map (fn [x] (x * 10)) [1 2])))
        (var np (py/import "numpy"))
        (println (np/apply_along_axis (fn [row] (row .sum)) 1 (np/ones [2 3])))
    """, jit_mode)
    assert text.splitlines() == [
        "10", "[a bb ccc]", "[10 20]", "<python ndarray [2] float64 [3. 3.]>",
    ]


def test_python_exception_is_a_gene_error_at_the_call(jit_mode: str) -> None:
    err = fails("""
        (var np (py/import "numpy"))
        (fn invert [m]
          (np/linalg/inv m))
        (invert (np/zeros [2 2]))
    """, jit_mode)
    assert err.kind == "python error"
    assert err.message == "LinAlgError: Singular matrix"
    assert err.span is not None and (err.span.file, err.span.line) == ("pyb.gene", 4)
    assert any("raised in Python at" in note and "linalg" in note for note in err.context)


def test_python_errors_of_every_shape_keep_the_gene_location() -> None:
    # a Python function, a C function with its own exception class, a method, a callback
    # whose Python code raises, an attribute that is not there
    cases = {
        '(var json (py/import "json"))\n(json/loads "{bad")': ("JSONDecodeError", 2),
        '(var cm (py/import "collections"))\n(var c (cm/ChainMap))\n(c .pop 1)': ("KeyError", 3),
        '(var d (py/import "decimal"))\n(var x (d/Decimal "1"))\n(x .__truediv__ (d/Decimal "0"))':
            ("DivisionByZero", 3),
        '(var np (py/import "numpy"))\n\n(np/no_such_thing 1)': ("AttributeError", 3),
        '(var m (py/import "math"))\n(var f (py/eval "lambda g: g(1)"))\n(f (fn [x] (m/log -1.0)))':
            ("ValueError", 3),
    }
    for source, (py_type, line) in cases.items():
        err = fails(source)
        assert isinstance(err, GeneError), source
        assert err.kind == "python error", (source, err.format())
        assert py_type in err.message, (source, err.message)
        assert err.span is not None and err.span.line == line, (source, err.format())


def test_caught_python_error_has_type_and_message(jit_mode: str) -> None:
    text = out("""
        (var json (py/import "json"))
        (try (json/loads "[1,")
         catch * (println $ex/kind "|" $ex/type))
    """, jit_mode)
    assert text == "python error | JSONDecodeError\n"


def test_gene_error_inside_a_callback_keeps_its_own_location() -> None:
    err = fails("""
        (var functools (py/import "functools"))
        (fn bad [a b]
          (a + undefined-name))
        (functools/reduce bad [1 2 3])
    """)
    assert err.kind == "name error"
    assert err.span is not None and err.span.line == 4


def test_bad_imports_and_arguments_are_gene_errors() -> None:
    err = fails('(py/import "no_such_module_xyz")')
    assert err.kind == "python error" and "no_such_module_xyz" in err.message
    err = fails("(py/import 42)")
    assert "module name must be a string" in err.message
    err = fails('(py/eval "1 +")')
    assert err.message.startswith("SyntaxError")
    err = fails('(var np (py/import "numpy"))\n(np/zeros 2 ^no_such_kw 1)')
    assert err.message == "zeros: has no parameter ^no-such-kw"


def test_gene_data_keeps_its_meaning() -> None:
    # members of Gene values and gene-jit objects are not Python attributes
    assert "cannot get member upper of" in fails('(var x 5)\n(x/upper)').message
    assert "has no method .append" in fails("(var f (fn [] 1))\n(f .append 1)").message


def test_tier1_leaves_python_calls_to_tier0_and_says_why() -> None:
    pytest.importorskip("llvmlite")
    from gene_jit.codegen import stats

    source = """
        (var op (py/import "operator"))
        (var add op/add)
        (fn total [n]
          (var s 0)
          (for i in (range 0 n) (s = (add s i)))
          s)
        (fn total2 [n]
          (var s 0)
          (for i in (range 0 n) (s = (op/add s i)))
          s)
        (println (total 100) (total2 100))
    """
    assert out(source, "eager") == "4950 4950\n"
    reasons = {name: getattr(stats.lookup(name, "pyb.gene"), "reason", "") for name in ("total", "total2")}
    assert "calls add, a Python callable" in (reasons["total"] or "")
    assert "calls op/add, a Python callable" in (reasons["total2"] or "")
    assert "calls into Python run in tier 0" in (reasons["total"] or "")


def test_internal_faults_are_not_python_errors() -> None:
    # gene-jit's own modules raising is still reported as a bug, not a Python error
    from gene_jit.frontend.compiler_errors import translate

    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        with pytest.raises(InternalError):
            translate(exc)


@pytest.mark.parametrize("mode", ["0", "eager"])
def test_example_runs_in_both_tiers(mode: str) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from conftest import REPO, run_cli

    proc = run_cli("run", str(REPO / "examples" / "python_bridge.gene"), env={"GENE_JIT": mode},
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert "caught: python error - LinAlgError - LinAlgError: Singular matrix" in lines
    assert "input x [batch 2] f32" in lines
    onnx_row = next(ln for ln in lines if ln.startswith("onnx:"))
    numpy_row = next(ln for ln in lines if ln.startswith("numpy:"))
    assert onnx_row.split(None, 1)[1] == numpy_row.split(None, 1)[1] == "[[5.0 0.0 0.0] [0.0 3.0 0.0]]"


def test_python_attributes_can_be_set(jit_mode: str) -> None:
    text = out("""
        (var types (py/import "types"))
        (var ns (types/SimpleNamespace ^a 1))
        (ns/b = 2)
        (ns/a = (ns/a + 10))
        (println ns/a ns/b)
    """, jit_mode)
    assert text == "11 2\n"
    err = fails('(var x (py/builtins/object))\n(x/y = 1)')
    assert err.kind == "python error" and "AttributeError" in err.message


def test_exceptions_of_functions_written_in_c_are_python_errors(jit_mode: str) -> None:
    # no Python frame is left by a C function: math, a datetime constructor, a method,
    # and calls passed on by props, a :kw tail or a method call
    text = out("""
        (var math (py/import "math"))
        (var dt (py/import "datetime"))
        (fn show [f] (try (f) catch * (println $ex/kind "|" $ex/type)))
        (show (fn [] (math/log 0)))
        (show (fn [] (dt/date 2024 2 30)))
        (show (fn [] ((dt/date 2024 2 29) .replace ^year 2025)))
        (show (fn [] (math/isclose 1 "a" ^rel_tol 0.1)))
        (show (fn [] (math/isclose 1 "a" :rel_tol 0.1)))
        (show (fn [] (py/builtins/int "zz")))
    """, jit_mode)
    assert text.splitlines() == [
        "python error | ValueError", "python error | ValueError", "python error | ValueError",
        "python error | TypeError", "python error | TypeError", "python error | ValueError"]
    err = fails('(var math (py/import "math"))\n(fn f [x]\n  (math/sqrt x))\n(f -1)', jit_mode)
    assert err.kind == "python error" and err.message == "ValueError: math domain error"
    assert err.span is not None and err.span.line == 3


def test_program_mistakes_at_a_call_keep_their_gene_meaning(jit_mode: str) -> None:
    # the call instruction fails before any callee runs: not a Python error
    assert fails("(var x 5)\n(x 1)", jit_mode).message == "an int is not callable"
    assert fails('(1 + "a")', jit_mode).kind == "type error"
    err = fails('(var np (py/import "numpy"))\n(np/zeros 2 ^no_such_kw 1)', jit_mode)
    assert err.kind == "arity error"


def test_exec_and_eval_run_on_pythons_builtins(jit_mode: str) -> None:
    text = out("""
        (var ns {})
        (py/builtins/exec "class P:\\n    def __init__(self, x): self.x = len([x, x])\\n" ns)
        (println ((ns/P 7) ./ "x"))
        (println (py/builtins/eval "max(len('abc'), 2)"))
        (var b (py/import "builtins"))
        (println (b/eval "sorted(g)" {^g [3 1 2]}))
    """, jit_mode)
    assert text == "2\n3\n[1 2 3]\n"


def test_classes_made_without_a_module_are_python_objects(jit_mode: str) -> None:
    text = out("""
        (var O (py/eval "type('O', (), {'m': lambda self, *a, **k: [a, k]})"))
        (fn ident [x] x)
        (var o (O))
        (for i in (range 0 50) (ident o))
        (println (ident o) (o .m 1 :k 2) O)
    """, jit_mode)
    assert text == "<python O> [[1] {^k 2}] <python class O>\n"


def test_numpy_scalars_are_numbers_to_equality(jit_mode: str) -> None:
    text = out("""
        (var np (py/import "numpy"))
        (var three 3)
        (var s (np/sum (np/array [1 2])))
        (fn is3 [x] (x == 3))
        (println (s == 3) (s == three) (3 == s) (is3 s) (s != 3) (s == 3.0))
        (println ((np/float64 0.5) == 0.5) ((np/float32 0.5) == 0.5) ((np/float64 3.0) == 3))
        (println (true == 1) (1 == true) (1.0 == 1) (nil == 0))
    """, jit_mode)
    assert text.splitlines() == ["true true true true false false", "true true false",
                                 "false false false false"]


def test_numpy_arrays_compare_by_dtype_shape_and_values(jit_mode: str) -> None:
    text = out("""
        (var np (py/import "numpy"))
        (var a (np/array [1 2]))
        (println (a == (np/array [1 2])) (a != (np/array [1 3])) (a == (np/array [1.0 2.0]))
                 (a == (np/array [[1 2]])) ([a] == [(np/array [1 2])]) (a == [1 2]))
    """, jit_mode)
    assert text == "true true false false true false\n"


def test_python_objects_print_the_same_every_run() -> None:
    text = out("""
        (println (py/eval "(i for i in [])"))
        (var np (py/import "numpy"))
        (println (np/arange 1000) (np/array [true false]) (np/array [[-1 10] [100 2]]))
    """, "0")
    assert text.splitlines() == [
        "<python generator <generator object <genexpr>>>",
        "<python ndarray [1000] int64 [0 1 ... 998 999]> <python ndarray [2] bool [True False]> "
        "<python ndarray [2 2] int64 [[-1 10] [100 2]]>"]


def test_symbols_that_reach_python_are_named_in_the_error() -> None:
    err = fails('(var np (py/import "numpy"))\n(np/zeros 2 ^dtype :float32)')
    assert 'the symbol :float32 went to Python as a gene-jit Symbol; Python code wants the ' \
           'string "float32"' in err.context
    err = fails('(var json (py/import "json"))\n(json/dumps [:a])')
    assert any("went to Python as a gene-jit Symbol" in note for note in err.context)
    err = fails('(var json (py/import "json"))\n(json/loads "[")')
    assert not any("Symbol" in note for note in err.context)


def test_caught_python_errors_name_all_their_members() -> None:
    err = fails('(var json (py/import "json"))\n(try (json/loads "[") catch * $ex/context)')
    assert err.message == "a caught python error has members message, kind and type, not context"


def test_dashed_names_set_the_attributes_they_read(jit_mode: str) -> None:
    text = out("""
        (var types (py/import "types"))
        (var o (types/SimpleNamespace ^max_len 1))
        (o/max-len = 5)
        (o/new-attr = 3)
        (println o/max-len (py/get o "max_len") (py/get o "new_attr") o/new-attr)
    """, jit_mode)
    assert text == "5 5 3 3\n"


def test_exact_python_numbers_print_as_themselves() -> None:
    text = out("""
        (var fr (py/import "fractions"))
        (var np (py/import "numpy"))
        (println (fr/Fraction 1 3) (np/float32 0.5) (np/int8 -3) (py/eval "2**70"))
    """, "0")
    assert text == "<python Fraction Fraction(1, 3)> 0.5 -3 <python int 1180591620717411303424>\n"


def test_gene_errors_inside_py_functions_keep_their_own_location(jit_mode: str) -> None:
    # py/list, py/eval, py/item and py/set-item run Python code that may call Gene code
    # back: the Gene code's error is reported where it happened, not as a Python error
    cases = [
        '(fn sq [x]\n  (x + nil))\n(py/list (py/builtins/map sq [1]))',
        '(fn f [x]\n  (x + nil))\n(py/eval "f(1)" {^f f})',
        '(fn f [k]\n  (k + nil))\n(var C (py/eval "type(\'C\', (), {\'__getitem__\': '
        'lambda self, k: f(k)})" {^f f}))\n(py/item (C) 1)',
        '(fn f [k v]\n  (k + nil))\n(var C (py/eval "type(\'C\', (), {\'__setitem__\': '
        'lambda self, k, v: f(k, v)})" {^f f}))\n(py/set-item (C) 1 2)',
    ]
    for source in cases:
        err = fails(source, jit_mode)
        assert err.kind == "type error" and "expects numbers" in err.message, (source, err.format())
        assert err.span is not None and err.span.line == 2, (source, err.format())
    err = fails('(py/item (py/eval "type(\'C\', (), {\'__getitem__\': lambda s, k: k.x})()") 5)')
    assert err.kind == "python error" and "AttributeError" in err.message


def test_py_eval_names_stay_visible_to_lambdas(jit_mode: str) -> None:
    text = out("""
        (var scale (py/eval "lambda x: x * k" {^k 3}))
        (println (scale 2) (py/eval "[k * i for i in range(3)]" {^k 2}))
    """, jit_mode)
    assert text == "6 [0 2 4]\n"


def test_a_missing_attribute_of_a_mapping_points_to_its_items() -> None:
    err = fails('(var c (py/import "collections"))\n(var cnt (c/Counter "aab"))\n(println cnt/a)')
    assert err.message.endswith("""'Counter' object has no attribute 'a'; it is a mapping: """
                                """(py/item x "a") gets its item""")
    err = fails('(var c (py/import "collections"))\n(var cnt (c/Counter "aab"))\n(cnt .size)')
    assert err.message == "AttributeError: no method .size: 'Counter' object has no attribute 'size'"


def test_python_functions_print_as_python_values() -> None:
    text = out("""
        (var math (py/import "math"))
        (println math/sqrt py/builtins/len (py/eval "lambda x: x") println tensor/create)
    """, "0")
    assert text == ("<python function math.sqrt> <python function builtins.len> "
                    "<python function <lambda>> (native-fn println) (native-fn tensor/create)\n")


def test_orderings_with_numpy_scalars_give_gene_booleans(jit_mode: str) -> None:
    # every ordering operator, the NumPy scalar on either side, against a literal, a
    # variable and a parameter, at top level and inside a function, as a value and as
    # a test: the numeric answer as a Gene boolean (a NumPy False is truthy to Gene)
    text = out("""
        (var np (py/import "numpy"))
        (var three (np/int64 3))
        (var half (np/float64 0.5))
        (var two 2)
        (fn lt [a b] (a < b)) (fn le [a b] (a <= b)) (fn gt [a b] (a > b)) (fn ge [a b] (a >= b))
        (fn kept [a] (var r (a < 2)) r)
        (println (three < 2) (three <= 2) (three > 2) (three >= 2))
        (println (2 < three) (2 <= three) (2 > three) (2 >= three))
        (println (three < two) (two < three) (half > two) (< three 2) (>= 2 half))
        (println (lt three 2) (le three 2) (gt three 2) (ge three 2))
        (println (lt 3 (np/int64 2)) (le (np/float64 1.0) 2.0) (gt half (np/float32 0.25)) (ge 1 three))
        (println (kept three) (kept half) [(three < 2)] {^a (three < 2)} (1 < three < 5))
        (println (if (three < 2) "y" "n") (if (lt three 2) "y" "n") ((three < 2) || "or"))
    """, jit_mode)
    assert text.splitlines() == [
        "false false true true",
        "true true false false",
        "false true false false true",
        "false false true true",
        "false true true false",
        "false true [false] {^a false} true",
        "n n or",
    ]


def test_python_calling_a_gene_function_with_a_wrong_keyword_is_an_arity_error(jit_mode: str) -> None:
    # Python code calls the Gene function: a keyword the function does not declare (or
    # an argument given twice) is the arity error a Gene or `gene_jit.jit` call gives,
    # whether the function is held in a variable or in a list
    text = out("""
        (var kw (py/eval "lambda f, *a, **k: f(*a, **k)"))
        (var in-list (py/eval "lambda fs: fs[0](c=1)"))
        (fn t [f] (try (f) catch * (println $ex/kind "|" $ex/message)))
        (t (fn [] (kw (fn [a b] [a b]) ^c 1)))
        (t (fn [] (kw (fn named [a b] [a b]) 1 ^b 2 ^c 3)))
        (t (fn [] (kw (fn [a b] [a b]) 1 ^a 2)))
        (t (fn [] (in-list [(fn listed [a] a)])))
        (println (kw (fn [a ^k] [a k]) 1 ^k 2))
        (t (fn [] (kw (py/eval "lambda a: a") ^c 1)))
    """, jit_mode)
    assert text.splitlines() == [
        "arity error | fn has no parameter ^c",
        "arity error | named has no parameter ^c",
        "arity error | fn got argument a twice",
        "arity error | listed has no parameter ^c",
        "[1 2]",
        "python error | TypeError: <lambda>() got an unexpected keyword argument 'c'",
    ]


@pytest.mark.parametrize("mode", ["0", "eager", "1"])
def test_a_gene_thread_target_reports_gene_errors(mode: str, tmp_path: Path) -> None:
    program = tmp_path / "thr.gene"
    program.write_text(
        '(var threading (py/import "threading"))\n'
        '(var t (threading/Thread ^target (fn [] (1 + "b"))))\n'
        "(t .start)\n(t .join)\n"
        '(var u (threading/Thread ^target (py/eval "lambda: 1 + \'b\'")))\n'
        "(u .start)\n(u .join)\n(println \"done\")\n")
    r = run_cli("run", str(program), env={"GENE_JIT": mode})
    assert r.returncode == 0 and r.stdout == "done\n", r.stderr
    gene, python = r.stderr.split("Traceback", 1)
    assert "thr.gene:2:41: type error: + expects numbers, got int and string\n" in gene, r.stderr
    assert "unsupported operand" not in gene, r.stderr
    # a Python function's error in a thread stays Python's own report
    assert "TypeError: unsupported operand type(s) for +: 'int' and 'str'" in python, r.stderr


def test_select_on_a_python_mapping_gets_its_item(jit_mode: str) -> None:
    text = out("""
        (var col (py/import "collections"))
        (var c (col/Counter "aab"))
        (var od (col/OrderedDict))
        (py/set-item od "k" 1)
        (py/set-item od 5 "five")
        (py/set-item od "none" nil)
        (var key "a")
        (fn sel [m k] (m ./ k))
        (println (c ./ "a") (c ./ key) (sel c "b") (c ./ "z" 7) [(sel c "z")])
        (println (od ./ "k") (od ./ 5) (od ./ "none" 3) (od ./ "keys" 0) (od ./ [1] 9))
    """, jit_mode)
    assert text.splitlines() == ["2 2 1 7 [nil]", "1 five 3 0 9"]


def test_python_dicts_gene_cannot_hold_stay_python(jit_mode: str) -> None:
    # a Gene map's keys are strings: a dict with other keys prints as the Python dict it
    # is, and py/to-gene refuses it as gene_jit.from_python does (no entry silently lost)
    text = out("""
        (println (py/eval "{1: 'a', (2, 3): 'b'}") [(py/eval "{1: 2}")] (py/to-gene (py/eval "{'a': (1, 2)}")))
    """, jit_mode)
    assert text == "<python dict {1: 'a', (2, 3): 'b'}> [<python dict {1: 2}>] {^a [1 2]}\n"
    for source in ('(py/to-gene (py/eval "{1: 2, \\"1\\": 3}"))', '(py/to-gene [(py/eval "{2: 3}")])'):
        err = fails(source, jit_mode)
        assert err.kind == "type error" and "map keys must be strings, got int" in err.message


def test_ints_beyond_64_bits_stay_python_ints(jit_mode: str) -> None:
    # Gene ints are 64-bit: a bigger one from Python prints as a Python object, anywhere
    # it prints; py/to-gene refuses it, as gene_jit.from_python does
    text = out("""
        (var json (py/import "json"))
        (var big (py/eval "2**64"))
        (println big (str big) [(json/loads "[12345678901234567890]")] {^b (- 0 9223372036854775807 1)})
    """, jit_mode)
    assert text == ("<python int 18446744073709551616> <python int 18446744073709551616> "
                    "[[<python int 12345678901234567890>]] {^b -9223372036854775808}\n")
    for source in ('(py/to-gene (py/eval "2**63"))', '(py/to-gene (py/eval "[-2**63 - 1]"))'):
        assert fails(source, jit_mode).kind == "overflow error"


def test_hints_for_gene_values_python_cannot_take(jit_mode: str) -> None:
    err = fails('(var np (py/import "numpy"))\n(np/zeros 2 ^dtype :float32)', jit_mode)
    assert "Cannot interpret ':float32' as a data type" in err.message, err.format()
    assert "Symbol(" not in err.message and 'wants the string "float32"' in err.format()
    err = fails('(var json (py/import "json"))\n(json/dumps (1 .. 3))', jit_mode)
    assert "(py/list r) makes it a list" in err.format()
    err = fails('(py/set (py/eval "{}") "k" 3)', jit_mode)
    assert '(py/set-item x "k" v) sets an item' in err.format()
    err = fails('(var sys (py/import "sys"))\n(sys/path .insert 0 ".")', jit_mode)
    assert 'a Python list is a Gene array; ((py/get x "insert") args...)' in err.format()


def test_ranges_reach_python_as_sequences() -> None:
    """A Gene range is a sequence to Python libraries (it became a 0-d object array), and
    where a library wants more than a sequence the error says (py/list r)."""
    import gene_jit

    got = gene_jit.eval('(var np (py/import "numpy")) [(np/array (range 0 3)) (np/sum (1 .. 3)) '
                        '(np/array (range 3 0 -1)) (len (np/array (range 0 10 3)))]')
    assert [list(got[0]), got[1], list(got[2]), got[3]] == [[0, 1, 2], 6, [3, 2, 1], 4]
    with pytest.raises(GeneError) as err:
        gene_jit.eval('(var np (py/import "numpy")) (np/arange (range 0 3))')
    assert "(py/list r)" in err.value.format()
