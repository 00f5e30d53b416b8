"""Tier-1 direct foreign calls: a compiled Gene function calls an `ffi/defun` symbol
through its address with the C calling convention (scalars of every width, pointers,
structs by value per the x86-64 System V ABI), agrees with tier 0, and falls back to
tier 0 when the name is rebound or an argument cannot be passed natively."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gene_jit.ffi import Pointer
from gene_jit.jit import jit
from gene_jit.runtime.errors import GeneError

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or platform.system() != "Linux",
    reason="the struct-by-value rules tested here are x86-64 System V's",
)


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENE_JIT_CACHE", "0")


def both(source: str, *args: Any) -> tuple[Any, Any, Any]:
    """Result in tier 1, result in tier 0 (same source, its own module) and the jit fn."""
    f = jit(source)
    native = f(*args)
    tier0 = jit(source)._pyfunc(*args)
    return native, tier0, f


def root_ir(f: Any) -> str:
    """The optimised LLVM IR of the compiled function itself (not its entry)."""
    (text,) = f.inspect_llvm().values()
    bodies = [d.split("\n}\n")[0] for d in text.split("\ndefine ")[1:]]
    (body,) = [d for d in bodies if "@gj_" in d.split("(")[0] and "_entry(" not in d.split("{")[0]]
    return body


def direct_call_to(text: str, address: int) -> bool:
    return re.search(rf"call [^\n]*inttoptr \(i64 {address} to ptr\)", text) is not None


LIBM_LOOP = """
(ffi/load "c")
(ffi/load "m")
(ffi/defun c-labs :lib "c" :symbol "labs" :returns :long :params [:long])
(ffi/defun c-abs :lib "c" :symbol "abs" :returns :int32 :params [:int32])
(ffi/defun c-cos :lib "m" :symbol "cos" :returns :double :params [:double])
(ffi/defun c-fmaxf :lib "m" :symbol "fmaxf" :returns :float :params [:float :float])
(fn mix [n]
  (var acc 0.0)
  (var i 0)
  (while (i < n)
    (acc = (acc + (c-cos (i * 0.5)) + (c-labs (i - 50)) + (c-abs (7 - i))
                + (c-fmaxf i 2.5)))
    (i = (i + 1)))
  acc)
"""


def test_libc_libm_loop_is_direct_and_agrees_with_tier0() -> None:
    native, tier0, f = both(LIBM_LOOP, 100)
    assert f.signatures == ["(i64) -> f64"]
    assert native == tier0
    ns = f._pyfunc.__globals__
    text = root_ir(f)
    for name in ("c-labs", "c-abs", "c-cos", "c-fmaxf"):
        assert direct_call_to(text, ns[name].address), name
    assert "@Py" not in text  # no Python C API in the compiled loop


def test_narrow_int_range_is_checked_like_tier0() -> None:
    source = """
    (ffi/defun c-abs :symbol "abs" :returns :int32 :params [:int32])
    (fn f [x] (c-abs x))
    """
    f = jit(source)
    assert f(-5) == 5 and f.signatures == ["(i64) -> i64"]
    with pytest.raises(GeneError, match="range"):
        f(2**40)
    with pytest.raises(GeneError, match="range"):
        jit(source)._pyfunc(2**40)


def test_unsigned_results_zero_extend() -> None:
    source = """
    (ffi/defun to-u8 :symbol "abs" :returns :uint8 :params [:int32])
    (ffi/defun to-i8 :symbol "abs" :returns :int8 :params [:int32])
    (fn f [x] ((to-u8 x) * 1000 + (to-i8 x)))
    """
    native, tier0, _ = both(source, 200)
    assert native == tier0 == 200 * 1000 + (200 - 256)


def test_bool_and_pointer_round_trip(tmp_path: Path) -> None:
    lib = _compile_lib(tmp_path)
    source = f"""
    (ffi/load "t" "{lib}")
    (ffi/defun flip :lib "t" :returns :bool :params [:bool])
    (ffi/defun ptr-plus :lib "t" :returns :pointer :params [:pointer :long])
    (ffi/defun ptr-diff :lib "t" :returns :long :params [:pointer :pointer])
    (fn f [b a]
      (var p (ptr-plus a 24))
      (if (flip b) (ptr-diff p a) (ptr-diff a p)))
    """
    memory = np.zeros(8)
    for b in (True, False):
        native, tier0, f = both(source, b, memory)
        assert native == tier0 == (-24 if b else 24)
        assert f.signatures == ["(bool, array<f64,1>) -> i64"]


def test_pointer_results_stay_inside_tier1() -> None:
    source = """
    (ffi/defun c-malloc :symbol "malloc" :returns :pointer :params [:size_t])
    (fn f [n] (c-malloc n))
    """
    f = jit(source)
    assert isinstance(f(16), Pointer)
    assert f.signatures == []
    assert "ptr" in f.stats.reason


C_LIB = r"""
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
typedef struct { int32_t a; int32_t b; } pair_i;
typedef struct { double x; double y; } vec2;
typedef struct { double x; long n; } mixed;
typedef struct { float x, y, z; } vec3f;
typedef struct { int8_t c; int16_t s; int32_t i; uint8_t u; } small;
typedef struct { long a, b, c; } big3;
typedef struct { long x, y; } pair_l;
bool flip(bool b) { return !b; }
char *ptr_plus(char *p, long n) { return p + n; }
long ptr_diff(char *a, char *b) { return a - b; }
pair_i pair_make(int32_t a, int32_t b) { pair_i p = {a, b}; return p; }
long pair_sum(pair_i p) { return (long)p.a * 1000 + p.b; }
vec2 vec2_make(double x, double y) { vec2 v = {x, y}; return v; }
double vec2_dot(vec2 a, vec2 b) { return a.x * b.x + a.y * b.y; }
mixed mixed_make(double x, long n) { mixed m = {x, n}; return m; }
double mixed_total(mixed m) { return m.x * m.n; }
vec3f vec3f_make(float x, float y, float z) { vec3f v = {x, y, z}; return v; }
double vec3f_sum(vec3f v) { return (double)v.x + v.y * 10 + v.z * 100; }
small small_make(int8_t c, int16_t s, int32_t i, uint8_t u) { small v = {c, s, i, u}; return v; }
long small_sum(small v) { return v.c + v.s * 10L + v.i * 100L + v.u * 1000000L; }
big3 big3_make(long a, long b, long c) { big3 v = {a, b, c}; return v; }
long big3_sum(big3 v) { return v.a + v.b * 10 + v.c * 100; }
pair_l pl_make(long x, long y) { pair_l p = {x, y}; return p; }
uint64_t to_u64(long x) { return (uint64_t)x; }
char *maybe_null(long x) { return x ? (char *)"text" : 0; }
long opt_len(const char *p) { return p ? (long)__builtin_strlen(p) : -1; }
long spill(long a, long b, long c, long d, long e, pair_l p, long f) {
    return a + b + c + d + e + p.x * 1000 + p.y * 100000 + f * 10000000; }
"""


def _compile_lib(tmp_path: Path) -> str:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler")
    src, out = tmp_path / "t.c", tmp_path / "libt.so"
    src.write_text(C_LIB)
    subprocess.run([gcc, "-O1", "-shared", "-fPIC", str(src), "-o", str(out)], check=True)
    return os.fspath(out)


STRUCT_DEFS = """
(ffi/load "t" "{lib}")
(ffi/defstruct pair_i [:a :int32 :b :int32])
(ffi/defstruct vec2 [:x :double :y :double])
(ffi/defstruct mixed [:x :double :n :long])
(ffi/defstruct vec3f [:x :float :y :float :z :float])
(ffi/defstruct small [:c :int8 :s :int16 :i :int32 :u :uint8])
(ffi/defstruct big3 [:a :long :b :long :c :long])
(ffi/defstruct pair_l [:x :long :y :long])
(ffi/defun pair-make :lib "t" :symbol "pair_make" :returns pair_i :params [:int32 :int32])
(ffi/defun pair-sum :lib "t" :symbol "pair_sum" :returns :long :params [pair_i])
(ffi/defun vec2-make :lib "t" :symbol "vec2_make" :returns vec2 :params [:double :double])
(ffi/defun vec2-dot :lib "t" :symbol "vec2_dot" :returns :double :params [vec2 vec2])
(ffi/defun mixed-make :lib "t" :symbol "mixed_make" :returns mixed :params [:double :long])
(ffi/defun mixed-total :lib "t" :symbol "mixed_total" :returns :double :params [mixed])
(ffi/defun vec3f-make :lib "t" :symbol "vec3f_make" :returns vec3f :params [:float :float :float])
(ffi/defun vec3f-sum :lib "t" :symbol "vec3f_sum" :returns :double :params [vec3f])
(ffi/defun small-make :lib "t" :symbol "small_make" :returns small :params [:int8 :int16 :int32 :uint8])
(ffi/defun small-sum :lib "t" :symbol "small_sum" :returns :long :params [small])
(ffi/defun big3-make :lib "t" :symbol "big3_make" :returns big3 :params [:long :long :long])
(ffi/defun big3-sum :lib "t" :symbol "big3_sum" :returns :long :params [big3])
(ffi/defun spill :lib "t" :returns :long :params [:long :long :long :long :long pair_l :long])
(ffi/defun pl-make :lib "t" :symbol "pl_make" :returns pair_l :params [:long :long])
"""

STRUCT_CASES = {
    "pair": "(var p (pair-make (i - 3) (i * 2))) ((pair-sum p) + p/a + p/b)",
    "vec2": "(var v (vec2-make (i * 0.5) 3.0)) ((vec2-dot v v) + v/x - v/y)",
    "mixed": "(var m (mixed-make 1.5 i)) ((mixed-total m) + m/n)",
    "vec3f": "(var v (vec3f-make 1.0 (i * 0.25) -2.0)) ((vec3f-sum v) + v/y + v/z)",
    "small": "(var s (small-make -3 (i - 100) (i * 1000) 250)) ((small-sum s) + s/c + s/s + s/u)",
    "big3": "(var v (big3-make i (i + 1) (i + 2))) ((big3-sum v) + v/c)",
    "spill": "(var q (pl-make i 7)) (spill 1 2 3 4 5 q i)",
}


@pytest.mark.parametrize("case", sorted(STRUCT_CASES))
def test_structs_by_value_agree_with_tier0(tmp_path: Path, case: str) -> None:
    lib = _compile_lib(tmp_path)
    body = STRUCT_CASES[case]
    source = STRUCT_DEFS.format(lib=lib) + f"""
    (fn f [n]
      (var acc 0{'.0' if case in ('vec2', 'mixed', 'vec3f') else ''})
      (var i 0)
      (while (i < n)
        (acc = (acc + (do {body})))
        (i = (i + 1)))
      acc)
    """
    native, tier0, f = both(source, 20)
    assert f.signatures and f.stats.tier == 1, f.stats.reason
    assert native == tier0


def test_libc_div_and_ldiv_return_structs() -> None:
    source = """
    (ffi/defstruct div_t [:quot :int32 :rem :int32])
    (ffi/defstruct ldiv_t [:quot :long :rem :long])
    (ffi/defun c-div :symbol "div" :returns div_t :params [:int32 :int32])
    (ffi/defun c-ldiv :symbol "ldiv" :returns ldiv_t :params [:long :long])
    (fn f [n]
      (var acc 0)
      (var i 1)
      (while (i <= n)
        (var r (c-div (i * 37) 7))
        (var q (c-ldiv (i * 100000000000) -9))
        (acc = (acc + r/quot * 10 + r/rem + q/quot + q/rem))
        (i = (i + 1)))
      acc)
    """
    native, tier0, f = both(source, 50)
    assert native == tier0
    assert f.signatures == ["(i64) -> i64"]


def test_rebinding_the_name_falls_back_to_tier0() -> None:
    source = """
    (ffi/defun my-abs :symbol "labs" :returns :long :params [:long])
    (fn f [x] ((my-abs x) + 1))
    """
    f = jit(source)
    assert f(-4) == 5 and f.signatures == ["(i64) -> i64"]
    ns = f._pyfunc.__globals__
    ns["my-abs"] = lambda x: 100
    assert f(-4) == 101
    assert f(-4) == 101
    assert "rebound" in f.stats.reason


@pytest.mark.parametrize(
    ("call", "reason"),
    [("(c-labs 1.5)", "f64 as argument 1"),
     ("(c-strlen x)", "i64 as argument 1 (:string)"),
     ("(c-strerror x)", "gives a :string"),
     ("(c-labs x 2)", "2 arguments")],
)
def test_untypeable_calls_stay_in_tier0_with_a_reason(call: str, reason: str) -> None:
    source = f"""
    (ffi/defun c-labs :symbol "labs" :returns :long :params [:long])
    (ffi/defun c-strlen :symbol "strlen" :returns :size_t :params [:string])
    (ffi/defun c-strerror :symbol "strerror" :returns :string :params [:int32])
    (fn f [x] (if (x > 100) {call} x))
    """
    f = jit(source)
    assert f(3) == 3
    assert f.signatures == []
    assert reason in f.stats.reason


def test_libllama_structs_returned_by_value() -> None:
    """`llama_batch_get_one` and `llama_model_default_params` return structs bigger than
    16 bytes (a hidden sret pointer), as the per-token loop of the LLM library calls."""
    pytest.importorskip("llama_cpp")
    from gene_jit.llama import bindings

    bindings.lib()  # defines the llama_* structs by name
    source = """
    (ffi/load "llama")
    (ffi/defun get-one :lib "llama" :symbol "llama_batch_get_one" :returns :llama_batch
               :params [:pointer :int32])
    (ffi/defun model-defaults :lib "llama" :symbol "llama_model_default_params"
               :returns :llama_model_params)
    (fn f [tokens n]
      (var acc 0)
      (var i 1)
      (while (i <= n)
        (var b (get-one tokens i))
        (var p (model-defaults))
        (acc = (acc + b/n_tokens * 1000 + p/n_gpu_layers + p/main_gpu))
        (i = (i + 1)))
      acc)
    """
    native, tier0, f = both(source, np.zeros(4, np.int64), 5)
    assert f.signatures == ["(array<i64,1>, i64) -> i64"]
    assert native == tier0


def _errors(source: str, *args: Any) -> tuple[str, str, Any]:
    """The messages tier 1 and tier 0 raise for the same call."""
    f = jit(source)
    with pytest.raises(GeneError) as native:
        f(*args)
    with pytest.raises(GeneError) as tier0:
        jit(source)._pyfunc(*args)
    return native.value.message, tier0.value.message, f


def test_range_errors_name_the_function_and_argument_in_both_tiers() -> None:
    source = """
    (ffi/defun c-abs :symbol "abs" :returns :int32 :params [:int32])
    (ffi/defun c-malloc :symbol "malloc" :returns :pointer :params [:size_t])
    (fn f [x] (if (x > 0) (c-abs x) (do (c-malloc x) 0)))
    """
    for x in (2**40, -1):
        native, tier0, f = _errors(source, x)
        assert native == tier0, (native, tier0)
        assert f.signatures == ["(i64) -> i64"]
    assert "c-abs: argument 1 must be :int32, got int 1099511627776 (out of range" in \
        _errors(source, 2**40)[0]
    assert "c-malloc: argument 1 must be :size_t, got int -1" in _errors(source, -1)[0]


def test_uint64_results_agree_across_tiers(tmp_path: Path) -> None:
    lib = _compile_lib(tmp_path)
    source = f"""
    (ffi/load "t" "{lib}")
    (ffi/defun to-u64 :lib "t" :symbol "to_u64" :returns :uint64 :params [:long])
    (fn f [x] (to-u64 x))
    """
    native, tier0, f = both(source, 2**62)
    assert native == tier0 == 2**62 and f.signatures == ["(i64) -> i64"]
    native_err, tier0_err, _ = _errors(source, -1)
    assert native_err == tier0_err
    assert "to-u64: the C value 18446744073709551615 does not fit" in native_err


def test_null_results_and_nullable_parameters(tmp_path: Path) -> None:
    lib = _compile_lib(tmp_path)
    defs = f"""
    (ffi/load "t" "{lib}")
    (ffi/defun maybe-null :lib "t" :symbol "maybe_null" :returns :pointer :params [:long])
    (ffi/defun opt-len :lib "t" :symbol "opt_len" :returns :long :params [:pointer?])
    (ffi/defun len-of :lib "t" :symbol "opt_len" :returns :long :params [:pointer])
    """
    nullable = defs + "(fn f [x] ((opt-len (maybe-null x)) + (opt-len nil)))"
    for x in (0, 1):
        native, tier0, f = both(nullable, x)
        assert native == tier0 == (-2 if x == 0 else 3)
        assert f.signatures == ["(i64) -> i64"]
    strict = defs + "(fn f [x] (len-of (maybe-null x)))"
    assert both(strict, 1)[:2] == (4, 4)
    native, tier0, f = _errors(strict, 0)
    assert native == tier0
    assert "len-of: argument 1 must be :pointer, got nil (not nullable" in native
    assert f.signatures == ["(i64) -> i64"]


@pytest.mark.parametrize(
    ("call", "reason"),
    [("(c-strlen-p x)", "i64 as argument 1 (:pointer)"),
     ("(c-strlen-p nil)", "passes nil as argument 1 (:pointer, not nullable)")],
)
def test_values_tier0_refuses_stay_in_tier0(call: str, reason: str) -> None:
    source = f"""
    (ffi/defun c-strlen-p :symbol "strlen" :returns :size_t :params [:pointer])
    (fn f [x] (if (x > 100) {call} x))
    """
    f = jit(source)
    assert f(3) == 3 and f.signatures == []
    assert reason in f.stats.reason
    with pytest.raises(GeneError, match="argument 1 must be :pointer"):
        f(200)
