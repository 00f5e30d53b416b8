"""The native inference engine: GGUF models run by Gene code over gene-jit's own tensor
kernels, behind the LLM library's API.

    (model/create "default" "gguf" :engine :gene :device (device/create :cpu))

`create_model` is the one entry point the LLM library calls (gene_jit/llama/gene_api.py);
the model it returns is used by generate-text, streams, grammars, chat and model/forward
as a libllama model is. Parts: weights.py (GGUF weights, memory-mapped, and the config),
ops.py (the tensor ops the forward passes use), model.py (the engine, its context and
model), and one .gene file per architecture with the forward pass.
"""

from __future__ import annotations

from typing import Any

from gene_jit.runtime.values import Symbol

ENGINES = ("gene", "llama")


def create_model(engine: Any, name_or_path: Any = None, fmt: Any = "gguf", **opts: Any) -> Any:
    """A model run by `engine`: :gene (this package) or :llama (libllama, the default)."""
    from gene_jit.llama.options import OptionError

    name = engine.name if isinstance(engine, Symbol) else engine
    if name not in ENGINES:
        raise OptionError(f"model/create: :engine expects :gene or :llama, got {engine!r}")
    if name == "llama":
        from gene_jit.llama.model import Model

        return Model(name_or_path, fmt, **opts)
    from gene_jit.engine.model import EngineModel

    return EngineModel(name_or_path, fmt, **opts)
