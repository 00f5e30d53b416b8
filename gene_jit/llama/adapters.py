"""LoRA adapters on a loaded model: load one from a GGUF file, and choose which adapters
(with which scales) the model's contexts apply, without reloading the base model.

libllama applies adapters per context (`llama_set_adapters_lora`), so the set chosen for
a model is kept here and applied to every context the model has and every context made
for it later (`apply_active`, called when a context is created). Changing the set clears
the contexts' KV caches: cached keys and values computed under other weights would
otherwise stand in for the new ones, and removing an adapter would not restore the base
model's output exactly.
"""

from __future__ import annotations

import ctypes
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gene_jit.llama import bindings
from gene_jit.llama.errors import LlamaError
from gene_jit.llama.native_tools import tools

if TYPE_CHECKING:
    from gene_jit.llama.context import Context
    from gene_jit.llama.model import Model


class AdapterError(LlamaError):
    """An adapter file that does not fit the model, or a misuse of adapters."""

    kind = "adapter error"


class Adapter:
    """A LoRA adapter loaded for one model (`model/load-adapter`); `scale` is the weight
    it is applied with unless a call names another."""

    def __init__(self, model: Model, path: str | Path, scale: float = 1.0) -> None:
        refusal = getattr(model, "adapter_refusal", None)  # a model no adapter reaches
        if refusal:
            raise AdapterError(refusal)
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise AdapterError(f"{self.path} is a folder; pass the path of a LoRA adapter .gguf file")
        if not self.path.is_file():
            raise AdapterError(f"no adapter file {self.path}")
        _check_architecture(model, self.path)
        with bindings.capture_stderr() as log:
            ptr = tools().llama_adapter_lora_init(model.handle.ptr, str(self.path).encode())
        if not ptr:
            raise AdapterError(f"libllama could not load the adapter {self.path}: {_reason(log)}")
        self.ptr: int = int(ptr)
        self.model_ref = weakref.ref(model)
        self.scale = float(scale)
        self.alpha = _meta(self.ptr, "adapter.lora.alpha")

    def close(self) -> None:
        """Stop applying the adapter and free it."""
        model = self.model_ref()
        if model is not None and any(a is self for a, _ in active(model)):
            set_active(model, [(a, s) for a, s in active(model) if a is not self])
        ptr, self.ptr = self.ptr, 0
        if ptr and model is not None and model.handle.ptr:
            tools().llama_adapter_lora_free(ptr)

    def __repr__(self) -> str:
        return f"<adapter {self.path.name} scale {self.scale:g}>"


def _check_architecture(model: Model, path: Path) -> None:
    """Refuse an adapter made for another architecture, or a file that is no adapter,
    with the reason in words (libllama only logs it)."""
    try:
        import gguf

        reader = gguf.GGUFReader(str(path))
    except Exception as exc:
        raise AdapterError(f"{path} is not a GGUF adapter file ({exc})") from exc

    def text(key: str) -> str | None:
        field = reader.get_field(key)
        return None if field is None else str(field.contents())

    kind = text("general.type")
    if kind != "adapter" or text("adapter.type") != "lora":
        def said(key: str) -> str:
            value = text(key)
            return "missing" if value is None else f'"{value}"'

        raise AdapterError(f"{path} is not a LoRA adapter (general.type is {said('general.type')}, "
                           f"adapter.type is {said('adapter.type')}; an adapter has \"adapter\" and \"lora\")")
    arch, model_arch = text("general.architecture"), model.meta("general.architecture")
    if arch != model_arch:
        raise AdapterError(f"the adapter {path.name} was made for the {arch} architecture; "
                           f"{model.path.name} is {model_arch}")


def _reason(log: list[str]) -> str:
    lines = [ln.strip() for ln in "".join(log).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    return (errors or lines or ["no reason given (GENE_LLAMA_LOG=1 shows libllama's log)"])[-1]


def _meta(ptr: int, key: str) -> float | None:
    buf = ctypes.create_string_buffer(64)
    n = tools().llama_adapter_meta_val_str(ptr, key.encode(), buf, 64)
    try:
        return float(buf.value.decode()) if n >= 0 else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# Which adapters each model applies.

_active: weakref.WeakKeyDictionary[Any, list[tuple[Adapter, float]]] = weakref.WeakKeyDictionary()


def active(model: Model) -> list[tuple[Adapter, float]]:
    """The adapters the model applies now, with their scales."""
    return list(_active.get(model, ()))


def set_active(model: Model, chosen: list[tuple[Adapter, float]]) -> None:
    """Apply exactly `chosen` from now on, in every context of the model."""
    for adapter, _ in chosen:
        if not adapter.ptr:
            raise AdapterError(f"{adapter!r} was closed")
        if adapter.model_ref() is not model:
            raise AdapterError(f"{adapter!r} was loaded for another model; load it again for {model.path.name}")
    if not chosen and model not in _active:
        return
    _active[model] = list(chosen)
    model.__dict__["has_adapters"] = bool(chosen)  # read by Context.__init__, which calls apply_active
    for ctx in _contexts(model):
        with ctx.lock:
            if getattr(ctx.owner, "done", True) is False:
                ctx.pending_adapters = list(chosen)  # a generation runs here: after it
                continue
            _apply(ctx, chosen)
            ctx.clear()
            ctx.owner = None
            ctx.pending_adapters = None


def settle(ctx: Context) -> None:
    """Apply what set_active left for after the generation that ran in `ctx` (the caller
    claims it for the next one): a generation keeps the adapters it started with."""
    with ctx.lock:  # (set_active may have applied a newer set meanwhile)
        chosen = ctx.pending_adapters
        if chosen is None:
            return
        _apply(ctx, chosen)
        ctx.clear()
        ctx.pending_adapters = None


def apply_active(model: Model, ctx: Context) -> None:
    """Give a new context the adapters its model applies."""
    chosen = _active.get(model)
    if chosen:
        _apply(ctx, chosen)


def _apply(ctx: Context, chosen: list[tuple[Adapter, float]]) -> None:
    n = len(chosen)
    ptrs = (ctypes.c_void_p * max(n, 1))(*[a.ptr for a, _ in chosen])
    scales = (ctypes.c_float * max(n, 1))(*[s for _, s in chosen])
    rc = tools().llama_set_adapters_lora(ctx.ptr, ptrs if n else None, n, scales if n else None)
    if rc != 0:
        raise AdapterError(f"libllama could not apply the adapters (llama_set_adapters_lora returned {rc})")


def _contexts(model: Model) -> list[Context]:
    """Every live context of the model (its pool, embeddings and batch contexts)."""
    found = list(getattr(model, "_pool", ()))
    for name in ("_embed_ctx", "_batch_ctx"):
        ctx = getattr(model, name, None)
        if ctx is not None:
            found.append(ctx)
    return [c for c in found if getattr(c, "ptr", 0)]
