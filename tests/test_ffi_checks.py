"""Checks on memory of unknown extent (addresses C gave back, or `ffi/ptr` made) and the
wording of FFI errors: Gene names and Gene values, never Python's."""

from __future__ import annotations

import ctypes
import mmap
from typing import Any

import pytest

from gene_jit import ffi
from gene_jit.ffi import memmap
from gene_jit.ffi.types import Pointer
from gene_jit.runtime.errors import GeneError, GeneTypeError

api = pytest.importorskip("gene_jit.api")

PAGE = mmap.PAGESIZE


def run(source: str) -> Any:
    return api.eval_source(source, "<test_ffi_checks>")


def error(source: str) -> str:
    """`kind: message` of the Gene error `source` raises."""
    with pytest.raises(GeneError) as info:
        run(source)
    return f"{info.value.kind}: {info.value.message}"


def _libc() -> Any:
    libc = ctypes.CDLL(None)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


def _map(libc: Any, size: int) -> int:
    prot_rw, private_anon = 0x3, 0x22
    base = libc.mmap(None, size, prot_rw, private_anon, -1, 0)
    assert base not in (None, ctypes.c_void_p(-1).value)
    return int(base)


@pytest.fixture()
def fenced() -> Any:
    """Two fresh pages of 'a' bytes, the second made inaccessible: text without a NUL
    that runs into memory no one may read. Yields the first page's address."""
    libc = _libc()
    base = _map(libc, 2 * PAGE)
    ctypes.memset(base, ord("a"), PAGE)
    assert libc.mprotect(base + PAGE, PAGE, 0) == 0
    yield base
    libc.munmap(base, 2 * PAGE)


def test_ranges_are_checked_against_the_mappings(fenced: int) -> None:
    memmap.check_range(fenced, PAGE, "r", "t")
    memmap.check_range(fenced, PAGE, "w", "t")
    with pytest.raises(GeneTypeError, match=r"t: 4 bytes at 0x[0-9a-f]+ are not all in readable"):
        memmap.check_range(fenced + PAGE - 2, 4, "r", "t")
    with pytest.raises(GeneTypeError, match="t: address 0x10 is not in readable memory"):
        memmap.check_range(16, 1, "r", "t")
    assert memmap.accessible(fenced + PAGE, "") >= PAGE  # mapped, yet not readable
    assert memmap.accessible(fenced + PAGE, "r") == 0


def test_memory_mapped_after_the_table_was_read_is_found(fenced: int) -> None:
    memmap.accessible(fenced, "r")  # the cached table now holds the fence, not what follows
    libc = _libc()
    fresh = _map(libc, PAGE)
    try:
        memmap.check_range(fresh, PAGE, "w", "t")  # a miss reads the table again
        assert ffi.read(Pointer(fresh), "uint8", PAGE - 1) == 0
    finally:
        libc.munmap(fresh, PAGE)


def test_raw_pointers_are_read_only_inside_mappings(fenced: int) -> None:
    raw = Pointer(fenced)  # as C gives it back: extent unknown
    assert ffi.read(raw, "uint8", PAGE - 1) == ord("a")
    assert ffi.string(raw, 3) == "aaa"
    with pytest.raises(GeneTypeError, match="ffi/read: argument 1: address"):
        ffi.read(raw, "uint8", PAGE)
    with pytest.raises(GeneTypeError, match="ffi/array: argument 1: 8 bytes at"):
        ffi.array(Pointer(fenced + PAGE - 4), "uint8", 8)
    with pytest.raises(GeneTypeError, match="has no NUL before the end of readable memory"):
        ffi.string(raw)
    ctypes.memset(fenced + 100, 0, 1)
    assert ffi.string(Pointer(fenced + 90)) == "a" * 10


def test_writes_need_writable_memory() -> None:
    text = ctypes.create_string_buffer(b"x")
    ffi.write(Pointer(ctypes.addressof(text)), "uint8", 65)
    assert text.value == b"A"
    libc = ctypes.CDLL(None)
    code = ctypes.cast(libc.strlen, ctypes.c_void_p).value
    assert code is not None
    assert ffi.read(Pointer(code), "uint8") is not None  # code is readable
    with pytest.raises(GeneTypeError, match="ffi/write: argument 1: address .* not in writable"):
        ffi.write(Pointer(code), "uint8", 0)


@pytest.mark.parametrize(("source", "text"), [
    ("(ffi/read (ffi/ptr 16) :int32 0)", "type error: ffi/read: argument 1: address 0x10 is not in readable"),
    ("(ffi/write (ffi/ptr 16) :int32 5 0)", "ffi/write: argument 1: address 0x10 is not in writable"),
    ("(ffi/string (ffi/ptr 16))", "ffi/string: argument 1: address 0x10 is not in readable"),
    ("(ffi/string (ffi/ptr 16) 4)", "ffi/string: argument 1: address 0x10 is not in readable"),
    ("(ffi/array (ffi/ptr 16) :int32 2)", "ffi/array: argument 1: address 0x10 is not in readable"),
    ("(ffi/cast (ffi/ptr 16) (ffi/defstruct pt [:x :int32]))",
     "ffi/cast: argument 1: address 0x10 is not in readable"),
    ('(ffi/defun sl :lib "c" :symbol "strlen" :returns :size_t :params [:pointer]) (sl (ffi/ptr 1))',
     "sl: argument 1 must be :pointer, got an ffi pointer (address 0x1, made by ffi/ptr, is not "
     "in this process's memory)"),
    ('(ffi/defun sl :lib "c" :symbol "strlen" :returns :size_t :params [:string]) (sl (ffi/ptr 1))',
     "sl: argument 1 must be :string, got an ffi pointer (address 0x1, made by ffi/ptr"),
    ("(ffi/free (ffi/ptr (ffi/address (ffi/new :int32 4))))",
     "ffi/free: a pointer made by ffi/ptr is not known to come from malloc"),
])
def test_addresses_from_ints_are_checked_before_use(source: str, text: str) -> None:
    assert text in error(source)


def test_addresses_from_ints_that_are_mapped_work() -> None:
    assert run("""
        (ffi/defun sl :lib "c" :symbol "strlen" :returns :size_t :params [:pointer])
        (var b (ffi/buffer "hello"))
        (var p (ffi/ptr (ffi/address b)))
        (ffi/write p :uint8 72 0)
        [(sl p) (ffi/string p) (ffi/read p :uint8 1)]
    """) == [5, "Hello", ord("e")]


@pytest.mark.parametrize(("source", "text"), [
    # builtins name themselves and their parameters as Gene does
    ("(ffi/load)", "arity error: ffi/load: missing argument name"),
    ("(ffi/defun)", "arity error: ffi/defun: missing argument name"),
    ("(ffi/string)", "arity error: ffi/string: missing argument pointer"),
    ("(ffi/defstruct)", "arity error: ffi/defstruct: missing arguments name and fields"),
    ('(ffi/load "c" "x" "y")', "arity error: ffi/load: takes 1 to 2 arguments, got 3"),
    ('(ffi/load "c" ^nme 1)', "arity error: ffi/load: has no parameter ^nme"),
    ("(tensor/reshape (tensor/zeros [2]))", "arity error: tensor/reshape: expected 2 arguments, got 1"),
    ("(mod 7)", "arity error: mod: missing argument b"),
    # values as Gene prints them
    ('(ffi/defun sl :lib "c" :symbol "strlen" :returns :size_t :params [:string]) (sl [1 2])',
     "got array [1 2] (not a string)"),
    ('(ffi/defun ab :lib "c" :symbol "abs" :returns :int :params [:int]) (ab "1")',
     'got string "1" (not an int)'),
    ('(ffi/defun sl :lib "c" :symbol "strlen" :returns :size_t :params [[:string]])',
     "bad compound ffi type [:string]"),
    ("(ffi/new :int32 {^a 1})", "got map {^a 1}"),
    ("(ffi/free println)", "cannot free function println"),
    ("(tensor/zeros [2] ^dtype :bogus)", "unknown tensor dtype :bogus"),
    ("(tensor/zeros [-1 2])", "got [-1 2]"),
    ('(tensor/arange "1")', 'expected numbers, got "1"'),
    # sizes C cannot allocate, strings C would cut
    ("(ffi/new :int32 100000000000000)",
     "ffi/new: cannot allocate 100000000000000 items of :int32 (400000000000000 bytes)"),
    ("(ffi/buffer 100000000000000)", "ffi/buffer: cannot allocate 100000000000000 items"),
    ('(ffi/defun sl :lib "c" :symbol "strlen" :returns :size_t :params [:string]) (sl "a\\u0000b")',
     'got string "a\\u0000b" (it holds a NUL character at index 1, where C would end it'),
    ('(ffi/defun pf :lib "c" :symbol "printf" :returns :int :params [:string] :variadic true)'
     ' (pf "%s" "a\\u0000b")', "pf: variadic argument 2 holds a NUL character at index 1"),
    # grammar
    ("(for x in 5 x)", "cannot iterate over an int"),
    ("(do (var m 1) m/b)", "cannot get member b of an int"),
])
def test_messages_speak_gene(source: str, text: str) -> None:
    message = error(source)
    assert text in message, message
    for python in ("Symbol(", "NoneType", "'", "positional", "gene_"):
        if python not in text:
            assert python not in message, message


def test_nested_callbacks_past_the_depth_limit_are_a_stack_overflow() -> None:
    message = error("""
        (ffi/defun qsort :lib "c" :returns :void
          :params [:buffer :size_t :size_t [:callback :int [:pointer :pointer]]])
        (var buf (ffi/new :int32 2))
        (fn deep [n] (if (n == 0) 0 else (do (qsort buf 2 4 (fn [a b] (deep (n - 1)) 0)) 1)))
        (deep 100000)
    """)
    assert message == "error: stack overflow (recursion too deep)"


_TM = ("(ffi/defstruct tm [[:sec :int] [:min :int] [:hour :int] [:mday :int] [:mon :int] [:year :int] "
       "[:wday :int] [:yday :int] [:isdst :int] [:gmtoff :long] [:zone :pointer]]) "
       '(ffi/defun timegm :lib "c" :returns :long :params [[:pointer tm]]) ')
_FREXP = '(ffi/defun frexp :lib "m" :returns :double :params [:double [:pointer :int]]) '


@pytest.mark.parametrize(("source", "text"), [
    (_TM + "(timegm (ffi/new :int8 1))",
     "argument 1 must be :tm*, got <ffi buffer :int8 x1> (it holds 1 byte and a tm struct takes 56: "
     "make one with (ffi/new tm))"),
    (_TM + "(timegm (ffi/new :double 2))", "it holds 16 bytes and a tm struct takes 56"),
    (_FREXP + "(frexp 8.0 (ffi/new :int8 1))",
     "argument 2 must be :int*, got <ffi buffer :int8 x1> (it holds 1 byte and an int takes 4)"),
    (_FREXP + "(frexp 8.0 (ffi/buffer 3))", "it holds 3 bytes and an int takes 4"),
])
def test_memory_smaller_than_what_c_writes_behind_a_pointer_is_refused(source: str, text: str) -> None:
    """A buffer of known size passed where C reads and writes a struct or a scalar behind
    the pointer must hold it: C would write past its end (heap corruption, a crash later)."""
    assert text in error(source)


def test_memory_large_enough_behind_a_pointer_passes() -> None:
    zero = run(_TM + "(var t (ffi/new tm)) (timegm t)")  # all fields 0: 1899-12-31 00:00 UTC
    assert zero == -2209075200
    assert run(_TM + "(timegm (ffi/new :int8 56))") == zero  # raw bytes of the struct's size
    assert run(_FREXP + "(var e (ffi/new :int32 1)) [(frexp 8.0 e) (ffi/read e :int32 0)]") == [0.5, 4]
