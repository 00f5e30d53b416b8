"""`(serve model :port 8080 :parallel 8)`: the server from Gene; blocks until Ctrl-C."""

from __future__ import annotations

from typing import Any

from gene_jit.llama.errors import LlamaError
from gene_jit.llama.model import Model
from gene_jit.llama.options import shown as shown_value
from gene_jit.serve.server import Settings
from gene_jit.serve.server import serve as _serve

OPTIONS = ("host", "port", "parallel", "n_ctx", "api_key", "threads", "queue", "engine")


def serve(model: Any = "default", **kw: Any) -> None:
    """Serve `model` (from model/create, or a name or path) over the OpenAI API."""
    for name in kw:
        if name not in OPTIONS:
            shown = ", ".join(":" + o.replace("_", "-") for o in OPTIONS)
            raise LlamaError(f"serve does not take :{name.replace('_', '-')}; it takes {shown}")
    if not isinstance(model, Model | str):  # nil too: a model variable that was never set
        raise LlamaError(f"serve needs a model (from model/create) or a model name or path such as "
                         f"\"default\", got {shown_value(model)}")
    settings = Settings(model=model)
    for name, value in kw.items():
        if value is not None:
            # :engine :gene arrives as a keyword symbol
            setattr(settings, name, getattr(value, "name", value) if name == "engine" else value)
    _serve(settings)
