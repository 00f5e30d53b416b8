"""The `kernel` namespace: C-ABI tensor kernels called as foreign functions from tier 0
(through ctypes) and from tier 1 (a direct call to the cfunc's address), with the same
checks in both tiers: element types, contiguity, buffer sizes against the shapes, and
the kernel's status. Rows of 2-D arrays (`(get x i)`) go to kernels without a copy."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gene_jit.jit import jit
from gene_jit.runtime.errors import GeneError, GeneIndexError, GeneTypeError
from gene_jit.tensor_kernels import reference
from gene_jit.tensor_kernels.gene_kernels import KERNELS

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or platform.system() != "Linux",
    reason="tier 1 direct calls are emitted for x86-64 System V",
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENE_JIT_CACHE", "0")


NORM_ROWS = """
(fn norm-rows [x w out eps]
  (var cols (len w))
  (for i in (range (len x))
    (kernel/rmsnorm (get x i) w (get out i) 1 cols eps))
  nil)
"""

# rows given explicitly, so that a test can pass shapes that do not fit the arrays
NORM_SHAPED = """
(fn norm-shaped [x w out rows cols]
  (for i in (range rows)
    (kernel/rmsnorm (get x i) w (get out i) 1 cols 1e-5))
  nil)
"""


def root_ir(f: Any) -> str:
    """The optimised LLVM IR of the compiled function itself (not its entry)."""
    (text,) = f.inspect_llvm().values()
    bodies = [d.split("\n}\n")[0] for d in text.split("\ndefine ")[1:]]
    (body,) = [d for d in bodies if "@gj_" in d.split("(")[0] and "_entry(" not in d.split("{")[0]]
    return body


def direct_call_to(text: str, address: int) -> bool:
    return re.search(rf"call [^\n]*inttoptr \(i64 {address} to ptr\)", text) is not None


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


def inputs(rows: int = 6, cols: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    w = rng.standard_normal(cols).astype(np.float32)
    return x, w, np.zeros_like(x)


def test_rows_in_tier1_call_the_kernel_address_and_match_the_reference() -> None:
    f = jit(NORM_ROWS)
    x, w, out = inputs()
    assert f(x, w, out, 1e-5) is None
    assert f.signatures == ["(array<f32,2>, array<f32,1>, array<f32,2>, f64) -> nil"]
    assert direct_call_to(root_ir(f), KERNELS["rmsnorm"].address)
    ref = reference.rmsnorm(x.astype(np.float64), w.astype(np.float64), 1e-5)
    assert rel_err(out, ref) <= 1e-5


def test_tier0_gives_the_same_rows() -> None:
    x, w, out = inputs()
    jit(NORM_ROWS)._pyfunc(x, w, out, 1e-5)
    ref = reference.rmsnorm(x.astype(np.float64), w.astype(np.float64), 1e-5)
    assert rel_err(out, ref) <= 1e-5
    native = np.zeros_like(x)
    jit(NORM_ROWS)(x, w, native, 1e-5)
    assert np.array_equal(out, native)  # one kernel, one result


def errors_in_both_tiers(source: str, *args: Any) -> tuple[GeneError, GeneError, Any]:
    f = jit(source)
    with pytest.raises(GeneError) as native:
        f(*args)
    with pytest.raises(GeneError) as tier0:
        jit(source)._pyfunc(*args)
    return native.value, tier0.value, f


def test_bad_shapes_raise_the_same_gene_error_in_both_tiers() -> None:
    x, w, out = inputs(4, 8)
    native, tier0, f = errors_in_both_tiers(NORM_SHAPED, x, w, out, 4, 12)
    assert f.signatures  # raised by native code, not by a fall back to tier 0
    assert native.message == tier0.message
    assert native.message == ("kernel/rmsnorm (rows=1, cols=12): x holds 8 float32 values, "
                              "the shapes need 12")
    assert native.span is not None and native.span.line == 4


def test_kernel_status_is_a_gene_error_in_both_tiers() -> None:
    x, w, out = inputs(4, 8)
    native, tier0, f = errors_in_both_tiers(NORM_SHAPED, x, w, out, 4, 0)
    assert f.signatures
    assert native.message == tier0.message
    assert "kernel/rmsnorm (rows=1, cols=0)" in native.message
    assert "refused" in native.message and "status 1" in native.message


def test_negative_shapes_and_rows_out_of_range() -> None:
    x, w, out = inputs(4, 8)
    native, tier0, _ = errors_in_both_tiers(NORM_SHAPED, x, w, out, 4, -8)
    assert native.message == tier0.message == "kernel/rmsnorm (rows=1, cols=-8): shape cols is negative"
    with pytest.raises(GeneIndexError):
        jit(NORM_SHAPED)(x, w, out, 5, 8)


def test_float64_arrays_to_an_f32_kernel_are_a_gene_error() -> None:
    x, w, out = (a.astype(np.float64) for a in inputs(3, 8))
    f = jit(NORM_ROWS)
    with pytest.raises(GeneTypeError, match=r"must be a float32 array, got a float64 array"):
        f(x, w, out, 1e-5)
    assert f.signatures == []  # typed out of tier 1: tier 0 raised
    assert "takes float32 data" in f.stats.reason


def test_non_contiguous_arrays_are_refused_in_both_tiers() -> None:
    x, w, out = inputs(4, 16)
    strided = out[:, ::2]  # rows of 8 elements, 8 bytes apart
    native, tier0, f = errors_in_both_tiers(NORM_SHAPED, x, w[:8], strided, 4, 8)
    assert f.signatures
    assert native.message == tier0.message
    assert "out is not a C-contiguous array" in native.message
    assert not out.any()  # nothing written


def test_whole_matrix_kernels_from_tier1() -> None:
    source = """
    (fn attend [w x y logits probs]
      (kernel/gemv-f32 w x y (len y) (len x))
      (kernel/softmax logits probs 1 (len logits))
      nil)
    """
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 7)).astype(np.float32)
    x = rng.standard_normal(7).astype(np.float32)
    logits = rng.standard_normal(9).astype(np.float32)
    y, probs = np.zeros(5, np.float32), np.zeros(9, np.float32)
    f = jit(source)
    f(w, x, y, logits, probs)
    assert f.signatures
    text = root_ir(f)
    assert direct_call_to(text, KERNELS["gemv-f32"].address)
    assert direct_call_to(text, KERNELS["softmax"].address)
    assert rel_err(y, w.astype(np.float64) @ x.astype(np.float64)) <= 1e-5
    ref = reference.softmax(logits.astype(np.float64)[None, :])[0]
    assert rel_err(probs, ref) <= 1e-5


def test_plain_ffi_buffers_take_arrays_and_rows_in_tier1() -> None:
    source = """
    (ffi/defun c-memcpy :lib "c" :symbol "memcpy" :returns :pointer
               :params [:buffer :buffer :size_t])
    (fn copy-rows [dst src]
      (for i in (range (len src))
        (c-memcpy (get dst i) (get src i) (8 * (len (get src i)))))
      nil)
    """
    src = np.arange(12.0).reshape(3, 4)
    dst = np.zeros((3, 4))
    f = jit(source.replace("(ffi/defun", '(ffi/load "c")\n(ffi/defun'))
    f(dst, src)
    assert f.signatures == ["(array<f64,2>, array<f64,2>) -> nil"]
    assert np.array_equal(dst, src)
    with pytest.raises(GeneTypeError, match="not C-contiguous"):
        f(np.zeros((3, 8))[:, ::2], src)


def test_rebinding_the_namespace_falls_back_to_tier0() -> None:
    f = jit(NORM_ROWS)
    x, w, out = inputs(2, 4)
    f(x, w, out, 1e-5)
    assert f.signatures
    calls: list[int] = []

    class Fake:
        @staticmethod
        def rmsnorm(*args: Any) -> None:
            calls.append(len(args))

    f._pyfunc.__globals__["kernel"] = {"rmsnorm": Fake.rmsnorm}
    f(x, w, out, 1e-5)
    assert calls == [6, 6]
    assert "rebound" in f.stats.reason


def test_tier0_kernels_take_tensors_and_keywords() -> None:
    from gene_jit.tensor.tensor import Tensor

    x, w, out = inputs(2, 8)
    tx, tw, tout = (Tensor.from_numpy(a) for a in (x, w, out))
    KERNELS["rmsnorm"](tx, tw, tout, 2, 8, eps=1e-6)
    ref = reference.rmsnorm(x.astype(np.float64), w.astype(np.float64), 1e-6)
    assert rel_err(tout.numpy(), ref) <= 1e-5
    with pytest.raises(GeneError, match="takes 6 arguments"):
        KERNELS["rmsnorm"](tx, tw, tout, 2, 8)
    with pytest.raises(GeneTypeError, match=r"argument 4 \(rows\) must be an int"):
        KERNELS["rmsnorm"](tx, tw, tout, 2.0, 8, 1e-6)


def test_dequantize_q8_0_matches_the_reference() -> None:
    rng = np.random.default_rng(5)
    blocks = 3
    raw = np.zeros((blocks, 34), np.uint8)
    raw[:, :2] = np.frombuffer(np.float16(rng.random(blocks) + 0.1).tobytes(), np.uint8).reshape(blocks, 2)
    raw[:, 2:] = rng.integers(0, 256, (blocks, 32), dtype=np.uint8)
    out = np.zeros(blocks * 32, np.float32)
    KERNELS["dequantize-q8-0"](raw.reshape(-1), out, raw.size)
    ref = reference.dequant_q8_0(raw.reshape(-1))
    assert rel_err(out, ref) <= 1e-6
    with pytest.raises(GeneError, match=r"out holds 64 float32 values, the shapes need 96"):
        KERNELS["dequantize-q8-0"](raw.reshape(-1), out[:64], raw.size)


def test_functions_returning_arrays_stay_in_tier0() -> None:
    f = jit("(fn same [a] a)")
    a = np.zeros(3)
    assert f(a) is a
    assert f.signatures == []


@pytest.mark.parametrize("mode", ["0", "eager"])
def test_example_program_runs_in_both_tiers(mode: str) -> None:
    env = {**os.environ, "GENE_JIT": mode, "GENE_JIT_CACHE": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "gene_jit", "run", str(REPO / "examples" / "kernels_jit.gene")],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "max relative error below 1e-5: true"


def _gene(source: str) -> Any:
    from gene_jit import api

    return api.eval_source(source, "<test_kernel_calls>")


def test_ffi_buffers_carry_their_length_and_element_type() -> None:
    ok = _gene("""
        (var x (ffi/new :float 8))
        (var out (ffi/new :float 8))
        (for i in (range 8) (ffi/set x i 2.0))
        (kernel/rmsnorm x (tensor/ones [8]) out 1 8 1e-6)
        (kernel/rmsnorm (ffi/addressof x) (tensor/ones [8]) (ffi/addressof out) 1 8 1e-6)
        (ffi/to-array out)
    """)
    assert ok == pytest.approx([1.0] * 8, rel=1e-5)
    cases = {
        "(kernel/rmsnorm (tensor/ones [1000 1000]) (tensor/ones [1000]) (ffi/new :float 4) "
        "1000 1000 1e-6)": "out holds 4 float32 values, the shapes need 1000000",
        "(kernel/rmsnorm (ffi/new :int32 8) (tensor/ones [8]) (ffi/new :float 8) 1 8 1e-6)":
            "argument 1 (x) must hold float32 values, got a buffer of :int32",
        "(kernel/rmsnorm (ffi/addressof (ffi/new :int32 8)) (tensor/ones [8]) "
        "(ffi/new :float 8) 1 8 1e-6)": "must hold float32 values, got a buffer of :int32",
        "(kernel/rmsnorm 0 (tensor/ones [8]) (ffi/new :float 8) 1 8 1e-6)":
            "argument 1 (x) must be a float32 array or buffer, got int 0",
        "(kernel/rmsnorm nil (tensor/ones [8]) (ffi/new :float 8) 1 8 1e-6)":
            "argument 1 (x) must be a float32 buffer, got nil",
        "(var b (ffi/new :float 8)) (ffi/free b) "
        "(kernel/rmsnorm b (tensor/ones [8]) (ffi/new :float 8) 1 8 1e-6)": "used after ffi/free",
        '(ffi/defun c-malloc :symbol "malloc" :returns :pointer :params [:size_t]) '
        "(kernel/rmsnorm (c-malloc 32) (tensor/ones [8]) (ffi/new :float 8) 1 8 1e-6)":
            "memory of unknown size",
    }
    for source, text in cases.items():
        with pytest.raises(GeneError) as err:
            _gene(source)
        assert text in err.value.message, source
