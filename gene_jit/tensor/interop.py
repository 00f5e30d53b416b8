"""Tensors to and from the Python ecosystem: NumPy (zero-copy), PyTorch (DLPack on the
CPU, the CUDA array interface on the GPU: no copy where the devices match) and
safetensors files (dtype and shape kept, bf16 included).

`tensor/from-numpy`, `tensor/numpy`, `tensor/from-torch`, `tensor/to-torch`,
`tensor/load-safetensors`, `tensor/save-safetensors`. Loaded lazily as a third loader
of the `tensor` namespace (gene_jit.runtime.libraries).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from gene_jit.runtime.errors import GeneError, GeneTypeError
from gene_jit.runtime.registry import builtin
from gene_jit.runtime.requirements import import_library
from gene_jit.tensor.dtypes import STORAGE, shown
from gene_jit.tensor.tensor import Tensor

# safetensors dtype name (header) <-> Gene dtype
_ST_TO_GENE = {"F32": "f32", "F16": "f16", "BF16": "bf16", "F64": "f64", "I32": "i32",
               "I64": "i64"}
_GENE_TO_ST = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "f64": "float64",
               "i32": "int32", "i64": "int64"}


class TensorFileError(GeneError):
    kind = "tensor file error"


def _tensor(value: Any, entry: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    raise GeneTypeError(f"{entry}: expected a tensor, got {shown(value)}")


@builtin("from-numpy", ns="tensor")
def from_numpy(array: Any) -> Tensor:
    """A tensor sharing the NumPy array's memory (no copy for f32 f16 f64 i32 i64)."""
    if not isinstance(array, np.ndarray):
        raise GeneTypeError(f"tensor/from-numpy: expected a NumPy array, got {shown(array)}")
    return Tensor.from_numpy(array)


@builtin("numpy", ns="tensor")
def to_numpy(t: Any) -> np.ndarray:
    """The tensor's values as a NumPy array: its own storage on the CPU (no copy; bf16,
    which NumPy lacks, widens to float32), a host copy of a CUDA tensor."""
    return _tensor(t, "tensor/numpy").numpy()


@builtin("from-torch", ns="tensor")
def from_torch(t: Any) -> Tensor:
    """A tensor sharing a PyTorch tensor's memory, on its device."""
    torch = import_library("torch", "tensor/from-torch")
    if not isinstance(t, torch.Tensor):
        raise GeneTypeError(f"tensor/from-torch: expected a PyTorch tensor, got {shown(t)}")
    if not t.is_contiguous():
        raise GeneTypeError(
            "tensor/from-torch: the PyTorch tensor is not contiguous (a transposed view?); "
            "call its .contiguous method first, which copies")
    if t.requires_grad:
        t = t.detach()
    return Tensor.from_torch(t)


@builtin("to-torch", ns="tensor")
def to_torch(t: Any) -> Any:
    """A PyTorch tensor sharing this tensor's memory, on its device."""
    import_library("torch", "tensor/to-torch")
    return _tensor(t, "tensor/to-torch").to_torch()


# ---------------------------------------------------------------- safetensors


@builtin("load-safetensors", ns="tensor")
def load_safetensors(path: Any) -> dict[str, Tensor]:
    """`(tensor/load-safetensors "w.safetensors")`: a map from tensor name to tensor, in
    the file's order, each with the file's dtype and shape."""
    st = import_library("safetensors", "tensor/load-safetensors")
    file = _path(path, "tensor/load-safetensors")
    if not os.path.isfile(file):
        raise TensorFileError(f"tensor/load-safetensors: no such file: {file}")
    try:
        with open(file, "rb") as f:
            entries = st.deserialize(f.read())
    except Exception as exc:  # the package's SafetensorError, or a header it refuses
        raise TensorFileError(
            f"tensor/load-safetensors: {file} is not a valid safetensors file ({exc})") from exc
    out: dict[str, Tensor] = {}
    for name, entry in entries:
        dtype = _ST_TO_GENE.get(entry["dtype"])
        if dtype is None:
            raise TensorFileError(
                f"tensor/load-safetensors: tensor '{name}' in {file} has dtype "
                f"{entry['dtype']}, which gene-jit tensors cannot hold "
                f"(they hold {', '.join(_ST_TO_GENE)})")
        data = np.frombuffer(entry["data"], dtype=STORAGE[dtype]).reshape(entry["shape"])
        out[name] = Tensor(data, dtype)
    return out


@builtin("save-safetensors", ns="tensor")
def save_safetensors(path: Any, tensors: Any, metadata: Any = None) -> None:
    """`(tensor/save-safetensors "w.safetensors" {^w t ...} [^metadata {...}])`."""
    st = import_library("safetensors", "tensor/save-safetensors")
    file = _path(path, "tensor/save-safetensors")
    if not isinstance(tensors, dict) or not tensors:
        raise GeneTypeError(
            f"tensor/save-safetensors: expected a map of tensors, got {shown(tensors)}")
    meta = _metadata(metadata)
    held: list[np.ndarray] = []  # the specs point into these until the file is written
    specs: dict[str, Any] = {}
    for name, t in tensors.items():
        tensor = _tensor(t, f"tensor/save-safetensors: '{name}'")
        data = _c_order(tensor.storage_host())
        held.append(data)
        specs[name] = st.TensorSpec(dtype=_GENE_TO_ST[tensor.dtype], shape=list(data.shape),
                                    data_ptr=data.ctypes.data, data_len=data.nbytes)
    try:
        st.serialize_file(specs, file, meta)
    except Exception as exc:
        raise TensorFileError(f"tensor/save-safetensors: cannot write {file} ({exc})") from exc
    del held


def _path(path: Any, entry: str) -> str:
    if not isinstance(path, str):
        raise GeneTypeError(f"{entry}: expected a file name, got {shown(path)}")
    return path


def _metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise GeneTypeError(
            f"tensor/save-safetensors: ^metadata must map names to strings, got {shown(metadata)}")
    return dict(metadata)


def _c_order(a: np.ndarray) -> np.ndarray:
    """`a` itself when C-contiguous, else a C-ordered copy (0-d arrays keep their shape,
    which np.ascontiguousarray would make 1-d)."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)
