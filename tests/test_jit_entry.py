"""`gene_jit.jit` as a Python (Numba) user meets it: calls are checked against the Gene
signature, NumPy scalars are numbers, arrays compiled code cannot run on are refused by
dtype, errors are Gene errors with spans, and `($set a i v)` stores natively."""

from __future__ import annotations

import builtins
import os
import warnings
from collections.abc import Iterator

import numpy as np
import pytest

os.environ.setdefault("GENE_JIT_CACHE", "0")

from gene_jit.jit import GenePerformanceWarning, jit  # noqa: E402
from gene_jit.runtime.errors import (  # noqa: E402
    GeneArityError,
    GeneError,
    GeneIndexError,
    GeneNameError,
    GeneOverflowError,
    GeneTypeError,
)

SUM = "(fn total [a] (var s 0.0) (for i in (range (len a)) (s += (get a i))) s)"


@pytest.fixture
def tier0_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Functions made under GENE_JIT=0 never go native."""
    monkeypatch.setenv("GENE_JIT", "0")
    yield


# ---- argument count


@pytest.mark.parametrize(
    ("source", "good", "bad", "expects"),
    [
        ("(fn f [x y] (x + y))", [(1, 2)], [(), (1,), (1, 2, 3)], "expects 2 arguments"),
        ("(fn f [x] x)", [(1,)], [(), (1, 2)], "expects 1 argument,"),
        ("(fn f [a b = 2] (a + b))", [(1,), (1, 5)], [(), (1, 2, 3)], "expects 1 to 2 arguments"),
        ("(fn f [a xs...] a)", [(1,), (1, 2, 3, 4)], [()], "expects at least 1 argument"),
        ("(fn f _ 7)", [()], [(1,)], "expects 0 arguments"),
    ],
)
def test_argument_count_is_checked(
    source: str, good: list[tuple[int, ...]], bad: list[tuple[int, ...]], expects: str
) -> None:
    """Extra arguments are not dropped and missing ones do not become nil: the message
    names the signature as Gene writes it."""
    f = jit(source)
    for args in good:
        f(*args)
    signature = source[: source.index("]") + 1] + ")" if "[" in source else "(fn f _)"
    for args in bad:
        with pytest.raises(GeneArityError, match=expects) as info:
            f(*args)
        assert signature in str(info.value)


def test_named_parameters_by_keyword() -> None:
    f = jit("(fn scaled [x ^factor] (x * factor))")
    assert f(3, factor=2) == 6
    with pytest.raises(GeneArityError, match=r"no parameter \^fator"):
        f(3, fator=2)


# ---- argument types and errors from the body


@pytest.mark.parametrize(
    ("source", "args", "kind", "where"),
    [
        ("(fn c [n] (if (n <= 1) 1 (n * (c (n - 1)))))", ("ab",), GeneTypeError, "(n <= 1)"),
        ("(fn u [x] (x + undefined-thing))", (1,), GeneNameError, "undefined-thing"),
        (SUM, (np.ones((2, 2)),), GeneTypeError, "(s += (get a i))"),
        ("(fn f [x] (x + 1))", (None,), GeneTypeError, "(x + 1)"),
        ("(fn f [x] (x + 1))", ([1],), GeneTypeError, "(x + 1)"),
    ],
)
def test_mistakes_in_calls_are_gene_errors_at_the_form(
    source: str, args: tuple[object, ...], kind: type[GeneError], where: str
) -> None:
    f = jit(source)
    with pytest.raises(kind) as info:
        f(*args)
    err = info.value
    assert not isinstance(err, (builtins.TypeError, builtins.NameError, builtins.ValueError))
    assert err.span is not None and err.span.file.startswith(f"<jit {f.name}")
    assert source[err.span.col - 1 :].startswith(where), err.format()


@pytest.mark.parametrize(
    "value",
    [np.int8(5), np.int16(5), np.int32(5), np.int64(5), np.uint8(5), np.uint64(5)],
    ids=lambda v: type(v).__name__,
)
def test_numpy_integers_are_ints_everywhere(value: object) -> None:
    count = jit("(fn count [n] (var s 0) (for i in (range n) (s += i)) s)")
    half = jit("(fn half [n] (n / 2))")
    twice = jit("(fn twice [n] (n * 2))")
    assert count(value) == 10 and type(count(value)) is int
    assert half(value) == 2.5 and type(half(value)) is float
    assert twice(value) == 10 and type(twice(value)) is int
    assert count.signatures == ["(i64) -> i64"]  # native, as a Python int would be


@pytest.mark.parametrize(
    "value", [np.float16(0.5), np.float32(0.5), np.float64(0.5)], ids=lambda v: type(v).__name__
)
def test_numpy_floats_are_floats_everywhere(value: object) -> None:
    f = jit("(fn f [x] ((x * 4.0) / 2))")
    assert f(value) == 1.0 and type(f(value)) is float
    assert f.signatures == ["(f64) -> f64"]


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, np.uint64(2**64 - 1)], ids=str)
def test_ints_beyond_64_bits_are_refused(value: object) -> None:
    f = jit("(fn f [n] n)")
    with pytest.raises(GeneOverflowError, match="does not fit in a 64-bit Gene int"):
        f(value)


def test_booleans_are_gene_booleans() -> None:
    pick = jit("(fn pick [flag] (if flag 1 2))")
    assert (pick(True), pick(False), pick(np.bool_(True))) == (1, 2, 1)


def test_arithmetic_on_a_boolean_is_a_type_error() -> None:
    f = jit("(fn f [x] (x + 1))")
    with pytest.raises(GeneTypeError, match=r"\+ expects numbers, got bool and int"):
        f(True)


# ---- arrays compiled code cannot run on


@pytest.mark.parametrize(
    ("array", "named"),
    [
        (np.ones(3, dtype=np.float32), "1-D float32 array"),
        (np.ones(3, dtype=np.int32), "1-D int32 array"),
        (np.ones((2, 2, 2)), "3-D float64 array"),
    ],
    ids=["float32", "int32", "3-D"],
)
def test_arrays_compiled_code_cannot_read_are_refused_by_dtype(
    array: np.ndarray, named: str
) -> None:
    f = jit(SUM, fallback=False)
    with pytest.raises(GeneTypeError, match=named) as info:
        f(array)
    assert "fallback=False" in str(info.value) and "(fn total [a])" in str(info.value)
    def run(f: object) -> None:  # tier 0 sums a 1-D array; a 3-D one's elements are arrays
        if array.ndim == 1:
            assert f(array) == 3.0  # type: ignore[operator]
        else:
            with pytest.raises(GeneTypeError, match="expects numbers, got a NumPy array"):
                f(array)  # type: ignore[operator]

    relaxed = jit(SUM)  # the default: tier 0 runs the call, as under GENE_JIT=0, and says so once
    with pytest.warns(GenePerformanceWarning, match=f"{named}.*runs in tier 0") as said:
        run(relaxed)
        run(relaxed)
    assert len(said) == 1 and said[0].filename == __file__
    assert relaxed.signatures == []
    quiet = jit(SUM, fallback=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(quiet)
    assert quiet.signatures == []


def test_float32_arrays_passed_along_stay_native() -> None:
    """A kernel-only array whose elements the function never touches is fine."""
    f = jit("(fn n [a] (len a))")
    assert f(np.ones(4, dtype=np.float32)) == 4
    assert f.signatures == ["(array<f32,1>) -> i64"]


# ---- storing at a computed index


FILL = "(fn fill [a] (for i in (range (len a)) ($set a i (i * 2.0))) nil)"
FILL_SEL = "(fn fill [a] (for i in (range (len a)) ($set a (@ i) (i * 2.0))) nil)"
FILL_2D = "(fn fill [m] (for i in (range 2) (for j in (range 3) ($set m (@ i j) (i * 10 + j)))) nil)"
STORE_AT = "(fn store-at [a i v] ($set a i v))"


@pytest.mark.parametrize(("source", "shape"), [(FILL, (4,)), (FILL_SEL, (4,)), (FILL_2D, (2, 3))])
def test_set_at_computed_index_is_native_and_agrees_with_tier0(
    source: str, shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    native = jit(source)
    a = np.zeros(shape)
    native(a)
    assert native.signatures, native.stats.reason
    monkeypatch.setenv("GENE_JIT", "0")
    b = np.zeros(shape)
    jit(source)(b)
    assert np.array_equal(a, b) and a.any()


@pytest.mark.parametrize("mode", ["native", "tier0"])
@pytest.mark.parametrize(
    ("args", "kind"),
    [((4, 1.0), GeneIndexError), ((-5, 1.0), GeneIndexError), ((-1, 2.0), None),
     ((1, 2), None)],
    ids=["past-end", "before-start", "from-end", "int-into-float"],
)
def test_set_at_computed_index_errors_agree(
    mode: str, args: tuple[int, float], kind: type[GeneError] | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if mode == "tier0":
        monkeypatch.setenv("GENE_JIT", "0")
    f = jit(STORE_AT)
    a = np.zeros(4)
    if kind is None:  # NumPy arrays count negative indexes from the end, in both tiers
        assert f(a, *args) == 2.0 and type(f(a, *args)) is float
        assert a[args[0]] == 2.0
    else:
        with pytest.raises(kind):
            f(a, *args)
    if mode == "native":
        assert f.signatures, f.stats.reason


# ---- no Python warnings


def test_jit_shows_no_python_warnings() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        f = jit("(fn f [x] (if (x > 5) ([1] 2) (x + 1)))")
        assert f(0) == 1
    assert seen == []


def test_source_must_be_text() -> None:
    with pytest.raises(GeneError, match="expected Gene source text"):
        jit(42)  # type: ignore[arg-type]


def test_fallback_false_refuses_every_call_compiled_code_cannot_take() -> None:
    """fallback=False: a call that would run in tier 0 (a list, a string, a function tier 1
    cannot type) is a Gene type error saying why; compiled calls are unaffected."""
    tot = jit("(fn tot [a] (var s 0.0) (for x in a (s += x)) s)", fallback=False)
    assert tot(np.arange(3.0)) == 3.0 and tot.signatures
    for arg, why in (([1.0, 2.0], "argument a is an array"), ("ab", "argument a is a string")):
        with pytest.raises(GeneTypeError, match=f"tot: this call cannot run in compiled code: {why}"):
            tot(arg)
    rest = jit("(fn cat [a b...] a)", fallback=False)
    with pytest.raises(GeneTypeError, match="takes no rest or optional parameters"):
        rest(1, 2)
    assert jit("(fn tot [a] (var s 0.0) (for x in a (s += x)) s)")([1.0, 2.0]) == 3.0


def test_threads_calling_at_once_compile_each_signature_once() -> None:
    """First calls from many threads at once compile a signature once: one entry each."""
    import threading

    fns = [jit(f"(fn k{i} [a x] (var s 0.0) (for j in (range 0 (len a)) (s += ((get a j) * x))) s)")
           for i in range(4)]
    results: list[float] = []
    start = threading.Barrier(8)

    def work(f: object) -> None:
        start.wait()
        for n in range(20):
            results.append(f(np.arange(5.0), float(n % 3)))  # type: ignore[operator]
            results.append(f(np.arange(5), n % 3))  # type: ignore[operator]

    threads = [threading.Thread(target=work, args=(fns[i % 4],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(results)) == [0.0, 10.0, 20.0] and len(results) == 320
    for f in fns:
        assert sorted(f.signatures) == ["(array<f64,1>, f64) -> f64", "(array<i64,1>, i64) -> f64"]


def test_stats_exist_with_tier_1_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """f.stats says why calls run in tier 0 in every mode (it was None under GENE_JIT=0)."""
    from gene_jit.runtime import tiering

    monkeypatch.setattr(tiering, "active", lambda: None)
    f = jit("(fn k9 [a] (a + 1))")
    assert f(1) == 2 and f.signatures == []
    assert "GENE_JIT=0" in f.stats.reason


def test_read_only_arrays_are_never_written_by_compiled_code() -> None:
    """Compiled code may store into the arrays it takes, so a read-only one (a broadcast
    view, np.frombuffer of immutable bytes, a flag cleared) runs in tier 0, which refuses
    the store; compiled code wrote into them, immutable bytes included."""
    from gene_jit.runtime.errors import GeneTypeError

    fill = jit("(fn fill [a v] (for i in (range (len a)) ($set a (@ i) v)) (len a))", fallback=True)
    total = jit("(fn total [a] (var s 0.0) (for x in a (s += x)) s)", fallback=True)
    assert fill(np.zeros(3), 1.0) == 3 and fill.signatures  # compiled for writable arrays
    raw = bytes(16)
    frozen = np.arange(4.0)
    frozen.flags.writeable = False
    for ro in (np.frombuffer(raw), np.broadcast_to(np.zeros(1), (4,)), frozen):
        before = ro.copy()
        with pytest.raises(GeneTypeError, match="read-only"):
            fill(ro, 2.0)
        assert np.array_equal(ro, before) and total(ro) == before.sum()
    assert raw == bytes(16)
    with pytest.raises(GeneTypeError, match="a read-only 1-D float64 array; .* Convert it \\(a.copy\\(\\)\\)"):
        jit("(fn total2 [a] (var s 0.0) (for x in a (s += x)) s)", fallback=False)(frozen)


def test_reasons_name_forms_as_the_program_writes_them() -> None:
    """Why tier 1 left a function says "map literals", not the reader's class name MapF."""
    from gene_jit.runtime.errors import GeneTypeError

    for src, what in (("(fn m1 [n] (var m {^a 1}) n)", "map literals"), ("(fn a1 [n] (var a [1 2]) n)",
                                                                         "array literals")):
        with pytest.raises(GeneTypeError, match=f"{what} are not compiled") as info:
            jit(src, fallback=False)(1)
        assert "MapF" not in str(info.value) and "Arr " not in str(info.value)
