"""FFI Python API against libc and libm: loading, calls, structs, callbacks, memory and
every error case (each must be a Gene error, never a crash)."""

from __future__ import annotations

import ctypes
import math

import pytest

from gene_jit import ffi
from gene_jit.runtime.errors import GeneArityError, GeneError, GeneNameError, GeneTypeError


@pytest.fixture(scope="module")
def libc() -> ffi.Library:
    return ffi.load("c")


@pytest.fixture(scope="module")
def libm() -> ffi.Library:
    return ffi.load("m")


def test_load_by_name_and_lookup(libc: ffi.Library) -> None:
    assert "libc" in libc.path
    assert ffi.library("c") is libc
    assert libc.address("strlen") == ctypes.cast(ctypes.CDLL(None).strlen, ctypes.c_void_p).value


def test_load_by_path_and_soname(libm: ffi.Library) -> None:
    by_path = ffi.load("m2", libm.path)
    assert by_path.path == libm.path
    by_soname = ffi.load("libm.so.6")
    assert by_soname.has("cos")


def test_missing_library_names_every_place_searched() -> None:
    with pytest.raises(GeneError) as err:
        ffi.load("surely-not-a-lib")
    msg = err.value.message
    assert "the system search for surely-not-a-lib -> nothing" in msg
    assert "libsurely-not-a-lib.so" in msg


@pytest.mark.parametrize("name", ["m", "c", "surely-not-a-lib"])
def test_a_missing_path_is_an_error_not_another_library(name: str) -> None:
    with pytest.raises(GeneError) as err:
        ffi.load(f"{name}-at-path", "/nonexistent/libsurely.so")
    assert "/nonexistent/libsurely.so (no such file)" in err.value.message
    with pytest.raises(GeneError, match="no such file"):
        ffi.load(name, "/nonexistent/libsurely.so")


def test_missing_symbol_names_library_and_symbol(libc: ffi.Library) -> None:
    with pytest.raises(GeneNameError, match='library "c" .* has no symbol "no_such_fn"'):
        ffi.defun("x", lib="c", symbol="no_such_fn", returns="int")


def test_scalar_calls(libc: ffi.Library, libm: ffi.Library) -> None:
    strlen = ffi.defun("strlen", lib="c", returns="size_t", params=["string"])
    assert strlen("hello") == 5
    assert strlen("héllo") == 6  # UTF-8 bytes
    assert ffi.defun("abs", lib="c", returns="int", params=["int"])(-7) == 7
    assert ffi.defun("labs", lib="c", returns="long", params=["long"])(-(2**40)) == 2**40
    sqrt = ffi.defun("sqrt", lib="m", returns="double", params=["double"])
    assert sqrt(2.0) == math.sqrt(2.0)
    assert sqrt(16) == 4.0  # ints widen to double
    sqrtf = ffi.defun("sqrtf", lib="m", returns="float", params=["float"])
    assert sqrtf(2.25) == 1.5


def test_defun_exposes_what_tier1_needs(libm: ffi.Library) -> None:
    cos = ffi.defun("cos", lib="m", returns="double", params=["double"])
    info = ffi.foreign_info(cos)
    assert info is not None and info.symbol == "cos"
    assert cos.address == libm.address("cos") and cos.address > 0
    assert cos.returns.kind == "float" and cos.returns.size == 8
    assert [p.name for p in cos.params] == ["double"]
    # calling the address directly, as native code would, gives the same answer
    direct = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(cos.address)
    assert direct(0.5) == cos(0.5)


def test_lib_defaults_to_loaded_libraries_and_process() -> None:
    strlen = ffi.defun("strlen", returns="size_t", params=["string"])
    assert strlen("abc") == 3


def test_string_return_and_null(libc: ffi.Library) -> None:
    getenv = ffi.defun("getenv", lib="c", returns="string", params=["string"])
    assert getenv("GENE_SURELY_UNSET_VARIABLE") is None
    strchr = ffi.defun("strchr", lib="c", returns="string", params=["string", "int"])
    assert strchr("hello", ord("l")) == "llo"
    assert strchr("hello", ord("z")) is None


def test_variadic_snprintf(libc: ffi.Library) -> None:
    snprintf = ffi.defun(
        "snprintf", lib="c", returns="int", params=["buffer", "size_t", "string"], variadic=True
    )
    buf = ffi.buffer(64)
    n = snprintf(buf, 64, "%d|%s|%.3f|%ld", 42, "gene", 2.5, -(2**40))
    assert ffi.string(buf) == "42|gene|2.500|-1099511627776"
    assert n == len("42|gene|2.500|-1099511627776")
    assert snprintf(buf, 64, "plain") == 5


def test_arity_errors(libc: ffi.Library) -> None:
    strlen = ffi.defun("strlen", lib="c", returns="size_t", params=["string"])
    with pytest.raises(GeneArityError, match="strlen: missing argument 1"):
        strlen()
    with pytest.raises(GeneArityError, match="strlen takes 1 argument, got 2"):
        strlen("a", "b")


@pytest.mark.parametrize(
    ("symbol", "returns", "params", "args", "expected"),
    [
        ("strlen", "size_t", ["string"], [5], "argument 1 must be :string, got int 5"),
        ("abs", "int", ["int"], ["x"], "argument 1 must be :int, got string"),
        ("abs", "int", ["int"], [2**40], "out of range"),
        ("abs", "int", ["int"], [True], "argument 1 must be :int, got true"),
        ("abs", "int", ["int"], [1.5], "must be :int, got float"),
        ("labs", "long", ["long"], [None], "must be :long, got nil"),
        ("sqrt", "double", ["double"], ["2"], "must be :double, got string"),
        ("memset", "pointer", ["pointer", "int", "size_t"], ["p", 0, 1], "must be :pointer"),
        (
            "memset",
            "pointer",
            ["pointer", "int", "size_t"],
            [None, 0, -1],
            "argument 3 must be :size_t",
        ),
    ],
)
def test_type_errors_before_the_call(
    libc: ffi.Library,
    libm: ffi.Library,
    symbol: str,
    returns: str,
    params: list[str],
    args: list[object],
    expected: str,
) -> None:
    lib = "m" if symbol == "sqrt" else "c"
    fn = ffi.defun(symbol, lib=lib, returns=returns, params=params)
    with pytest.raises(GeneTypeError, match=expected) as err:
        fn(*args)
    assert symbol in err.value.message


def test_unknown_types_are_gene_errors(libc: ffi.Library) -> None:
    with pytest.raises(GeneTypeError, match="unknown ffi type :int33"):
        ffi.defun("abs", lib="c", returns="int33", params=[])
    with pytest.raises(GeneTypeError, match="parameter 1 cannot be :void"):
        ffi.defun("abs", lib="c", returns="int", params=["void"])


def test_null_string_argument(libc: ffi.Library) -> None:
    # NULL where C accepts it: setlocale(LC_ALL, NULL) queries instead of setting
    setlocale = ffi.defun("setlocale", lib="c", returns="string", params=["int", "string"])
    assert isinstance(setlocale(6, None), str)
    assert isinstance(setlocale(6, ffi.NULL), str)


def test_callback_qsort_with_gene_comparator(libc: ffi.Library) -> None:
    cmp_t = ffi.callback_type("int", ["pointer", "pointer"])
    qsort = ffi.defun(
        "qsort", lib="c", returns="void", params=["buffer", "size_t", "size_t", cmp_t]
    )
    values = [5, -3, 9, 1, 2, 7]
    arr = ffi.new("int32", len(values))
    for i, v in enumerate(values):
        arr[i] = v
    calls = []

    def ascending(a: int, b: int) -> int:
        calls.append(1)
        return ffi.read(a, "int32") - ffi.read(b, "int32")

    qsort(arr, len(values), 4, ascending)  # a plain function is wrapped on the way
    assert arr.to_list() == sorted(values)
    assert calls
    descending = ffi.callback(
        lambda a, b: ffi.read(b, "int32") - ffi.read(a, "int32"),
        returns="int",
        params=["pointer", "pointer"],
    )
    qsort(arr, len(values), 4, descending)
    assert arr.to_list() == sorted(values, reverse=True)


def test_callback_errors_surface_after_the_call(libc: ffi.Library) -> None:
    qsort = ffi.defun(
        "qsort",
        lib="c",
        returns="void",
        params=["buffer", "size_t", "size_t", ["callback", "int", ["pointer", "pointer"]]],
    )
    arr = ffi.new("int32", 4)

    def boom(a: int, b: int) -> int:
        raise GeneTypeError("comparator failed")

    with pytest.raises(GeneTypeError, match="comparator failed"):
        qsort(arr, 4, 4, boom)
    with pytest.raises(GeneError, match="must return :int"):
        qsort(arr, 4, 4, lambda a, b: "not an int")
    wrong = ffi.callback(lambda: None, returns="void", params=[])
    with pytest.raises(GeneTypeError, match="argument 4"):
        qsort(arr, 4, 4, wrong)
    with pytest.raises(GeneTypeError, match="argument 4"):
        qsort(arr, 4, 4, "not a function")


def test_freed_callback_refuses_calls() -> None:
    cb = ffi.callback(lambda x: x * 2, returns="int", params=["int"])
    direct = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(cb.address)
    assert direct(21) == 42
    assert cb(4) == 8
    ffi.free(cb)
    assert direct(21) == 0  # the entry point stays valid; the error waits for Gene
    from gene_jit.ffi.callbacks import PENDING

    assert PENDING and "after ffi/free" in str(PENDING[0])
    PENDING.clear()
    with pytest.raises(GeneError, match="after ffi/free"):
        cb(1)


def test_buffers_and_memory_helpers(libc: ffi.Library) -> None:
    memset = ffi.defun("memset", lib="c", returns="pointer", params=["pointer", "int", "size_t"])
    buf = ffi.new("uint8", 8)
    assert memset(buf, 7, 8) == buf.address
    assert buf.to_list() == [7] * 8
    assert ffi.read(buf, "uint8", 3) == 7
    ffi.write(buf, "uint16", 0x0102, 1)
    assert ffi.array(buf, "uint8", 4) == [7, 7, 2, 1]
    assert ffi.sizeof("int64") == 8 and ffi.sizeof(buf) == 8
    text = ffi.buffer("héllo")
    assert ffi.string(text) == "héllo" and ffi.string(text, 1) == "h"
    with pytest.raises(GeneError, match="out of range"):
        buf[8]
    with pytest.raises(GeneTypeError):
        buf[0] = 300
    ffi.free(buf)
    with pytest.raises(GeneError, match="after ffi/free"):
        buf.to_list()
    with pytest.raises(GeneTypeError, match="argument 1"):
        memset(buf, 0, 1)  # a freed buffer never reaches C as a dangling pointer
    with pytest.raises(GeneTypeError, match="NULL"):
        ffi.read(None, "int32")


def test_numpy_arrays_pass_as_buffers(libc: ffi.Library) -> None:
    np = pytest.importorskip("numpy")
    memcpy = ffi.defun("memcpy", lib="c", returns="pointer", params=["buffer", "buffer", "size_t"])
    src = np.arange(6, dtype=np.float32)
    dst = np.zeros(6, dtype=np.float32)
    memcpy(dst, src, src.nbytes)
    assert (dst == src).all()
    with pytest.raises(GeneTypeError, match="not contiguous"):
        memcpy(dst[::2], src, 4)
