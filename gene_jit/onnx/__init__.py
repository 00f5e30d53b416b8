"""ONNX models from Gene through ONNX Runtime (`model/create ... "onnx"`).

`model` holds the model kind and its checks; `embed` the text-encoder use. Importing
this package does not import onnxruntime: a model's creation does.
"""

from __future__ import annotations

import os
from typing import Any

from gene_jit.runtime.values import Symbol


def wants_onnx(path: Any, fmt: Any) -> bool:
    """`model/create`'s arguments name an ONNX model: the format "onnx" (or `:onnx`), or
    a `.onnx` path with no format given."""
    name = fmt.name if isinstance(fmt, Symbol) else fmt
    if isinstance(name, str) and name.lower() == "onnx":
        return True
    return name is None and onnx_path(path)


def onnx_path(path: Any) -> bool:
    """`path` names an ONNX file by its extension."""
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(".onnx")


def create(path: Any, **options: Any) -> Any:
    """The OnnxModel for `model/create`, its options checked."""
    from gene_jit.onnx.model import OPTIONS, OnnxError, OnnxModel

    for key in options:
        if key not in OPTIONS:
            raise OnnxError(f"model/create: an ONNX model takes the options "
                            f"{', '.join(':' + o for o in OPTIONS)}, not :{key.replace('_', '-')}")
    return OnnxModel(path, **options)
