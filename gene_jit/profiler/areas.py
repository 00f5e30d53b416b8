"""Areas whose time the profile reports apart: tensor kernels, the gene engine, libllama,
and tier-1 compiling (type checking, IR, LLVM).

The sampler attributes code by the module it lives in, so the libraries need no profiling
hooks of their own: the Gene-visible builtins of `gene_jit.tensor` (which run the Numba
kernels of `gene_jit.tensor_kernels`), the engine's tensor ops (`gene_jit.engine.ops`,
registered in the `tensor` namespace), the rest of `gene_jit.engine`, and `gene_jit.llama`
(which calls libllama through `gene_jit.ffi`) are Python functions in those packages.

Tier 1's prologue hook and its native-code runtime are no area: time in native code counts
toward the Gene function that entered it, as it does when tier 0 calls native code
directly (there is no Python frame to sample then).
"""

from __future__ import annotations

import os

import gene_jit

_ROOT = os.path.dirname(os.path.abspath(gene_jit.__file__))

TENSOR = "tensor kernels"
ENGINE = "gene engine"
LLAMA = "libllama"
JIT = "tier-1 compile"


def _pkg(name: str) -> str:
    return os.path.join(_ROOT, name) + os.sep


def _file(name: str) -> str:
    return os.path.join(_ROOT, *name.split("/"))


# The first prefix that matches wins: files before their package.
AREAS: list[tuple[str, str | None]] = [
    (_file("engine/ops.py"), TENSOR),
    (_file("engine/threads.py"), TENSOR),
    (_file("engine/cuda_"), TENSOR),  # cuda_ops.py, cuda_kernels.py, ...
    (_pkg("engine"), ENGINE),
    (_pkg("tensor"), TENSOR),
    (_pkg("tensor_kernels"), TENSOR),
    (_pkg("llama"), LLAMA),
    (_file("codegen/hooks.py"), None),  # the prologue: runs native code once compiled
    (_file("codegen/engine.py"), None),  # errors raised by native code
    (_file("codegen/interrupt.py"), None),
    (_pkg("ir"), JIT),
    (_pkg("codegen"), JIT),
]

_cache: dict[str, str | None] = {}


def area_of(filename: str) -> str | None:
    """The library area of a source file, or None."""
    try:
        return _cache[filename]
    except KeyError:
        pass
    area = None
    for prefix, name in AREAS:
        if filename.startswith(prefix):
            area = name
            break
    _cache[filename] = area
    return area
