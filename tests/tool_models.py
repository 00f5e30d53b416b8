"""GGUF files the model-tool tests write with the `gguf` package: a LoRA adapter for any
model (A/B pairs for a few layers, with the metadata libllama's llama-adapter.cpp reads),
a small llama model wide enough to learn a sentence quickly, and a model of an
architecture libllama does not know."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tiny_model import add_tokenizer, vocabulary, write_tensors


def write_lora(path: Path, model_path: Path, seed: int, layers: int = 4, rank: int = 8,
               arch: str | None = None, targets: tuple[str, ...] = ("attn_q", "ffn_up")) -> Path:
    """A LoRA adapter for `model_path`: for each target weight of the first `layers`
    blocks, lora_a (rank x n_in) and lora_b (n_out x rank) in numpy order; GGUF stores
    them reversed, as libllama expects ({n_in, rank} and {rank, n_out})."""
    import gguf

    reader = gguf.GGUFReader(str(model_path))
    model_arch = str(reader.get_field("general.architecture").contents())
    shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch or model_arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for i in range(layers):
        for target in targets:
            n_in, n_out = shapes[f"blk.{i}.{target}.weight"]  # ggml order: {n_in, n_out}
            writer.add_tensor(f"blk.{i}.{target}.weight.lora_a",
                              (rng.standard_normal((rank, n_in)) * 0.05).astype(np.float32))
            writer.add_tensor(f"blk.{i}.{target}.weight.lora_b",
                              (rng.standard_normal((n_out, rank)) * 0.05).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_llama(path: Path, arch: str = "llama", n_embd: int = 256, n_layer: int = 2, n_head: int = 8,
                seed: int = 7, sliding_window: int | None = None) -> Path:
    """A small llama model (random weights, small initial scale as training starts from)
    with the tiny model's byte-level vocabulary; `arch` renames the architecture;
    `sliding_window` is written when given (libllama's own save writes 0)."""
    import gguf

    tokens = vocabulary()[0]
    n_ff = 2 * n_embd
    rng = np.random.default_rng(seed)

    def mat(n_out: int, n_in: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal((n_out, n_in)) * scale).astype(np.float32)

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("gene-train-llama")
    w.add_context_length(512)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_file_type(0)
    add_tokenizer(w)
    if sliding_window is not None:
        w.add_uint32(f"{arch}.attention.sliding_window", sliding_window)
    tensors = {
        "token_embd.weight": mat(len(tokens), n_embd, 0.1),  # [n_vocab, n_embd]
        "output_norm.weight": np.ones(n_embd, np.float32),
        "output.weight": mat(len(tokens), n_embd, 0.1),  # [n_vocab, n_embd]
    }
    for i in range(n_layer):
        p = f"blk.{i}."
        tensors[p + "attn_norm.weight"] = np.ones(n_embd, np.float32)
        tensors[p + "ffn_norm.weight"] = np.ones(n_embd, np.float32)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensors[p + name + ".weight"] = mat(n_embd, n_embd)  # [n_embd, n_embd]
        tensors[p + "ffn_gate.weight"] = mat(n_ff, n_embd)  # [n_ff, n_embd]
        tensors[p + "ffn_up.weight"] = mat(n_ff, n_embd)  # [n_ff, n_embd]
        tensors[p + "ffn_down.weight"] = mat(n_embd, n_ff)  # [n_embd, n_ff]
    write_tensors(w, tensors)
    return path
