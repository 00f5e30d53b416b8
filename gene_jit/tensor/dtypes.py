"""Tensor element types: Gene names, NumPy storage types, and bfloat16 emulation.

NumPy has no bfloat16, so a bf16 tensor stores its raw 16-bit patterns as uint16 (the
upper half of the float32 pattern) and converts on the way in and out; ops compute bf16
in float32 and round the result back (round to nearest even), as GPUs do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gene_jit.runtime.errors import GeneTypeError
from gene_jit.runtime.values import Symbol

# Gene dtype name -> NumPy storage dtype.
STORAGE: dict[str, np.dtype] = {
    "f32": np.dtype(np.float32),
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(np.uint16),
    "f64": np.dtype(np.float64),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
}
ALIASES = {
    "float32": "f32",
    "float16": "f16",
    "half": "f16",
    "bfloat16": "bf16",
    "float64": "f64",
    "double": "f64",
    "float": "f32",
    "int32": "i32",
    "int64": "i64",
    "int": "i64",
}
FLOATS = ("f32", "f16", "bf16", "f64")


def dtype_name(value: Any) -> str:
    """The canonical dtype name for a Gene value (`:f16`, "float32", ...)."""
    if value is None:
        return "f32"
    name = value.name if isinstance(value, Symbol) else value
    if isinstance(name, str):
        name = ALIASES.get(name, name)
        if name in STORAGE:
            return name
    raise GeneTypeError(f"unknown tensor dtype {value!r}: expected one of {', '.join(STORAGE)}")


def from_numpy_dtype(dt: np.dtype) -> str:
    for name, storage in STORAGE.items():
        if storage == dt and name != "bf16":
            return name
    if dt == np.dtype(np.bool_):
        return "i32"
    raise GeneTypeError(f"tensors cannot hold NumPy dtype {dt}")


def f32_to_bf16(a: np.ndarray) -> np.ndarray:
    """float32 values -> bf16 bit patterns (uint16), rounding to nearest even."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    out = ((bits + rounding) >> 16).astype(np.uint16)
    # NaN must stay NaN (rounding could carry a NaN payload into infinity).
    return np.where(np.isnan(a), np.uint16(0x7FC0), out)


def bf16_to_f32(a: np.ndarray) -> np.ndarray:
    return (np.ascontiguousarray(a, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def to_storage(a: np.ndarray, name: str) -> np.ndarray:
    """Values (any float/int array) -> the storage array of dtype `name`."""
    if name == "bf16":
        return f32_to_bf16(np.asarray(a, dtype=np.float32))
    return np.asarray(a, dtype=STORAGE[name])


def to_values(a: np.ndarray, name: str) -> np.ndarray:
    """The storage array of dtype `name` -> values NumPy can compute with."""
    return bf16_to_f32(a) if name == "bf16" else a


def compute_dtype(name: str) -> str:
    """The dtype an op computes in for inputs of dtype `name`."""
    return "f32" if name in ("f16", "bf16") else name


def promote(a: str, b: str) -> str:
    """Result dtype of a binary op (a float wins over an int; wider wins)."""
    if a == b:
        return a
    order = ["i32", "i64", "bf16", "f16", "f32", "f64"]
    if {a, b} == {"f16", "bf16"}:
        return "f32"
    return max(a, b, key=order.index)
