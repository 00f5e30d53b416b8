"""Shared libraries: `ffi/load` and the table of loaded libraries by Gene name.

A library is found from an explicit path, a soname, or the usual search
(`ctypes.util.find_library`). A path that cannot be loaded is an error: another file
is never loaded in its place, except for the names "llama" and "ggml", which fall back to
the libllama (and libggml) that the llama-cpp-python package ships, found without
importing that package (importing it would load and initialise the library as a side
effect); the program is then told which file was loaded, on stderr and in
`Library.note`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from gene_jit.runtime.errors import GeneError, GeneNameError
from gene_jit.runtime.printer import quote_string

# Libraries that a Python package bundles: Gene name -> (package, file under it).
BUNDLED: dict[str, tuple[str, str]] = {
    "llama": ("llama_cpp", "lib/libllama.so"),
    "ggml": ("llama_cpp", "lib/libggml.so"),
}


class LibraryNotFound(GeneError):
    kind = "ffi error"


@dataclass(eq=False)
class Library:
    """A loaded shared library under a Gene name."""

    name: str
    path: str
    handle: ctypes.CDLL
    note: str = ""
    _addresses: dict[str, int] = field(default_factory=dict)

    def function(self, symbol: str) -> Any:
        """A fresh ctypes function for `symbol` (fresh so that two bindings of one symbol
        may carry different signatures, as variadic functions need)."""
        try:
            return self.handle[symbol]
        except AttributeError:
            raise GeneNameError(
                f"library {quote_string(self.name)} ({self.path}) has no symbol {quote_string(symbol)}"
            ) from None

    def address(self, symbol: str) -> int:
        """The address of `symbol` (what tier 1 calls directly)."""
        addr = self._addresses.get(symbol)
        if addr is None:
            fn = self.function(symbol)
            addr = ctypes.cast(fn, ctypes.c_void_p).value or 0
            self._addresses[symbol] = addr
        return addr

    def has(self, symbol: str) -> bool:
        try:
            self.address(symbol)
        except GeneNameError:
            return False
        return True

    def __repr__(self) -> str:
        return f"<ffi library {self.name} {self.path}>"

    __gene_type__ = "ffi-library"

    def __gene_get__(self, key: str) -> Any:
        """`lib/path`, `lib/name`, `lib/note` in Gene."""
        if key in ("name", "path", "note"):
            return getattr(self, key)
        raise GeneNameError(f"an ffi library has no member {key} (name, path, note)")

    def __gene_repr__(self) -> str:
        return repr(self)


LIBRARIES: dict[str, Library] = {}


def bundled_path(name: str) -> str | None:
    """The file a Python package ships for library `name` ("llama", "ggml"), if present."""
    entry = BUNDLED.get(name)
    if entry is None:
        return None
    package, rel = entry
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        path = os.path.join(base, rel)
        if os.path.exists(path):
            return path
    return None


def _candidates(name: str) -> list[tuple[str, str]]:
    """Places to try for a bare name, in order: (description, what to dlopen)."""
    out: list[tuple[str, str]] = []
    base = name[3:] if name.startswith("lib") else name
    if "/" not in name and (".so" in name or name.endswith(".dylib") or name.endswith(".dll")):
        out.append((f"soname {name}", name))
    found = ctypes.util.find_library(base)
    out.append(
        (f"the system search for {base}" + (f" -> {found}" if found else " -> nothing"), found or "")
    )
    out.append((f"soname lib{base}.so", f"lib{base}.so"))
    bundled = bundled_path(base)
    entry = BUNDLED.get(base)
    if entry is not None:
        where = bundled or f"{entry[0]}/{entry[1]} (package not installed)"
        out.append((f"bundled {where}", bundled or ""))
    return out


def _open(path: str) -> ctypes.CDLL | str:
    """dlopen `path`, or the loader's reason for failing."""
    try:
        return ctypes.CDLL(path)
    except OSError as exc:
        return str(exc)


def load(name: str, path: str | None = None) -> Library:
    """Load library `name` (from `path` when given and present) and register it."""
    name = _as_str(name)
    if path is not None:
        path = _as_str(path)
    known = LIBRARIES.get(name)
    if known is not None and (not path or os.path.realpath(path) == known.path):
        return known
    tried: list[str] = []
    note = ""
    if path:
        if os.path.exists(path):
            handle = _open(path)
            if isinstance(handle, ctypes.CDLL):
                return _register(name, os.path.realpath(path), handle, note)
            tried.append(f"{path} ({handle})")
        else:
            tried.append(f"{path} (no such file)")
        if name not in BUNDLED:  # a path names one file: never another one instead
            raise LibraryNotFound(f"cannot load library {quote_string(name)}: " + "; ".join(tried))
    for desc, target in _candidates(name):
        if not target:
            tried.append(desc)
            continue
        handle = _open(target)
        if isinstance(handle, ctypes.CDLL):
            if path:
                note = (
                    f"ffi/load {quote_string(name)}: {path} not found; loaded {_real(handle, target)} instead"
                )
                print(f"note: {note}", file=sys.stderr)
            return _register(name, _real(handle, target), handle, note)
        tried.append(f"{desc} ({handle.splitlines()[0] if handle else 'failed'})")
    raise LibraryNotFound(f"cannot load library {quote_string(name)}; searched: " + "; ".join(tried))


def _real(handle: ctypes.CDLL, target: str) -> str:
    """The file a handle came from (a soname resolves through the loader's search)."""
    if os.path.isabs(target):
        return os.path.realpath(target)
    try:
        import ctypes as _c

        class _LinkMap(_c.Structure):
            _fields_ = [("l_addr", _c.c_void_p), ("l_name", _c.c_char_p)]

        dlinfo = _c.CDLL(None).dlinfo
        lmap = _c.POINTER(_LinkMap)()
        if dlinfo(_c.c_void_p(handle._handle), 2, _c.byref(lmap)) == 0 and lmap:
            real = lmap.contents.l_name
            if real:
                return os.path.realpath(real.decode())
    except (AttributeError, OSError, ValueError):
        pass
    return target


def _register(name: str, path: str, handle: ctypes.CDLL, note: str) -> Library:
    lib = Library(name, path, handle, note)
    LIBRARIES[name] = lib
    return lib


def library(name: str) -> Library:
    """A loaded library by Gene name; a name never loaded is loaded by search."""
    name = _as_str(name)
    lib = LIBRARIES.get(name)
    if lib is None:
        lib = load(name)
    return lib


def _as_str(value: Any) -> str:
    from gene_jit.ffi.types import spec_name

    if isinstance(value, Library):
        return value.name
    return spec_name(value)
