"""The CPython and NumPy object layouts that native entries read, per Python version,
checked against the running interpreter before any native code uses them.

Entry trampolines (trampoline.py) unbox arguments by reading object fields directly:
the type pointer, a small int's digit, a float's value, a NumPy array's data, shape,
strides and dtype. Those offsets are not a stable ABI: CPython 3.12 changed how an int
stores its sign and size, and made True, False and None immortal. `LAYOUTS` holds what
each supported version (3.11 to 3.13, the ones pyproject.toml allows) uses, and
`check()` reads known objects through ctypes with those offsets: any disagreement, an
unknown version or a build with another object header (free-threaded, 32-bit, another
implementation) turns tier 1 off with the reason, so wrong offsets are never used.
This module imports no LLVM.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass
from functools import cache
from typing import Any

OB_TYPE = 8  # PyObject: ob_refcnt, then ob_type (the object header is 16 bytes)
FLOAT_VALUE = 16  # PyFloatObject.ob_fval
LONG_SIZE = 16  # PyLongObject: ob_size (3.11) or long_value.lv_tag (3.12+)
LONG_DIGIT = 24  # the first 30-bit digit
# NumPy's PyArrayObject_fields and PyArray_Descr (the same in NumPy 1.x and 2.x)
ND_DATA, ND_NDIM, ND_DIMS, ND_STRIDES, ND_DESCR, ND_FLAGS = 16, 24, 32, 40, 56, 64
NPY_ARRAY_WRITEABLE = 0x0400
DESCR_BYTEORDER, DESCR_TYPE_NUM = 26, 28


@dataclass(frozen=True)
class Layout:
    """How one CPython version stores what the entries read.

    `tagged_ints`: an int's size field is `lv_tag` (digit count << 3 | sign: 0 positive,
    1 zero, 2 negative, 3.12+), not a signed digit count (`ob_size`, 3.11).
    `immortal_singletons`: True, False and None are immortal (3.12+), so returning one
    takes no reference; before that the entry increments its count."""

    tagged_ints: bool
    immortal_singletons: bool


LAYOUTS: dict[tuple[int, int], Layout] = {
    (3, 11): Layout(tagged_ints=False, immortal_singletons=False),
    (3, 12): Layout(tagged_ints=True, immortal_singletons=True),
    (3, 13): Layout(tagged_ints=True, immortal_singletons=True),
}


class LayoutMismatch(Exception):
    """The running interpreter is not laid out as `LAYOUTS` says."""


def _word(address: int) -> int:
    return ctypes.c_int64.from_address(address).value


def small_int(layout: Layout, obj: int) -> int | None:
    """What the entry's inline path reads from the int `obj`: its value when it has at
    most one digit, else None (the entry then calls PyLong_AsLongLongAndOverflow)."""
    base = id(obj)
    size = _word(base + LONG_SIZE)
    digit = ctypes.c_uint32.from_address(base + LONG_DIGIT).value
    if layout.tagged_ints:
        if size >= 2 << 3:
            return None
        return digit * (1 - (size & 3))
    if size + 1 > 2 or size + 1 < 0:
        return None
    return digit * size


def _expect(what: str, got: Any, want: Any) -> None:
    if got != want:
        raise LayoutMismatch(f"{what}: read {got!r}, expected {want!r}")


def _check_objects(layout: Layout) -> None:
    _expect("object header size", object.__basicsize__, 16)
    _expect("int digit size", (sys.int_info.bits_per_digit, sys.int_info.sizeof_digit), (30, 4))
    x = float("1.25")
    _expect("float type pointer", ctypes.c_void_p.from_address(id(x) + OB_TYPE).value, id(float))
    _expect("float value", ctypes.c_double.from_address(id(x) + FLOAT_VALUE).value, 1.25)
    for v in (0, 1, -1, 7, -7, 2**30 - 1, -(2**30 - 1), int("12345")):
        _expect(f"int {v}", small_int(layout, v), v)
    for v in (2**30, -(2**30), 2**62, -(2**63)):
        _expect(f"int {v} (more than one digit)", small_int(layout, v), None)
    api = ctypes.pythonapi
    for name, obj in (("_Py_TrueStruct", True), ("_Py_FalseStruct", False), ("_Py_NoneStruct", None)):
        _expect(name, ctypes.addressof(ctypes.c_char.in_dll(api, name)), id(obj))
        if layout.immortal_singletons:
            # immortal: the low 32 bits of the count are negative as an int32
            refcnt = ctypes.c_int32.from_address(id(obj)).value
            _expect(f"{name} is immortal", refcnt < 0, True)


def check_numpy(np: Any) -> None:
    """Read a known array's fields at the offsets the entries use."""
    a = np.arange(6, dtype=np.float64).reshape(2, 3)[:, ::2]
    base = id(a)
    _expect("ndarray data", ctypes.c_void_p.from_address(base + ND_DATA).value, a.ctypes.data)
    _expect("ndarray ndim", ctypes.c_int32.from_address(base + ND_NDIM).value, 2)
    dims = ctypes.c_void_p.from_address(base + ND_DIMS).value or 0
    strides = ctypes.c_void_p.from_address(base + ND_STRIDES).value or 0
    _expect("ndarray shape", (_word(dims), _word(dims + 8)), a.shape)
    _expect("ndarray strides", (_word(strides), _word(strides + 8)), a.strides)
    descr = ctypes.c_void_p.from_address(base + ND_DESCR).value or 0
    _expect("ndarray dtype", descr, id(a.dtype))
    _expect("dtype number", ctypes.c_int32.from_address(descr + DESCR_TYPE_NUM).value, a.dtype.num)
    _expect("dtype byte order", chr(ctypes.c_char.from_address(descr + DESCR_BYTEORDER).value[0]),
            a.dtype.byteorder)
    flags = ctypes.c_int32.from_address(base + ND_FLAGS)
    a.flags.writeable = False
    _expect("ndarray read-only flag", flags.value & NPY_ARRAY_WRITEABLE, 0)
    a.flags.writeable = True
    _expect("ndarray writeable flag", flags.value & NPY_ARRAY_WRITEABLE, NPY_ARRAY_WRITEABLE)


@cache
def current() -> tuple[Layout | None, str]:
    """The layout of the running interpreter, or None and the reason tier 1 is off."""
    version = sys.version_info[:2]
    where = f"Python {version[0]}.{version[1]}"
    if sys.implementation.name != "cpython":
        return None, f"tier 1 needs CPython, not {sys.implementation.name}"
    if sys.maxsize != 2**63 - 1:
        return None, "tier 1 needs a 64-bit Python"
    if "t" in getattr(sys, "abiflags", ""):  # (sysconfig would say too, in milliseconds)
        return None, f"tier 1 does not support the free-threaded build of {where}"
    layout = LAYOUTS.get(version)
    if layout is None:
        known = ", ".join(f"{a}.{b}" for a, b in LAYOUTS)
        return None, f"tier 1 does not know the object layout of {where} (it supports {known})"
    try:
        _check_objects(layout)
    except LayoutMismatch as exc:
        return None, f"tier 1 is off: the object layout of {where} is not the expected one ({exc})"
    return layout, ""


@cache
def numpy_reason() -> str:
    """Why entries cannot take NumPy arrays here ("" when they can). Checked on the
    first entry that takes an array, so that NumPy is imported only by programs that
    use it."""
    import numpy

    try:
        check_numpy(numpy)
    except LayoutMismatch as exc:
        return f"tier 1 does not read this NumPy's arrays ({exc})"
    return ""


def require_numpy() -> None:
    """Raise NotTypeable (the function stays in tier 0) if arrays cannot be read."""
    reason = numpy_reason()
    if reason:
        from gene_jit.ir.builder import NotTypeable

        raise NotTypeable(reason)


def require() -> Layout:
    """The running interpreter's layout; raises `Unsupported` (with the reason) if tier 1
    cannot run on it."""
    layout, reason = current()
    if layout is None:
        raise Unsupported(reason)
    return layout


class Unsupported(Exception):
    """Tier 1 cannot run on this interpreter; the message says why."""
