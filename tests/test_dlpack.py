"""Tensors across to NumPy and PyTorch without copies: `tensor/from-numpy`,
`tensor/numpy`, `tensor/from-torch`, `tensor/to-torch` keep the data pointer on the CPU
(DLPack), and on CUDA where a GPU is present (CUDA array interface)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_gene_source

from gene_jit.runtime.errors import GeneError
from gene_jit.tensor import interop
from gene_jit.tensor.tensor import Tensor

try:
    import torch
except ImportError:  # gene-jit[bench] and [dev] install it (a CPU build)
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (gene-jit[bench]) is not installed")


def _ptr(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def test_numpy_in_and_out_share_memory() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = interop.from_numpy(a)
    assert t.dtype == "f32" and t.shape == (3, 4)
    assert _ptr(t.data) == _ptr(a)
    back = interop.to_numpy(t)
    assert back is t.data
    a[0, 0] = 42.0  # one memory: the tensor sees the write
    assert float(interop.to_numpy(t)[0, 0]) == 42.0


def test_dlpack_export_shares_memory_without_torch() -> None:
    # the protocol torch.from_dlpack reads; NumPy is a DLPack consumer as well
    t = Tensor.from_numpy(np.arange(6, dtype=np.int64).reshape(2, 3))
    view = np.from_dlpack(t)
    assert view.shape == (2, 3) and _ptr(view) == _ptr(t.data)
    assert t.__dlpack_device__() == (1, 0)


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64", "int32", "int64"])
def test_torch_round_trip_keeps_the_data_pointer(dtype: str) -> None:
    src = (torch.arange(24) - 7).to(getattr(torch, dtype)).reshape(2, 3, 4)
    t = interop.from_torch(src)
    assert t.shape == (2, 3, 4)
    assert t.dtype == {"float32": "f32", "float16": "f16", "bfloat16": "bf16",
                       "float64": "f64", "int32": "i32", "int64": "i64"}[dtype]
    assert _ptr(t.data) == src.data_ptr()
    back = interop.to_torch(t)
    assert back.dtype == src.dtype and back.data_ptr() == src.data_ptr()
    assert torch.equal(back, src)
    src.view(-1)[0] = 5  # writes through both views
    assert float(back.view(-1)[0]) == 5.0


@needs_torch
def test_torch_tensors_from_gene_code() -> None:
    result = run_gene_source("""
        (var torch (py/import "torch"))
        (var pt (torch/ones 2 3 ^dtype torch/float32))
        (var t (tensor/from-torch pt))
        (var doubled (t * 2))
        (var back (tensor/to-torch doubled))
        (println (tensor/shape t) (tensor/dtype t) (back .sum) back/dtype)
    """, "0", filename="dl.gene")
    assert result.error is None, result.error
    assert result.stdout == "[2 3] f32 <python Tensor tensor(12.)> <python dtype torch.float32>\n"


@needs_torch
def test_refusals_are_gene_errors() -> None:
    with pytest.raises(GeneError, match="not contiguous"):
        interop.from_torch(torch.ones(3, 4).t())
    with pytest.raises(GeneError, match="not PyTorch's complex64; convert it first"):
        interop.from_torch(torch.ones(3, dtype=torch.complex64))
    with pytest.raises(GeneError, match="expected a PyTorch tensor"):
        interop.from_torch(np.ones(3))
    with pytest.raises(GeneError, match="expected a NumPy array"):
        interop.from_numpy([1, 2])
    with pytest.raises(GeneError, match="expected a tensor"):
        interop.to_torch(np.ones(3))


@needs_torch
def test_gradients_are_left_behind_without_a_copy() -> None:
    w = torch.ones(4, requires_grad=True)
    t = interop.from_torch(w)
    assert _ptr(t.data) == w.data_ptr()


@needs_torch
@pytest.mark.cuda
def test_cuda_round_trip_keeps_the_device_pointer() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    src = torch.arange(16, dtype=torch.float32, device="cuda").reshape(4, 4)
    t = Tensor.from_torch(src)
    assert t.device.is_cuda
    assert t.data.__cuda_array_interface__["data"][0] == src.data_ptr()
    back = interop.to_torch(t)
    assert back.is_cuda and back.data_ptr() == src.data_ptr()
    bf = interop.from_torch(src.to(torch.bfloat16))
    assert bf.dtype == "bf16" and interop.to_torch(bf).dtype == torch.bfloat16


def test_without_torch_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(GeneError, match=r"gene-jit\[bench\]"):
        interop.to_torch(Tensor.from_numpy(np.ones(2, np.float32)))
    with pytest.raises(GeneError, match=r"gene-jit\[bench\]"):
        interop.from_torch(np.ones(2))


@needs_torch
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "bool"])
def test_small_torch_ints_widen_to_i32_with_every_value(dtype: str) -> None:
    src = torch.tensor([0, 1, 127], dtype=getattr(torch, dtype)) if dtype != "bool" else \
        torch.tensor([True, False, True])
    t = interop.from_torch(src)
    assert t.dtype == "i32"
    assert t.numpy().tolist() == src.to(torch.int64).tolist()


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "uint32", "bool", ">f4",
                                   ">i8", "<f8"])
def test_from_numpy_keeps_every_value_of_the_dtypes_numpy_has(dtype: str) -> None:
    a = np.array([0, 1, 100], dtype=dtype)
    t = interop.from_numpy(a)
    want = {"b": "i32", "i": "i32", "u": "i32", "f": "f32"}[a.dtype.kind]
    if a.dtype.itemsize == 8 or dtype == "uint32":
        want = {"i": "i64", "f": "f64", "u": "i64"}[a.dtype.kind]
    assert t.dtype == want
    assert t.numpy().tolist() == a.tolist()


def test_numpy_scalars_and_refusals_name_what_to_do() -> None:
    t = interop.from_numpy(np.float32(1.5))
    assert t.dtype == "f32" and t.shape == () and float(t.numpy()) == 1.5
    with pytest.raises(GeneError, match="not NumPy's complex64; convert the array first"):
        interop.from_numpy(np.ones(2, dtype=np.complex64))
    with pytest.raises(GeneError, match="not NumPy's uint64"):
        interop.from_numpy(np.ones(2, dtype=np.uint64))
    with pytest.raises(GeneError, match=r"got \[1 2\] \(\(tensor/create xs\) makes one"):
        interop.from_numpy([1, 2])
    with pytest.raises(GeneError, match="got <python Decimal Decimal"):
        interop.from_numpy(__import__("decimal").Decimal(1))
