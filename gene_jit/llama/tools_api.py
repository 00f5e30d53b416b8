"""The Gene names of the model tools: `model/perplexity`, `model/quantize`,
`model/load-adapter`, `model/set-adapters`, `model/remove-adapter`, `model/adapters`
and `model/fine-tune` (registered when gene_jit.llama.gene_api is imported), and the
`:max-memory` / `:quantize` options of `model/create` (`quantized_source`).

Each takes Gene values, checks its options with `check_options` first, and raises Gene
errors for misuse.
"""

from __future__ import annotations

from typing import Any

from gene_jit.llama.adapters import Adapter, AdapterError, active, set_active
from gene_jit.llama.errors import LlamaError
from gene_jit.llama.model import Model
from gene_jit.llama.options import OptionError, check_options, keywords_checked, shown
from gene_jit.runtime.registry import builtin


def _model(entry: str, value: Any) -> Model:
    inner = getattr(value, "model", None)  # a tokenizer or chat session
    found = value if isinstance(value, Model) else inner if isinstance(inner, Model) else None
    if found is None:
        raise LlamaError(f"{entry} needs a model (from model/create), got {shown(value)}")
    if not found.handle.ptr:  # libllama would read freed memory
        raise LlamaError(f"{entry}: the model {found.path.name} was closed (model/close); create it again")
    return found


def _text(entry: str, what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise LlamaError(f"{entry} needs {what} as a string, got {shown(value)}")
    if not value.strip():
        raise LlamaError(f"{entry} needs {what} as a non-blank string, got {shown(value)}")
    return value


def quantized_source(name_or_path: Any, opts: dict[str, Any]) -> Any:
    """What `model/create` loads when :max-memory or :quantize is given (both removed
    from `opts`): the model itself when it fits, else a cached quantised copy."""
    max_memory, kind = opts.pop("max_memory", None), opts.pop("quantize", None)
    if max_memory is None and kind is None:
        return name_or_path
    from gene_jit.llama.quantize import auto_quantized

    return str(auto_quantized(name_or_path, max_memory, "auto" if kind is None else kind, opts.get("progress")))


@builtin("perplexity", ns="model")
def model_perplexity(model: Any, text: Any, **kw: Any) -> dict[str, Any]:
    """`(model/perplexity model text :window 512)`: a map with :perplexity, :error
    (its standard error), :nll, :tokens (scored), :windows and :window."""
    from gene_jit.llama.perplexity import perplexity

    opts = check_options("model/perplexity", kw)
    m = _model("model/perplexity", model)
    body = _text("model/perplexity", "the text", text)
    return perplexity(m, body, opts.get("window", 512), opts.get("progress")).as_map()


@builtin("quantize", ns="model")
def model_quantize(source: Any, out: Any, kind: Any = None, **kw: Any) -> dict[str, Any]:
    """`(model/quantize "default" "out.gguf" :type "Q8_0")`: a map with :path, :type,
    :size-before, :size-after, :seconds and :calibration (what its importance matrix
    came from, or nil). `:calibration false` turns the automatic calibration of 4-bit
    types off, `:calibration "text.txt"` calibrates on a text file, `:imatrix "m.gguf"`
    uses an importance matrix written by llama-imatrix."""
    from gene_jit.llama.quantize import TYPES, quantize, type_name
    from gene_jit.llama.quantize_cli import check_output_name

    opts = check_options("model/quantize", kw)
    if kind is not None and "type" in opts:
        raise OptionError("model/quantize: give the type once, as the third argument or as :type")
    src = str(source.path) if isinstance(source, Model) else _text("model/quantize", "the model name or path", source)
    target = _text("model/quantize", "the output path", out)
    chosen = kind if kind is not None else opts.get("type")
    if chosen is None:  # as `gene-jit quantize IN OUT TYPE`: no silent default
        raise OptionError(f"model/quantize: name the type, as in (model/quantize {shown(source)} "
                          f"{shown(target)} :type \"Q8_0\") (types: {', '.join(TYPES)})")
    check_output_name(target, "model/quantize", type_name(chosen))
    return quantize(src, target, chosen, opts.get("threads"), opts.get("progress"), opts.get("imatrix"),
                    opts.get("calibration")).as_map()


@builtin("load-adapter", ns="model")
def model_load_adapter(model: Any, path: Any, **kw: Any) -> Adapter:
    """`(model/load-adapter model "lora.gguf" :scale 0.8)`: load a LoRA adapter and apply
    it from now on, beside the adapters already applied."""
    opts = check_options("model/load-adapter", kw)
    m = _model("model/load-adapter", model)
    adapter = Adapter(m, _text("model/load-adapter", "the adapter path", path), opts.get("scale", 1.0))
    set_active(m, [*active(m), (adapter, adapter.scale)])
    return adapter


def _adapter_list(value: Any) -> list[Adapter]:
    items = [] if value is None else [value] if isinstance(value, Adapter) else value
    if not isinstance(items, list | tuple) or not all(isinstance(a, Adapter) for a in items):
        raise AdapterError(f"model/set-adapters needs an adapter or an array of adapters (from "
                           f"model/load-adapter), got {shown(value)}")
    return list(items)


@builtin("set-adapters", ns="model")
def model_set_adapters(model: Any, adapters: Any = None, **kw: Any) -> None:
    """`(model/set-adapters model [a b] :scales [0.5 1.0])`: apply exactly these adapters
    from the next generation on (an empty array or nil: the base model)."""
    opts = check_options("model/set-adapters", kw)
    m = _model("model/set-adapters", model)
    chosen = _adapter_list(adapters)
    scales = opts.get("scales", [a.scale for a in chosen])
    if any(s < 0 for s in scales):  # as :scale of model/load-adapter
        raise OptionError(f"model/set-adapters: :scales expects numbers >= 0, got {shown(scales)}")
    if len(scales) != len(chosen):
        raise OptionError(f"model/set-adapters: :scales needs one number per adapter ({len(chosen)}), "
                          f"got {len(scales)}")
    set_active(m, [(a, float(s)) for a, s in zip(chosen, scales, strict=True)])


@builtin("remove-adapter", ns="model")
@keywords_checked("model/remove-adapter")
def model_remove_adapter(model: Any, adapter: Any = None) -> None:
    """`(model/remove-adapter model a)` stops applying `a`; without an adapter, all."""
    m = _model("model/remove-adapter", model)
    if adapter is None:
        set_active(m, [])
        return
    if not isinstance(adapter, Adapter):
        raise AdapterError(f"model/remove-adapter needs an adapter (from model/load-adapter), got {shown(adapter)}")
    set_active(m, [(a, s) for a, s in active(m) if a is not adapter])


@builtin("adapters", ns="model")
@keywords_checked("model/adapters")
def model_adapters(model: Any) -> list[dict[str, Any]]:
    """The adapters the model applies now: maps with :path and :scale."""
    return [{"path": str(a.path), "scale": s} for a, s in active(_model("model/adapters", model))]


@builtin("fine-tune", ns="model")
def model_fine_tune(model: Any, texts: Any, **kw: Any) -> dict[str, Any]:
    """`(model/fine-tune model texts :epochs 2 :lr 1e-4 :out "tuned.gguf")`: train a copy
    of the model on the texts and save it (gemma3 models: LoRA adapters trained with
    PyTorch, merged into :out and/or saved to :adapter "lora.gguf"); a map with :out,
    :adapter, :losses (one per step), :epoch-losses, :steps, :tokens and :seconds."""
    from gene_jit.llama.finetune import DEFAULT_WINDOW, fine_tune

    opts = check_options("model/fine-tune", kw)
    m = _model("model/fine-tune", model)
    result = fine_tune(m, texts, opts.get("out"), opts.get("epochs", 2), opts.get("lr", 1e-4), opts.get("type"),
                       opts.get("window", DEFAULT_WINDOW), opts.get("progress"), opts.get("adapter"))
    return result.as_map()
