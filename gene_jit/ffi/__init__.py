"""FFI: `ffi/load`, `ffi/defun`, structs and callbacks. Tier 0 calls through ctypes;
tier 1 calls the symbol's address directly.

Public Python API (a contract, see docs/internals.md): `load`, `library`, `defun`,
`defstruct`, `callback`, plus the memory helpers (`new`, `free`, `buffer`, `string`,
`addressof`, `pointer_to`, `sizeof`, `read`, `write`, `array`, `cast`) and the type descriptors tier 1
reads (`foreign_info`, `ForeignFunction`, `FfiType`, `StructValue.fields`).
"""

from gene_jit.ffi.callbacks import Callback, CallbackType, callback, callback_type
from gene_jit.ffi.core import ForeignFunction, defun, foreign_info
from gene_jit.ffi.library import LIBRARIES, Library, LibraryNotFound, library, load
from gene_jit.ffi.memory import (
    Buffer,
    addressof,
    array,
    buffer,
    cast,
    free,
    new,
    pointer_to,
    read,
    sizeof,
    string,
    write,
)
from gene_jit.ffi.structs import Field, StructValue, defstruct
from gene_jit.ffi.types import NULL, FfiType, Pointer, ctype_of

__all__ = [
    "LIBRARIES",
    "NULL",
    "Pointer",
    "Buffer",
    "Callback",
    "CallbackType",
    "FfiType",
    "Field",
    "ForeignFunction",
    "Library",
    "LibraryNotFound",
    "StructValue",
    "addressof",
    "array",
    "buffer",
    "callback",
    "callback_type",
    "cast",
    "ctype_of",
    "defstruct",
    "defun",
    "foreign_info",
    "free",
    "library",
    "load",
    "new",
    "pointer_to",
    "read",
    "sizeof",
    "string",
    "write",
]
