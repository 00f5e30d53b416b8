"""IR types: immutable values naming what a tier-1 value is.

Scalars (i64, f64, bool), nil (the value of statements and of functions that return
nothing), raw pointers, 1-D and 2-D numeric arrays (a NumPy buffer seen as data pointer,
shape and byte strides) and references to native functions. `type_of_value` maps a
Python runtime value to its IR type, or None when tier 1 cannot take it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Kind(Enum):
    I64 = "i64"
    F64 = "f64"
    BOOL = "bool"
    NIL = "nil"
    PTR = "ptr"
    ARRAY = "array"
    FNREF = "fnref"
    STRUCT = "struct"  # a C struct by value (gene_jit.ir.ffi_calls.StructType)
    # element kinds of arrays that tier 1 hands to kernels and C as data pointers but
    # never reads or writes itself (tier 0 computes in NumPy's float32 there)
    F32 = "f32"
    U8 = "u8"
    U16 = "u16"


@dataclass(frozen=True, slots=True)
class Type:
    """An IR type. `elem`/`ndim` are set for arrays; `sig` for native function refs."""

    kind: Kind
    elem: Type | None = None
    ndim: int = 0
    sig: tuple[Type, ...] = ()  # for FNREF: (ret, *params)

    def __str__(self) -> str:
        if self.kind is Kind.ARRAY:
            return f"array<{self.elem},{self.ndim}>"
        if self.kind is Kind.FNREF:
            ret, *params = self.sig
            return f"fn({', '.join(map(str, params))}) -> {ret}"
        return self.kind.value

    @property
    def is_numeric(self) -> bool:
        return self.kind in (Kind.I64, Kind.F64)

    @property
    def is_scalar(self) -> bool:
        return self.kind in (Kind.I64, Kind.F64, Kind.BOOL)


I64 = Type(Kind.I64)
F64 = Type(Kind.F64)
BOOL = Type(Kind.BOOL)
NIL = Type(Kind.NIL)
PTR = Type(Kind.PTR)
F32 = Type(Kind.F32)
U8 = Type(Kind.U8)
U16 = Type(Kind.U16)
# array elements that are passed along as buffers only (no element loads or stores)
BUFFER_ONLY_ELEMS = frozenset({F32, U8, U16})

# NumPy dtype names that tier 1 takes, with their IR element types.
ARRAY_ELEMS: dict[str, Type] = {"float64": F64, "int64": I64, "float32": F32, "uint8": U8,
                                "uint16": U16}


def array(elem: Type, ndim: int) -> Type:
    if ndim not in (1, 2) or elem not in ARRAY_ELEMS.values():
        raise ValueError(f"unsupported array type {elem} x{ndim}")
    return Type(Kind.ARRAY, elem, ndim)


def fnref(ret: Type, params: tuple[Type, ...]) -> Type:
    return Type(Kind.FNREF, sig=(ret, *params))


def type_of_value(value: Any) -> Type | None:
    """The IR type of a Python value passed to a compiled function, or None."""
    cls = type(value)
    if cls is int:
        return I64 if -(2**63) <= value < 2**63 else None
    if cls is float:
        return F64
    if cls is bool:
        return BOOL
    if cls.__name__ == "ndarray" and cls.__module__ == "numpy":
        elem = ARRAY_ELEMS.get(value.dtype.name)
        if elem is None or value.ndim not in (1, 2) or not value.dtype.isnative or not value.flags.writeable:
            return None  # (compiled code may store into an array it takes)
        return array(elem, value.ndim)
    return None


def signature_of(args: tuple[Any, ...]) -> tuple[Type, ...] | None:
    """The tuple of IR types of `args`, or None if any of them is not typeable."""
    out = []
    for arg in args:
        t = type_of_value(arg)
        if t is None:
            return None
        out.append(t)
    return tuple(out)


def type_key(value: Any) -> Any:
    """A cheap hashable key for the type of a value (what tier 0 records per call)."""
    cls = type(value)
    if cls.__name__ == "ndarray":
        return (cls, value.dtype.name, value.ndim)
    return cls
