"""Embeddings and similarity: per-token hidden states (the model's final normalised hidden
layer, from an embeddings context), mean-pooled sentence embeddings with a per-model
cache, and `find-similar` (cosine top-k)."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import numpy as np

from gene_jit.llama import bindings
from gene_jit.llama.errors import ContextFullError, LlamaError
from gene_jit.llama.options import shown

if TYPE_CHECKING:
    from gene_jit.llama.model import Model

CACHE_LIMIT = 4096  # texts per model whose embeddings are kept


def hidden_states(model: Model, tokens: list[int]) -> np.ndarray:
    """Hidden states of every token: float32 array of shape (n_tokens, n_embd)."""
    toks = model.check_tokens(tokens)
    if not toks:
        raise LlamaError("cannot compute hidden states of an empty token list")
    ctx = model.embed_ctx
    if len(toks) > ctx.n_ctx_seq:
        raise ContextFullError(
            f"{len(toks)} tokens do not fit the embeddings context of {ctx.n_ctx_seq} tokens"
        )
    raw = bindings.lib()
    out = np.empty((len(toks), model.n_embd), dtype=np.float32)
    with ctx.lock:
        ctx.clear()
        for start in range(0, len(toks), ctx.n_batch):
            chunk = toks[start : start + ctx.n_batch]
            ctx.feed(0, chunk, logits_all=True)
            for i in range(len(chunk)):
                ptr = raw.llama_get_embeddings_ith(ctx.ptr, i)
                if not ptr:
                    raise LlamaError("libllama returned no hidden state for a token")
                row = (ctypes.c_float * model.n_embd).from_address(int(ptr))
                out[start + i] = np.ctypeslib.as_array(row)
    return out


def pool(states: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Mean over tokens (skipping a leading BOS state when there are others)."""
    vec = states.mean(axis=0) if states.ndim == 2 else np.asarray(states, dtype=np.float32)
    if normalize:
        norm = float(np.linalg.norm(vec))
        if norm > 0:
            vec = vec / norm
    return vec.astype(np.float32)


def embed(model: Model, text: str, normalize: bool = True) -> np.ndarray:
    """The embedding of `text` (mean-pooled hidden states), cached per model."""
    key = f"{int(normalize)}:{text}"
    hit = model.embedding_cache.get(key)
    if hit is not None:
        return hit
    tokens = model.tokenize(str(text), add_special=False)
    if not tokens:
        tokens = [model.bos]
    vec = pool(hidden_states(model, tokens), normalize)
    if len(model.embedding_cache) >= CACHE_LIMIT:
        model.embedding_cache.pop(next(iter(model.embedding_cache)))
    model.embedding_cache[key] = vec
    return vec


def as_vector(model: Model | None, item: Any) -> np.ndarray:
    """A unit vector from a text (embedded), a vector or a matrix of hidden states."""
    if isinstance(item, str):
        if model is None:
            raise LlamaError("embedding a text needs a model")
        return embed(model, item)
    if hasattr(item, "numpy"):
        item = item.numpy()
    try:
        arr = np.asarray(item, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise LlamaError(f"not an embedding or a text: {shown(item)}") from exc
    if arr.ndim not in (1, 2) or arr.size == 0:
        shape = " ".join(str(d) for d in arr.shape)
        raise LlamaError(f"an embedding must be a vector (or hidden states), got shape [{shape}]")
    return pool(arr, normalize=True)


def find_similar(
    model: Model | None, items: Any, query: Any, k: int = 1, documents: Any = None
) -> list[Any]:
    """The `k` items most similar (cosine) to `query`, best first.

    Items that are texts come back as texts; with `documents`, the matching documents
    come back; otherwise the indices of the best embeddings."""
    items = list(items)
    if not items:
        return []
    k = max(1, min(int(k), len(items)))
    q = as_vector(model, query)
    mat = np.stack([as_vector(model, it) for it in items])
    if mat.shape[1] != q.shape[0]:
        raise LlamaError(f"embeddings have {mat.shape[1]} dimensions but the query has {q.shape[0]}")
    scores = mat @ q
    best = [int(i) for i in np.argsort(-scores, kind="stable")[:k]]
    if documents is not None:
        docs = list(documents)
        if len(docs) != len(items):
            raise LlamaError(f"{len(docs)} documents for {len(items)} embeddings")
        return [docs[i] for i in best]
    if all(isinstance(it, str) for it in items):
        return [items[i] for i in best]
    return best


def similarity(model: Model | None, a: Any, b: Any) -> float:
    """Cosine similarity of two texts or embeddings."""
    return float(as_vector(model, a) @ as_vector(model, b))
