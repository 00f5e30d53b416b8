"""A tiny llama-architecture GGUF for fast tests, written with the `gguf` package.

The weights are random (fixed seed) but the file is a real model that libllama loads and
runs: 2 layers, 64-wide embeddings, grouped-query attention, and a real byte-level BPE
vocabulary (256 byte tokens, merges learnt from a short English text, and the special
tokens `<s>`, `</s>`, `<|im_start|>`, `<|im_end|>`), plus a ChatML chat template.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
N_CTX_TRAIN = 512
N_MERGES = 160

SPECIALS = ["<s>", "</s>", "<|im_start|>", "<|im_end|>"]
BOS_ID, EOS_ID = 0, 1

CHATML_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The text the merges are learnt from: ordinary English, so that common words become
# single tokens the way they do in real vocabularies.
CORPUS = """
The future of artificial intelligence is bright. The cat sat on the mat and the dog
ran in the park. What is the meaning of life? Language models predict the next token
from the tokens before it. A tokenizer turns text into numbers and back into text.
The quick brown fox jumps over the lazy dog. Hello world, this is a test of the tiny
model. Questions and answers, documents and code, functions and values: the program
reads the input, thinks, and writes the output. Numbers like 1, 2, 3, 10 and 42 appear
in text too. The weather is nice today and the sun is shining over the city.
"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (byte-level BPE)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(keep, chars, strict=True)}


def learn_merges(text: str, n_merges: int) -> list[tuple[str, str]]:
    """Plain BPE training: repeatedly merge the most frequent adjacent pair."""
    b2u = bytes_to_unicode()
    words = Counter(
        tuple(b2u[b] for b in piece.encode("utf-8"))
        for piece in re.findall(r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+", text)
    )
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for a, b in zip(word, word[1:], strict=False):
                pairs[(a, b)] += count
        if not pairs:
            break
        (a, b), count = pairs.most_common(1)[0]
        if count < 2:
            break
        merges.append((a, b))
        merged: Counter[tuple[str, ...]] = Counter()
        for word, wc in words.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += wc
        words = merged
    return merges


def vocabulary() -> tuple[list[str], list[int], list[str]]:
    """Token texts, token types (1 normal, 3 control) and merges of the tiny vocabulary."""
    b2u = bytes_to_unicode()
    merges = learn_merges(CORPUS, N_MERGES)
    tokens = SPECIALS + [b2u[b] for b in range(256)]
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            tokens.append(a + b)
            seen.add(a + b)
    types = [3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS))
    return tokens, types, [f"{a} {b}" for a, b in merges]


def _weights(n_vocab: int, seed: int) -> dict[str, np.ndarray]:
    """Random f32 weights; numpy shapes are (out, in), GGUF stores them reversed."""
    rng = np.random.default_rng(seed)
    head_dim = N_EMBD // N_HEAD

    def mat(n_out: int, n_in: int, scale: float = 0.25) -> np.ndarray:
        return (rng.standard_normal((n_out, n_in)) * scale).astype(np.float32)

    w: dict[str, np.ndarray] = {
        "token_embd.weight": mat(n_vocab, N_EMBD, 1.0),  # [n_vocab, n_embd]
        "output_norm.weight": np.ones(N_EMBD, dtype=np.float32),  # [n_embd]
        # a larger output scale keeps logits well apart, so greedy argmax is robust to
        # the summation-order differences between batched and single decoding
        "output.weight": mat(n_vocab, N_EMBD, 1.0),  # [n_vocab, n_embd]
    }
    for i in range(N_LAYER):
        p = f"blk.{i}."
        w[p + "attn_norm.weight"] = np.ones(N_EMBD, dtype=np.float32)  # [n_embd]
        w[p + "attn_q.weight"] = mat(N_EMBD, N_EMBD)  # [n_head*head_dim, n_embd]
        w[p + "attn_k.weight"] = mat(N_HEAD_KV * head_dim, N_EMBD)  # [n_kv*head_dim, n_embd]
        w[p + "attn_v.weight"] = mat(N_HEAD_KV * head_dim, N_EMBD)  # [n_kv*head_dim, n_embd]
        w[p + "attn_output.weight"] = mat(N_EMBD, N_EMBD)  # [n_embd, n_head*head_dim]
        w[p + "ffn_norm.weight"] = np.ones(N_EMBD, dtype=np.float32)  # [n_embd]
        w[p + "ffn_gate.weight"] = mat(N_FF, N_EMBD)  # [n_ff, n_embd]
        w[p + "ffn_up.weight"] = mat(N_FF, N_EMBD)  # [n_ff, n_embd]
        w[p + "ffn_down.weight"] = mat(N_EMBD, N_FF)  # [n_embd, n_ff]
    return w


def add_tokenizer(writer: Any) -> int:
    """Write the tiny vocabulary (GPT-2 style BPE, BOS added) into a GGUFWriter; returns
    the vocabulary size."""
    tokens, types, merges = vocabulary()
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_add_bos_token(True)
    return len(tokens)


def write_tensors(writer: Any, tensors: dict[str, np.ndarray]) -> None:
    """Add `tensors` to a GGUFWriter, write the file and close it."""
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_tiny_model(path: str | Path, seed: int = 1234, chat_template: str | None = CHATML_TEMPLATE) -> Path:
    """Write the tiny model to `path` and return the path; `chat_template` is what the
    GGUF carries as tokenizer.chat_template (None: no template)."""
    import gguf

    path = Path(path)
    tokens, types, merges = vocabulary()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("gene-tiny-llama")
    writer.add_context_length(N_CTX_TRAIN)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(0)  # all f32
    add_tokenizer(writer)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    write_tensors(writer, _weights(len(tokens), seed))
    return path


if __name__ == "__main__":
    import sys

    print(write_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny.gguf"))
