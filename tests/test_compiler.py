"""Tier-0 compiler: small programs to values and printed output, closures, recursion,
overflow, error translation with Gene line numbers, and the generated Python's shape."""

from __future__ import annotations

import ast
import contextlib
import io
import os

import pytest

from gene_jit.frontend import compiler
from gene_jit.frontend.reader import read
from gene_jit.runtime.errors import (
    GeneError,
    GeneNameError,
    GeneOverflowError,
    GeneSyntaxError,
    GeneThrow,
    GeneTypeError,
)


@pytest.fixture(autouse=True)
def _tier0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENE_JIT", "0")


def run(src: str) -> object:
    return compiler.run_source(src, "<test>")


def out(src: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        compiler.run_source(src, "<test>")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("src", "value"),
    [
        ("(1 + 2 * 3)", 7),
        ("(1 - 2 - 3)", -4),
        ("(2 * 3 + 4 * 5)", 26),
        ("(7 / 2)", 3.5),
        ("(6 / 2)", 3.0),
        ("(+ 1 2 3)", 6),
        ("(- 5)", -5),
        ("(+)", 0),
        ("(1 < 2 < 3)", True),
        ("(1 < 3 < 2)", False),
        ("(1 == 1.0)", False),
        ("([1 [2]] == [1 [2]])", True),
        ("(= 2 2)", True),
        ("(nil || 5)", 5),
        ("(false && (1 / 0))", False),
        ("(0 && 7)", 7),
        ("(not nil)", True),
        ("(! 0)", False),
        ("(if 0 1 2)", 1),
        ("(if nil 1 2)", 2),
        ('(if "" then 1 else 2)', 1),
        ("(mod -7 3)", 2),
        ("(rem -7 3)", -1),
        ("(div 7 2)", 3),
        ("(2 ** 10)", 1024),
    ],
)
def test_expression_values(src: str, value: object) -> None:
    assert run(src) == value
    assert type(run(src)) is type(value)


def test_division_specials() -> None:
    assert run("(1 / 0)") == float("inf")
    assert run("(-1 / 0)") == float("-inf")
    nan = run("(0 / 0)")
    assert nan != nan


def test_recursion_and_closures() -> None:
    src = """
    (fn fib [n] (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))
    (fn make-counter []
      (var n 0)
      (fnx _ (n += 1)))
    (var c (make-counter))
    (c) (c)
    [(fib 20) (c)]
    """
    assert run(src) == [6765, 3]


def test_deep_recursion_works_and_overflow_is_a_gene_error() -> None:
    # (down n) makes n + 1 Gene calls: 10,000 is the default limit (GENE.md)
    assert run("(fn down [n] (if (n == 0) 0 (1 + (down (n - 1))))) (down 9999)") == 9999
    with pytest.raises(GeneError, match="stack overflow"):
        run("(fn down [n] (if (n == 0) 0 (1 + (down (n - 1))))) (down 10000)")
    with pytest.raises(GeneError, match="stack overflow"):
        run("(fn inf [n] (inf (n + 1))) (inf 0)")


@pytest.mark.parametrize(
    "src",
    [
        "(9223372036854775807 + 1)",
        "(-9223372036854775807 - 2)",
        "(4611686018427387904 * 2)",
        "(var x 9223372036854775807) (x += 1)",
        "(- -9223372036854775807 1 1)",
        "(fn f [n] (if (n == 0) 1 (n * (f (n - 1))))) (f 25)",
    ],
)
def test_int_overflow_raises(src: str) -> None:
    with pytest.raises(GeneOverflowError):
        run(src)


def test_float_arithmetic_does_not_overflow() -> None:
    assert run("(9223372036854775807.0 * 2.0)") == 2.0 * 9223372036854775807.0


@pytest.mark.parametrize(
    "src", ['("a" + "b")', "([1] + [2])", '(1 < "a")', '("a" < "b")', "(nil + 1)"]
)
def test_type_errors(src: str) -> None:
    with pytest.raises(GeneTypeError):
        run(src)


def test_output_and_loops() -> None:
    src = """
    (var total 0)
    (for i in (1 .. 4) (total += i))
    (repeat 3 ^index k (print k))
    (println)
    (var x (loop (if (total > 20) (break total)) (total += 5)))
    (println total x)
    (for [k v] in {^a 1 ^b 2} (print k v ""))
    """
    assert out(src) == "012\n25 25\na 1 b 2 "


def test_block_scoping_and_closure_binding() -> None:
    src = """
    (var x 1)
    (do (var x 2) (println x))
    (println x)
    (var i 0)
    (fn f _ i)
    (var i 1)
    (println (f) i)
    (fn g [] (var y 1) (if true (var y 2)) y)
    (println (g))
    """
    assert out(src) == "2\n1\n0 1\n1\n"


def test_params_defaults_rest_props() -> None:
    src = """
    (fn f [a [b c] d = (a + 1) rest... ^k = 9] [a b c d rest k])
    (f 1 [2 3])
    """
    assert run(src) == [1, 2, 3, 2, [], 9]
    assert run("(fn f [a ^top-k] [a top-k]) (f 1 2 3 ^top-k 4 ^other 5)") == [1, 4]
    assert run("(fn f [a b] [a b]) (f 1)") == [1, None]


def test_seed_keyword_tail() -> None:
    assert run("(fn f [x ^temperature] temperature) (f 1 :temperature 0.5)") == 0.5
    src = "(fn g [a b c] [a b c]) (g 1 :k 2)"
    assert compiler.run_source(src, "<t>")[1].name == "k"


def test_classes_and_methods() -> None:
    src = """
    (class A
      (.ctor [x] (/x = x))
      (.fn get [] /x)
      (.fn twice [] ((.get) * 2)))
    (class B < A
      (.fn get [] ((super) + 100)))
    (var b (new B 1))
    [(b .get) (b .twice) b/x (b .is A) ((new A 5) .twice)]
    """
    assert run(src) == [101, 202, 1, True, 10]


def test_exceptions() -> None:
    src = """
    (class E)
    (fn risky [n] (if (n > 1) (throw (new E)) (throw "boom")))
    (var log [])
    (try (risky 2) catch E (log .add "E") finally (log .add "fin"))
    (try (risky 0) catch * (log .add $ex))
    (try (1 + nil) catch * (log .add "type"))
    log
    """
    assert run(src) == ["E", "fin", "boom", "type"]
    with pytest.raises(GeneThrow):
        run('(throw "x")')


def test_namespaces_macros_eval() -> None:
    src = """
    (ns util
      (fn inc [x] (x + 1))
      (fn inc2 [x] (inc (inc x))))
    (macro unless [c body] (if ($caller_eval c) nil ($caller_eval body)))
    (fn h [v] (unless (v > 1) (v * 10)))
    [(util/inc2 1) (h 0) (h 5) (eval :(1 + 2)) ($parse "(a b)")]
    """
    value = run(src)
    assert value[:4] == [3, 0, None, 3]


def test_case_match_enum_selectors() -> None:
    src = """
    (enum Color red green = 5 blue)
    (fn kind [x] (case x when 1 "one" when [2 3] "few" when (4 .. 9) "some" else "many"))
    (match [a [b c]] [1 [2 3]])
    (var m {^k {^j 4}})
    [(kind 1) (kind 3) (kind 5) (kind 50) Color/blue/value (a + b + c) m/k/j (m ./ "z" 0) (@k m)]
    """
    v = run(src)
    assert v[:7] == ["one", "few", "some", "many", 6, 6, 4]
    assert v[7] == 0


def test_undefined_name_error_has_gene_line() -> None:
    with pytest.raises(GeneNameError) as info:
        compiler.run_source('(println "ok")\n(fn f [] (g 1))\n(f)', "prog.gene")
    err = info.value
    assert "g is not defined" in err.message
    assert err.span is not None and err.span.file == "prog.gene" and err.span.line == 2


def test_syntax_errors_name_the_form() -> None:
    with pytest.raises(GeneSyntaxError, match="for expects"):
        run("(for x [1 2])")
    with pytest.raises(GeneSyntaxError, match="break outside a loop"):
        run("(break)")
    with pytest.raises(GeneSyntaxError, match="return outside a function"):
        run("(return 1)")


def test_generated_python_is_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    env = compiler.new_env("<dump>")
    c = compiler.Compiler(env, "<dump>")
    mod = compiler._module_for(c, read("(fn f [a b] (if (a < b) (a + b) (a * 2)))", "<dump>"))
    text = ast.unparse(mod)
    assert "a + b" in text and "9223372036854775807" in text
    assert "is not None" not in text  # comparisons give bools: no truthiness test
    monkeypatch.setenv("GENE_DUMP", "py")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        compiler.run_source("(1 + 1)", "<dump>")
    assert "def  top" in err.getvalue()


def test_tiering_seam_sees_every_function(monkeypatch: pytest.MonkeyPatch) -> None:
    from gene_jit.runtime import tiering

    seen: list[tuple[str, list[str]]] = []

    class Hooks:
        def prologue(self, fn_id: int) -> list[ast.stmt]:
            return []

        def register(self, fn_id: int, pyfunc: object, info: tiering.FnInfo) -> object:
            seen.append((info.name, info.params))
            return pyfunc

    monkeypatch.setenv("GENE_JIT", "lazy")
    old = tiering._hooks
    tiering.install(Hooks())
    try:
        assert run("(fn add2 [a b] (a + b)) (add2 1 2)") == 3
    finally:
        tiering.install(old)
    assert ("add2", ["a", "b"]) in seen


def test_import_relative_to_file(tmp_path: os.PathLike[str]) -> None:
    lib = os.path.join(tmp_path, "lib")
    os.makedirs(lib)
    with open(os.path.join(lib, "m.gene"), "w") as f:
        f.write("(fn sq [x] (x * x))\n(var $ns/k 7)\n")
    main = os.path.join(tmp_path, "main.gene")
    with open(main, "w") as f:
        f.write('(import sq k from "lib/m")\n[(sq 3) k]\n')
    assert compiler.run_file(main) == [9, 7]


def test_closures_in_loops_keep_their_iteration() -> None:
    src = """
    (fn make []
      (var fs [])
      (for i in [1 2 3] (var j (i * 10)) (fs .add (fnx _ j)))
      fs)
    (var top [])
    (for i in [1 2] (var k i) (top .add (fnx _ k)))
    [((make) .map (fnx [f] (f))) (top/0) (top/1)]
    """
    assert run(src) == [[10, 20, 30], 1, 2]


# ---------------------------------------------------------------- builtin-namespace fallback


class _Handle:
    """A library object with no Gene members of its own."""

    def __init__(self, n: int) -> None:
        self.n = n


class _Members(_Handle):
    """A library object that answers some members itself (`__gene_get__`)."""

    def __gene_get__(self, key: str) -> object:
        if key == "own":
            return "own member"
        raise GeneNameError(f"no member {key}")


@pytest.fixture
def fake_ns(monkeypatch: pytest.MonkeyPatch) -> None:
    from gene_jit.runtime.registry import BUILTINS, Namespace

    members = {
        "create": _Handle,
        "members": _Members,
        "twice": lambda h, x: h.n * 2 + x,
        "own": "namespace member",
    }
    monkeypatch.setitem(BUILTINS, "fakens", Namespace("fakens", members))


def test_member_falls_back_to_builtin_namespace(fake_ns: None) -> None:
    assert run("(var fakens (fakens/create 5)) (fakens/twice fakens 1)") == 11
    # a parameter named like the namespace, too
    assert run("(fn f [fakens] (fakens/twice fakens 0)) (f (fakens/create 2))") == 4
    # the value's own members come first, then the namespace's
    assert run("(var fakens (fakens/members 1)) fakens/own") == "own member"
    assert run("(var fakens (fakens/members 1)) (fakens/twice fakens 3)") == 5
    # Gene data keeps its meaning: a map's missing key is nil
    assert run("(var fakens {^a 1}) fakens/twice") is None
    with pytest.raises(GeneTypeError, match="cannot get member nope"):
        run("(var fakens (fakens/create 5)) fakens/nope")


def test_fallback_only_for_namespace_heads(fake_ns: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Other complex symbols compile to the two-argument member access (the fast path).
    seen: list[str] = []
    monkeypatch.setattr(compiler, "AST_HOOKS", [lambda m, f, e: seen.append(ast.unparse(m))])
    run("(var h (fakens/create 1)) (var other {^a 1}) other/a")
    code = "\n".join(seen)
    assert "get_member(other, 'a')" in code
    assert "get_member(fakens, 'create', 'fakens')" in code


# ---------------------------------------------------------------- NumPy arrays, both tiers

ARRAY_FNS = {
    "index": "(fn f [a i] (get a i))",
    "ends": "(fn f [a] (a/0 + a/-1))",
    "length": "(fn f [a] (len a))",
    "sum": "(fn f [a] (var t 0.0) (for x in a (t += x)) t)",
    "store": "(fn f [a v] (var old a/1) (a/1 = v) (a/-1 += 1) (old + a/1))",
    "live": "(fn f [a] (var t 0.0) (for x in a (t += x) (a/-1 = (a/-1 * 2))) t)",
    "rows": "(fn f [m] (var t 0.0)"
    " (for i in (range (len m)) (t += ((get (get m i) 1) * 2.0))) (t + m/0/0 + m/-1/-1))",
    "cell": "(fn f [m i j] (get (get m i) j))",
}


def _arrays() -> dict[str, object]:
    import numpy as np

    return {
        "f1": np.arange(5.0),
        "i1": np.arange(5),
        "f2": np.arange(6.0).reshape(3, 2),
        "i2": np.arange(6).reshape(2, 3),
        "empty": np.zeros(0),
    }


ARRAY_CASES = [
    ("index", ("f1", 2)), ("index", ("f1", -1)), ("index", ("i1", 4)), ("index", ("f1", 5)),
    ("index", ("i1", -6)), ("ends", ("f1",)), ("ends", ("i1",)), ("ends", ("empty",)),
    ("length", ("f1",)), ("length", ("f2",)), ("sum", ("f1",)), ("sum", ("i1",)),
    ("sum", ("empty",)), ("store", ("f1", 7)), ("store", ("f1", 2.5)), ("store", ("i1", 9)),
    ("live", ("f1",)), ("live", ("i1",)), ("rows", ("f2",)), ("cell", ("f2", 2, 1)),
    ("cell", ("i2", -1, -3)), ("cell", ("f2", 3, 0)), ("cell", ("f2", 0, 2)),
]


def _outcome(fn: object, names: tuple[object, ...]) -> tuple[object, ...]:
    arrays = _arrays()
    args = [arrays[a] if isinstance(a, str) else a for a in names]
    try:
        value = fn(*args)  # type: ignore[operator]
    except GeneError as exc:
        return ("error", type(exc).__name__)
    after = [a.tolist() for a in args if hasattr(a, "tolist")]
    return ("value", type(value).__name__, value, after)


@pytest.mark.parametrize(("name", "args"), ARRAY_CASES)
def test_numpy_arrays_agree_between_tiers(
    name: str, args: tuple[object, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gene_jit.jit import jit

    monkeypatch.setenv("GENE_JIT", "eager")
    monkeypatch.setenv("GENE_JIT_CACHE", "0")
    f = jit(ARRAY_FNS[name])
    native = _outcome(f, args)
    assert f.signatures, f"{name} did not compile in tier 1"
    assert _outcome(f._pyfunc, args) == native


def test_numpy_arrays_in_tier0_programs() -> None:
    import numpy as np

    env = compiler.new_env("<np>")
    env["a"] = np.array([1.5, 2.5, 3.5])
    env["m"] = np.arange(6).reshape(2, 3)
    assert compiler.run_source("[a/0 a/-1 (get a 1) (len a) [a...]]", "<np>", env) == [
        1.5, 3.5, 2.5, 3, [1.5, 2.5, 3.5],
    ]
    row = compiler.run_source("m/1", "<np>", env)
    assert row.tolist() == [3, 4, 5]
    assert compiler.run_source("(m/1/0 + (get (get m 0) 2))", "<np>", env) == 5
    assert compiler.run_source("(var s 0) (for r in m (s += r/0)) s", "<np>", env) == 3
    assert compiler.run_source("(a/0 = 2) a/0", "<np>", env) == 2.0
    assert compiler.run_source("[(get a 9 :none) (./ a 9 0) ([1 2] ./ 9)]", "<np>", env)[1:] == [
        0, None,
    ]
    assert compiler.run_source("(var l [1 2]) l/5", "<np>", env) is None  # Gene arrays keep nil
    for src, err in [
        ("a/3", "index 3 out of range"),
        ("(get a 1.0)", "index must be an int"),
        ("(m/0 = 1)", "assign an element"),
        ("(var r m/0) (r/0 = 1.5)", "cannot store a float"),
        ("(a/0 = \"x\")", "cannot store a string"),
    ]:
        with pytest.raises(GeneError, match=err):
            compiler.run_source(src, "<np>", env)


# ---------------------------------------------------------------- inferred kinds


def _python_of(src: str, monkeypatch: pytest.MonkeyPatch) -> str:
    seen: list[str] = []
    monkeypatch.setattr(compiler, "AST_HOOKS", [lambda m, f, e: seen.append(ast.unparse(m))])
    compiler.run_source(src, "<kinds>")
    return "\n".join(seen)


def test_inferred_ints_and_strings_drop_guards(monkeypatch: pytest.MonkeyPatch) -> None:
    code = _python_of(
        """
(fn loop-sum [n] (var i 0) (var acc 0) (while (i < n) (acc += i) (i += 1)) acc)
(fn build [n] (var s "") (var i 0) (while (i < n) (s = (s .append "x")) (i += 1)) (s .size))
(fn fib [n] (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))
""",
        monkeypatch,
    )
    assert "while i < n:" in code
    assert "s = s + 'x'" in code
    assert "len(s)" in code and "call_method" not in code
    assert "fib(n - 1)" in code and "fib(n - 2)" in code
    assert run(
        "(fn loop-sum [n] (var i 0) (var acc 0) (while (i < n) (acc += i) (i += 1)) acc)"
        "(loop-sum 100)"
    ) == 4950


@pytest.mark.parametrize(
    "src",
    [
        # an inferred nat still overflows
        "(fn g [n] (var acc 9223372036854775000) (var i 0)"
        " (while (i < n) (acc += 100) (i += 1)) acc) (g 20)",
        "(fn g [] (var a 4611686018427387904) (var b 2) (a * b)) (g)",
        # narrowing holds only for parameters that are never assigned
        "(fn k [n] (if (n > 0) (do (n = -9223372036854775807) (n - 5)) 0)) (k 1)",
        "(fn k [n] (if (n < 0) (n - 9223372036854775807) 0)) (k -5)",
    ],
)
def test_inferred_kinds_keep_overflow_checks(src: str) -> None:
    with pytest.raises(GeneOverflowError):
        run(src)


@pytest.mark.parametrize(
    "src",
    [
        '(fn h [] (var x 1) (match x "a") (x < "b")) (h)',
        '(fn h [] (var x 1) (var set (fnx [] (x = "s"))) (set) (x < "t")) (h)',
        '(fn h [xs] (var x 0) (for x in xs (x < "z")) x) (h ["a"])',
        '(fn h [] (var x 1) (x = (if true "s" 2)) (x < "t")) (h)',
    ],
)
def test_rebinding_in_other_forms_defeats_inference(src: str) -> None:
    with pytest.raises(GeneTypeError):
        run(src)


@pytest.mark.parametrize(
    "src",
    [
        # every assignment operator is an assignment to inference (core.ASSIGN_OPS)
        "(fn h [] (var x 4) (x **= 0.5) (x == 2)) (h)",
        "(fn h [] (var x 1) (x &&= 2.0) (x == 2)) (h)",
        "(fn h [] (var x 2) (x /= 1) (x == 2)) (h)",
        "(fn h [] (var x 2) (x = (if (x > 1) then 2.0 elif false 1 else 3)) (x == 2)) (h)",
    ],
)
def test_assignments_that_change_kind_are_seen(src: str) -> None:
    assert run(src) is False


def test_narrowed_branches_compute_the_same() -> None:
    src = """
(fn f [n] (if (n >= 10) (n - 3) elif (n > -5) (n + 100) else (n * 2)))
[(f 10) (f 12.5) (f 0) (f -5) (f -9223372036854775807)]
"""
    with pytest.raises(GeneOverflowError):
        run(src)
    assert run(src.replace("(f -9223372036854775807)", "")) == [7, 9.5, 100, -10]


# ---------------------------------------------------------------- late macros, eval


def test_macro_defined_after_its_caller() -> None:
    src = """
(fn use [] (twice (println "hi")))
(macro twice [x] ($caller_eval x) ($caller_eval x))
(use)
(fn a [n] (b n))
(fn b [n] (n + 1))
(println (a 1))
"""
    assert out(src) == "hi\nhi\n2\n"


def test_eval_and_caller_eval_assign_caller_locals() -> None:
    src = """
(fn f [] (var x 1) (eval :(x = (x + 10))) x)
(macro setit [v] ($caller_eval :(y = 5)) 1)
(fn g [] (var y 0) (setit 1) y)
(fn h [] (var z 1) (var k (fnx [] (eval :(z = "s")))) (k) z)
(fn e [] (var w 1) (eval :(w = "s")) (w < "t"))
[(f) (g) (h)]
"""
    assert run(src) == [11, 5, "s"]
    with pytest.raises(GeneTypeError):
        run(src + "(e)")


def test_ns_member_after_redeclaring_a_top_level_var() -> None:
    src = "(var x 1) (fn old [] x) (var x 2) [$ns/x (old)] ($ns/x = 3) [$ns/x x (old)]"
    assert run(src) == [3, 3, 1]


def test_import_names_from_a_namespace(tmp_path: os.PathLike[str]) -> None:
    mod = os.path.join(str(tmp_path), "m.gene")
    with open(mod, "w", encoding="utf-8") as f:
        f.write("(ns n (fn one [] 1) (fn two [] 2))\n(var a 10)\n")
    main = os.path.join(str(tmp_path), "main.gene")
    src = '(import n/[one two:y] a from "m") [(one) (y) a]'
    assert compiler.run_source(src, main, compiler.new_env(main)) == [1, 2, 10]


def test_async_futures_complete_synchronously() -> None:
    src = """
(var f (async (1 + 2)))
(var g (async (throw "bad")))
(fn ^^async h [x] (x * 2))
(f .on_success (fnx [v] (println "got" v)))
(g .on_failure (fnx [e] (println "failed" e)))
(println [(await f) (f .state) f/value (g .state) (await f (h 4)) (try (await g) catch * $ex)])
"""
    assert out(src) == "got 3\nfailed bad\n[3 success 3 failure [3 8] bad]\n"


@pytest.mark.parametrize("shape", ["(a {op} a {op} ... a)", "(+ a a ... a)", "(a {op} (a {op} (... a)))"])
def test_operator_chains_compile_to_code_linear_in_their_length(shape: str) -> None:
    """A sum of n values that may be booleans is code of size O(n): the slow path of an
    inline operator takes its operands as temps (it took the left expression again, so
    each operand doubled the code: 16 operands made 4 MB of Python, 40 never finished)."""
    sizes = []
    for n in (8, 12, 16):
        if shape.startswith("(+"):
            body = "(+ " + " ".join(["a"] * n) + ")"
        elif "(a {op} (a" in shape:
            body = "a"
            for _ in range(n - 1):
                body = f"(a + {body})"
        else:
            body = "(" + " + ".join(["a"] * n) + ")"
        seen: list[int] = []
        hook = lambda mod, filename, env, seen=seen: seen.append(len(ast.unparse(mod)))  # noqa: E731
        compiler.AST_HOOKS.append(hook)
        try:
            compiler.run_source(f"(fn s [a] {body}) (s 1)", f"<chain{n}>")
        finally:
            compiler.AST_HOOKS.remove(hook)
        sizes.append(max(seen))
    assert sizes[2] < 2 * sizes[1] and sizes[1] < 2 * sizes[0], sizes
