"""libllama bindings, in two layers (as llama-cpp-python layers them):

1. raw C signatures and struct layouts, declared through `gene_jit.ffi.defun` and
   `gene_jit.ffi.defstruct` against the libllama that llama-cpp-python ships
   (`lib()` returns them, declared once);
2. owning handle classes (`ModelHandle`, `ContextHandle`, `BatchHandle`,
   `SamplerHandle`) that free what they hold exactly once, on `close()` or when collected.

`gene_jit.llama.context` wraps a context with the library's one decode call and its one
recovery policy; the public API (gene_jit.llama.model and friends) sits on top of that. libllama's logging is silenced unless `GENE_LLAMA_LOG=1`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from gene_jit.llama.errors import LlamaError
from gene_jit.tensor_kernels import openmp

# Struct layouts copied from llama.h of the libllama in use (llama-cpp-python 0.3.36).
# Enums are C ints; booleans are kept together at the end, as in the header.
MODEL_PARAMS_FIELDS: list[tuple[str, Any]] = [
    ("devices", "pointer"),
    ("tensor_buft_overrides", "pointer"),
    ("n_gpu_layers", "int32"),
    ("split_mode", "int"),
    ("load_mode", "int"),
    ("lazy_mode", "int"),
    ("main_gpu", "int32"),
    ("tensor_split", "pointer"),
    ("progress_callback", "pointer"),
    ("progress_callback_user_data", "pointer"),
    ("kv_overrides", "pointer"),
    ("vocab_only", "bool"),
    ("check_tensors", "bool"),
    ("use_extra_bufts", "bool"),
    ("no_host", "bool"),
    ("no_alloc", "bool"),
    ("load_mtp", "bool"),
]

CONTEXT_PARAMS_FIELDS: list[tuple[str, Any]] = [
    ("n_ctx", "uint32"),
    ("n_batch", "uint32"),
    ("n_ubatch", "uint32"),
    ("n_seq_max", "uint32"),
    ("n_rs_seq", "uint32"),
    ("n_outputs_max", "uint32"),
    ("n_outputs_max_per_seq", "uint32"),
    ("n_threads", "int32"),
    ("n_threads_batch", "int32"),
    ("ctx_type", "int"),
    ("rope_scaling_type", "int"),
    ("pooling_type", "int"),
    ("attention_type", "int"),
    ("flash_attn_type", "int"),
    ("rope_freq_base", "float"),
    ("rope_freq_scale", "float"),
    ("yarn_ext_factor", "float"),
    ("yarn_attn_factor", "float"),
    ("yarn_beta_fast", "float"),
    ("yarn_beta_slow", "float"),
    ("yarn_orig_ctx", "uint32"),
    ("defrag_thold", "float"),
    ("cb_eval", "pointer"),
    ("cb_eval_user_data", "pointer"),
    ("type_k", "int"),
    ("type_v", "int"),
    ("abort_callback", "pointer"),
    ("abort_callback_data", "pointer"),
    ("embeddings", "bool"),
    ("offload_kqv", "bool"),
    ("no_perf", "bool"),
    ("op_offload", "bool"),
    ("swa_full", "bool"),
    ("kv_unified", "bool"),
    ("samplers", "pointer"),
    ("n_samplers", "size_t"),
    ("ctx_other", "pointer"),
]

BATCH_FIELDS: list[tuple[str, Any]] = [
    ("n_tokens", "int32"),
    ("token", "pointer"),  # llama_token[n]
    ("embd", "pointer"),  # float[n * n_embd]
    ("pos", "pointer"),  # llama_pos[n]
    ("n_seq_id", "pointer"),  # int32[n]
    ("seq_id", "pointer"),  # llama_seq_id*[n]
    ("logits", "pointer"),  # int8[n]: which positions output logits
]

SAMPLER_CHAIN_PARAMS_FIELDS: list[tuple[str, Any]] = [("no_perf", "bool")]

POOLING_NONE, POOLING_MEAN = 0, 1
DEFAULT_SEED = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: libllama picks a random seed

P, I32, U32, F32, B = "pointer", "int32", "uint32", "float", "bool"


def _signatures(mp: Any, cp: Any, batch: Any, scp: Any) -> dict[str, tuple[Any, list[Any]]]:
    """name -> (return type, parameter types), as in llama.h."""
    return {
        "llama_backend_init": ("void", []),
        "llama_log_set": ("void", [P, P]),
        "llama_print_system_info": ("string", []),
        "llama_supports_gpu_offload": (B, []),
        "llama_model_default_params": (mp, []),
        "llama_context_default_params": (cp, []),
        "llama_sampler_chain_default_params": (scp, []),
        "llama_model_load_from_file": (P, ["string", mp]),
        "llama_model_free": ("void", [P]),
        "llama_init_from_model": (P, [P, cp]),
        "llama_free": ("void", [P]),
        "llama_n_ctx": (U32, [P]),
        "llama_n_ctx_seq": (U32, [P]),
        "llama_n_batch": (U32, [P]),
        "llama_get_memory": (P, [P]),
        "llama_model_get_vocab": (P, [P]),
        "llama_model_n_ctx_train": (I32, [P]),
        "llama_model_n_embd": (I32, [P]),
        "llama_model_n_layer": (I32, [P]),
        "llama_model_n_head": (I32, [P]),
        "llama_model_size": ("uint64", [P]),
        "llama_model_n_params": ("uint64", [P]),
        "llama_model_desc": (I32, [P, P, "size_t"]),
        "llama_model_meta_val_str": (I32, [P, "string", P, "size_t"]),
        "llama_model_chat_template": (P, [P, P]),
        "llama_vocab_n_tokens": (I32, [P]),
        "llama_vocab_bos": (I32, [P]),
        "llama_vocab_eos": (I32, [P]),
        "llama_vocab_is_eog": (B, [P, I32]),
        "llama_vocab_is_control": (B, [P, I32]),
        "llama_vocab_get_add_bos": (B, [P]),
        "llama_vocab_get_text": (P, [P, I32]),
        "llama_tokenize": (I32, [P, P, I32, P, I32, B, B]),
        "llama_token_to_piece": (I32, [P, I32, P, I32, I32, B]),
        "llama_detokenize": (I32, [P, P, I32, P, I32, B, B]),
        "llama_batch_init": (batch, [I32, I32, I32]),
        "llama_batch_free": ("void", [batch]),
        "llama_decode": (I32, [P, batch]),
        "llama_set_n_threads": ("void", [P, I32, I32]),
        "llama_get_logits_ith": (P, [P, I32]),
        "llama_get_embeddings_ith": (P, [P, I32]),
        "llama_memory_clear": ("void", [P, B]),
        "llama_memory_seq_rm": (B, [P, I32, I32, I32]),
        "llama_memory_seq_add": ("void", [P, I32, I32, I32, I32]),
        "llama_memory_seq_cp": ("void", [P, I32, I32, I32, I32]),
        "llama_memory_seq_pos_max": (I32, [P, I32]),
        "llama_memory_can_shift": (B, [P]),
        "llama_sampler_chain_init": (P, [scp]),
        "llama_sampler_chain_add": ("void", [P, P]),
        "llama_sampler_init_greedy": (P, []),
        "llama_sampler_init_dist": (P, [U32]),
        "llama_sampler_init_top_k": (P, [I32]),
        "llama_sampler_init_top_p": (P, [F32, "size_t"]),
        "llama_sampler_init_min_p": (P, [F32, "size_t"]),
        "llama_sampler_init_temp": (P, [F32]),
        # (n_vocab, penalty_last_n, repeat, freq, present) in this libllama
        "llama_sampler_init_penalties": (P, [I32, I32, F32, F32, F32]),
        "llama_sampler_init_grammar": (P, [P, "string", "string"]),
        "llama_sampler_sample": (I32, [P, P, I32]),
        "llama_sampler_accept": ("void", [P, I32]),
        "llama_sampler_apply": ("void", [P, P]),
        "llama_sampler_reset": ("void", [P]),
        "llama_sampler_free": ("void", [P]),
    }


class Raw:
    """The raw libllama functions (attributes named as in llama.h) and struct types."""

    model_params: Any
    context_params: Any
    batch: Any
    sampler_chain_params: Any

    def __getattr__(self, name: str) -> Any:  # pragma: no cover - a typo in this package
        raise AttributeError(f"libllama binding {name} is not declared in gene_jit.llama.bindings")


_raw: Raw | None = None
_raw_lock = threading.Lock()
_log_callback: Any = None  # kept alive for as long as libllama may call it
_captured: list[str] | None = None  # libllama log lines while `capture_stderr` runs
_capture_lock = threading.Lock()


def lib() -> Raw:
    """The declared bindings (loads libllama and silences its log on first call)."""
    global _raw
    if _raw is not None:
        return _raw
    with _raw_lock:
        if _raw is None:
            _raw = _declare()
    return _raw


def _ffi() -> Any:
    """The FFI's public functions (`load`, `defun`, `defstruct`, `callback`)."""
    import importlib
    import types

    from gene_jit import ffi

    if all(hasattr(ffi, n) for n in ("load", "defun", "defstruct", "callback")):
        return ffi
    ns = types.SimpleNamespace()
    for name, module in (("load", "library"), ("defun", "core"), ("defstruct", "structs"), ("callback", "callbacks")):
        setattr(ns, name, getattr(importlib.import_module(f"gene_jit.ffi.{module}"), name))
    return ns


def _declare() -> Raw:
    ffi = _ffi()
    openmp.set_defaults()  # libllama loads libgomp, which reads its spin count now
    try:
        ffi.load("llama")
    except Exception as exc:
        raise LlamaError(
            f"cannot load libllama ({exc}); install llama-cpp-python (pip install 'gene-jit[llm]')"
        ) from exc
    raw = Raw()
    raw.model_params = ffi.defstruct("llama_model_params", MODEL_PARAMS_FIELDS)
    raw.context_params = ffi.defstruct("llama_context_params", CONTEXT_PARAMS_FIELDS)
    raw.batch = ffi.defstruct("llama_batch", BATCH_FIELDS)
    raw.sampler_chain_params = ffi.defstruct("llama_sampler_chain_params", SAMPLER_CHAIN_PARAMS_FIELDS)
    sigs = _signatures(raw.model_params, raw.context_params, raw.batch, raw.sampler_chain_params)
    for name, (returns, params) in sigs.items():
        setattr(raw, name, ffi.defun(name, lib="llama", symbol=name, returns=returns, params=params))
    _set_logging(raw)
    raw.llama_backend_init()
    return raw


def _set_logging(raw: Raw) -> None:
    """Route libllama's log to stderr only when GENE_LLAMA_LOG=1; drop it otherwise."""
    global _log_callback
    ffi = _ffi()
    show = os.environ.get("GENE_LLAMA_LOG", "") not in ("", "0")

    def log(level: int, text: Any, user_data: Any) -> None:
        if not text:
            return
        msg = text if isinstance(text, str) else ctypes.string_at(text).decode("utf-8", "replace")
        out = _captured  # read once: another thread may end the capture meanwhile
        if out is not None:
            out.append(msg)
        if show:
            sys.stderr.write(msg)

    _log_callback = ffi.callback(log, returns="void", params=["int", "pointer", "pointer"])
    raw.llama_log_set(_callback_pointer(_log_callback), None)


@contextlib.contextmanager
def capture_stderr() -> Iterator[list[str]]:
    """Collect what libllama reports during the block: its log lines and what it writes
    straight to the C stderr (the GBNF parser does), so that a failure can be explained
    in a Gene error. The list holds the stderr text first, then the log lines; the caller
    replays it with `replay` when nothing failed, so no message is lost."""
    global _captured
    with _capture_lock:
        sys.stderr.flush()
        saved = os.dup(2)
        out: list[str] = []
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            _captured = out
            try:
                yield out
            finally:
                _captured = None
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                out.insert(0, tmp.read().decode("utf-8", "replace"))


def replay(captured: list[str]) -> None:
    """Write text collected by `capture_stderr` back to stderr."""
    text = "".join(captured)
    if text:
        sys.stderr.write(text)


def restore_logging() -> None:
    """Take libllama's log back after importing `llama_cpp`, whose import installs its own
    log callback (which prints every loader and graph message to stderr)."""
    if _raw is not None:
        _set_logging(_raw)


def _callback_pointer(cb: Any) -> int:
    """The C address of an `ffi.callback` object, to store in a struct field or pass on."""
    for attr in ("address", "pointer"):
        value = getattr(cb, attr, None)
        if isinstance(value, int):
            return value
    ctype_obj = getattr(cb, "cfunc", None) or getattr(cb, "ctype", None) or cb
    return int(ctypes.cast(ctype_obj, ctypes.c_void_p).value or 0)


def struct_value(s: Any) -> Any:
    """The ctypes structure behind an `ffi.defstruct` instance (or the structure itself)."""
    c_value = getattr(s, "c_value", None)
    if c_value is not None:
        return c_value()
    if isinstance(s, ctypes.Structure):
        return s
    raise LlamaError(f"unexpected struct value from the FFI: {s!r}")


# ---------------------------------------------------------------------------
# Owning handles: each frees its native object exactly once.


class _Handle:
    """Base of the owning handles: `ptr` is the native pointer (an int), 0 once freed."""

    _free_name = ""

    def __init__(self, ptr: int | None, what: str) -> None:
        if not ptr:
            raise LlamaError(f"libllama could not create the {what}")
        self.ptr: int = int(ptr)

    def close(self) -> None:
        ptr, self.ptr = self.ptr, 0
        if ptr and _raw is not None:
            getattr(_raw, self._free_name)(ptr)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: libllama may be gone already
            pass


class ModelHandle(_Handle):
    """A loaded `llama_model *`."""

    _free_name = "llama_model_free"


class ContextHandle(_Handle):
    """A `llama_context *` (its KV cache lives inside)."""

    _free_name = "llama_free"


class SamplerHandle(_Handle):
    """A `llama_sampler *` chain; samplers added to it are freed with it."""

    _free_name = "llama_sampler_free"


class BatchHandle:
    """A `llama_batch` from `llama_batch_init`, with typed views of its arrays."""

    def __init__(self, capacity: int, n_seq_max: int = 1) -> None:
        raw = lib()
        self._value = raw.llama_batch_init(capacity, 0, n_seq_max)
        self.struct = struct_value(self._value)
        self.capacity = capacity
        s = self.struct
        self.token = ctypes.cast(s.token, ctypes.POINTER(ctypes.c_int32))
        self.pos = ctypes.cast(s.pos, ctypes.POINTER(ctypes.c_int32))
        self.n_seq_id = ctypes.cast(s.n_seq_id, ctypes.POINTER(ctypes.c_int32))
        self.seq_id = ctypes.cast(s.seq_id, ctypes.POINTER(ctypes.POINTER(ctypes.c_int32)))
        self.logits = ctypes.cast(s.logits, ctypes.POINTER(ctypes.c_int8))
        self.n_tokens = 0

    def clear(self) -> None:
        self.n_tokens = 0

    def add(self, token: int, pos: int, seq: int, output: bool) -> int:
        """Append one token; returns its index in the batch (for logits and sampling)."""
        i = self.n_tokens
        if i >= self.capacity:
            raise LlamaError(f"batch overflow ({self.capacity} tokens)")
        self.token[i] = token
        self.pos[i] = pos
        self.n_seq_id[i] = 1
        self.seq_id[i][0] = seq
        self.logits[i] = 1 if output else 0
        self.n_tokens = i + 1
        return i

    def value(self) -> Any:
        """The batch to pass by value to `llama_decode`."""
        self.struct.n_tokens = self.n_tokens
        return self._value

    def close(self) -> None:
        value, self._value = self._value, None
        if value is not None and _raw is not None:
            self.struct.n_tokens = 0
            _raw.llama_batch_free(value)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
