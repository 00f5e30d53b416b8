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
    raise GeneTypeError(
        f"unknown tensor dtype {shown(value)}: expected one of {', '.join(STORAGE)}"
    )


def shown(value: Any) -> str:
    """A Gene value in an error message, as Gene prints it (`:bogus`, `[-1 2]`, `"x"`)."""
    from gene_jit.runtime.printer import repr_

    if isinstance(value, Symbol):
        return f":{value.name}"
    text = repr_(value)
    return text if len(text) <= 60 else text[:57] + "..."


def from_numpy_dtype(dt: np.dtype) -> str:
    for name, storage in STORAGE.items():
        if storage == dt and name != "bf16":
            return name
    if dt == np.dtype(np.bool_):
        return "i32"
    raise GeneTypeError(f"tensors cannot hold NumPy dtype {dt}")


def f32_to_bf16(a: np.ndarray) -> np.ndarray:
    """float32 values -> bf16 bit patterns (uint16), rounding to nearest even."""
    bits = np.array(a, dtype=np.float32, order="C").view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    out = ((bits + rounding) >> 16).astype(np.uint16)
    # NaN must stay NaN (rounding could carry a NaN payload into infinity).
    return np.where(np.isnan(a), np.uint16(0x7FC0), out)


def bf16_to_f32(a: np.ndarray) -> np.ndarray:
    return (np.asarray(a, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def to_storage(a: Any, name: str) -> np.ndarray:
    """Values (any float/int array, nested lists of Python numbers) -> the storage array
    of dtype `name`, converted once from the values given (a float64 value never passes
    through float32 on its way to f64). Values out of a narrower type's range become
    inf, as a C cast does, without a NumPy warning."""
    with np.errstate(all="ignore"):
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
    """Result dtype of a binary op on tensors of dtypes `a` and `b`: NumPy's
    (`np.result_type`), so i32 with f32 is f64 as in NumPy; bf16 ranks as f16 does, and
    f16 with bf16 is f32 (neither holds the other)."""
    if a == b:
        return a
    if {a, b} == {"f16", "bf16"}:
        return "f32"
    np_a, np_b = (STORAGE["f16" if d == "bf16" else d] for d in (a, b))
    r = from_numpy_dtype(np.result_type(np_a, np_b))
    return "bf16" if r == "f16" and "bf16" in (a, b) else r


def promote_scalar(t: str, value: Any) -> str:
    """Result dtype of an op between a tensor of dtype `t` and a Python number (NumPy's
    rule for Python scalars: the tensor's dtype, except that a float with an int tensor
    gives f64, and an int too big for an i32 tensor gives i64)."""
    if isinstance(value, float):
        return t if t in FLOATS else "f64"
    if t == "i32" and not -(2**31) <= value < 2**31:
        return "i64"
    return t
