"""gene-jit: the Gene language on Python.

The public Python API lives here and stays light: importing `gene_jit` loads neither
numba nor llvmlite. `gene_jit.jit` (tier 1, in `gene_jit/jit.py`) and the API functions
(in `gene_jit/api.py`) are imported on first attribute access.

    import gene_jit
    gene_jit.eval("(1 + 2 * 3)")          # -> 7
    gene_jit.run_file("app.gene", args=["x"])
    gene_jit.repr([1, "a"])               # -> '[1 "a"]'
"""

import importlib as _importlib
from typing import Any as _Any

__version__ = "0.1.0"

# Public name -> (module, attribute); resolved on first access so that import stays cheap.
_LAZY: dict[str, tuple[str, str]] = {
    "eval": ("gene_jit.api", "eval"),
    "run_file": ("gene_jit.api", "run_file"),
    "repr": ("gene_jit.api", "repr"),
    "display": ("gene_jit.api", "display"),
    "to_python": ("gene_jit.api", "to_python"),
    "from_python": ("gene_jit.api", "from_python"),
    "jit": ("gene_jit.jit", "jit"),
    "GenePerformanceWarning": ("gene_jit.jit", "GenePerformanceWarning"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> _Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'gene_jit' has no attribute {name!r}")
    module, attr = target
    value = getattr(_importlib.import_module(module), attr)
    globals()[name] = value  # later accesses skip this hook
    return value


def __dir__() -> list[str]:
    """The API only: not the helpers above, nor the subpackages loaded so far."""
    return sorted(__all__)
