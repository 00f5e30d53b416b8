"""C structs: `ffi/defstruct`, struct values and their memory.

`defstruct(name, fields)` makes a Python class (a `StructValue` subclass) with the C
layout and alignment of its fields (ctypes computes it), nested structs and fixed arrays.
`S.size`, `S.ctype`, `S.fields` (name, type, offset) describe the layout for tier 1.

A struct value either owns its memory (`S(...)`, a struct returned by value) or views
memory it does not own (`S.at(address)`, a nested field, a pointer C returned). Owned
memory is released when the value is dropped or at `ffi/free`, whichever comes first;
using a freed struct is a Gene error, not a crash. Values stored into a struct that C
must see later (strings, callbacks, other structs by pointer) are kept alive while the
struct memory is: by the owning root struct, or, for memory C owns, until the same field
is overwritten.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from gene_jit.ffi.types import (
    NULL,
    POINTER_KINDS,
    STRUCTS,
    FfiType,
    address_of,
    ctype_of,
    describe,
    from_c,
    pointer_from,
    spec_name,
    to_c,
)
from gene_jit.runtime.errors import GeneError, GeneNameError, GeneTypeError
from gene_jit.runtime.printer import repr_

# Keep-alive tables for views over memory that no struct value owns, by field address.
_FOREIGN_KEEP: dict[int, Any] = {}

# Class attributes a field may not shadow as a Python attribute (item access still works).
_RESERVED = frozenset(
    {
        "size",
        "ctype",
        "fields",
        "name",
        "address",
        "get",
        "set",
        "to_map",
        "at",
        "own",
        "free",
        "c_value",
        "ffi_type",
        "pointer_type",
        "owned",
        "field",
    }
)


@dataclass(frozen=True)
class Field:
    """One field of a struct: its name, type, byte offset and size."""

    name: str
    type: FfiType
    offset: int
    size: int


class FreedError(GeneError):
    kind = "ffi error"


class StructValue:
    """A C struct seen from Gene. Subclasses are made by `defstruct`."""

    __slots__ = ("_c", "address", "owned", "_keep", "__weakref__")
    name: ClassVar[str] = "struct"
    size: ClassVar[int] = 0
    ctype: ClassVar[Any] = None
    fields: ClassVar[tuple[Field, ...]] = ()
    _by_name: ClassVar[dict[str, Field]] = {}
    _type: ClassVar[FfiType | None] = None
    _ptr_type: ClassVar[FfiType | None] = None

    def __init__(self, **values: Any) -> None:
        self._bind(self.ctype(), True, {})
        for key, value in values.items():
            self.set(key, value)

    def _bind(self, c: Any, owned: bool, keep: dict[int, Any]) -> None:
        self._c = c
        self.address = ctypes.addressof(c)
        self.owned = owned
        self._keep = keep

    @classmethod
    def own(cls, c: Any) -> StructValue:
        """Wrap a ctypes struct instance this value now owns (a struct returned by value)."""
        obj = cls.__new__(cls)
        obj._bind(c, True, {})
        return obj

    @classmethod
    def at(cls, address: Any) -> StructValue:
        """A view of the struct at `address` (memory owned elsewhere, by C usually; a
        plain int is taken as an address: Gene code reaches this through `ffi/cast`,
        which accepts only pointers)."""
        try:
            addr = address_of(address, loose=True)
        except TypeError:
            raise GeneTypeError(f"{cls.name}: not an address: {describe(address)}") from None
        if not addr:
            raise GeneTypeError(f"{cls.name}: cannot view a struct at NULL")
        obj = cls.__new__(cls)
        keep = getattr(address, "_keep", None)
        obj._bind(
            cls.ctype.from_address(addr), False, keep if isinstance(keep, dict) else _FOREIGN_KEEP
        )
        return obj

    @classmethod
    def _nested(cls, c: Any, keep: dict[int, Any]) -> StructValue:
        obj = cls.__new__(cls)
        obj._bind(c, False, keep)  # c's ctypes base object keeps the parent memory alive
        return obj

    @classmethod
    def ffi_type(cls) -> FfiType:
        assert cls._type is not None
        return cls._type

    @classmethod
    def pointer_type(cls) -> FfiType:
        assert cls._ptr_type is not None
        return cls._ptr_type

    @classmethod
    def field(cls, key: Any) -> Field:
        name = spec_name(key)
        f = cls._by_name.get(name) or cls._by_name.get(name.replace("-", "_"))
        if f is None:
            known = ", ".join(cls._by_name)
            raise GeneNameError(f"struct {cls.name} has no field {name} (fields: {known})")
        return f

    def c_value(self) -> Any:
        """The ctypes struct (for passing by value)."""
        c = self._c
        if c is None:
            raise FreedError(f"struct {self.name} used after ffi/free")
        return c

    def get(self, key: Any) -> Any:
        return _GETTERS[self.field(key).type.kind](self, self.field(key))

    def set(self, key: Any, value: Any) -> None:
        f = self.field(key)
        _SETTERS[f.type.kind](self, f, value)

    __getitem__ = get
    __setitem__ = set

    def __gene_get__(self, key: str) -> Any:
        """`s/field` in Gene."""
        return self.get(key)

    @classmethod
    def __gene_type_repr__(cls) -> str:
        """How the struct type prints: `(ffi/struct P 8 bytes [x :int y :int])`."""
        fields = " ".join(f"{f.name} :{f.type.name}" for f in cls.fields)
        return f"(ffi/struct {cls.name} {cls.size} bytes [{fields}])"

    def __gene_set__(self, key: str, value: Any) -> None:
        """`(s/field = v)` in Gene, checked as `ffi/set` checks it."""
        self.set(key, value)

    def __gene_repr__(self) -> str:
        return repr(self)

    def to_map(self) -> dict[str, Any]:
        """The fields as a Gene map (nested structs as maps, arrays as arrays)."""
        out: dict[str, Any] = {}
        for f in self.fields:
            value = self.get(f.name)
            if isinstance(value, StructValue):
                value = value.to_map()
            elif isinstance(value, list):
                value = [v.to_map() if isinstance(v, StructValue) else v for v in value]
            out[f.name] = value
        return out

    def free(self) -> None:
        """Release owned memory now; later use is a Gene error."""
        if not self.owned:
            raise GeneTypeError(
                f"ffi/free: this {self.name} struct views memory it does not own; "
                "free it with the library's own function"
            )
        self._c = None
        self.address = 0
        self._keep = {}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or self._c is None or other._c is None:
            return self is other
        return bytes(self._c) == bytes(other._c)

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        if self._c is None:
            return f"<{self.name} freed>"
        inner = " ".join(f"^{k} {repr_(v)}" for k, v in self.to_map().items())
        return f"({self.name} {inner})"


def _cfield(s: StructValue, f: Field) -> Any:
    c = s._c
    if c is None:
        raise FreedError(f"struct {s.name} used after ffi/free")
    return c


def _get_plain(s: StructValue, f: Field) -> Any:
    return from_c(f.type, getattr(_cfield(s, f), f.name), what=f"{s.name}.{f.name}")


def _get_struct(s: StructValue, f: Field) -> Any:
    return f.type.target._nested(getattr(_cfield(s, f), f.name), s._keep)


def _get_array(s: StructValue, f: Field) -> list[Any]:
    arr = getattr(_cfield(s, f), f.name)
    elem = f.type.target
    if elem.kind == "struct":
        return [elem.target._nested(arr[i], s._keep) for i in range(f.type.length)]
    return [from_c(elem, arr[i], what=f"{s.name}.{f.name}") for i in range(f.type.length)]


def _get_callback(s: StructValue, f: Field) -> Any:
    addr = getattr(_cfield(s, f), f.name)
    kept = s._keep.get(s.address + f.offset)
    if kept is not None and getattr(kept, "address", None) == addr:
        return kept
    return pointer_from(addr)


def _set_error(s: StructValue, f: Field, value: Any, why: str) -> GeneError:
    return GeneTypeError(f"{s.name}.{f.name} must be :{f.type.name}, got {describe(value)} ({why})")


def _set_plain(s: StructValue, f: Field, value: Any) -> None:
    c = _cfield(s, f)
    kept: Any = value
    try:
        if (value is None or value is NULL) and f.type.kind in POINTER_KINDS:
            raw = None  # a NULL field, as zeroed struct memory starts
        elif f.type.kind == "callback" and callable(value) and not isinstance(value, int):
            from gene_jit.ffi.callbacks import as_callback

            kept = as_callback(f.type.target, value)
            raw = kept.address
        else:
            raw = to_c(f.type, value)
    except (TypeError, GeneError) as exc:
        raise _set_error(s, f, value, str(exc)) from None
    if f.type.kind in ("string", "pointer", "buffer", "struct_ptr", "callback"):
        # C may read this pointer later: keep what it points to alive with the memory.
        key = s.address + f.offset
        if value is None or value is NULL or isinstance(value, int):
            s._keep.pop(key, None)
        else:
            s._keep[key] = kept
    setattr(c, f.name, raw)


def _set_struct(s: StructValue, f: Field, value: Any) -> None:
    c = _cfield(s, f)
    cls = f.type.target
    if isinstance(value, dict):
        view = cls._nested(getattr(c, f.name), s._keep)
        for k, v in value.items():
            view.set(k, v)
        return
    if type(value) is not cls:
        raise _set_error(s, f, value, f"expected a {cls.name} struct or a map")
    setattr(c, f.name, value.c_value())


def _set_array(s: StructValue, f: Field, value: Any) -> None:
    c = _cfield(s, f)
    if not isinstance(value, (list, tuple)) or len(value) > f.type.length:
        raise _set_error(s, f, value, f"expected an array of at most {f.type.length} items")
    arr = getattr(c, f.name)
    elem = f.type.target
    for i, item in enumerate(value):
        if elem.kind == "struct":
            view = elem.target._nested(arr[i], s._keep)
            for k, v in (item.to_map() if isinstance(item, StructValue) else item).items():
                view.set(k, v)
            continue
        try:
            arr[i] = to_c(elem, item)
        except (TypeError, GeneError) as exc:
            raise _set_error(s, f, value, f"item {i}: {exc}") from None


_GETTERS: dict[str, Callable[[StructValue, Field], Any]] = {
    "struct": _get_struct,
    "array": _get_array,
    "callback": _get_callback,
}
_SETTERS: dict[str, Callable[[StructValue, Field, Any], None]] = {
    "struct": _set_struct,
    "array": _set_array,
}
for _kind in ("int", "float", "bool", "pointer", "string", "buffer", "struct_ptr", "callback"):
    _GETTERS.setdefault(_kind, _get_plain)
    _SETTERS.setdefault(_kind, _set_plain)


def _property(f: Field) -> property:
    getter = _GETTERS[f.type.kind]
    setter = _SETTERS[f.type.kind]
    return property(lambda s: getter(s, f), lambda s, v: setter(s, f, v))


def _parse_fields(fields: Any) -> list[tuple[str, FfiType]]:
    """Fields as pairs `[("a", "int32"), ...]`, a flat Gene array `[a :int32 b :float]`,
    or a map `{a: :int32}`."""
    if isinstance(fields, dict):
        items = list(fields.items())
    elif (
        isinstance(fields, (list, tuple))
        and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in fields)
        and fields
        and not isinstance(fields[0][1], int)
    ):
        items = [tuple(p) for p in fields]
    elif isinstance(fields, (list, tuple)) and len(fields) % 2 == 0:
        items = [(fields[i], fields[i + 1]) for i in range(0, len(fields), 2)]
    else:
        raise GeneTypeError("ffi/defstruct: fields must be [name type name type ...]")
    out: list[tuple[str, FfiType]] = []
    for name, spec in items:
        t = ctype_of(spec)
        if t.kind == "void":
            raise GeneTypeError(f"ffi/defstruct: field {spec_name(name)} cannot be :void")
        out.append((spec_name(name), t))
    return out


def defstruct(name: Any, fields: Any, packed: bool = False) -> type[StructValue]:
    """Define struct `name` with C layout; returns its class (also known by name)."""
    sname = spec_name(name)
    parsed = _parse_fields(fields)
    names = [n for n, _ in parsed]
    if len(set(names)) != len(names):
        raise GeneTypeError(f"ffi/defstruct {sname}: duplicate field names")
    attrs: dict[str, Any] = {"_fields_": [(n, t.field_ctype) for n, t in parsed]}
    if packed:
        attrs["_pack_"] = 1
    ctype = type(sname, (ctypes.Structure,), attrs)
    layout = tuple(Field(n, t, getattr(ctype, n).offset, getattr(ctype, n).size) for n, t in parsed)
    ns: dict[str, Any] = {
        "__slots__": (),
        "name": sname,
        "size": ctypes.sizeof(ctype),
        "ctype": ctype,
        "fields": layout,
        "_by_name": {f.name: f for f in layout},
        "__gene_type__": sname,
    }
    for f in layout:
        if f.name not in _RESERVED and f.name.isidentifier() and not f.name.startswith("_"):
            ns[f.name] = _property(f)
    cls: type[StructValue] = type(sname, (StructValue,), ns)
    size = ctypes.sizeof(ctype)
    cls._type = FfiType(sname, "struct", ctype, size, target=cls, field_ctype=ctype)
    psize = ctypes.sizeof(ctypes.c_void_p)
    cls._ptr_type = FfiType(
        f"{sname}*",
        "struct_ptr",
        ctypes.c_void_p,
        psize,
        False,
        target=cls,
        field_ctype=ctypes.c_void_p,
    )
    STRUCTS[sname] = cls
    return cls
