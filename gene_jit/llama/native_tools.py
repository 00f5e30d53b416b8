"""Raw bindings for libllama's model tools: quantisation, LoRA adapters and training.

The first layer only, as `gene_jit.llama.bindings` is for inference: C signatures and
struct layouts copied from llama.h and ggml-opt.h of the libllama that llama-cpp-python
0.3.36 ships, declared with ctypes against the same shared objects (`libllama`, and
`libggml-base` beside it, which holds the `ggml_opt_*` dataset and result functions).
`quantize`, `adapters` and `finetune` own what these functions return.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

from gene_jit.llama import bindings
from gene_jit.llama.errors import LlamaError

P = ctypes.c_void_p

GGML_TYPE_I32 = 26  # enum ggml_type
OPTIMIZER_ADAMW = 0  # enum ggml_opt_optimizer_type
LOAD_MODE_NONE = 0  # enum llama_load_mode: weights read into memory, so training may write them


class QuantizeParams(ctypes.Structure):
    """struct llama_model_quantize_params."""

    _fields_ = [
        ("nthread", ctypes.c_int32),
        ("ftype", ctypes.c_int),
        ("output_tensor_type", ctypes.c_int),
        ("token_embedding_type", ctypes.c_int),
        ("allow_requantize", ctypes.c_bool),
        ("quantize_output_tensor", ctypes.c_bool),
        ("only_copy", ctypes.c_bool),
        ("pure", ctypes.c_bool),
        ("keep_split", ctypes.c_bool),
        ("dry_run", ctypes.c_bool),
        ("imatrix", P),
        ("kv_overrides", P),
        ("tt_overrides", P),
        ("prune_layers", P),
        ("max_buf_size", ctypes.c_size_t),
    ]


class AdamWParams(ctypes.Structure):
    _fields_ = [
        ("alpha", ctypes.c_float),  # learning rate
        ("beta1", ctypes.c_float),
        ("beta2", ctypes.c_float),
        ("eps", ctypes.c_float),
        ("wd", ctypes.c_float),  # weight decay
    ]


class SGDParams(ctypes.Structure):
    _fields_ = [("alpha", ctypes.c_float), ("wd", ctypes.c_float)]


class OptimizerParams(ctypes.Structure):
    """struct ggml_opt_optimizer_params: read by the optimizer before every step."""

    _fields_ = [("adamw", AdamWParams), ("sgd", SGDParams)]


class OptParams(ctypes.Structure):
    """struct llama_opt_params."""

    _fields_ = [
        ("n_ctx_train", ctypes.c_uint32),
        ("param_filter", P),  # bool (*)(const struct ggml_tensor *, void *)
        ("param_filter_ud", P),
        ("get_opt_pars", P),  # struct ggml_opt_optimizer_params (*)(void *)
        ("get_opt_pars_ud", P),
        ("optimizer_type", ctypes.c_int),
    ]


# void (*)(bool train, ggml_opt_context_t, ggml_opt_dataset_t, ggml_opt_result_t,
#          int64_t ibatch, int64_t ibatch_max, int64_t t_start_us)
EPOCH_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_bool, P, P, P, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)
# bool (*)(const struct ggml_tensor * tensor, void * userdata)
PARAM_FILTER = ctypes.CFUNCTYPE(ctypes.c_bool, P, P)

_LLAMA: dict[str, tuple[Any, list[Any]]] = {
    "llama_model_quantize_default_params": (QuantizeParams, []),
    "llama_model_quantize": (ctypes.c_uint32, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(QuantizeParams)]),
    "llama_model_save_to_file": (None, [P, ctypes.c_char_p]),
    "llama_model_load_from_file": (P, [ctypes.c_char_p, P]),
    "llama_adapter_lora_init": (P, [P, ctypes.c_char_p]),
    "llama_adapter_lora_free": (None, [P]),
    "llama_adapter_meta_val_str": (ctypes.c_int32, [P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]),
    "llama_set_adapters_lora": (ctypes.c_int32, [P, ctypes.POINTER(P), ctypes.c_size_t, ctypes.POINTER(ctypes.c_float)]),
    "llama_opt_init": (None, [P, P, OptParams]),
    "llama_opt_epoch": (None, [P, P, P, P, ctypes.c_int64, P, P]),
    "llama_n_ctx": (ctypes.c_uint32, [P]),
}

_GGML: dict[str, tuple[Any, list[Any]]] = {
    "ggml_opt_dataset_init": (P, [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]),
    "ggml_opt_dataset_free": (None, [P]),
    "ggml_opt_dataset_data": (P, [P]),
    "ggml_opt_dataset_labels": (P, [P]),
    "ggml_get_data": (P, [P]),
    "ggml_get_name": (ctypes.c_char_p, [P]),
    "ggml_n_dims": (ctypes.c_int, [P]),
    "ggml_opt_result_init": (P, []),
    "ggml_opt_result_free": (None, [P]),
    "ggml_opt_result_reset": (None, [P]),
    "ggml_opt_result_loss": (None, [P, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]),
}


class Tools:
    """The declared functions (named as in the C headers) and the two C function
    pointers that training passes to libllama."""

    llama: ctypes.CDLL
    ggml: ctypes.CDLL
    filter_all: int  # llama_opt_param_filter_all
    constant_params: int  # ggml_opt_get_constant_optimizer_params

    def __getattr__(self, name: str) -> Any:  # pragma: no cover - a typo in this package
        raise AttributeError(f"{name} is not declared in gene_jit.llama.native_tools")


_tools: Tools | None = None
_lock = threading.Lock()


def tools() -> Tools:
    """The declared tool functions (loads libllama on first use)."""
    global _tools
    with _lock:
        if _tools is None:
            _tools = _declare()
    return _tools


def library_dir() -> str:
    """The folder of the libllama in use (libggml-base lies beside it)."""
    bindings.lib()
    from gene_jit.ffi.library import LIBRARIES

    return os.path.dirname(LIBRARIES["llama"].path)


def _declare() -> Tools:
    folder = library_dir()
    t = Tools()
    try:
        t.llama = ctypes.CDLL(os.path.join(folder, "libllama.so"))
        t.ggml = ctypes.CDLL(os.path.join(folder, "libggml-base.so"))
    except OSError as exc:
        raise LlamaError(f"cannot load libllama's tool functions from {folder}: {exc}") from exc
    for lib, table in ((t.llama, _LLAMA), (t.ggml, _GGML)):
        for name, (returns, params) in table.items():
            # looked up in its own library (dlsym would also find ggml's symbols through
            # libllama) and kept as an attribute, so only declared functions are called
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = returns, params
            setattr(t, name, fn)
    t.filter_all = int(ctypes.cast(t.llama.llama_opt_param_filter_all, P).value or 0)
    t.constant_params = int(ctypes.cast(t.ggml.ggml_opt_get_constant_optimizer_params, P).value or 0)
    return t
