"""Raw memory from Gene: buffers, typed arrays, reading and writing through pointers.

`new(T, n)` and `buffer(n | text)` make a `Buffer` that owns zeroed memory, freed when the
buffer is dropped or at `free`, whichever comes first (use after `free` is a Gene error).
`read` / `write` / `array` / `string` / `cast` take a pointer (never an int: `ffi/ptr`
makes one), a buffer or a struct. Where the memory's extent is known (a buffer, a
struct, a pointer `ffi/addressof` took from one) every item read or written must lie
inside it, and a buffer of typed items is read and written only as items of that
layout (a byte buffer, `ffi/buffer`, may be reinterpreted); memory of unknown extent (an
address C gave back, or `ffi/ptr` made) must lie in the process's mappings, readable to
read and writable to write (gene_jit/ffi/memmap.py).
"""

from __future__ import annotations

import ctypes
from typing import Any

from gene_jit.ffi import memmap
from gene_jit.ffi.callbacks import Callback
from gene_jit.ffi.structs import FreedError, StructValue
from gene_jit.ffi.types import (
    NOT_AN_ADDRESS,
    NULL,
    POINTER_KINDS,
    FfiType,
    Pointer,
    address_of,
    ctype_of,
    describe,
    extent_of,
    from_c,
    to_c,
)
from gene_jit.runtime.errors import GeneError, GeneIndexError, GeneTypeError


class Buffer:
    """Owned, zeroed memory holding `length` items of type `elem`."""

    __slots__ = ("_c", "address", "elem", "length", "_keep", "__weakref__")

    def __init__(self, elem: FfiType, length: int, who: str = "ffi/new") -> None:
        if elem.kind in ("void", "struct", "array"):
            raise GeneTypeError(f"{who}: cannot make an array of :{elem.name} items")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise GeneTypeError(
                f"{who}: length must be a non-negative int, got {describe(length)}"
            )
        self.elem = elem
        self.length = length
        try:
            self._c: Any = (elem.field_ctype * max(length, 1))()
        except (MemoryError, OverflowError):
            raise GeneError(
                f"{who}: cannot allocate {length} items of :{elem.name} "
                f"({length * elem.size} bytes): not enough memory"
            ) from None
        self.address: int = ctypes.addressof(self._c)
        # what stored pointers point into, by item address: alive while this memory is
        self._keep: dict[int, Any] = {}

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
            null = (value is None or value is NULL) and self.elem.kind in POINTER_KINDS
            c[idx] = None if null else to_c(self.elem, value)
            remember(self, self.address + idx * self.elem.size, self.elem, value)
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
        self._keep = {}

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
        buf = Buffer(ctype_of("uint8"), len(data) + 1, "ffi/buffer")
        ctypes.memmove(buf.address, data, len(data))
        return buf
    return Buffer(ctype_of("uint8"), size_or_text, "ffi/buffer")


def free(value: Any) -> None:
    """Release what `value` owns: a struct, a buffer, a callback; a pointer C returned is
    passed to libc `free` (for memory a C API says to release with `free`), once: the
    pointer is then spent, and using it again is an error."""
    if isinstance(value, (StructValue, Buffer)) and value._c is None:
        # as for a pointer: a second free is a mistake that C would not report
        kind = "buffer" if isinstance(value, Buffer) else f"{value.name} struct"
        raise FreedError(f"ffi/free: this {kind} was already freed")
    if isinstance(value, (StructValue, Buffer, Callback)):
        value.free()
        return
    if value is None or value is NULL:
        return
    if type(value) is Pointer:
        _free_pointer(value)
        return
    why = f" ({NOT_AN_ADDRESS})" if isinstance(value, int) and not isinstance(value, bool) else ""
    raise GeneTypeError(f"ffi/free: cannot free {describe(value)}{why}")


def _free_pointer(p: Pointer) -> None:
    if not p.address:
        raise FreedError("ffi/free: this pointer was already freed")
    if p.cast:
        raise GeneTypeError(
            "ffi/free: a pointer made by ffi/ptr is not known to come from malloc; free the "
            "pointer C returned"
        )
    if p.owner is not None:
        raise GeneTypeError(
            "ffi/free: this pointer points into memory Gene owns (a buffer, struct or "
            "symbol); free that value instead"
        )
    if not memmap.may_be_heap(p.address):
        raise GeneTypeError(
            "ffi/free: the pointer is not to heap memory; only memory that C allocated with "
            "malloc can be freed"
        )
    _libc_free()(p.address)
    p.address = 0


_FREE: Any = None


def _libc_free() -> Any:
    global _FREE
    if _FREE is None:
        _FREE = ctypes.CDLL(None).free
        _FREE.argtypes = [ctypes.c_void_p]
        _FREE.restype = None
    return _FREE


def _addr(value: Any, who: str) -> int:
    """The address behind a pointer argument of `who` (never an int, never NULL)."""
    if isinstance(value, Callback):
        raise GeneTypeError(f"{who}: expected a pointer, got {describe(value)} (code, not data)")
    try:
        addr = address_of(value)
    except TypeError as exc:
        raise GeneTypeError(f"{who}: expected a pointer, got {describe(value)} ({exc})") from None
    if not addr:
        raise GeneTypeError(f"{who}: expected a pointer, got {describe(value)} (NULL)")
    return addr


def _holds(value: Any) -> FfiType | None:
    """The element type of a typed buffer, or of a pointer into one (None for raw bytes
    and everything else)."""
    elem = value.elem if isinstance(value, (Buffer, Pointer)) else None
    return elem if elem is not None and elem.size > 1 else None


def _same_layout(a: FfiType, b: FfiType) -> bool:
    if a.kind in POINTER_KINDS and b.kind in POINTER_KINDS:
        return True
    return (a.kind, a.size, a.signed) == (b.kind, b.size, b.signed)


def _items(value: Any, t: FfiType, index: Any, count: int, who: str, perm: str = "r") -> int:
    """The address of items index..index+count-1 of type `t` at `value`, after checking
    that they lie inside the memory `value` is known to span (a buffer, a struct, a
    pointer taken from either), and that a typed buffer holds items of `t`'s layout.
    Memory of unknown extent (an address C gave back, or `ffi/ptr` made) must lie in
    mappings of the process with permission `perm` (`"r"`, or `"w"` to write)."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise GeneTypeError(f"{who}: index must be an int, got {describe(index)}")
    if t.kind == "void":
        raise GeneTypeError(f"{who}: cannot read :void")
    addr = _addr(value, who)
    held = _holds(value)
    if held is not None and t.kind != "struct" and not _same_layout(held, t):
        raise GeneTypeError(
            f"{who}: the buffer holds :{held.name} items, not :{t.name} "
            "(use a byte buffer, (ffi/buffer n), to reinterpret memory)"
        )
    extent = extent_of(value)
    if extent is not None:
        end = (index + count) * t.size
        if index < 0 or end > extent:
            last = f"..{index + count - 1}" if count > 1 else ""
            raise GeneIndexError(
                f"{who}: item {index}{last} of :{t.name} ({t.size} bytes each) is outside "
                f"{describe(value)}, which spans {extent} bytes"
            )
    else:
        memmap.check_range(addr + index * t.size, count * t.size, perm, f"{who}: argument 1")
    return addr + index * t.size


def _keeper(value: Any) -> Any:
    """What keeps the memory behind `value` alive (its storage, not the value, so that
    `ffi/free` of a buffer cannot pull memory from under a view or pointer)."""
    if type(value) is Pointer:
        return value.owner
    return getattr(value, "_c", None)


def addressof(value: Any) -> int | None:
    """The address of a struct, buffer, callback or array, as an int (nil for NULL)."""
    try:
        return address_of(value)
    except TypeError as exc:
        raise GeneTypeError(f"ffi/addressof: {describe(value)} has no address ({exc})") from None


def pointer_to(value: Any) -> Pointer | None:
    """`(ffi/addressof x)`: a pointer to a struct, buffer, callback or array, which keeps
    that memory alive and knows its extent."""
    if type(value) is Pointer:
        return value
    if isinstance(value, Callback):  # code that C may not write into or read as data
        raise GeneTypeError("ffi/addressof: a callback is code, not data; pass it where a "
                            "callback parameter is declared")
    addr = addressof(value)
    if not addr:
        return None
    elem = value.elem if isinstance(value, Buffer) else None
    return Pointer(addr, _keeper(value) or value, extent_of(value), elem)


def string(pointer: Any, length: Any = None) -> str | None:
    """The UTF-8 text at `pointer` (to its NUL, or `length` bytes); nil for NULL."""
    if pointer is None or pointer is NULL:
        return None
    if isinstance(pointer, str):
        return pointer
    addr = _addr(pointer, "ffi/string")
    extent = extent_of(pointer)
    if length is None:
        if extent is not None:  # stop at the end of the memory even without a NUL
            raw = ctypes.string_at(addr, extent).split(b"\0", 1)[0]
        else:
            raw = _c_string(addr, "ffi/string: argument 1")
    else:
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise GeneTypeError(
                f"ffi/string: length must be a non-negative int, got {describe(length)}"
            )
        if extent is not None and length > extent:
            raise GeneIndexError(
                f"ffi/string: {length} bytes asked of {describe(pointer)}, which spans "
                f"{extent} bytes"
            )
        if extent is None:
            memmap.check_range(addr, length, "r", "ffi/string: argument 1")
        raw = ctypes.string_at(addr, length)
    return raw.decode("utf-8", "replace")


_CHUNK = 4096


def _c_string(addr: int, who: str) -> bytes:
    """The bytes at `addr` up to its NUL, read only from readable mappings: an address
    outside them, or text that runs off their end, is a Gene error."""
    have = memmap.accessible(addr, "r")
    if have < 0:  # no table to check against
        return ctypes.string_at(addr)
    if have == 0:
        memmap.check_range(addr, 1, "r", who)
    parts = []
    pos = 0
    while pos < have:
        chunk = ctypes.string_at(addr + pos, min(_CHUNK, have - pos))
        end = chunk.find(b"\0")
        if end >= 0:
            parts.append(chunk[:end])
            return b"".join(parts)
        parts.append(chunk)
        pos += len(chunk)
    raise GeneTypeError(
        f"{who}: the text at {addr:#x} has no NUL before the end of readable memory"
    )


def sizeof(spec: Any) -> int:
    if isinstance(spec, (StructValue, Buffer)):
        return int(spec.size)
    return ctype_of(spec).size


def read(pointer: Any, spec: Any, index: Any = 0) -> Any:
    """The `index`-th value of type `spec` at `pointer`."""
    t = ctype_of(spec)
    addr = _items(pointer, t, index, 1, "ffi/read")
    if t.kind == "struct":
        view = t.target.at(addr)
        return _kept(view, pointer)
    return from_c(t, t.field_ctype.from_address(addr).value, what="ffi/read")


def write(pointer: Any, spec: Any, value: Any, index: Any = 0) -> None:
    """Store `value` as the `index`-th item of type `spec` at `pointer`."""
    t = ctype_of(spec)
    if t.kind in ("struct", "array", "callback", "string"):
        raise GeneTypeError(f"ffi/write: cannot write :{t.name} (set struct fields instead)")
    addr = _items(pointer, t, index, 1, "ffi/write", "w")
    try:
        raw = None if value is None or value is NULL else to_c(t, value)
    except TypeError as exc:
        raise GeneTypeError(
            f"ffi/write: expected :{t.name}, got {describe(value)} ({exc})"
        ) from None
    if raw is None and t.kind not in POINTER_KINDS:
        raise GeneTypeError(f"ffi/write: expected :{t.name}, got nil")
    t.field_ctype.from_address(addr).value = raw
    remember(pointer, addr, t, value)


def remember(target: Any, addr: int, t: FfiType, value: Any) -> None:
    """A pointer stored into a buffer or struct keeps what it points into alive for as
    long as that memory holds it (C may read it later)."""
    keep = getattr(target, "_keep", None)
    if t.kind not in POINTER_KINDS or not isinstance(keep, dict):
        return
    if value is None or value is NULL:
        keep.pop(addr, None)
    else:
        keep[addr] = value


def array(pointer: Any, spec: Any, length: Any) -> list[Any]:
    """`length` values of type `spec` starting at `pointer`, as a Gene array."""
    t = ctype_of(spec)
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise GeneTypeError(f"ffi/array: length must be a non-negative int, got {describe(length)}")
    if length == 0:
        return []
    addr = _items(pointer, t, 0, length, "ffi/array")
    if t.kind == "struct":
        return [_kept(t.target.at(addr + i * t.size), pointer) for i in range(length)]
    items = (t.field_ctype * length).from_address(addr)
    return [from_c(t, v, what="ffi/array") for v in items]


def cast(pointer: Any, spec: Any) -> Any:
    """View the memory at `pointer` as struct `spec`."""
    t = ctype_of(spec)
    if t.kind != "struct":
        raise GeneTypeError(f"ffi/cast: expected a struct type, got :{t.name}")
    addr = _items(pointer, t, 0, 1, "ffi/cast")
    return _kept(t.target.at(addr), pointer)


def _kept(view: StructValue, source: Any) -> StructValue:
    """A struct view over a buffer's or struct's memory keeps that memory alive."""
    keeper = _keeper(source)
    if keeper is not None and not isinstance(source, StructValue):
        view._keep = {0: keeper}
    return view
