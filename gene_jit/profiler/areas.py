"""Areas whose time the profile reports apart: tensor kernels, libllama, and the tier-1
JIT itself (type checking, LLVM compiles, the prologue of functions it watches).

Code is attributed by the module it lives in, so the libraries need no profiling hooks of
their own: the Gene-visible builtins of `gene_jit.tensor` (which run the Numba kernels of
`gene_jit.tensor_kernels`) and of `gene_jit.llama` (which call libllama through
`gene_jit.ffi`) are Python functions in those packages.
"""

from __future__ import annotations

import os

import gene_jit

_ROOT = os.path.dirname(os.path.abspath(gene_jit.__file__))

TENSOR = "tensor kernels"
LLAMA = "libllama"
JIT = "tier-1 JIT"

AREAS: dict[str, str] = {
    os.path.join(_ROOT, "tensor") + os.sep: TENSOR,
    os.path.join(_ROOT, "tensor_kernels") + os.sep: TENSOR,
    os.path.join(_ROOT, "llama") + os.sep: LLAMA,
    os.path.join(_ROOT, "ir") + os.sep: JIT,
    os.path.join(_ROOT, "codegen") + os.sep: JIT,
}

_cache: dict[str, str | None] = {}


def area_of(filename: str) -> str | None:
    """The library area of a source file, or None."""
    try:
        return _cache[filename]
    except KeyError:
        pass
    area = None
    for prefix, name in AREAS.items():
        if filename.startswith(prefix):
            area = name
            break
    _cache[filename] = area
    return area
