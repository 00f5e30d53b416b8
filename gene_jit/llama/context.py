"""`Context`: the owning wrapper around one `llama_context` and its batch, the only place
that calls `llama_decode`, and the bookkeeping that makes decoding reproducible.

Layers (as llama-cpp-python layers them): `bindings` declares the C functions and owns
native handles; this module decodes (one call, one recovery policy when libllama refuses
a batch); `model`, `generate`, `batch`, `session` and `embed` build the library on top.

Reproducible logits. libllama's CPU kernels compute a row differently depending on the
batch it is decoded in (a prompt decoded as one batch of 20 tokens and as 19 + 1 give
logits that differ by up to 1.0), so a KV cache written by one sequence of batch shapes
cannot stand in for another. A context therefore records, for every cached cell, where
the decode call that wrote it ended (`ends`), and decodes every token list on a fixed
schedule that depends only on the tokens: the prompt in chunks that end at multiples of
`PROMPT_CHUNK` (and at its last token), each generated token on its own. `prefill`
reuses a cached prefix only up to a chunk boundary where every cached cell was written by
exactly that schedule; everything after it is decoded again. So the logits a context
returns for a token list never depend on what it decoded before.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from gene_jit.llama import bindings
from gene_jit.llama.bindings import ContextHandle
from gene_jit.llama.errors import ContextFullError, LlamaError

if TYPE_CHECKING:
    from gene_jit.llama.model import Model

__all__ = ["PROMPT_CHUNK", "Context"]

# Prompt chunks end at multiples of this many positions. Smaller chunks let prompts that
# share a prefix share more of the cache; below about 128 tokens the CPU decodes a prompt
# markedly slower (128 costs 5% more than one 512-token batch on the default model).
PROMPT_CHUNK = 128
NOT_CANONICAL = -1  # `ends` entry of a cell written outside the schedule (never reused)

_DECODE_ERRORS = {
    1: "no room in the KV cache for the batch",
    2: "the decode was aborted",
    -1: "the batch is invalid",
}


class Context:
    """A libllama context with its own lock, a batch, and a record of what each sequence
    holds (tokens, and the decode call that wrote each one).

    `canonical` contexts (the model's own, used by generate-text and batch-generate) reuse
    a cached prefix only where that keeps the logits exactly as a fresh decode gives them;
    others (a chat session's) reuse any common prefix, so each turn decodes only its new
    tokens."""

    def __init__(
        self,
        model: Model,
        n_ctx: int,
        n_seq: int = 1,
        embeddings: bool = False,
        canonical: bool = False,
        pooled: bool = False,
        flash_attn: bool | None = None,
    ) -> None:
        raw = bindings.lib()
        params = raw.llama_context_default_params()
        p = bindings.struct_value(params)
        p.n_ctx = n_ctx
        # embeddings need the whole sequence in one micro-batch
        p.n_batch = min(n_ctx, 2048) if embeddings else min(n_ctx, 512)
        p.n_ubatch = p.n_batch if embeddings else min(p.n_batch, 512)
        p.n_seq_max = n_seq
        p.n_threads = model.threads
        p.n_threads_batch = model.threads
        p.embeddings = embeddings
        p.pooling_type = bindings.POOLING_NONE
        p.no_perf = True
        # full-size sliding-window cache, so that trimming a sequence to a shared prefix
        # (prompt and chat reuse) is always possible
        p.swa_full = True
        p.kv_unified = n_seq == 1
        if flash_attn is not None:  # None: libllama's choice (on, for the CPU)
            p.flash_attn_type = 1 if flash_attn else 0
        self.handle = ContextHandle(raw.llama_init_from_model(model.handle.ptr, params), "context")
        self.ptr = self.handle.ptr
        if model.__dict__.get("has_adapters"):  # LoRA adapters chosen for the model
            from gene_jit.llama.adapters import apply_active

            apply_active(model, self)
        self.memory = raw.llama_get_memory(self.ptr)
        self.n_ctx = int(raw.llama_n_ctx(self.ptr))
        self.n_ctx_seq = int(raw.llama_n_ctx_seq(self.ptr))
        self.n_batch = int(raw.llama_n_batch(self.ptr))
        self.chunk = min(PROMPT_CHUNK, self.n_batch)
        self.n_seq = n_seq
        self.n_vocab = model.n_vocab
        self.canonical = canonical
        self.pooled = pooled  # one of the model's interchangeable contexts
        self.last_used = 0  # when a generation last claimed it (the model's counter)
        self.lock = threading.RLock()
        # libllama already spreads one decode over every thread it was given: decodes of
        # the model's contexts run one at a time rather than contend for the cores
        self.decode_lock: Any = model.decode_lock
        self.tokens: dict[int, list[int]] = {s: [] for s in range(n_seq)}
        self.ends: dict[int, list[int]] = {s: [] for s in range(n_seq)}
        self.last_decoded = 0  # tokens the last prefill had to decode (the rest were cached)
        self._owner: Any = None
        # adapters set while a generation ran here, applied when the next one claims it
        self.pending_adapters: list[Any] | None = None
        self.batch = bindings.BatchHandle(max(self.n_batch, n_seq), n_seq)
        self._decode = raw.llama_decode
        self._seq_rm = raw.llama_memory_seq_rm

    # -- who the cache belongs to ----------------------------------------------------

    @property
    def owner(self) -> Any:
        """The generation (or token stepper) whose state the KV cache holds; held weakly,
        so that a stream nobody reads any more frees its context."""
        ref = self._owner
        return None if ref is None else ref()

    @owner.setter
    def owner(self, value: Any) -> None:
        self._owner = None if value is None else weakref.ref(value)

    def busy_for(self, claimant: Any) -> bool:
        """Whether another unfinished generation still needs what this context holds."""
        owner = self.owner
        return owner is not None and owner is not claimant and getattr(owner, "done", True) is False

    # -- the cache -------------------------------------------------------------------

    def clear(self) -> None:
        bindings.lib().llama_memory_clear(self.memory, True)
        for s in self.tokens:
            self.tokens[s] = []
            self.ends[s] = []

    def trim(self, seq: int, keep: int) -> None:
        """Drop the cached tokens of `seq` from position `keep` on."""
        held = self.tokens[seq]
        if keep >= len(held):
            return
        if not self._seq_rm(self.memory, seq, keep, -1):
            self._seq_rm(self.memory, seq, -1, -1)
            keep = 0
        del held[keep:]
        del self.ends[seq][keep:]

    def shift(self, seq: int, n_keep: int) -> bool:
        """Free half of the sequence's space, keeping its first `n_keep` tokens; False when
        this cache cannot shift positions. Shifted cells are outside the schedule."""
        raw = bindings.lib()
        held = self.tokens[seq]
        n_discard = (len(held) - n_keep) // 2
        if n_discard <= 0 or not raw.llama_memory_can_shift(self.memory):
            return False
        raw.llama_memory_seq_rm(self.memory, seq, n_keep, n_keep + n_discard)
        raw.llama_memory_seq_add(self.memory, seq, n_keep + n_discard, len(held), -n_discard)
        del held[n_keep : n_keep + n_discard]
        self.ends[seq] = [NOT_CANONICAL] * len(held)
        return True

    # -- decoding --------------------------------------------------------------------

    def _submit(self, starts: tuple[tuple[int, int], ...]) -> None:
        """Decode what the batch holds: the one `llama_decode` call of the library.

        `starts` gives, for each sequence in the batch, the first position it writes.
        When libllama refuses the batch, whatever it may have written for those
        sequences is removed, so every sequence holds exactly what `tokens` records."""
        with self.decode_lock:
            rc = self._decode(self.ptr, self.batch.value())
        self.batch.n_tokens = 0
        if rc == 0:
            return
        for seq, start in starts:
            if not self._seq_rm(self.memory, seq, start, -1):
                self._seq_rm(self.memory, seq, -1, -1)
                self.tokens[seq] = []
                self.ends[seq] = []
        why = _DECODE_ERRORS.get(rc, "an internal error in libllama")
        raise LlamaError(f"libllama could not decode the batch: {why} (llama_decode returned {rc})")

    def _check_room(self, seq: int, n: int) -> None:
        held = len(self.tokens[seq])
        if held + n > self.n_ctx_seq:
            raise ContextFullError(
                f"{held + n} tokens do not fit in the context of {self.n_ctx_seq} tokens "
                "(create the model with a larger :n-ctx)"
            )

    def _call(self, seq: int, tokens: list[int], logits_all: bool, last_out: bool, end: int) -> int:
        """One decode call of `tokens` after what `seq` holds; `end` is recorded for each
        cell (the call's end, or NOT_CANONICAL). Returns the last output's batch index."""
        held = self.tokens[seq]
        base = len(held)
        batch, last, final = self.batch, -1, len(tokens) - 1
        batch.n_tokens = 0
        for j, tok in enumerate(tokens):
            out = logits_all or (last_out and j == final)
            i = batch.add(tok, base + j, seq, out)
            if out:
                last = i
        self._submit(((seq, base),))
        held.extend(tokens)
        self.ends[seq].extend([end] * len(tokens))
        return last

    def feed(self, seq: int, tokens: list[int], logits_all: bool = False, single: bool = False) -> int:
        """Decode `tokens` after what `seq` holds (in batches of at most n_batch); the
        logits of the last one (or of all) are then readable. Returns the batch index of
        the last token's output. `single`: the caller has checked that this batch
        computes every row exactly as decoding its tokens one at a time would, so its
        cells count as written one token per call."""
        self._check_room(seq, len(tokens))
        last = -1
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            base = len(self.tokens[seq])
            final = start + len(chunk) == len(tokens)
            last = self._call(seq, chunk, logits_all, final, base + len(chunk))
            if single:
                self.ends[seq][base:] = range(base + 1, base + len(chunk) + 1)
        return last

    def feed_one(self, seq: int, token: int) -> int:
        """Decode one token after what `seq` holds, with its logits: the per-token path of
        generation (no chunking, no list building)."""
        held = self.tokens[seq]
        pos = len(held)
        if pos + 1 > self.n_ctx_seq:
            self._check_room(seq, 1)
        batch = self.batch
        batch.n_tokens = 0
        batch.add(token, pos, seq, True)
        self._submit(((seq, pos),))
        held.append(token)
        self.ends[seq].append(pos + 1)
        return 0

    def feed_rows(self, rows: list[tuple[int, int]]) -> list[int]:
        """Decode one token for each of several sequences in one batch, each with its
        logits: `rows` holds (sequence, token). Returns each row's batch index."""
        batch = self.batch
        batch.n_tokens = 0
        index = [batch.add(tok, len(self.tokens[s]), s, True) for s, tok in rows]
        self._submit(tuple((s, len(self.tokens[s])) for s, _ in rows))
        for s, tok in rows:
            self.tokens[s].append(tok)
            self.ends[s].append(NOT_CANONICAL)
        return index

    def feed_prompts(self, prompts: dict[int, list[int]]) -> None:
        """Decode several sequences' tokens without logits, packed into full batches."""
        self.batch.n_tokens = 0
        pending: dict[int, list[int]] = {}
        for s, toks in prompts.items():
            self._check_room(s, len(toks))
            for tok in toks:
                if self.batch.n_tokens == self.batch.capacity:
                    self._flush(pending)
                    pending = {}
                part = pending.setdefault(s, [])
                self.batch.add(tok, len(self.tokens[s]) + len(part), s, False)
                part.append(tok)
        if self.batch.n_tokens:
            self._flush(pending)

    def _flush(self, pending: dict[int, list[int]]) -> None:
        self._submit(tuple((s, len(self.tokens[s])) for s in pending))
        for s, part in pending.items():
            self.tokens[s].extend(part)
            self.ends[s].extend([NOT_CANONICAL] * len(part))

    def prefill(self, seq: int, tokens: list[int], prompt_len: int | None = None) -> int:
        """Make `seq` hold exactly `tokens` and return the batch index of the last one's
        logits; at least the last token is decoded again so that they are fresh.

        `tokens[:prompt_len]` is a prompt (decoded in chunks), the rest were generated
        (decoded one per call, as generation decodes them); by default all are prompt.
        A canonical context reuses the cached prefix only as far as its cells were
        written on the same schedule; others reuse any common prefix."""
        if not tokens:
            raise LlamaError("cannot run the model on an empty token list")
        n = len(tokens)
        p_len = n if prompt_len is None else max(1, min(int(prompt_len), n))
        keep = self._reusable(seq, tokens, p_len)
        self.trim(seq, keep)
        keep = len(self.tokens[seq])
        self._check_room(seq, n - keep)
        self.last_decoded = n - keep
        if not self.canonical:
            return self.feed(seq, tokens[keep:])
        pos, last = keep, -1
        while pos < n:
            end = self._scheduled_end(pos, p_len)
            last = self._call(seq, tokens[pos:end], False, end == n, end)
            pos = end
        return last

    def _scheduled_end(self, pos: int, prompt_len: int) -> int:
        """Where the decode call that writes position `pos` ends on the fixed schedule."""
        if pos >= prompt_len:
            return pos + 1
        return min((pos // self.chunk + 1) * self.chunk, prompt_len)

    def _reusable(self, seq: int, tokens: list[int], prompt_len: int) -> int:
        """How many cached cells of `seq` can stand for the start of `tokens`."""
        held = self.tokens[seq]
        limit = min(len(held), len(tokens) - 1)
        if not self.canonical:
            common = 0
            while common < limit and held[common] == tokens[common]:
                common += 1
            return common
        ends, keep = self.ends[seq], 0
        for p in range(limit):
            end = self._scheduled_end(p, prompt_len)
            if held[p] != tokens[p] or ends[p] != end:
                break
            if end == p + 1:  # a call ends here in both schedules
                keep = end
        return keep

    def logits_ptr(self, index: int) -> int:
        ptr = bindings.lib().llama_get_logits_ith(self.ptr, index)
        if not ptr:
            raise LlamaError("no logits are available for that position")
        return int(ptr)

    def close(self) -> None:
        self.batch.close()
        self.handle.close()
