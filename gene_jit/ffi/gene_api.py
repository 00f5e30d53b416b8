"""The Gene names of the FFI: `ffi/load`, `ffi/defun`, `ffi/defstruct`, `ffi/callback`,
`ffi/new`, `ffi/free`, `ffi/null`, `ffi/addressof`, `ffi/string`, `ffi/buffer`, ...

Imported lazily (gene_jit/runtime/libraries.py) the first time a program uses `ffi/`.

`(ffi/defun name ...)`, `(ffi/defstruct name ...)` and `(ffi/callback-type name ...)`
with a symbol as first argument bind that name in the calling module's globals, as a
definition form does (the compiler passes that symbol unevaluated). They find those
globals from the caller's frame: the FFI is a leaf of the pipeline and must not import
the compiler, and Gene code runs as Python code whose frame globals are the module
namespace. Frames of gene-jit's own Python modules (call helpers) are skipped.
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Any

from gene_jit import ffi
from gene_jit.ffi.core import find_library
from gene_jit.ffi.memory import pointer_to
from gene_jit.ffi.structs import StructValue
from gene_jit.ffi.types import ADDRESS_LIMIT, NULL, Pointer, describe, spec_name
from gene_jit.runtime.errors import GeneArityError, GeneTypeError
from gene_jit.runtime.registry import builtin
from gene_jit.runtime.values import Symbol

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _skip_file(filename: str) -> bool:
    """Frames of gene-jit's own Python code (call helpers, lazy trampolines); Gene code
    carries the .gene file (or a <...> pseudo-file) as its filename."""
    return filename.endswith(".py") and filename.startswith(_PACKAGE_DIR)


def _bind(name: Any, value: Any) -> None:
    """Bind `name` in the globals of the Gene code that called us (see module doc)."""
    if not isinstance(name, Symbol):
        return
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and _skip_file(os.path.abspath(frame.f_code.co_filename)):
        frame = frame.f_back
    if frame is not None:
        from gene_jit.frontend.proofs import unprove

        frame.f_globals[name.name] = value
        unprove(frame.f_globals, name.name)


@builtin("load", ns="ffi")
def gene_load(name: Any, path: Any = None) -> ffi.Library:
    return ffi.load(name, path)


@builtin("library", ns="ffi")
def gene_library(name: Any) -> ffi.Library:
    return ffi.library(name)


@builtin("defun", ns="ffi")
def gene_defun(
    name: Any,
    lib: Any = None,
    symbol: Any = None,
    returns: Any = "void",
    params: Any = (),
    variadic: bool = False,
) -> Any:
    fn = ffi.defun(
        name, lib=lib, symbol=symbol, returns=returns, params=params, variadic=bool(variadic),
        addresses=False,
    )
    _bind(name, fn)
    return fn


@builtin("defstruct", ns="ffi")
def gene_defstruct(name: Any, fields: Any, packed: bool = False) -> type[StructValue]:
    cls = ffi.defstruct(name, fields, packed=bool(packed))
    _bind(name, cls)
    return cls


@builtin("callback", ns="ffi")
def gene_callback(fn: Any, returns: Any = "void", params: Any = ()) -> ffi.Callback:
    return ffi.callback(fn, returns=returns, params=params)


@builtin("callback-type", ns="ffi")
def gene_callback_type(*args: Any, returns: Any = "void", params: Any = ()) -> ffi.CallbackType:
    ctype = ffi.callback_type(returns, params)
    if args:
        _bind(args[0], ctype)
    return ctype


@builtin("new", ns="ffi")
def gene_new(*args: Any, **fields: Any) -> Any:
    """`(ffi/new S ^x 1)`, `(ffi/new S {x: 1})`, `(ffi/new :int32 n)`."""
    if not args and len(fields) == 1:
        # `(ffi/new :int32 8)` reads as a seed-style `:kw value` tail: type and count
        ((name, count),) = fields.items()
        return ffi.new(name, count)
    if not args:
        raise GeneTypeError("ffi/new needs a type: (ffi/new S ...) or (ffi/new :T n)")
    return ffi.new(*args, **fields)


@builtin("free", ns="ffi")
def gene_free(value: Any) -> None:
    ffi.free(value)


builtin("null", ns="ffi")(NULL)


@builtin("null?", ns="ffi")
def gene_is_null(value: Any) -> bool:
    return value is None or value is NULL or value == 0 or getattr(value, "address", 1) == 0


@builtin("ptr", ns="ffi")
def gene_ptr(address: Any) -> Pointer | None:
    """`(ffi/ptr n)`: the int `n` as a pointer, the one way an int becomes an address
    (nil for 0). Its extent is unknown: reading or writing through it checks that the
    bytes are mapped, and passing it to C that it points into mapped memory."""
    if isinstance(address, bool) or not isinstance(address, int):
        raise GeneTypeError(f"ffi/ptr: expected an int address, got {describe(address)}")
    if not 0 <= address < ADDRESS_LIMIT:
        raise GeneTypeError(f"ffi/ptr: {address} is not an address (0 to 2**64-1)")
    return Pointer(address, cast=True) if address else None


@builtin("address", ns="ffi")
def gene_address(value: Any) -> int:
    """`(ffi/address p)`: the address a pointer holds, as an int (0 for nil)."""
    return ffi.addressof(value) or 0


@builtin("symbol", ns="ffi")
def gene_symbol(lib: Any, name: Any = None) -> Pointer:
    """`(ffi/symbol "c" "environ")`: a pointer to a library's symbol (a variable, to read
    with ffi/read); `(ffi/symbol "environ")` searches the loaded libraries."""
    if name is None:
        lib, name = None, lib
    sym = spec_name(name)
    found = find_library(lib, sym)
    return Pointer(found.address(sym), owner=found)


@builtin("addressof", ns="ffi")
def gene_addressof(value: Any) -> Pointer | None:
    return pointer_to(value)


@builtin("string", ns="ffi")
def gene_string(pointer: Any, length: Any = None) -> str | None:
    return ffi.string(pointer, length)


@builtin("buffer", ns="ffi")
def gene_buffer(size_or_text: Any) -> ffi.Buffer:
    return ffi.buffer(size_or_text)


@builtin("sizeof", ns="ffi")
def gene_sizeof(spec: Any) -> int:
    return ffi.sizeof(spec)


def _type_tail(who: str, args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, ...]:
    """`(ffi/read p :int32 2)` arrives as `read(p, int32=2)` (a seed-style `:kw value`
    tail): put the type and its value back in place."""
    if not kw:
        return args
    if len(kw) > 1:
        raise GeneArityError(f"{who}: unexpected named arguments {', '.join(kw)}")
    ((name, value),) = kw.items()
    return (*args, Symbol(name), value)


@builtin("read", ns="ffi")
def gene_read(*args: Any, **kw: Any) -> Any:
    """`(ffi/read p T)`, `(ffi/read p T i)`: the `i`-th T at p."""
    args = _type_tail("ffi/read", args, kw)
    if not 2 <= len(args) <= 3:
        raise GeneArityError(f"ffi/read takes a pointer, a type and an index, got {len(args)}")
    return ffi.read(*args)


@builtin("write", ns="ffi")
def gene_write(*args: Any, **kw: Any) -> None:
    """`(ffi/write p T v)`, `(ffi/write p T v i)`."""
    args = _type_tail("ffi/write", args, kw)
    if not 3 <= len(args) <= 4:
        raise GeneArityError(
            f"ffi/write takes a pointer, a type, a value and an index, got {len(args)}"
        )
    ffi.write(*args)


@builtin("array", ns="ffi")
def gene_array(*args: Any, **kw: Any) -> list[Any]:
    """`(ffi/array p T n)`: n values of type T from p."""
    args = _type_tail("ffi/array", args, kw)
    if len(args) != 3:
        raise GeneArityError(f"ffi/array takes a pointer, a type and a length, got {len(args)}")
    return ffi.array(*args)


@builtin("cast", ns="ffi")
def gene_cast(pointer: Any, spec: Any) -> Any:
    return ffi.cast(pointer, spec)


@builtin("get", ns="ffi")
def gene_get(obj: Any, key: Any) -> Any:
    """A struct field by name, or a buffer item by index."""
    if isinstance(obj, (StructValue, ffi.Buffer)):
        return obj[key]
    raise GeneTypeError(f"ffi/get: expected a struct or buffer, got {describe(obj)}")


@builtin("set", ns="ffi")
def gene_set(obj: Any, key: Any, value: Any) -> Any:
    if isinstance(obj, (StructValue, ffi.Buffer)):
        obj[key] = value
        return value
    raise GeneTypeError(f"ffi/set: expected a struct or buffer, got {describe(obj)}")


@builtin("to-map", ns="ffi")
def gene_to_map(obj: Any) -> dict[str, Any]:
    if isinstance(obj, StructValue):
        return obj.to_map()
    raise GeneTypeError(f"ffi/to-map: expected a struct, got {describe(obj)}")


@builtin("to-array", ns="ffi")
def gene_to_array(obj: Any) -> list[Any]:
    if isinstance(obj, ffi.Buffer):
        return obj.to_list()
    raise GeneTypeError(f"ffi/to-array: expected a buffer, got {describe(obj)}")


@builtin("path", ns="ffi")
def gene_path(lib: Any) -> str:
    """The file a loaded library came from."""
    return ffi.library(lib).path


@builtin("libraries", ns="ffi")
def gene_libraries() -> dict[str, str]:
    return {name: lib.path for name, lib in ffi.LIBRARIES.items() if name}
