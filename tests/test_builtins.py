"""The standard library: builtins called from Python, then from Gene source."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest

import gene_jit.runtime.builtins  # noqa: F401 - registers everything
from gene_jit.runtime.errors import GeneArityError, GeneError, GeneOverflowError, GeneTypeError
from gene_jit.runtime.methods import call_method
from gene_jit.runtime.registry import BUILTINS, Namespace
from gene_jit.runtime.values import Gene, GeneSet, Range, Symbol


def b(path: str) -> Any:
    """The builtin at a Gene path such as `println` or `gene/json/parse`."""
    parts = path.split("/")
    value = BUILTINS[parts[0]]
    for part in parts[1:]:
        assert isinstance(value, Namespace)
        value = value.get(part)
    return value


def test_print_and_println(capsys: pytest.CaptureFixture[str]) -> None:
    b("print")(1, 2)
    b("print")(3)
    b("println")()
    b("println")("Nil:", None, [None, "s"], 2.0, {"a": "x"})
    b("println")("err", stderr=True)
    out, err = capsys.readouterr()
    assert out == "1 23\nNil:  [nil s] 2.0 {^a x}\n"
    assert err == "err\n"
    assert b("println")("x") is None


def test_str_and_dollar() -> None:
    assert b("str")("a", 1, None, 2.5, [1, "b"]) == "a12.5[1 b]"
    assert b("$")() == ""
    assert b("str")(Gene(Symbol("f"), {}, ["s"])) == '(f "s")'


def test_assert() -> None:
    assert b("assert")(True) is None
    assert b("assert")(0) is None  # 0 is truthy in Gene
    with pytest.raises(GeneError, match="assertion failed: x must be 1"):
        b("assert")(False, "x must be 1")
    with pytest.raises(GeneError, match="^.*assertion failed$"):
        b("assert")(None)


def test_arity_and_type_errors_name_the_builtin() -> None:
    with pytest.raises(GeneArityError, match="len: expected 1 argument, got 2"):
        b("len")([1], [2])
    with pytest.raises(GeneArityError, match=r"print: unknown named argument \^color"):
        b("print")(1, color="red")
    with pytest.raises(GeneTypeError, match="len: expected a string"):
        b("len")(5)
    with pytest.raises(GeneTypeError, match="upper: expected a string, got int 1"):
        b("upper")(1)
    with pytest.raises(GeneTypeError, match="map: expected a function"):
        b("map")(1, 2)


def test_sizes_and_get() -> None:
    assert [
        b("len")(x) for x in ("abc", [1, 2], {"a": 1}, GeneSet([1]), Gene(None, {}, [1, 2]))
    ] == [3, 2, 1, 1, 2]
    assert b("size")(Range(0, 3, 1, inclusive=False)) == 3
    assert b("get")([10, 20], 1) == 20
    assert b("get")([10, 20], 5, "d") == "d"
    assert b("get")([10, 20], -1) is None  # no negative indexes
    assert b("get")({"a": 1}, "a") == 1
    assert b("get")({"a": 1}, Symbol("a")) == 1
    assert b("get")({"a": 1}, "b", 0) == 0
    g = Gene(Symbol("f"), {"k": 1}, ["c"])
    assert (b("get")(g, "k"), b("get")(g, 0)) == (1, "c")
    assert b("get")(None, "x", 7) == 7


def test_map_filter_reduce() -> None:
    assert b("map")(lambda x: x * 2, [1, 2, 3]) == [2, 4, 6]
    assert b("map")([1, 2], lambda x: x + 1) == [2, 3]  # method-style order accepted
    assert b("map")(lambda k, v: f"{k}={v}", {"a": 1, "b": 2}) == ["a=1", "b=2"]
    assert b("map")(lambda x: x, Range(1, 3)) == [1, 2, 3]
    assert b("filter")(lambda x: x > 1, [1, 2, 3]) == [2, 3]
    assert b("filter")(lambda x: 0, [1, 2]) == [1, 2]  # 0 is truthy
    assert b("filter")(lambda k, v: v > 1, {"a": 1, "b": 2}) == {"b": 2}
    assert b("reduce")(lambda a, x: a + x, [1, 2, 3]) == 6
    assert b("reduce")(lambda a, x: a + x, 10, [1, 2, 3]) == 16
    with pytest.raises(GeneTypeError, match="reduce: empty collection"):
        b("reduce")(lambda a, x: a, [])


def test_collections_return_new_values() -> None:
    xs = [1, 2]
    ys = b("append")(xs, 3, 4)
    assert ys == [1, 2, 3, 4] and xs == [1, 2]
    assert b("append")("ab", "c", 1) == "abc1"
    assert b("concat")([1], [2, 3], Range(4, 5)) == [1, 2, 3, 4, 5]
    assert b("concat")("a", "b") == "ab"
    assert (b("first")([1, 2]), b("last")([1, 2]), b("rest")([1, 2, 3])) == (1, 2, [2, 3])
    assert (b("first")([]), b("last")([]), b("rest")([])) == (None, None, [])
    assert b("reverse")([1, 2, 3]) == [3, 2, 1] and b("reverse")("abc") == "cba"
    assert b("keys")({"b": 1, "a": 2}) == ["b", "a"]
    assert b("values")({"b": 1, "a": 2}) == [1, 2]


def test_sort() -> None:
    assert b("sort")([3, 1.5, 2]) == [1.5, 2, 3]
    assert b("sort")(["b", "a"]) == ["a", "b"]
    assert b("sort")([1, 3, 2], lambda x, y: x > y) == [3, 2, 1]
    assert b("sort")([1, 3, 2], lambda x, y: y - x) == [3, 2, 1]
    assert b("sort")(["aaa", "b", "cc"], key=len) == ["b", "cc", "aaa"]
    with pytest.raises(GeneTypeError, match="sort: can only sort numbers or strings"):
        b("sort")([1, "a"])


def test_contains_and_index_of() -> None:
    assert b("contains")([1, [2]], [2]) is True
    assert b("contains")([1], 1.0) is False
    assert b("contains")("hello", "ell") is True
    assert b("contains")({"a": 1}, "a") is True
    assert b("contains")(Range(0, 5, 1, inclusive=False), 4) is True
    assert b("index-of")("hello", "l") == 2
    assert b("index-of")([1, 2], 3) == -1


def test_strings() -> None:
    assert b("join")([1, "a", 2.0]) == "1a2.0"
    assert b("join")(["a", "b"], ", ") == "a, b"
    assert b("split")("a,b,,c", ",") == ["a", "b", "", "c"]
    assert b("split")(" a  b ") == ["a", "b"]
    assert b("split")("ab", "") == ["a", "b"]
    assert (b("upper")("aB"), b("to_lower")("aB"), b("trim")("  x \n")) == ("AB", "ab", "x")
    assert b("replace")("a-b-c", "-", "+") == "a+b+c"
    assert b("starts_with")("hello", "he") and b("ends_with")("hello", "lo")
    assert b("substr")("hello", 1) == "ello"
    assert b("substr")("hello", 1, 3) == "ell"  # end included, as the reference
    assert b("substr")("hello", 0, -2) == "hell"


def test_format() -> None:
    assert b("format")("a={} b={}", 1, "x") == "a=1 b=x"
    assert b("format")("{1}{0} {{}}", "a", [1, "b"]) == "[1 b]a {}"
    assert b("format")("{}", 0.1 + 0.2) == "0.30000000000000004"
    with pytest.raises(GeneArityError, match="format: placeholder"):
        b("format")("{} {}", 1)
    with pytest.raises(GeneTypeError, match="bad placeholder"):
        b("format")("{x.__class__}", 1)


def test_numbers() -> None:
    assert (b("to_i")("42"), b("to_i")(" -7 "), b("to_i")(3.9), b("int")(-3.9)) == (42, -7, 3, -3)
    assert (b("to_f")("2.5"), b("float")(2)) == (2.5, 2.0)
    with pytest.raises(GeneTypeError, match='to_i: cannot parse "abc" as an int'):
        b("to_i")("abc")
    with pytest.raises(GeneOverflowError):
        b("to_i")("99999999999999999999")
    with pytest.raises(GeneTypeError):
        b("to_i")(True)


def test_range_and_rand() -> None:
    r = b("range")(0, 5)
    assert isinstance(r, Range) and list(r) == [0, 1, 2, 3, 4]
    assert list(b("range")(10, 0, -3)) == [10, 7, 4, 1]
    assert list(b("range")(3)) == [0, 1, 2]
    with pytest.raises(GeneTypeError, match="step must not be 0"):
        b("range")(0, 5, 0)
    for _ in range(50):
        x = b("rand")()
        assert 0.0 <= x < 1.0
        assert 0 <= b("rand")(3) < 3
        assert 5 <= b("gene/rand")(5, 7) < 7


def test_type_of() -> None:
    cases = [
        (None, "nil"),
        (1, "int"),
        (1.0, "float"),
        ("s", "string"),
        (True, "bool"),
        ([], "array"),
        ({}, "map"),
        (Symbol("a"), "symbol"),
        (Gene(None), "gene"),
        (print, "native-fn"),
    ]
    for value, name in cases:
        assert b("type-of")(value) == name


def test_math() -> None:
    assert (b("abs")(-3), b("abs")(-2.5), b("min")(3, 1, 2), b("max")([1, 5, 2])) == (3, 2.5, 1, 5)
    assert b("sqrt")(16) == 4.0 and math.isnan(b("sqrt")(-1.0))
    assert b("log")(0) == -math.inf and math.isnan(b("log")(-1))
    assert b("log")(8, 2) == pytest.approx(3.0)
    assert b("exp")(1000) == math.inf
    assert b("pow")(2, 10) == 1024 and b("pow")(2, -1) == 0.5
    with pytest.raises(GeneOverflowError):
        b("pow")(2, 63)
    with pytest.raises(GeneOverflowError):
        b("abs")(-(2**63))
    assert (b("floor")(2.7), b("ceil")(2.1), b("floor")(-2.5)) == (2, 3, -3)
    assert (b("round")(2.5), b("round")(-2.5), b("round")(2.4), b("round")(3.14159, 2)) == (
        3,
        -3,
        2,
        3.14,
    )
    assert (b("sin")(0), b("cos")(0)) == (0.0, 1.0)
    with pytest.raises(GeneTypeError, match="sqrt: expected a number"):
        b("sqrt")("4")


def test_json() -> None:
    data = b("gene/json/parse")('{"a": [1, 2.5, null, true], "b": {"c": "d"}}')
    assert data == {"a": [1, 2.5, None, True], "b": {"c": "d"}}
    assert list(data) == ["a", "b"]
    text = b("json/stringify")({"x": [1, None, Symbol("s")], "g": GeneSet([1])})
    assert text == '{"x": [1, null, "s"], "g": [1]}'
    assert b("json/parse")(b("json/stringify")(data)) == data
    with pytest.raises(GeneError, match="json/parse"):
        b("json/parse")("{bad")
    with pytest.raises(GeneTypeError, match="cannot write"):
        b("json/stringify")({"f": print})
    with pytest.raises(GeneTypeError, match="no JSON form"):
        b("json/stringify")(math.nan)


def test_files_and_env(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "f.txt")
    assert b("file/write")(path, "hello\n") is None
    assert b("gene/io/read")(path) == "hello\n"
    b("gene/io/write")(path, [1, "a"])
    assert b("file/read")(path) == "[1 a]"
    with pytest.raises(GeneError, match="cannot read"):
        b("file/read")(str(tmp_path / "missing.txt"))
    monkeypatch.setenv("GENE_TEST_VAR", "v")
    assert b("gene/os/getenv")("GENE_TEST_VAR") == "v"
    assert b("gene/os/getenv")("GENE_TEST_MISSING_VAR", "d") == "d"


def test_read_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("first\nsecond\r\nlast"))
    assert [b("read-line")() for _ in range(4)] == ["first", "second", "last", None]


def test_time_and_exit() -> None:
    t = b("gene/time/now")()
    assert isinstance(t, float) and t > 1e9
    b("sleep")(1)  # an int is milliseconds
    with pytest.raises(SystemExit) as info:
        b("exit")(3)
    assert info.value.code == 3


def test_methods() -> None:
    assert call_method("hello", "length", [], {}) == 5
    assert call_method("hello", "to_uppercase", [], {}) == "HELLO"
    assert call_method("a,b", "split", [","], {}) == ["a", "b"]
    assert call_method("hello", "char_at", [1], {}) == "e"
    assert call_method("hello", "rindex", ["l"], {}) == 3
    assert call_method("ab", "append", ["c"], {}) == "abc"
    xs = [1]
    assert call_method(xs, "add", [2], {}) is xs and xs == [1, 2]
    assert call_method(xs, "del", [0], {}) == 1 and xs == [2]
    assert call_method([], "empty", [], {}) is True
    assert call_method([1, 2], "map", [lambda x: x * 10], {}) == [10, 20]
    assert call_method([1, 2, 3], "reduce", [lambda a, x: a + x, 10], {}) == 16
    assert call_method({"a": 1}, "keys", [], {}) == ["a"]
    seen: list[Any] = []
    call_method({"a": 1}, "each", [lambda k, v: seen.append((k, v))], {})
    assert seen == [("a", 1)]
    g = Gene(Symbol("f"), {"k": 1}, [2])
    assert call_method(g, "type", [], {}) is Symbol("f")
    assert call_method(g, "children", [], {}) == [2]
    assert call_method(1.5, "to_s", [], {}) == "1.5"
    assert call_method([1, "a"], "to_json", [], {}) == '[1, "a"]'
    with pytest.raises(GeneTypeError, match="string has no method .nope"):
        call_method("s", "nope", [], {})
    with pytest.raises(GeneArityError, match=r"\.empty on array: expected 0 arguments, got 1"):
        call_method([], "empty", [1], {})


# --- through Gene source, once the tier-0 compiler is present -------------------------


def run(source: str) -> Any:
    compiler = pytest.importorskip("gene_jit.frontend.compiler")
    return compiler.run_source(source, "<test>")


def test_gene_source_printing(capsys: pytest.CaptureFixture[str]) -> None:
    run('(println "Nil: " nil) (println [1 "a" nil 3.0] {^a "x"}) (print 1 2) (print 3)')
    assert capsys.readouterr().out == "Nil:  \n[1 a nil 3.0] {^a x}\n1 23"


def test_gene_source_library() -> None:
    assert run('(str "a" 1 nil 2.5)') == "a12.5"
    assert run("(map (fn [x] (x * 2)) [1 2 3])") == [2, 4, 6]
    assert run("(append [1] 2 3)") == [1, 2, 3]
    assert run('(format "{}-{}" 1 "b")') == "1-b"
    assert run('("hello" .to_upper)') == "HELLO"
    assert run("([3 1 2] .size)") == 3
    assert run('(gene/json/parse "[1, 2]")') == [1, 2]


def test_gene_source_errors() -> None:
    with pytest.raises(GeneError, match="assertion failed: boom"):
        run('(assert false "boom")')
    with pytest.raises(GeneArityError, match="len"):
        run("(len [1] [2])")
