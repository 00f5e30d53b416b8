"""Raw memory from Gene: buffers, typed arrays, reading and writing through pointers.

`new(T, n)` and `buffer(n | text)` make a `Buffer` that owns zeroed memory, freed when the
buffer is dropped or at `free`, whichever comes first (use after `free` is a Gene error).
`read` / `write` / `array` / `string` / `cast` work on any address, as C would: they
trust the address, as C code does, but never accept a non-pointer value.
"""

from __future__ import annotations

import ctypes
from typing import Any

from gene_jit.ffi.callbacks import Callback
from gene_jit.ffi.structs import FreedError, StructValue
from gene_jit.ffi.types import (
    NULL,
    FfiType,
    address_of,
    ctype_of,
    describe,
    from_c,
    to_c,
)
from gene_jit.runtime.errors import GeneError, GeneIndexError, GeneTypeError


class Buffer:
    """Owned, zeroed memory holding `length` items of type `elem`."""

    __slots__ = ("_c", "address", "elem", "length", "__weakref__")

    def __init__(self, elem: FfiType, length: int) -> None:
        if elem.kind in ("void", "struct", "array"):
            raise GeneTypeError(f"ffi/new: cannot make an array of :{elem.name} items")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise GeneTypeError(
                f"ffi/new: length must be a non-negative int, got {describe(length)}"
            )
        self.elem = elem
        self.length = length
        self._c: Any = (elem.field_ctype * max(length, 1))()
        self.address: int = ctypes.addressof(self._c)

    @property
    def size(self) -> int:
        return self.elem.size * self.length

    def _live(self) -> Any:
        if self._c is None:
            raise FreedError("buffer used after ffi/free")
        return self._c

    def _index(self, i: Any) -> int:
        if isinstance(i, bool) or not isinstance(i, int):
            raise GeneTypeError(f"buffer index must be an int, got {describe(i)}")
        if not -self.length <= i < self.length:
            raise GeneIndexError(f"buffer index {i} out of range 0..{self.length - 1}")
        return i % self.length

    def __getitem__(self, i: Any) -> Any:
        return from_c(self.elem, self._live()[self._index(i)])

    def __setitem__(self, i: Any, value: Any) -> None:
        c = self._live()
        idx = self._index(i)
        try:
            c[idx] = to_c(self.elem, value)
        except TypeError as exc:
            raise GeneTypeError(
                f"buffer item must be :{self.elem.name}, got {describe(value)} ({exc})"
            ) from None

    def __len__(self) -> int:
        return self.length

    __gene_type__ = "ffi-buffer"

    def __gene_repr__(self) -> str:
        return repr(self)

    def to_list(self) -> list[Any]:
        c = self._live()
        return [from_c(self.elem, c[i]) for i in range(self.length)]

    def to_bytes(self) -> bytes:
        return ctypes.string_at(self.address, self.size) if self._live() is not None else b""

    def numpy(self) -> Any:
        """A NumPy view of the memory (shares it; valid while the buffer lives)."""
        import numpy as np

        return np.ctypeslib.as_array(self._live())[: self.length]

    def free(self) -> None:
        self._c = None
        self.address = 0

    def __repr__(self) -> str:
        if self._c is None:
            return "<ffi buffer freed>"
        return f"<ffi buffer :{self.elem.name} x{self.length} at {self.address:#x}>"


def new(spec: Any, *args: Any, **fields: Any) -> Any:
    """`(ffi/new S ^field v ...)` a struct; `(ffi/new :int32 n)` n zeroed items."""
    cls = spec if isinstance(spec, type) and issubclass(spec, StructValue) else None
    if cls is None:
        t = ctype_of(spec)
        if t.kind == "struct":
            cls = t.target
        else:
            if fields or len(args) > 1:
                raise GeneTypeError("ffi/new :T n takes a type and a count")
            return Buffer(t, args[0] if args else 1)
    if len(args) == 1 and isinstance(args[0], dict):
        fields = {**args[0], **fields}
    elif args:
        raise GeneTypeError(f"ffi/new {cls.name}: give fields as a map or ^name value props")
    return cls(**fields)


def buffer(size_or_text: Any) -> Buffer:
    """`(ffi/buffer n)` n zeroed bytes; `(ffi/buffer "text")` a NUL-terminated UTF-8 copy."""
    if isinstance(size_or_text, (str, bytes)):
        data = size_or_text.encode() if isinstance(size_or_text, str) else size_or_text
        buf = Buffer(ctype_of("uint8"), len(data) + 1)
        ctypes.memmove(buf.address, data, len(data))
        return buf
    return Buffer(ctype_of("uint8"), size_or_text)


def free(value: Any) -> None:
    """Release what `value` owns: a struct, a buffer, a callback; an address from C is
    passed to libc `free` (for memory a C API says to release with `free`)."""
    if isinstance(value, (StructValue, Buffer, Callback)):
        value.free()
        return
    if value is None or value is NULL:
        return
    if isinstance(value, int) and not isinstance(value, bool):
        _libc_free()(value)
        return
    raise GeneTypeError(f"ffi/free: cannot free {describe(value)}")


_FREE: Any = None


def _libc_free() -> Any:
    global _FREE
    if _FREE is None:
        _FREE = ctypes.CDLL(None).free
        _FREE.argtypes = [ctypes.c_void_p]
        _FREE.restype = None
    return _FREE


def _addr(value: Any, who: str) -> int:
    try:
        addr = address_of(value)
    except TypeError as exc:
        raise GeneTypeError(f"{who}: expected a pointer, got {describe(value)} ({exc})") from None
    if not addr:
        raise GeneTypeError(f"{who}: NULL pointer")
    return addr


def addressof(value: Any) -> int | None:
    """The address of a struct, buffer, callback or array, as an int (nil for NULL)."""
    try:
        return address_of(value)
    except TypeError as exc:
        raise GeneTypeError(f"ffi/addressof: {describe(value)} has no address ({exc})") from None


def string(pointer: Any, length: Any = None) -> str | None:
    """The UTF-8 text at `pointer` (to its NUL, or `length` bytes); nil for NULL."""
    if pointer is None or pointer is NULL or pointer == 0:
        return None
    if isinstance(pointer, str):
        return pointer
    addr = _addr(pointer, "ffi/string")
    if length is None:
        if isinstance(pointer, Buffer):  # stop at the end of the buffer even without a NUL
            raw = ctypes.string_at(addr, pointer.size).split(b"\0", 1)[0]
        else:
            raw = ctypes.string_at(addr)
    else:
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise GeneTypeError(
                f"ffi/string: length must be a non-negative int, got {describe(length)}"
            )
        raw = ctypes.string_at(addr, length)
    return raw.decode("utf-8", "replace")


def sizeof(spec: Any) -> int:
    if isinstance(spec, (StructValue, Buffer)):
        return int(spec.size)
    return ctype_of(spec).size


def read(pointer: Any, spec: Any, index: Any = 0) -> Any:
    """The `index`-th value of type `spec` at `pointer`."""
    t = ctype_of(spec)
    addr = _addr(pointer, "ffi/read") + _offset(t, index, "ffi/read")
    if t.kind == "struct":
        return t.target.at(addr)
    return from_c(t, t.field_ctype.from_address(addr).value)


def write(pointer: Any, spec: Any, value: Any, index: Any = 0) -> None:
    """Store `value` as the `index`-th item of type `spec` at `pointer`."""
    t = ctype_of(spec)
    if t.kind in ("struct", "array", "callback", "string"):
        raise GeneTypeError(f"ffi/write: cannot write :{t.name} (set struct fields instead)")
    addr = _addr(pointer, "ffi/write") + _offset(t, index, "ffi/write")
    try:
        t.field_ctype.from_address(addr).value = to_c(t, value)
    except TypeError as exc:
        raise GeneTypeError(
            f"ffi/write: expected :{t.name}, got {describe(value)} ({exc})"
        ) from None


def array(pointer: Any, spec: Any, length: Any) -> list[Any]:
    """`length` values of type `spec` starting at `pointer`, as a Gene array."""
    t = ctype_of(spec)
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise GeneTypeError(f"ffi/array: length must be a non-negative int, got {describe(length)}")
    if length == 0:
        return []
    addr = _addr(pointer, "ffi/array")
    if t.kind == "struct":
        return [t.target.at(addr + i * t.size) for i in range(length)]
    items = (t.field_ctype * length).from_address(addr)
    return [from_c(t, v) for v in items]


def cast(pointer: Any, spec: Any) -> Any:
    """View the memory at `pointer` as struct `spec`."""
    t = ctype_of(spec)
    if t.kind != "struct":
        raise GeneTypeError(f"ffi/cast: expected a struct type, got :{t.name}")
    try:
        return t.target.at(pointer)
    except GeneError:
        raise
    except TypeError as exc:
        raise GeneTypeError(f"ffi/cast: {exc}") from None


def _offset(t: FfiType, index: Any, who: str) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        raise GeneTypeError(f"{who}: index must be an int, got {describe(index)}")
    if t.kind == "void":
        raise GeneTypeError(f"{who}: cannot read :void")
    return index * t.size
