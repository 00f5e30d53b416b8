"""Tensors to and from the Python ecosystem: NumPy (zero-copy), PyTorch (DLPack on the
CPU, the CUDA array interface on the GPU: no copy where the devices match) and
safetensors files (dtype and shape kept, bf16 included).

`tensor/from-numpy`, `tensor/numpy`, `tensor/from-torch`, `tensor/to-torch`,
`tensor/load-safetensors`, `tensor/save-safetensors`. Loaded lazily as a third loader
of the `tensor` namespace (gene_jit.runtime.libraries).
"""

from __future__ import annotations

import contextlib
import json
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


# NumPy integer dtypes that tensors lack, and the tensor dtype holding each of their values
_WIDER = {np.dtype(t): w for t, w in ((np.int8, np.int32), (np.uint8, np.int32),
                                      (np.int16, np.int32), (np.uint16, np.int32),
                                      (np.uint32, np.int64), (np.bool_, np.int32))}


@builtin("from-numpy", ns="tensor")
def from_numpy(array: Any) -> Tensor:
    """A tensor sharing the NumPy array's memory (no copy for f32 f16 f64 i32 i64 in the
    machine's byte order). Smaller ints and bools become i32 (uint32 i64), a copy: every
    value kept. A NumPy scalar becomes a tensor of rank 0."""
    if isinstance(array, np.generic):
        array = np.asarray(array)
    if not isinstance(array, np.ndarray):
        hint = " ((tensor/create xs) makes one from Gene data)" if isinstance(array, list) else ""
        raise GeneTypeError(
            f"tensor/from-numpy: expected a NumPy array, got {_described(array)}{hint}")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    wider = _WIDER.get(array.dtype)
    if wider is not None:
        array = array.astype(wider)
    if array.dtype not in _FROM_NUMPY:
        raise GeneTypeError(
            f"tensor/from-numpy: tensors hold f32 f16 bf16 f64 i32 i64, not NumPy's "
            f"{array.dtype}; convert the array first, as with (a .astype \"float32\")")
    return Tensor.from_numpy(array)


_FROM_NUMPY = frozenset(np.dtype(t) for t in (np.float32, np.float16, np.float64, np.int32,
                                              np.int64))


def _described(value: Any) -> str:
    """A value in an error message, a Python one with its class (`1.5` alone would not
    tell a NumPy scalar from a Gene float)."""
    from gene_jit.py.objects import describe, is_python_object

    return describe(value) if is_python_object(value) else shown(value)


@builtin("numpy", ns="tensor")
def to_numpy(t: Any) -> np.ndarray:
    """The tensor's values as a NumPy array: its own storage on the CPU (no copy; bf16,
    which NumPy lacks, widens to float32), a host copy of a CUDA tensor."""
    return _tensor(t, "tensor/numpy").numpy()


@builtin("from-torch", ns="tensor")
def from_torch(t: Any) -> Tensor:
    """A tensor sharing a PyTorch tensor's memory, on its device (int8 uint8 int16 and
    bool widen to i32, a copy)."""
    torch = import_library("torch", "tensor/from-torch")
    if not isinstance(t, torch.Tensor):
        raise GeneTypeError(
            f"tensor/from-torch: expected a PyTorch tensor, got {_described(t)}")
    if not t.is_contiguous():
        raise GeneTypeError(
            "tensor/from-torch: the PyTorch tensor is not contiguous (a transposed view?); "
            "call its .contiguous method first, which copies")
    if t.requires_grad:
        t = t.detach()
    if t.dtype in (torch.int8, torch.uint8, torch.int16, torch.bool):
        t = t.to(torch.int32)  # as tensor/from-numpy: every value kept, in a copy
    elif t.dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64,
                         torch.int32, torch.int64):
        raise GeneTypeError(
            f"tensor/from-torch: tensors hold f32 f16 bf16 f64 i32 i64, not PyTorch's "
            f"{str(t.dtype).replace('torch.', '')}; convert it first, as with "
            f"(x .to torch/float32)")
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
    the order they were saved in (a file gene-jit did not write: the file's order), each
    with the file's dtype and shape."""
    st = import_library("safetensors", "tensor/load-safetensors")
    file = _path(path, "tensor/load-safetensors")
    if not os.path.isfile(file):
        what = "a folder, not a file" if os.path.isdir(file) else "no such file"
        raise TensorFileError(f"tensor/load-safetensors: {file}: {what}")
    try:
        with open(file, "rb") as f:
            content = f.read()
        entries = dict(st.deserialize(content))
    except OSError as exc:
        raise TensorFileError(f"tensor/load-safetensors: cannot read {file} "
                              f"({exc.strerror or exc})") from exc
    except Exception as exc:  # the package's SafetensorError, or a header it refuses
        raise TensorFileError(
            f"tensor/load-safetensors: {file} is not a valid safetensors file ({exc})") from exc
    out: dict[str, Tensor] = {}
    for name in _file_order(content, entries):
        entry = entries[name]
        out[name] = _loaded(name, entry["dtype"], entry["shape"], entry["data"], file)
    return out


def _loaded(name: str, st_dtype: str, shape: list[int], data: bytes, file: str) -> Tensor:
    dtype = _ST_TO_GENE.get(st_dtype)
    if dtype is not None:
        return Tensor(np.frombuffer(data, dtype=STORAGE[dtype]).reshape(shape), dtype)
    wider = _ST_WIDER.get(st_dtype)
    if wider is None:
        raise TensorFileError(
            f"tensor/load-safetensors: tensor '{name}' in {file} has dtype {st_dtype}, "
            f"which gene-jit tensors cannot hold (they hold {', '.join(_ST_TO_GENE)}, and "
            f"{', '.join(_ST_WIDER)} widened)")
    values = np.frombuffer(data, dtype=wider[0]).reshape(shape)
    return Tensor.from_numpy(values.astype(wider[1]))


# safetensors dtypes that tensors lack, read as (their NumPy dtype, the one holding them)
_ST_WIDER: dict[str, tuple[Any, Any]] = {
    "BOOL": (np.bool_, np.int32), "I8": (np.int8, np.int32), "U8": (np.uint8, np.int32),
    "I16": (np.int16, np.int32), "U16": (np.uint16, np.int32), "U32": (np.uint32, np.int64)}


def _file_order(content: bytes, entries: dict[str, Any]) -> list[str]:
    """The tensor names in the order of their data in the file: the package's own list
    comes in an order that changes from run to run."""
    size = int.from_bytes(content[:8], "little")
    header = json.loads(content[8:8 + size])
    meta = header.get("__metadata__")
    saved = meta.get(ORDER_KEY) if isinstance(meta, dict) else None
    if isinstance(saved, str):
        with contextlib.suppress(ValueError):
            names = json.loads(saved)
            if isinstance(names, list) and sorted(names) == sorted(entries):
                return names
    return sorted(entries, key=lambda name: (header[name]["data_offsets"][0], name))


# The serializer lays tensors out by dtype (for alignment), not in the map's order; the
# order of the map saved goes into the header's metadata under this key, so that
# tensor/load-safetensors gives the names back as they were saved.
ORDER_KEY = "gene-jit.order"


@builtin("save-safetensors", ns="tensor")
def save_safetensors(path: Any, tensors: Any, metadata: Any = None) -> None:
    """`(tensor/save-safetensors "w.safetensors" {^w t ...} [^metadata {...}])`."""
    st = import_library("safetensors", "tensor/save-safetensors")
    file = _path(path, "tensor/save-safetensors")
    if not isinstance(tensors, dict):
        raise GeneTypeError(
            f"tensor/save-safetensors: expected a map of tensors, got {shown(tensors)}")
    meta = _metadata(metadata)
    folder = os.path.dirname(os.path.abspath(file))
    if not os.path.isdir(folder):
        raise TensorFileError(f"tensor/save-safetensors: cannot write {file}: no such folder "
                              f"{folder}")
    held: list[np.ndarray] = []  # the specs point into these until the file is written
    specs: dict[str, Any] = {}
    for name, t in tensors.items():
        tensor = _tensor(t, f"tensor/save-safetensors: '{name}'")
        data = _c_order(tensor.storage_host())
        held.append(data)
        specs[name] = st.TensorSpec(dtype=_GENE_TO_ST[tensor.dtype], shape=list(data.shape),
                                    data_ptr=data.ctypes.data, data_len=data.nbytes)
    meta = {**(meta or {}), ORDER_KEY: json.dumps(list(specs))}
    try:
        st.serialize_file(specs, file, meta)
    except Exception as exc:
        raise TensorFileError(f"tensor/save-safetensors: cannot write {file} ({exc})") from exc
    del held


def _path(path: Any, entry: str) -> str:
    if isinstance(path, os.PathLike):  # a pathlib.Path from Python code
        path = os.fspath(path)
    if not isinstance(path, str):
        raise GeneTypeError(f"{entry}: expected a file name, got {_described(path)}")
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
