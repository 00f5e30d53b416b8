"""Batched generation: several prompts decoded together in one `llama_batch`, each prompt
its own sequence id in a context with one KV stream per sequence, each with its own
sampler chain. One `llama_decode` per step serves every live sequence."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import numpy as np

from gene_jit.llama import bindings
from gene_jit.llama.errors import LlamaError
from gene_jit.llama.generate import Sampling, TextAssembler

if TYPE_CHECKING:
    from gene_jit.llama.model import Context, Model


def _context_for(model: Model, n_seq: int, per_seq: int) -> Context:
    """A context with `n_seq` sequences of at least `per_seq` tokens (reused when it fits)."""
    per_seq = (per_seq + 255) // 256 * 256
    ctx = getattr(model, "_batch_ctx", None)
    if ctx is not None and ctx.n_seq == n_seq and ctx.n_ctx_seq >= per_seq:
        return ctx
    if ctx is not None:
        ctx.close()
    ctx = model.new_context(n_ctx=n_seq * per_seq, n_seq=n_seq)
    model._batch_ctx = ctx
    return ctx


def batch_generate(model: Model, prompts: list[str], n: int, kw: dict[str, Any]) -> list[str]:
    """Generate up to `n` tokens for every prompt; returns the texts in prompt order."""
    if not isinstance(prompts, list | tuple) or not all(isinstance(p, str) for p in prompts):
        raise LlamaError("batch-generate needs an array of prompt strings")
    if not prompts:
        return []
    stops = [str(s) for s in (kw.pop("stop", None) or [])]
    sampling = Sampling.from_kwargs(model, kw)
    tokens = [model.tokenize(p, parse_special=True) for p in prompts]
    if any(not t for t in tokens):
        raise LlamaError("batch-generate cannot start from an empty prompt")
    ctx = _context_for(model, len(prompts), max(len(t) for t in tokens) + n + 1)
    samplers = [sampling.build(model) for _ in prompts]
    texts = [TextAssembler(stops) for _ in prompts]
    parts: list[list[str]] = [[] for _ in prompts]
    raw = bindings.lib()
    with ctx.lock:
        ctx.clear()
        ctx.owner = None
        _prefill(ctx, tokens)
        # each sequence's last prompt token goes in one batch, so all logits are fresh
        live = {s: ctx.batch.add(t[-1], len(t) - 1, s, True) for s, t in enumerate(tokens)}
        _decode(ctx)
        for s, t in enumerate(tokens):
            ctx.tokens[s] = list(t)
        for step in range(n):
            if not live:
                break
            nxt: dict[int, int] = {}
            for s, idx in live.items():
                tok = int(raw.llama_sampler_sample(samplers[s].ptr, ctx.ptr, idx))
                if model.is_eog(tok):
                    continue
                parts[s].append(texts[s].push(model.piece(tok)))
                if not texts[s].stopped:
                    nxt[s] = tok
            live = {}
            if step + 1 < n and nxt:
                ctx.batch.clear()
                for s, tok in nxt.items():
                    live[s] = ctx.batch.add(tok, len(ctx.tokens[s]), s, True)
                    ctx.tokens[s].append(tok)
                _decode(ctx)
    for sampler in samplers:
        sampler.close()
    return ["".join(p) + t.finish() for p, t in zip(parts, texts, strict=True)]


def forward_batch(model: Model, rows: list[list[int]]) -> np.ndarray:
    """Logits after the last token of each row, all rows decoded together: (rows, n_vocab)."""
    if not rows or any(not r for r in rows):
        raise LlamaError("model/forward needs at least one token in every row of a batch")
    ctx = _context_for(model, len(rows), max(len(r) for r in rows) + 1)
    out = np.empty((len(rows), model.n_vocab), dtype=np.float32)
    with ctx.lock:
        ctx.clear()
        ctx.owner = None
        _prefill(ctx, rows)
        index = [ctx.batch.add(r[-1], len(r) - 1, s, True) for s, r in enumerate(rows)]
        _decode(ctx)
        for s, i in enumerate(index):
            row = (ctypes.c_float * model.n_vocab).from_address(ctx.logits_ptr(i))
            out[s] = np.ctypeslib.as_array(row)
        for s, r in enumerate(rows):
            ctx.tokens[s] = list(r)
    return out


def _prefill(ctx: Context, tokens: list[list[int]]) -> None:
    """Decode every prompt but its last token, packing sequences into full batches."""
    ctx.batch.clear()
    for s, toks in enumerate(tokens):
        for pos, tok in enumerate(toks[:-1]):
            if ctx.batch.n_tokens == ctx.batch.capacity:
                _decode(ctx)
            ctx.batch.add(tok, pos, s, False)
    if ctx.batch.n_tokens:
        _decode(ctx)


def _decode(ctx: Context) -> None:
    rc = bindings.lib().llama_decode(ctx.ptr, ctx.batch.value())
    ctx.batch.clear()
    if rc != 0:
        ctx.clear()
        raise LlamaError(f"libllama could not decode the batch (llama_decode returned {rc})")
