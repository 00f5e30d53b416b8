"""The FFI from Gene programs: `ffi/load`, `ffi/defun` binding names, structs, callbacks,
variadic calls, the seed's libllama block, and errors raised as Gene errors."""

from __future__ import annotations

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
            "no symbol 'nope_nope'",
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
