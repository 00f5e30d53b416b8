"""The FFI from Gene programs: `ffi/load`, `ffi/defun` binding names, structs, callbacks,
variadic calls, the seed's libllama block, and errors raised as Gene errors."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path
from typing import Any

import pytest

from gene_jit.ffi.library import bundled_path
from gene_jit.runtime.errors import GeneError, GeneTypeError

api = pytest.importorskip("gene_jit.api")


def run(source: str) -> Any:
    return api.eval_source(source, "<test_ffi_gene>")


def test_defun_binds_and_calls_from_functions() -> None:
    assert (
        run("""
        (ffi/load "c")
        (ffi/defun strlen :lib "c" :symbol "strlen" :returns :size_t :params [:string])
        (fn total [a b] ((strlen a) + (strlen b)))
        (total "hello" "héllo")
    """)
        == 11
    )


def test_libm_and_variadic_snprintf() -> None:
    assert (
        run("""
        (ffi/load "m")
        (ffi/defun sqrt :lib "m" :symbol "sqrt" :returns :double :params [:double])
        (sqrt 2.25)
    """)
        == 1.5
    )
    assert (
        run("""
        (ffi/defun snprintf :lib "c" :returns :int :params [:buffer :size_t :string] :variadic true)
        (var buf (ffi/buffer 32))
        (snprintf buf 32 "%d+%s=%.1f" 40 "two" 42.0)
        (ffi/string buf)
    """)
        == "40+two=42.0"
    )


def test_qsort_with_a_gene_comparator() -> None:
    assert run("""
        (ffi/defun qsort :lib "c" :returns :void
          :params [:buffer :size_t :size_t [:callback :int [:pointer :pointer]]])
        (var xs (ffi/new :int64 5))
        (var i 0)
        (for v in [30 -1 7 12 0]
          (ffi/set xs i v)
          (i = (i + 1)))
        (qsort xs 5 8 (fn [a b] ((ffi/read a :int64) - (ffi/read b :int64))))
        (ffi/to-array xs)
    """) == [-1, 0, 7, 12, 30]


def test_structs_from_gene() -> None:
    assert run("""
        (ffi/defstruct vec3 [:x :float :y :float :z :float])
        (ffi/defstruct body [:pos vec3 :mass :double :tags [:uint8 4]])
        (var b (ffi/new body ^mass 2.5))
        (ffi/set b/pos :y 4.0)
        (ffi/set b :tags [1 2 3])
        [(ffi/sizeof body) b/mass b/pos/y b/tags]
    """) == [32, 2.5, 4.0, [1, 2, 3, 0]]  # 12, 4 padding to align the double, 8, 4, 4 padding


@pytest.mark.skipif(bundled_path("llama") is None, reason="llama-cpp-python not installed")
def test_seed_block_with_the_bundled_libllama(capsys: pytest.CaptureFixture[str]) -> None:
    if Path("/usr/local/lib/libllama.so").exists():
        pytest.skip("the seed's path exists on this machine")
    result = run("""
        (var lib (ffi/load "llama" "/usr/local/lib/libllama.so"))
        (ffi/defun llama-model-load
          :lib "llama"
          :symbol "llama_model_load_from_file"
          :returns :pointer
          :params [:string :pointer])
        (ffi/defun system-info :lib "llama" :symbol "llama_print_system_info" :returns :string)
        [lib/path lib/note (system-info)]
    """)
    path, note, info = result
    assert "llama_cpp" in path and "/usr/local/lib/libllama.so" in note
    assert "CPU" in info
    assert "/usr/local/lib/libllama.so" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("source", "error", "text"),
    [
        ('(ffi/load "surely-missing-lib")', GeneError, "searched"),
        (
            '(ffi/defun nope :lib "c" :symbol "nope_nope" :returns :int)',
            GeneError,
            'no symbol "nope_nope"',
        ),
        (
            '(ffi/defun strlen :lib "c" :returns :size_t :params [:string]) (strlen)',
            GeneError,
            "missing argument 1",
        ),
        (
            '(ffi/defun strlen :lib "c" :returns :size_t :params [:string]) (strlen "a" "b")',
            GeneError,
            "takes 1 argument",
        ),
        (
            '(ffi/defun strlen :lib "c" :returns :size_t :params [:string]) (strlen 42)',
            GeneTypeError,
            "argument 1 must be :string",
        ),
        (
            '(ffi/defun abs :lib "c" :returns :int :params [:int]) (abs "x")',
            GeneTypeError,
            "argument 1 must be :int",
        ),
        (
            '(ffi/defun abs :lib "c" :returns :int :params [:wat])',
            GeneTypeError,
            "unknown ffi type :wat",
        ),
        ("(ffi/string (ffi/null))", None, None),
    ],
)
def test_errors_are_gene_errors(
    source: str, error: type[BaseException] | None, text: str | None
) -> None:
    if error is None:
        assert run(source) is None  # a NULL string is nil, not a crash
        return
    with pytest.raises(error) as err:
        run(source)
    assert text in str(err.value)


# -- what may cross into C is what the declaration allows --------------------------------

STRTOL = '(ffi/defun strtol :lib "c" :returns :long :params [:string :pointer? :int])\n'


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ('(ffi/defun strlen :lib "c" :returns :size_t :params [:string]) (strlen nil)',
         "strlen: argument 1 must be :string, got nil (not nullable; declare :string? "),
        ('(ffi/defun strlen :lib "c" :returns :size_t :params [:pointer]) (strlen ffi/null)',
         "argument 1 must be :pointer, got nil"),
        ('(ffi/defun strlen :lib "c" :returns :size_t :params [:pointer]) (strlen 12345)',
         "an int is not a pointer; use (ffi/ptr n)"),
        ('(ffi/defun strlen :lib "c" :returns :size_t :params [:pointer]) (strlen -8)',
         "argument 1 must be :pointer, got int -8"),
        ('(ffi/defun qsort :lib "c" :params [:buffer :size_t :size_t '
         "[:callback :int [:pointer :pointer]]]) (qsort (ffi/new :int32 2) 2 4 12345)",
         "a callback must be a function or an ffi/callback"),
        ('(ffi/defun qsort :lib "c" :params [:buffer :size_t :size_t '
         "[:callback :int [:pointer :pointer]]]) (qsort (ffi/new :int32 2) 2 4 nil)",
         "argument 4 must be :callback(pointer pointer)->int, got nil"),
        ("(ffi/read 16 :int32)", "ffi/read: expected a pointer, got int 16"),
        ("(ffi/read (ffi/new :int32 2) :int32 2)", "item 2 of :int32 (4 bytes each) is outside"),
        ("(ffi/read (ffi/new :int32 2) :int32 -1)", "item -1 of :int32"),
        ("(ffi/read (ffi/new :int32 2) :double)", "the buffer holds :int32 items, not :double"),
        ("(ffi/write (ffi/new :int8 4) :int64 1)", "is outside"),
        ("(ffi/array (ffi/new :int32 2) :int32 3)", "item 0..2 of :int32"),
        ("(ffi/string (ffi/new :uint8 4) 5)", "5 bytes asked"),
        ('(ffi/defun env :lib "c" :symbol "environ" :returns :int) (env)',
         'symbol "environ" of'),
        ("(var b (ffi/new :int32 2)) (ffi/free b) (ffi/read b :int32)", "used after ffi/free"),
        ('(ffi/free (ffi/symbol "c" "environ"))', "points into memory Gene owns"),
        ("(ffi/ptr -1)", "not an address"),
        ("(ffi/addressof (ffi/callback (fn [] 0) :returns :int))", "a callback is code"),
        ('(ffi/load "m" "/no/such/lib.so")', "/no/such/lib.so (no such file)"),
    ],
)
def test_values_the_declaration_refuses(source: str, text: str) -> None:
    with pytest.raises(GeneError) as err:
        run(source)
    assert text in str(err.value)


def test_data_symbols_are_refused_and_readable() -> None:
    with pytest.raises(GeneTypeError, match="is data, not a function"):
        run('(ffi/defun env :lib "c" :symbol "environ" :returns :int)')
    # the usual way to walk a char**: read the pointers, then the strings
    assert run("""
        (var env (ffi/read (ffi/symbol "c" "environ") :pointer))
        (var first (ffi/read env :pointer 0))
        (var two (ffi/array env :pointer 2))
        [(ffi/string first) (ffi/string (two ./ 0)) (ffi/string (ffi/read env :pointer 1))]
    """) == [_environ(0), _environ(0), _environ(1)]


def _environ(i: int) -> str:
    libc = ctypes.CDLL(None)
    env = ctypes.POINTER(ctypes.c_char_p).in_dll(libc, "environ")
    return env[i].decode("utf-8", "replace")


def test_nullable_parameters_pass_nil_as_null() -> None:
    assert run(STRTOL + '(strtol "42" nil 10)') == 42
    assert run(STRTOL + '(strtol "42" ffi/null 10)') == 42
    assert run("""
        (ffi/defun setlocale :lib "c" :returns :string :params [:int [:nullable :string]])
        ((setlocale 6 nil) != nil)
    """) is True
    assert run("""
        (ffi/defun strtol2 :lib "c" :symbol "strtol" :returns :long
                   :params [:string [:pointer? :int64] :int])
        (strtol2 "7" nil 10)
    """) == 7


def test_pointers_come_back_as_pointers_and_ints_only_through_ffi_ptr() -> None:
    assert run(STRTOL + """
        (var text (ffi/buffer "42xyz"))
        (var end (ffi/new :pointer 1))
        (var n (strtol text end 10))
        (var rest (ffi/read end :pointer))
        [n (ffi/string rest) ((ffi/address rest) - (ffi/address text))
         ((ffi/ptr (ffi/address rest)) == rest) (ffi/ptr 0)]
    """) == [42, "xyz", 2, True, None]


def test_pointer_reads_inside_a_callback() -> None:
    """`(ffi/read p :pointer i)` reads as a `:kw value` tail; inside a callback an error
    in the body is reported as itself, not as a wrong return type."""
    assert run("""
        (ffi/defun qsort :lib "c" :params [:buffer :size_t :size_t
                                            [:callback :int [:pointer :pointer]]])
        (var words (ffi/new :pointer 3))
        (var texts [(ffi/buffer "pear") (ffi/buffer "fig") (ffi/buffer "apple")])
        (for i in (range 3) (ffi/write words :pointer (ffi/addressof (texts ./ i)) i))
        (qsort words 3 8 (fn [a b]
          ((len (ffi/string (ffi/read a :pointer 0))) - (len (ffi/string (ffi/read b :pointer))))))
        (ffi/array words :pointer 3)
        (for p in (ffi/array words :pointer 3) (print (ffi/string p) " "))
        (map (ffi/array words :pointer 3) (fn [p] (ffi/string p)))
    """) == ["fig", "pear", "apple"]
    with pytest.raises(GeneError) as err:
        run("""
        (ffi/defun qsort :lib "c" :params [:buffer :size_t :size_t
                                            [:callback :int [:pointer :pointer]]])
        (qsort (ffi/new :int32 2) 2 4 (fn [a b] (ffi/read 16 :int32)))
        """)
    assert "ffi/read: expected a pointer, got int 16" in str(err.value)
    assert "must return" not in str(err.value)


@pytest.mark.parametrize(("body", "text", "line"), [
    ('(1 + "x")', "type error: + expects numbers, got int and string", 4),
    ("(undefined-x a)", "name error: undefined-x is not defined", 4),
    ("(mod 1 0)", "division by zero", 4),
])
def test_a_callbacks_own_mistake_is_reported_at_its_line(body: str, text: str, line: int) -> None:
    """An operator or name error in a Gene function C calls back is the Gene error that
    code raises anywhere, at the callback's own line (not Python's exception name at
    the foreign call)."""
    with pytest.raises(GeneError) as err:
        run(f"""(ffi/defun qsort :lib "c" :params [:buffer :size_t :size_t
                                   [:callback :int [:pointer :pointer]]])
        (qsort (ffi/new :int32 3) 3 4 (fn [a b]
          {body}))""")
    assert text in str(err.value) and "callback error" not in str(err.value)
    assert "Error:" not in str(err.value)  # no Python exception names
    assert err.value.span is not None and err.value.span.line == line


def test_uint64_beyond_int64_is_an_overflow_error() -> None:
    source = '(ffi/defun strtoull :lib "c" :returns :uint64 :params [:string :pointer? :int])\n'
    assert run(source + '(strtoull "9223372036854775807" nil 10)') == 2**63 - 1
    with pytest.raises(GeneError, match="strtoull: the C value 18446744073709551615 does not fit"):
        run(source + '(strtoull "18446744073709551615" nil 10)')


def test_stored_pointers_keep_their_memory_alive() -> None:
    assert run("""
        (var ps (ffi/new :pointer 3))
        (ffi/set ps 0 (ffi/addressof (ffi/buffer "kept")))
        (ffi/write ps :pointer (ffi/addressof (ffi/buffer "also")) 1)
        (ffi/set ps 2 nil)
        [(ffi/string (ffi/get ps 0)) (ffi/string (ffi/read ps :pointer 1)) (ffi/get ps 2)]
    """) == ["kept", "also", None]


def test_struct_fields_are_set_as_members_and_struct_types_print_as_gene() -> None:
    """`(p/x = v)` sets a field as `ffi/set` does (with its checks); a struct type prints
    as what it is, not as a Python class."""
    assert run("""(ffi/defstruct P2 [[:x :int] [:y :double]])
        (var p (ffi/new P2)) (p/x = 7) (p/y = 2)
        [p/x (ffi/get p :y) (str P2)]""") == [7, 2.0, "(ffi/struct P2 16 bytes [x :int y :double])"]
    for value, text in (('"s"', 'P3.x must be :int, got string "s"'), ("3000000000", "out of range")):
        with pytest.raises(GeneError, match=re.escape(text)):
            run(f"(ffi/defstruct P3 [[:x :int]]) (var p (ffi/new P3)) (p/x = {value})")
    with pytest.raises(GeneError, match="struct P4 has no field z"):
        run("(ffi/defstruct P4 [[:x :int]]) (var p (ffi/new P4)) (p/z = 1)")
