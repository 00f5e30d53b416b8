"""FFI against the real libllama that llama-cpp-python ships: the bundled-library
fallback, structs by value (llama_model_default_params, llama_batch_get_one), callbacks
(log, model-load progress) and loading a model's vocabulary."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import Any

import pytest

from gene_jit import ffi
from gene_jit.ffi.library import bundled_path

pytestmark = pytest.mark.skipif(
    bundled_path("llama") is None, reason="llama-cpp-python not installed"
)

# llama.h of the bundled libllama (llama-cpp-python 0.3.x)
MODEL_PARAMS = [
    ("devices", "pointer"),
    ("tensor_buft_overrides", "pointer"),
    ("n_gpu_layers", "int32"),
    ("split_mode", "int"),
    ("load_mode", "int"),
    ("lazy_mode", "int"),
    ("main_gpu", "int32"),
    ("tensor_split", "pointer"),
    ("progress_callback", ["callback", "bool", ["float", "pointer"]]),
    ("progress_callback_user_data", "pointer"),
    ("kv_overrides", "pointer"),
    ("vocab_only", "bool"),
    ("check_tensors", "bool"),
    ("use_extra_bufts", "bool"),
    ("no_host", "bool"),
    ("no_alloc", "bool"),
    ("load_mtp", "bool"),
]
BATCH = [
    ("n_tokens", "int32"),
    ("token", "pointer"),
    ("embd", "pointer"),
    ("pos", "pointer"),
    ("n_seq_id", "pointer"),
    ("seq_id", "pointer"),
    ("logits", "pointer"),
]


@pytest.fixture(scope="module")
def llama() -> ffi.Library:
    return ffi.load("llama")


def test_seed_block_falls_back_to_the_bundled_library(capsys: pytest.CaptureFixture[str]) -> None:
    missing = "/usr/local/lib/libllama.so"
    if Path(missing).exists():
        pytest.skip("the seed's path exists on this machine")
    lib = ffi.load("llama", missing)
    assert lib.path == str(Path(bundled_path("llama") or "").resolve())
    assert missing in lib.note and lib.path in lib.note
    assert missing in capsys.readouterr().err
    load = ffi.defun(
        "llama-model-load",
        lib="llama",
        symbol="llama_model_load_from_file",
        returns="pointer",
        params=["string", "pointer"],
    )
    assert load.address == lib.address("llama_model_load_from_file")


def test_system_info_string(llama: ffi.Library) -> None:
    info = ffi.defun("llama_print_system_info", lib="llama", returns="string", params=[])()
    assert isinstance(info, str) and "CPU" in info


def test_model_default_params_by_value(llama: ffi.Library) -> None:
    params_t = ffi.defstruct("llama_model_params", MODEL_PARAMS)
    defaults = ffi.defun("llama_model_default_params", lib="llama", returns=params_t, params=[])
    p = defaults()
    assert isinstance(p, params_t) and p.owned
    import llama_cpp

    ref = llama_cpp.llama_model_default_params()
    assert params_t.size == ctypes.sizeof(ref)
    assert p.n_gpu_layers == ref.n_gpu_layers
    assert p.vocab_only is False and p.check_tensors == ref.check_tensors
    assert p.progress_callback is None
    assert set(p.to_map()) == {name for name, _ in MODEL_PARAMS}


def test_batch_get_one_returns_struct_by_value(llama: ffi.Library) -> None:
    batch_t = ffi.defstruct("llama_batch", BATCH)
    get_one = ffi.defun(
        "llama_batch_get_one", lib="llama", returns=batch_t, params=["buffer", "int32"]
    )
    tokens = ffi.new("int32", 3)
    for i, t in enumerate([11, 22, 33]):
        tokens[i] = t
    batch = get_one(tokens, 3)
    assert batch.n_tokens == 3
    assert batch.token.address == tokens.address
    assert ffi.array(batch.token, "int32", 3) == [11, 22, 33]
    assert batch.logits is None


def test_log_callback_is_kept_alive_while_c_holds_it(llama: ffi.Library) -> None:
    log_set = ffi.defun(
        "llama_log_set",
        lib="llama",
        returns="void",
        params=[["callback", "void", ["int", "string", "pointer"]], "pointer"],
    )
    seen: list[str] = []
    log_set(lambda level, text, data: seen.append(text), None)  # only C holds this one
    import gc

    gc.collect()
    _load_vocab(llama, Path("/nonexistent/model.gguf"))  # libllama logs the failure
    log_set(None, None)
    assert any("nonexistent" in (s or "") for s in seen)


def _load_vocab(llama: ffi.Library, path: Path, progress: Any = None) -> int | None:
    params_t = ffi.defstruct("llama_model_params", MODEL_PARAMS)
    defaults = ffi.defun("llama_model_default_params", lib="llama", returns=params_t, params=[])
    load = ffi.defun(
        "llama_model_load_from_file", lib="llama", returns="pointer", params=["string", params_t]
    )
    params = defaults()
    params.vocab_only = progress is None
    if progress is not None:
        params.progress_callback = progress
    return load(str(path), params)


@pytest.mark.model
def test_load_default_model_vocab(llama: ffi.Library) -> None:
    try:
        from gene_jit.llama.resolve import default_model_path

        path = default_model_path()
    except Exception as exc:  # noqa: BLE001 - any reason the model is absent skips
        pytest.skip(f"default model unavailable: {exc}")
    model = _load_vocab(llama, path)
    assert model
    vocab = ffi.defun("llama_model_get_vocab", lib="llama", returns="pointer", params=["pointer"])(
        model
    )
    n = ffi.defun("llama_vocab_n_tokens", lib="llama", returns="int32", params=["pointer"])(vocab)
    assert n == 262144  # Gemma 3's vocabulary
    ffi.defun("llama_model_free", lib="llama", returns="void", params=["pointer"])(model)


def test_progress_callback_from_a_struct_field(llama: ffi.Library, tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from tiny_model import write_tiny_model
    finally:
        sys.path.pop(0)
    path = write_tiny_model(tmp_path / "tiny.gguf")
    progress: list[float] = []

    def on_progress(fraction: float, data: Any) -> bool:
        progress.append(fraction)
        return True

    model = _load_vocab(llama, path, progress=on_progress)
    assert model and progress and progress[-1] == pytest.approx(1.0)
    ffi.defun("llama_model_free", lib="llama", returns="void", params=["pointer"])(model)
    # a progress callback that says stop aborts the load: NULL, not a crash
    assert _load_vocab(llama, path, progress=lambda f, d: False) is None
