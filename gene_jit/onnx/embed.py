"""Embeddings from an ONNX text encoder: `model/embed` and `find-similar`.

An encoder takes `input_ids` (and, where declared, `attention_mask` and `token_type_ids`)
and gives either one vector per text (an output of rank 2, such as
`sentence_embedding`) or one per token (rank 3, `last_hidden_state`), which is mean
pooled over the tokens. Texts become token ids through the `:tokenizer` function given
to `model/create`.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from gene_jit.onnx.model import OnnxError

if TYPE_CHECKING:
    from gene_jit.onnx.model import OnnxModel


def token_ids(model: OnnxModel, text: Any) -> list[int]:
    source = "model/embed: expected a text or a non-empty array of token ids"
    if isinstance(text, str):
        if model.tokenizer is None:
            raise OnnxError("model/embed: this ONNX model takes token ids; give model/create a "
                            ":tokenizer function from text to ids, or pass the ids")
        text = model.tokenizer(text)
        source = "model/embed: the :tokenizer must give a non-empty array of token ids"
    if hasattr(text, "numpy"):
        text = text.numpy()
    try:
        ids = np.asarray(text)
    except ValueError:  # ragged nesting
        ids = np.asarray([])
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
        raise OnnxError(f"{source}, got {_shown(text)}")
    if ids.min() < 0:  # onnxruntime's Gather would count it from the end of the table
        raise OnnxError(f"model/embed: token id {int(ids.min())} is negative; ids count from 0")
    return [int(i) for i in ids]


def _shown(value: Any) -> str:
    from gene_jit.tensor.dtypes import shown

    return shown(value)


def embed(model: OnnxModel, text: Any, normalize: bool) -> Any:
    from gene_jit.tensor.tensor import Tensor

    t = Tensor.from_numpy(vector(model, text, normalize))
    weakref.finalize(t, _origins.pop, id(t), None)
    _origins[id(t)] = os.path.basename(model.path)
    return t


# id(embedding) -> the file of the ONNX model that made it, while the tensor lives: a
# text query beside such embeddings must be embedded by that model, not by a GGUF one
_origins: dict[int, str] = {}


def origin(items: Any) -> str | None:
    """The ONNX model file that made one of `items` (embeddings), if any did."""
    return next((_origins[id(i)] for i in items if id(i) in _origins), None)


def vector(model: OnnxModel, text: Any, normalize: bool = True) -> np.ndarray:
    """The float32 embedding of a text or of token ids."""
    names = {p.name for p in model.inputs}
    unknown = names - {"input_ids", "attention_mask", "token_type_ids"}
    if len(model.inputs) > 1 and (unknown or "input_ids" not in names):
        raise OnnxError(f"model/embed: {os.path.basename(model.path)} is not a text encoder: its "
                        f"inputs are {model._names()}, where an encoder takes input_ids (and "
                        "attention_mask, token_type_ids); run it with model/forward")
    ids = np.asarray([token_ids(model, text)], dtype=np.int64)
    ids_name = "input_ids" if "input_ids" in names else model.inputs[0].name
    feeds: dict[str, Any] = {ids_name: ids}
    mask = np.ones_like(ids)
    if "attention_mask" in names:
        feeds["attention_mask"] = mask
    if "token_type_ids" in names:
        feeds["token_type_ids"] = np.zeros_like(ids)
    outputs = model.forward(feeds, "model/embed", f" for the token ids {_shown(ids[0].tolist())}")
    out = _pick(model, outputs)
    if out.ndim == 3:
        weights = mask[..., None].astype(np.float32)
        out = (out * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
    vec = np.asarray(out[0], dtype=np.float32)
    if normalize:
        norm = float(np.linalg.norm(vec))
        if norm > 0:
            vec = vec / norm
    return vec


def _pick(model: OnnxModel, outputs: dict[str, Any]) -> np.ndarray:
    """The sentence-level output if the model has one, else the first per-token one."""
    arrays = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in outputs.items()}
    for rank in (2, 3):
        for name in (p.name for p in model.outputs):
            a = arrays[name]
            if a.ndim == rank and a.dtype.kind == "f":
                return a
    raise OnnxError("model/embed: the model has no float output of shape [batch dim] or "
                    "[batch tokens dim] to take an embedding from")


def find_similar(model: OnnxModel, items: Any, query: Any, k: Any, documents: Any) -> list[Any]:
    """`find-similar` with an ONNX encoder: texts are embedded by it."""
    from gene_jit.llama.embed import find_similar as rank

    items = list(items)
    texts = items if items and all(isinstance(i, str) for i in items) else None
    vectors = [vector(model, i) if isinstance(i, str) else i for i in items]
    q = vector(model, query) if isinstance(query, str) else query
    if documents is None and texts is not None:
        documents = texts
    return rank(None, vectors, q, 1 if k is None else k, documents)
