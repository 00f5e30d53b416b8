"""FFI type descriptors: how each C type named in `ffi/defun`, `ffi/defstruct` and
`ffi/callback` is laid out, and how Gene values cross into C and back.

A type spec is what a user writes: a name (`"int32"`, `:pointer`, a struct's name), a
struct class (by value), `("pointer", S)` / `[:pointer S]` for a pointer to a struct,
`("array", T, n)` / `[T n]` for a fixed array, or a `CallbackType`. `ctype_of(spec)`
resolves any of these into an immutable `FfiType`, which tier 1 reads (`kind`, `size`,
`signed`, `nullable`) to emit a direct LLVM call.

What may cross into C is decided by the declaration, never guessed from the value:
nil (or `ffi/null`) is NULL only for a parameter declared nullable (`:string?`,
`:pointer?`, `:buffer?`, `[:pointer? S]`, `[:callback? R [P...]]`, or `[:nullable T]`);
an address is a `Pointer` (what C gave back, or an explicit `(ffi/ptr n)`), never a
plain int; a callback is a function or an `ffi/callback` value. Bindings written in
Python that manage raw addresses themselves (gene_jit.llama) declare `addresses=True`
(`to_c(..., loose=True)`): ints are addresses and None is NULL there, and pointers come
back as ints.

Conversions come in two speeds: the generated wrappers in `core.py` inline the fast type
tests, and fall back to `to_c` here, which accepts every legal spelling and raises a
`GeneTypeError` naming the function, the argument position and the expected type.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from gene_jit.runtime.errors import GeneArityError, GeneError, GeneOverflowError, GeneTypeError
from gene_jit.runtime.values import Symbol


class _Missing:
    """Default of every generated wrapper parameter: a missing argument."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


class NullPointer:
    """`ffi/null`: the NULL pointer. Calling it, `(ffi/null)`, gives nil, which is also NULL."""

    __slots__ = ()

    def __call__(self) -> None:
        return None

    def __repr__(self) -> str:
        return "ffi/null"

    def __bool__(self) -> bool:
        return False


NULL = NullPointer()

ADDRESS_LIMIT = 2**64


class Pointer:
    """An address as a Gene value: what C returned for a pointer, or `(ffi/ptr n)`.
    NULL is never a Pointer (it is nil). `owner` keeps the memory it points into alive
    (a buffer or struct it came from), and `limit` is the number of bytes known to be
    valid from `address` (None when C gave the address and its extent is unknown);
    `elem` the item type of the typed buffer it points into, if any; `cast` whether
    `ffi/ptr` made it from an int (such a pointer is passed to C only when it points
    into mapped memory)."""

    __slots__ = ("address", "owner", "limit", "elem", "cast")

    def __init__(
        self,
        address: int,
        owner: Any = None,
        limit: int | None = None,
        elem: Any = None,
        cast: bool = False,
    ) -> None:
        self.address = address
        self.owner = owner
        self.limit = limit
        self.elem = elem
        self.cast = cast

    @property
    def _as_parameter_(self) -> int:
        """ctypes passes a Pointer as its address (Python code that gets one from a
        callback may hand it to ctypes functions such as `string_at`)."""
        return self.address

    def __index__(self) -> int:
        return self.address

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pointer) and other.address == self.address

    def __hash__(self) -> int:
        return hash(("ffi-pointer", self.address))

    def __repr__(self) -> str:
        return f"#<ffi pointer {self.address:#x}>"

    __gene_type__ = "ffi-pointer"

    def __gene_repr__(self) -> str:
        return repr(self)


def pointer_from(address: Any) -> Pointer | None:
    """A raw address C gave back (int or None) as a Gene value: a Pointer, or nil."""
    return Pointer(address) if address else None


@dataclass(frozen=True, eq=False)
class FfiType:
    """One C type. `kind` is one of void bool int float pointer string buffer struct
    struct_ptr array callback; `ctype` is its ctypes spelling as passed to a call
    (pointer-like kinds travel as `c_void_p`, strings as `c_char_p`)."""

    name: str
    kind: str
    ctype: Any
    size: int
    signed: bool = True
    target: Any = None  # struct class (struct, struct_ptr), element FfiType (array), CallbackType
    length: int = 0  # arrays
    lo: int = 0  # integer range, for checks before a call
    hi: int = 0
    field_ctype: Any = field(default=None)  # ctypes type inside a struct (arrays, structs)
    nullable: bool = False  # nil passes as NULL (pointer-like kinds only)
    points_to: int = 0  # bytes C may read or write behind a pointer to a scalar

    def __repr__(self) -> str:
        return f"<ffi type {self.name}>"


def _int_type(name: str, ctype: Any) -> FfiType:
    size = ctypes.sizeof(ctype)
    signed = ctype(-1).value == -1
    lo, hi = (
        (-(2 ** (8 * size - 1)), 2 ** (8 * size - 1) - 1) if signed else (0, 2 ** (8 * size) - 1)
    )
    return FfiType(name, "int", ctype, size, signed, lo=lo, hi=hi, field_ctype=ctype)


def _primitives() -> dict[str, FfiType]:
    ints = {
        "int8": ctypes.c_int8,
        "uint8": ctypes.c_uint8,
        "int16": ctypes.c_int16,
        "uint16": ctypes.c_uint16,
        "int32": ctypes.c_int32,
        "uint32": ctypes.c_uint32,
        "int64": ctypes.c_int64,
        "uint64": ctypes.c_uint64,
        "int": ctypes.c_int,
        "uint": ctypes.c_uint,
        "long": ctypes.c_long,
        "ulong": ctypes.c_ulong,
        "short": ctypes.c_short,
        "ushort": ctypes.c_ushort,
        "char": ctypes.c_byte,
        "uchar": ctypes.c_ubyte,
        "size_t": ctypes.c_size_t,
        "ssize_t": ctypes.c_ssize_t,
        "intptr": ctypes.c_ssize_t,
        "uintptr": ctypes.c_size_t,
    }
    table = {name: _int_type(name, ct) for name, ct in ints.items()}
    psize = ctypes.sizeof(ctypes.c_void_p)
    table.update(
        {
            "void": FfiType("void", "void", None, 0),
            "bool": FfiType("bool", "bool", ctypes.c_bool, 1, field_ctype=ctypes.c_bool),
            "float": FfiType("float", "float", ctypes.c_float, 4, field_ctype=ctypes.c_float),
            "double": FfiType("double", "float", ctypes.c_double, 8, field_ctype=ctypes.c_double),
            "pointer": FfiType(
                "pointer", "pointer", ctypes.c_void_p, psize, False, field_ctype=ctypes.c_void_p
            ),
            "string": FfiType(
                "string", "string", ctypes.c_char_p, psize, False, field_ctype=ctypes.c_char_p
            ),
            "buffer": FfiType(
                "buffer", "buffer", ctypes.c_void_p, psize, False, field_ctype=ctypes.c_void_p
            ),
            "callback": FfiType(
                "callback", "callback", ctypes.c_void_p, psize, False, field_ctype=ctypes.c_void_p
            ),
        }
    )
    return table


PRIMITIVES: dict[str, FfiType] = _primitives()
TYPE_NAMES = ", ".join(PRIMITIVES)

# Struct classes by name, so that a spec may name a struct defined earlier.
STRUCTS: dict[str, Any] = {}


def spec_name(spec: Any) -> str:
    """A user's spelling of a name or type (`:int32`, "int32", a symbol) as a string."""
    if isinstance(spec, Symbol):
        return spec.name
    if isinstance(spec, str):
        return spec[1:] if spec.startswith(":") else spec
    raise GeneTypeError(f"expected a name, got {describe(spec)}")


POINTER_KINDS = frozenset({"pointer", "string", "buffer", "struct_ptr", "callback"})
_NULLABLE: dict[int, FfiType] = {}  # by id of the plain type: one object per nullable type


def nullable_of(t: FfiType) -> FfiType:
    """The nullable variant of a pointer-like type (`:string?`), one object per type so
    that signatures compare by identity."""
    if t.nullable:
        return t
    if t.kind not in POINTER_KINDS:
        raise GeneTypeError(
            f"only pointer-like types can be nullable (:pointer? :string? :buffer?, "
            f"[:pointer? S], [:callback? R [P...]]), not :{t.name}"
        )
    got = _NULLABLE.get(id(t))
    if got is None:
        got = _NULLABLE[id(t)] = replace(t, name=f"{t.name}?", nullable=True)
    return got


def ctype_of(spec: Any) -> FfiType:
    """Resolve a type spec into an `FfiType` (raises GeneTypeError for unknown types)."""
    if isinstance(spec, FfiType):
        return spec
    as_type = getattr(spec, "ffi_type", None)
    if callable(as_type):  # struct classes and callback types describe themselves
        return as_type()
    if isinstance(spec, (str, Symbol)):
        name = spec_name(spec)
        if name.endswith("?") and len(name) > 1:
            return nullable_of(ctype_of(name[:-1]))
        if name in PRIMITIVES:
            return PRIMITIVES[name]
        if name in STRUCTS:
            return STRUCTS[name].ffi_type()
        raise GeneTypeError(f"unknown ffi type :{name} (known: {TYPE_NAMES}, or a struct)")
    if isinstance(spec, (list, tuple)) and spec:
        return _compound(list(spec))
    raise GeneTypeError(f"not an ffi type: {describe(spec)}")


def _compound(parts: list[Any]) -> FfiType:
    head = parts[0]
    head_name = spec_name(head) if isinstance(head, (str, Symbol)) else None
    if head_name == "nullable" and len(parts) == 2:
        return nullable_of(ctype_of(parts[1]))
    if head_name in ("pointer?", "callback?"):
        return nullable_of(_compound([head_name[:-1], *parts[1:]]))
    if head_name == "pointer" and len(parts) == 2:
        target = ctype_of(parts[1])
        if target.kind != "struct":
            # a pointer to a scalar passes as an untyped pointer, to at least its bytes
            return replace(PRIMITIVES["pointer"], name=f"{target.name}*", points_to=target.size)
        return target.target.pointer_type()
    if head_name == "array" and len(parts) == 3:
        parts = parts[1:]
    if head_name == "callback" and len(parts) == 3:
        from gene_jit.ffi.callbacks import CallbackType

        return CallbackType(parts[1], parts[2]).ffi_type()
    if len(parts) == 2 and isinstance(parts[1], int) and not isinstance(parts[1], bool):
        return array_type(ctype_of(parts[0]), parts[1])
    raise GeneTypeError(
        f"bad compound ffi type {gene_text(parts)}: use [:pointer S], [T n], [:callback R [P...]] "
        "or [:nullable T]"
    )


def array_type(elem: FfiType, n: int) -> FfiType:
    if n <= 0:
        raise GeneTypeError(f"array length must be positive, got {n}")
    if elem.kind == "void":
        raise GeneTypeError("an array of :void is not a type")
    fct = elem.field_ctype * n
    return FfiType(
        f"{elem.name}[{n}]",
        "array",
        ctypes.c_void_p,
        elem.size * n,
        target=elem,
        length=n,
        field_ctype=fct,
    )


class _Colon:
    """A symbol printed as the user wrote it in a type position (`:string`)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __gene_repr__(self) -> str:
        return f":{self.name}"


def _colons(value: Any, depth: int = 0) -> Any:
    if isinstance(value, Symbol):
        return _Colon(value.name)
    if depth > 8:
        return value
    if type(value) is list or type(value) is tuple:
        return [_colons(v, depth + 1) for v in value]
    if type(value) is dict:
        return {k: _colons(v, depth + 1) for k, v in value.items()}
    return value


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def gene_text(value: Any, limit: int = 40) -> str:
    """`value` as Gene prints it in repr form (`[1 2]`, `"1"`, `nil`, `[:string]`),
    shortened to about `limit` characters."""
    from gene_jit.runtime.printer import repr_

    text = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", repr_(_colons(value)))
    return text if len(text) <= limit else text[: limit - 3] + "..."


_KINDS = {int: "int", float: "float", str: "string", list: "array", tuple: "array",
          dict: "map", Symbol: "symbol"}


def describe(value: Any) -> str:
    """A short description of a Gene value for error messages: its kind and, for plain
    data, its value as Gene prints it (`array [1 2]`, `string "1"`)."""
    if value is MISSING:
        return "nothing"
    if value is None or value is NULL:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if type(value) is Pointer:
        return "a freed ffi pointer" if not value.address else "an ffi pointer"
    kind = _KINDS.get(type(value))
    if kind is not None:
        return f"{kind} {gene_text(value)}"
    # addresses differ from run to run: name the kind of value only
    name = (getattr(value, "__gene_name__", None) or getattr(value, "__gene_builtin__", None)
            or getattr(value, "__name__", None))
    if callable(value) and isinstance(name, str) and not hasattr(value, "address"):
        return f"function {name}"
    text = re.sub(r" (at )?0x[0-9a-f]+", "", gene_text(value, 1000))
    return text if len(text) <= 40 else text[:37] + "..."


def arg_error(fname: str, pos: int, t: FfiType, value: Any, why: str = "") -> GeneError:
    if value is MISSING:
        return GeneArityError(f"{fname}: missing argument {pos + 1} (:{t.name})")
    extra = f" ({why})" if why else ""
    return GeneTypeError(
        f"{fname}: argument {pos + 1} must be :{t.name}, got {describe(value)}{extra}"
    )


def _an(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


NOT_AN_ADDRESS = "an int is not a pointer; use (ffi/ptr n) for an address"


def address_of(value: Any, loose: bool = False) -> int | None:
    """The memory address a pointer-like Gene value stands for, or raise TypeError.
    A plain int is an address only when `loose` (Python bindings; see the module doc)."""
    if value is None or value is NULL:
        return None
    if type(value) is Pointer:
        if not value.address:
            raise TypeError("used after ffi/free")
        return value.address
    if isinstance(value, int) and not isinstance(value, bool):
        if not loose:
            raise TypeError(NOT_AN_ADDRESS)
        if value < 0 or value >= ADDRESS_LIMIT:
            raise TypeError("not an address")
        return value or None
    addr = getattr(value, "address", None)  # structs, buffers, callbacks
    if isinstance(addr, int):
        if not addr and getattr(value, "_c", True) is None:
            raise TypeError("used after ffi/free")
        return addr or None
    if isinstance(value, (bytearray, memoryview)) or _is_array(value):
        return _data_pointer(value)
    if isinstance(value, ctypes._SimpleCData) or isinstance(
        value, (ctypes.Array, ctypes.Structure)
    ):
        return ctypes.addressof(value)
    raise TypeError("not a pointer")


def extent_of(value: Any) -> int | None:
    """How many bytes from `address_of(value)` are known to be valid, or None when
    unknown (an address C gave back)."""
    if type(value) is Pointer:
        return value.limit
    size = getattr(value, "size", None)
    if isinstance(size, int) and hasattr(value, "_c"):  # buffers and structs
        return size
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    return None


def _is_array(value: Any) -> bool:
    return hasattr(value, "__array_interface__") or hasattr(value, "__cuda_array_interface__")


def _data_pointer(value: Any) -> int | None:
    """Data pointer of a NumPy array, a device array, a tensor or a writable byte buffer."""
    iface = getattr(value, "__array_interface__", None) or getattr(
        value, "__cuda_array_interface__", None
    )
    if iface is not None:
        if iface.get("strides") is not None:
            import numpy as np

            if isinstance(value, np.ndarray) and not value.flags.c_contiguous:
                raise TypeError("array is not contiguous")
        return int(iface["data"][0]) or None
    if isinstance(value, memoryview):
        value = value.obj
    if isinstance(value, bytearray):
        if not value:
            return None
        return ctypes.addressof(ctypes.c_char.from_buffer(value))
    raise TypeError("not a buffer")


def to_c(t: FfiType, value: Any, loose: bool = False) -> Any:
    """Convert a Gene value for a C parameter or field of type `t` (TypeError if illegal)."""
    conv = _TO_C.get(t.kind)
    if conv is None:
        raise TypeError(f"cannot pass a value as :{t.name}")
    return conv(t, value, loose)


def _int_to_c(t: FfiType, value: Any, loose: bool) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an int")
    if not t.lo <= value <= t.hi:
        raise TypeError(f"out of range {t.lo}..{t.hi}")
    return value


def _float_to_c(t: FfiType, value: Any, loose: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("not a number")
    return float(value)


def _bool_to_c(t: FfiType, value: Any, loose: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError("not a bool")


def _null(t: FfiType, loose: bool) -> None:
    """NULL for nil, where the declaration allows it."""
    if t.nullable or loose:
        return None
    raise TypeError(f"not nullable; declare :{t.name}? to pass NULL")


def _string_to_c(t: FfiType, value: Any, loose: bool) -> Any:
    if value is None or value is NULL:
        return _null(t, loose)
    if isinstance(value, str):
        if "\0" in value:  # C would see only the text before it
            raise TypeError(f"it holds a NUL character at index {value.index(chr(0))}, where "
                            "C would end it; pass such bytes in an ffi/buffer")
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    if type(value) is Pointer or type(value).__name__ == "Buffer":  # a char* or text
        addr = address_of(value)  # written into an ffi/buffer
        extent = extent_of(value)
        if type(value) is Pointer and value.cast and addr:
            unmapped(addr)
        if not addr or (extent is not None and b"\0" not in ctypes.string_at(addr, extent)):
            raise TypeError("the memory holds no NUL-terminated text")
        return ctypes.c_char_p(addr)
    # An int would be taken as an address: a crash, not a string. Use :pointer for that.
    raise TypeError("not a string")


def _pointer_to_c(t: FfiType, value: Any, loose: bool) -> Any:
    if value is None or value is NULL:
        return _null(t, loose)
    if isinstance(value, bytes):
        return value  # read-only input data: ctypes passes a pointer to the bytes
    if isinstance(value, str):
        raise TypeError("a string is not a pointer; declare :string or use (ffi/buffer text)")
    if type(value).__name__ == "Callback" and not loose:
        raise TypeError("a callback is code, not data; declare a callback parameter")
    if t.points_to:
        _large_enough(value, t.points_to, _an(t.name[:-1]))
    addr = address_of(value, loose)
    if type(value) is Pointer and value.cast and addr:
        unmapped(addr)
    return addr


def _large_enough(value: Any, need: int, what: str, hint: str = "") -> None:
    """Refuse memory of known extent smaller than what C reads and writes behind it."""
    extent = extent_of(value)
    if extent is not None and extent < need:
        raise TypeError(f"it holds {extent} byte{'s' * (extent != 1)} and {what} takes {need}{hint}")


def unmapped(address: int) -> None:
    """Refuse an address `ffi/ptr` made that lies in no mapping of the process (C would
    crash on it): raise TypeError saying so."""
    from gene_jit.ffi.memmap import accessible

    if accessible(address, "") == 0:
        raise TypeError(f"address {address:#x}, made by ffi/ptr, is not in this process's memory")


def _struct_ptr_to_c(t: FfiType, value: Any, loose: bool) -> Any:
    if value is None or value is NULL:
        return _null(t, loose)
    if isinstance(value, dict):
        raise TypeError("a map is not a pointer (make the struct first)")
    if hasattr(value, "ctype") and type(value) is not t.target and hasattr(value, "fields"):
        raise TypeError(f"{_an(type(value).name)} struct is not {_an(t.target.name)}")
    _large_enough(value, ctypes.sizeof(t.target.ctype), f"{_an(t.target.name)} struct",
                  f": make one with (ffi/new {t.target.name})")
    addr = address_of(value, loose)
    if type(value) is Pointer and value.cast and addr:
        unmapped(addr)
    return addr


def _struct_to_c(t: FfiType, value: Any, loose: bool) -> Any:
    cls = t.target
    if isinstance(value, dict):
        value = cls(**{spec_name(k): v for k, v in value.items()})
    if type(value) is not cls:
        raise TypeError(f"not a {cls.name} struct")
    return value.c_value()


def _callback_to_c(t: FfiType, value: Any, loose: bool) -> Any:
    from gene_jit.ffi.callbacks import as_callback

    if value is None or value is NULL:
        return _null(t, loose)
    if loose and (type(value) is Pointer or (isinstance(value, int) and not isinstance(value, bool))):
        return address_of(value, True)
    if isinstance(value, (int, float, Pointer)):
        raise TypeError("a callback must be a function or an ffi/callback")
    return as_callback(t.target, value).address


_TO_C: dict[str, Callable[[FfiType, Any, bool], Any]] = {
    "int": _int_to_c,
    "float": _float_to_c,
    "bool": _bool_to_c,
    "string": _string_to_c,
    "pointer": _pointer_to_c,
    "buffer": _pointer_to_c,
    "struct_ptr": _struct_ptr_to_c,
    "struct": _struct_to_c,
    "callback": _callback_to_c,
}


def too_big(what: str, value: int) -> GeneError:
    """A uint64 from C that no 64-bit Gene int holds (the same error in both tiers)."""
    return GeneOverflowError(
        f"{what}: the C value {value} does not fit a 64-bit Gene int (:uint64 above 2**63-1)"
    )


def from_c(t: FfiType, raw: Any, loose: bool = False, what: str = "ffi") -> Any:
    """Convert a value C gave back (a return value, a field, a callback argument)."""
    kind = t.kind
    if kind == "string":
        return None if raw is None else raw.decode("utf-8", "replace")
    if kind in ("pointer", "buffer", "callback"):
        return (raw or None) if loose else pointer_from(raw)
    if kind == "struct_ptr":
        return None if not raw else t.target.at(raw)
    if kind == "struct":
        return t.target.own(raw)
    if kind == "int" and t.size == 8 and not t.signed and raw > INT64_MAX:
        raise too_big(what, raw)
    return raw


INT64_MAX = 2**63 - 1
