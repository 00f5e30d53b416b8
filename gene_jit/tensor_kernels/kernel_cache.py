"""When the Numba disk cache of the kernels is stale: one stamp for a whole directory.

Numba keys a cached kernel by the source of the one file that defines it. The CPU kernels
reach across files: attention and the feed-forward inline `exp_parts` from norms_cpu and
call `blas_single_thread` from matmul_cpu, and each cabi entry point compiles whole
kernels from the other files. With Numba's stamp alone, an edit to `exp_parts` would
leave the cached machine code of attention, which holds an inlined copy, silently in use.

`watch(directory)` makes every cached function defined in that directory carry the
stamp of all the directory's Python sources together, so an edit to any of them
recompiles all of them on next use. The package watches its own directory on import.
Cache placement is Numba's own (`NUMBA_CACHE_DIR`, else `__pycache__` beside the
source, else the user cache); only the stamp changes.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any, cast

from gene_jit.tensor_kernels import openmp

openmp.set_defaults()  # before Numba's parallel kernels load libgomp
from numba.core import caching  # noqa: E402


def _numba_name(name: str) -> Any:
    # Numba 0.68 made these names public; older releases have them with a leading underscore.
    return getattr(caching, name, None) or getattr(caching, "_" + name)


_CacheImpl: Any = _numba_name("CacheImpl")
_BASES: tuple[type, ...] = tuple(
    _numba_name(name)
    for name in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
)

_WATCHED: set[Path] = set()


@functools.cache
def directory_stamp(directory: Path) -> str:
    """A hash of the names and contents of every `*.py` in `directory` (computed once a
    process: sources do not change under a running program)."""
    h = hashlib.sha256()
    for path in sorted(directory.glob("*.py")):
        h.update(path.name.encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def _watched_dir(py_file: str) -> Path | None:
    parent = Path(os.path.abspath(py_file)).parent
    return parent if parent in _WATCHED else None


class _DirectoryStampMixin:
    """Placed before a Numba locator class: claims only functions of watched directories
    and stamps them with the directory's stamp."""

    _py_file: str

    def get_source_stamp(self) -> str:
        directory = _watched_dir(self._py_file)
        assert directory is not None  # from_function only builds locators for watched files
        return directory_stamp(directory)

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Any:
        if _watched_dir(py_file) is None:
            return None
        return super().from_function(py_func, py_file)  # type: ignore[misc]


def _stamped(base: type) -> type[_DirectoryStampMixin]:
    name = f"DirectoryStamped{base.__name__.lstrip('_')}"
    return cast(type[_DirectoryStampMixin], type(name, (_DirectoryStampMixin, base), {}))


# One per Numba locator that places a cache file, in Numba's order of preference.
LOCATORS: tuple[type[_DirectoryStampMixin], ...] = tuple(_stamped(base) for base in _BASES)


def watch(directory: str | os.PathLike[str]) -> None:
    """Stamp the cached Numba functions defined in `directory` with the stamp of all its
    sources. Call before the functions are decorated (the stamp is read then)."""
    _WATCHED.add(Path(os.path.abspath(directory)))
    classes: list[type] = _CacheImpl._locator_classes
    for cls in reversed(LOCATORS):
        if cls not in classes:
            classes.insert(0, cls)


# The kernel modules import this module before decorating anything: stamp them all.
watch(os.path.dirname(__file__))
