"""Perplexity of a model on a text, computed as llama.cpp's `perplexity` tool computes it.

The text is tokenized once (with BOS) and cut into windows of `window` tokens; each
window is decoded from an empty cache with its first token replaced by BOS, and only the
second half of each window is scored (every scored token has at least half a window of
context), each position predicting the next token. Perplexity is exp of the mean negative
log-likelihood; its standard error is propagated from the NLL's standard error of the
mean, as the tool reports "PPL = x +/- e". A text shorter than one window is scored as
one window of its own length.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gene_jit.llama.errors import LlamaError
from gene_jit.llama.progress import Bar, wanted

if TYPE_CHECKING:
    from gene_jit.llama.context import Context
    from gene_jit.llama.model import Model

MIN_TOKENS = 4  # a window of 4 scores one token
_ROWS = 32  # logit rows turned into log-probabilities at once (bounds the temporary memory)


@dataclass(frozen=True)
class Perplexity:
    perplexity: float
    error: float  # standard error of the perplexity
    nll: float  # mean negative log-likelihood per scored token (nats)
    tokens: int  # tokens scored
    windows: int
    window: int

    def as_map(self) -> dict[str, Any]:
        return {
            "perplexity": self.perplexity,
            "error": self.error,
            "nll": self.nll,
            "tokens": self.tokens,
            "windows": self.windows,
            "window": self.window,
        }

    def __str__(self) -> str:
        return f"PPL = {self.perplexity:.4f} +/- {self.error:.5f}"


def window_plan(n_tokens: int, window: int) -> tuple[int, int]:
    """(window, number of windows) for a text of `n_tokens` tokens."""
    if n_tokens < MIN_TOKENS:
        raise LlamaError(f"perplexity needs a text of at least {MIN_TOKENS} tokens (BOS included), got {n_tokens}")
    window = min(window, n_tokens)
    return window, n_tokens // window


def perplexity(model: Model, text: str, window: int = 512, progress: bool | None = None) -> Perplexity:
    """Perplexity of `model` on `text` in windows of `window` tokens."""
    if not isinstance(text, str):
        raise LlamaError(f"perplexity needs the text as a string, got {type(text).__name__}")
    if window < MIN_TOKENS:
        raise LlamaError(f"perplexity needs a window of at least {MIN_TOKENS} tokens, got {window}")
    tokens = model.tokenize(text, add_special=True)
    window, n_windows = window_plan(len(tokens), window)
    ctx = _context(model, window)
    total = sq = 0.0
    count = 0
    try:
        with Bar(f"perplexity of {model.path.name}", n_windows, wanted(progress)) as bar:
            for w in range(n_windows):
                nll = _window_nll(model, ctx, tokens[w * window : (w + 1) * window])
                total += float(nll.sum())
                sq += float((nll * nll).sum())
                count += len(nll)
                bar.update(w + 1, f"ppl {math.exp(total / count):.3f}")
    finally:
        ctx.close()
    return _result(total, sq, count, n_windows, window)


def _context(model: Model, window: int) -> Context:
    return model.new_context(n_ctx=window)  # with the model's adapters, if it has any


def _result(total: float, sq: float, count: int, n_windows: int, window: int) -> Perplexity:
    mean = total / count
    ppl = math.exp(mean)
    var = sq / count - mean * mean
    error = math.sqrt(var / (count - 1)) * ppl if count > 1 and var > 0 else 0.0
    return Perplexity(ppl, error, mean, count, n_windows, window)


def _window_nll(model: Model, ctx: Context, tokens: list[int]) -> np.ndarray:
    """NLL of each scored token of one window (positions window/2 .. window-2 predict
    the token after them)."""
    n = len(tokens)
    first = n // 2
    toks = list(tokens)
    if model.add_bos:
        toks[0] = model.bos
    out: list[np.ndarray] = []
    ctx.clear()
    for start in range(0, n, ctx.n_batch):
        chunk = toks[start : start + ctx.n_batch]
        ctx.feed(0, chunk, logits_all=True)
        lo, hi = max(first, start), min(n - 1, start + len(chunk))
        if lo < hi:
            rows = _rows(ctx, len(chunk), model.n_vocab)
            out.append(_nll(rows[lo - start : hi - start], np.asarray(tokens[lo + 1 : hi + 1])))
    ctx.clear()
    return np.concatenate(out)


def _rows(ctx: Context, k: int, n_vocab: int) -> np.ndarray:
    """The logits of the last decoded batch, (k, n_vocab), without a copy."""
    buf = (ctypes.c_float * (k * n_vocab)).from_address(ctx.logits_ptr(0))
    return np.ctypeslib.as_array(buf).reshape(k, n_vocab)


def _nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row, summed in float64 as llama.cpp sums."""
    out = np.empty(len(targets), dtype=np.float64)
    for a in range(0, len(targets), _ROWS):
        rows = logits[a : a + _ROWS]
        peak = rows.max(axis=1)
        lse = np.log(np.exp(rows - peak[:, None]).sum(axis=1, dtype=np.float64)) + peak
        out[a : a + _ROWS] = lse - rows[np.arange(len(rows)), targets[a : a + _ROWS]]
    return out
