"""GGUF files that hold something other than a model (a LoRA adapter, an importance
matrix, a multimodal projector, only a vocabulary) given where a model is expected: every
entry that opens a model file says what the file is, never a complaint about a missing
hyperparameter. The files are written here with `gguf`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

from tiny_model import add_tokenizer, write_tensors, write_tiny_model  # noqa: E402
from tool_models import write_lora  # noqa: E402

from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama import tools_api as t  # noqa: E402
from gene_jit.llama.errors import BadModelError  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kinds")


@pytest.fixture(scope="module")
def tiny_path(folder: Path) -> Path:
    return write_tiny_model(folder / "tiny.gguf")


def _write(path: Path, arch: str | None, kv: dict[str, Any], tensors: dict[str, np.ndarray],
           tokenizer: bool = False) -> Path:
    w = gguf.GGUFWriter(str(path), arch or "")  # an empty name is not written (llama-imatrix writes none)
    for key, value in kv.items():
        if isinstance(value, int):
            w.add_uint32(key, value)
        else:
            w.add_string(key, value)
    if tokenizer:
        add_tokenizer(w)
    write_tensors(w, tensors)
    return path


def write_imatrix(path: Path) -> Path:
    """As llama-imatrix writes it: no architecture, per-weight sums of squared activations."""
    ones = np.ones(64, np.float32)
    return _write(path, None, {"general.type": "imatrix", "imatrix.chunk_count": 4, "imatrix.chunk_size": 512},
                  {"blk.0.attn_q.weight.in_sum2": ones, "blk.0.attn_q.weight.counts": np.ones(1, np.float32)})


def write_vocab_only(path: Path) -> Path:
    """A model's metadata and tokenizer without any weights (a converter's --vocab-only)."""
    hparams = {"llama.block_count": 2, "llama.embedding_length": 64, "llama.context_length": 256,
               "llama.attention.head_count": 4, "general.type": "model"}
    return _write(path, "llama", hparams, {}, tokenizer=True)


@pytest.fixture(scope="module")
def files(folder: Path, tiny_path: Path) -> dict[str, Path]:
    one = np.ones(64, np.float32)
    return {
        "adapter": write_lora(folder / "lora.gguf", tiny_path, seed=1, layers=1),
        "imatrix": write_imatrix(folder / "imatrix.gguf"),
        "mmproj": _write(folder / "mmproj.gguf", "clip", {"general.type": "mmproj"}, {"v.patch_embd.weight": one}),
        "other": _write(folder / "other.gguf", "llama", {"general.type": "tokenizer-data"}, {"x.weight": one}),
        "vocab": write_vocab_only(folder / "vocab.gguf"),
    }


MESSAGES = {
    "adapter": "is a LoRA adapter for llama models (general.type is 'adapter'), not a model: create its "
               'base model and apply the adapter with (model/load-adapter model "',
    "imatrix": "is an importance matrix (general.type is 'imatrix')",
    "mmproj": "is a multimodal projector (general.type is 'mmproj'), not a language model",
    "other": "is not a model: its general.type is 'tokenizer-data'",
    "vocab": "is a vocabulary-only file (it holds no weight tensors), not a model",
}


@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_model_create_names_what_the_file_is(files: dict[str, Path], kind: str) -> None:
    path = files[kind]
    with pytest.raises(BadModelError) as info:
        g.model_create(str(path), n_ctx=64, threads=1, progress=False)
    message = info.value.message
    assert message.startswith(str(path)) and MESSAGES[kind] in message, message
    assert "block_count" not in message and "is missing" not in message


@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_quantize_input_names_what_the_file_is(files: dict[str, Path], folder: Path, kind: str) -> None:
    out = folder / f"q-{kind}.gguf"
    with pytest.raises(BadModelError, match="not a (language )?model"):
        t.model_quantize(str(files[kind]), str(out), "Q8_0", progress=False)
    assert not out.exists() and not [p for p in folder.iterdir() if ".partial" in p.name]


def test_the_gene_engine_names_an_adapter(files: dict[str, Path]) -> None:
    with pytest.raises(BadModelError, match="is a LoRA adapter"):
        g.model_create(str(files["adapter"]), engine="gene", n_ctx=64, threads=1, progress=False)


def test_a_model_found_by_name_is_checked_too(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENE_MODELS", str(files["adapter"].parent))
    with pytest.raises(BadModelError, match=r"lora\.gguf is a LoRA adapter"):
        Model("lora", n_ctx=64, threads=1, progress=False)


def test_the_adapter_still_loads_as_an_adapter(files: dict[str, Path], tiny_path: Path) -> None:
    model = Model(str(tiny_path), n_ctx=64, threads=1, progress=False)
    adapter = t.model_load_adapter(model, str(files["adapter"]), scale=0.5)
    assert t.model_adapters(model) == [{"path": str(files["adapter"]), "scale": 0.5}]
    t.model_remove_adapter(model, adapter)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gene_jit", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=dict(os.environ, GENE_LLAMA_LOG="0"))


def test_cli_commands_name_an_adapter(files: dict[str, Path], folder: Path) -> None:
    lora = files["adapter"]
    (folder / "text.txt").write_text("The tiny model reads a few words.\n")
    (folder / "prog.gene").write_text(f'(model/create "{lora}" :progress false)\n')
    runs = {
        "run": _cli("run", "prog.gene", cwd=folder),
        "eval": _cli("eval", f'(model/create "{lora}" :progress false)', cwd=folder),
        "perplexity": _cli("perplexity", str(lora), "text.txt", cwd=folder),
        "quantize": _cli("quantize", str(lora), "out.gguf", "Q8_0", cwd=folder),
    }
    for name, proc in runs.items():
        err = proc.stderr
        assert proc.returncode == 1, (name, proc.returncode, err)
        assert "is a LoRA adapter" in err and "model/load-adapter" in err, (name, err)
        assert "Traceback" not in err and "block_count" not in err, (name, err)
    assert not (folder / "out.gguf").exists()
