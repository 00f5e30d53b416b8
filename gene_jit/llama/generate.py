"""Text generation: libllama's native sampler chain, the token loop, streaming text that
never splits a UTF-8 character, stop strings, end-of-generation tokens and context shift.

Sampling stays inside libllama (`llama_sampler_sample` reads the logits where they are),
so a generated token costs one `llama_decode` plus a few small calls, with no per-token
copy of the logits into Python (gene_jit.llama.sampler builds the samplers).
"""

from __future__ import annotations

import codecs
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gene_jit.llama.errors import ContextFullError, LlamaError
from gene_jit.llama.sampler import Sampling
from gene_jit.llama.speculate import MAX_DRAFT, Drafter, Payoff

__all__ = ["Generation", "Sampling", "Stats", "TextAssembler", "fit_prompt"]

if TYPE_CHECKING:
    from gene_jit.llama.context import Context
    from gene_jit.llama.model import Model


class TextAssembler:
    """Bytes of tokens in, text out: holds back incomplete UTF-8 characters and any tail
    that could be the start of a stop string."""

    def __init__(self, stops: list[str]) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.stopped = False

    def push(self, data: bytes) -> str:
        if not self.stops:  # nothing to hold back but incomplete characters
            return "" if self.stopped else self.decoder.decode(data)
        self.pending += self.decoder.decode(data)
        return self._release(final=False)

    def finish(self, cut: bool = True) -> str:
        """The text held back, at the end: an incomplete UTF-8 character is dropped (never
        a U+FFFD), and so is a tail that could begin a stop string when the text was `cut`
        (by the token limit) rather than ended by the model."""
        self.decoder.reset()
        return self._release(final=not cut)

    def _release(self, final: bool) -> str:
        if self.stopped:
            return ""
        text = self.pending
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            self.pending = ""
            return text[: min(hits)]
        hold = 0 if final else self._held_tail(text)
        self.pending = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold]

    def _held_tail(self, text: str) -> int:
        best = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:k]):
                    best = k
                    break
        return best


@dataclass
class Stats:
    """What the last generation cost: tokens in the prompt, how many of them had to be
    decoded (the rest came from the KV cache), tokens generated, and timings."""

    prompt_tokens: int = 0
    prompt_decoded: int = 0
    generated: int = 0
    prompt_seconds: float = 0.0
    generate_seconds: float = 0.0
    finish_reason: str = ""
    shifted: int = 0
    drafted: int = 0  # guessed tokens decoded in speculative steps
    draft_kept: int = 0  # of those, the ones the sampler agreed with
    grammar_complete: bool = True  # false: stopped at the token limit inside the grammar
    context_full: bool = False  # ended ("length") because the context filled, not at n
    tokens: list[int] = field(default_factory=list)

    def as_map(self) -> dict[str, Any]:
        return {
            "prompt-tokens": self.prompt_tokens,
            "prompt-decoded": self.prompt_decoded,
            "generated": self.generated,
            "prompt-seconds": self.prompt_seconds,
            "generate-seconds": self.generate_seconds,
            "finish-reason": self.finish_reason,
            "context-shifts": self.shifted,
            "draft-tokens": self.drafted,
            "draft-kept": self.draft_kept,
        }


def fit_prompt(model: Model, tokens: list[int], n: int, n_ctx: int, truncate: bool) -> list[int]:
    """The prompt tokens if they fit (leaving room to generate), else a clear error, or
    an explicit truncation reported on stderr when `truncate` is true."""
    room = n_ctx - min(max(n, 1), n_ctx // 2)
    if len(tokens) <= room:
        return tokens
    if not truncate:
        raise ContextFullError(
            f"the prompt has {len(tokens)} tokens but the context holds {n_ctx} "
            f"(with room for {min(n, n_ctx // 2)} generated tokens); shorten it, create the "
            "model with a larger :n-ctx, or pass :truncate true to keep its end"
        )
    head = tokens[:1] if tokens and tokens[0] == model.bos else []
    kept = head + tokens[len(tokens) - (room - len(head)) :]
    print(
        f"warning: prompt truncated from {len(tokens)} to {len(kept)} tokens to fit the context",
        file=sys.stderr,
    )
    return kept


class Generation:
    """A generation in progress on one sequence of a context: an iterator of text chunks.

    The context lock is taken for each step rather than for the whole generation, so that
    a lazily consumed stream never blocks other users of the model. A generation on one
    of the model's own contexts claims one that no other unfinished generation needs
    (`Model.claim_context`); if its context was taken anyway, the KV cache is rebuilt
    from the token history on the same schedule it was first decoded on (the prompt in
    chunks, each generated token alone), so the logits, and the output, stay the same.
    """

    def __init__(
        self,
        model: Model,
        ctx: Context,
        prompt_tokens: list[int],
        n: int,
        sampling: Sampling,
        stops: list[str] | None = None,
        seq: int = 0,
        on_token: Callable[[str], Any] | None = None,
        end_at_control: bool = False,
        speculate: bool | None = None,
    ) -> None:
        if n < 0:
            raise LlamaError(f"the number of tokens to generate must be >= 0, got {n}")
        self.done = False
        self.model, self.ctx, self.seq, self.n = model, ctx, seq, n
        self.prompt_len = len(prompt_tokens)
        self.sampler = sampling.build(model)
        self.text = TextAssembler(list(stops or []))
        self.history = list(prompt_tokens)
        self.stats = Stats(prompt_tokens=len(prompt_tokens))
        self.on_token = on_token
        # chat replies end at any control token (a base model that opens a new turn
        # instead of closing its own would otherwise write both sides of the chat)
        self.end_at = model.is_control if end_at_control else model.is_eog
        self.parts: list[str] = []
        # None: speculate where that keeps the output exactly; True: wherever a guess is
        # found; False: never (see gene_jit.llama.speculate)
        self.speculate = speculate
        self.drafter = Drafter() if speculate is not False and ctx.n_seq == 1 else None
        self.payoff = Payoff(model.step_costs)
        self._moved = False  # claimed another context: rebuild the cache there
        self._ready: deque[int] = deque()  # sampled, not yet handed out
        self._idx = -1
        self._pending: int | None = None  # sampled, in the history, not yet decoded
        if ctx.pooled:
            self.ctx = model.claim_context(self, self.history, ctx)
        self._prefill()

    def _prefill(self) -> None:
        t0 = time.perf_counter()
        try:
            with self.ctx.lock:
                self._idx = self.ctx.prefill(self.seq, self.history, self.prompt_len)
                self.stats.prompt_decoded = self.ctx.last_decoded
                self.ctx.owner = self
        except BaseException:
            self.done = True  # frees the context it claimed
            self.sampler.close()
            raise
        self.stats.prompt_seconds = time.perf_counter() - t0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while not self.done:
            chunk = self.step()
            if chunk:
                return chunk
        raise StopIteration

    def step(self) -> str:
        """The text of the next token (maybe ""). Tokens are sampled ahead in a
        speculative step (several at once, see gene_jit.llama.speculate) and handed out
        one by one.

        A sampled token is decoded at the start of the next sampling step, not before its
        text is returned: a stream shows each piece one forward pass sooner, and the last
        token (or one after which the consumer stops) is never decoded for nothing."""
        if self.done:
            return ""
        stats = self.stats
        if stats.generated >= self.n:
            return self._finish("length")
        if not self._ready:
            t0 = time.perf_counter()
            if self.ctx.owner is not self and self.ctx.pooled:
                self.ctx = self.model.claim_context(self, self.history, self.ctx)
                self._moved = True
            with self.ctx.lock:
                self._sample_more()
            stats.generate_seconds += time.perf_counter() - t0
            if not self._ready:  # the context is full and cannot shift: end with the text so far
                return self._finish("length")
        tok = self._ready.popleft()
        if self.end_at(tok):
            return self._finish("stop")
        stats.generated += 1
        stats.tokens.append(tok)
        chunk = self.text.push(self.model.piece(tok))
        if self.text.stopped:
            self._emit(chunk)
            self._finish("stop")
            return chunk
        if chunk:
            self._emit(chunk)
        if stats.generated >= self.n:
            return chunk + self._finish("length")
        return chunk

    def _sample_more(self) -> None:
        """Decode what is pending and sample: one token, or a run of guessed tokens the
        sampler agreed with and the one after them (with the context lock held)."""
        ctx = self.ctx
        if ctx.owner is not self or self._moved:
            self._idx = ctx.prefill(self.seq, self.history, self.prompt_len)
            ctx.owner = self
            self._moved = False
        elif self._pending is not None:
            tok = self._pending
            guess = self._guess(tok)
            if guess:
                self._verify(tok, guess)
                return
            t0 = time.perf_counter()
            if not self._advance(tok):
                return
            self._take(self.sampler.sample(ctx.ptr, self._idx))
            self.model.step_costs.record(1, time.perf_counter() - t0)
            return
        self._take(self.sampler.sample(ctx.ptr, self._idx))

    def _take(self, tok: int) -> None:
        self._ready.append(tok)
        self._pending = None
        if not self.end_at(tok):
            self.history.append(tok)
            self._pending = tok

    def _guess(self, tok: int) -> list[int]:
        """Tokens to decode after `tok` in the same batch: in the default mode, only where
        that keeps the output and is expected to save time (gene_jit.llama.speculate)."""
        drafter, ctx, seq = self.drafter, self.ctx, self.seq
        if drafter is None:
            return []
        remaining = self.n - self.stats.generated - 1
        room = min(MAX_DRAFT, remaining, ctx.n_ctx_seq - len(ctx.tokens[seq]) - 1)
        payoff = self.payoff
        payoff.step(self.history)
        guess = drafter.propose(self.history, room)
        if not guess or self.speculate is True:
            return guess
        exact = self.model.exact_batches
        k = len(guess)
        if not payoff.worth(k) or (exact.needs_check(ctx, seq, k + 1) and not payoff.worth_check(k, remaining)):
            payoff.skip(len(self.history), guess)
            return []
        return guess if exact.allows(ctx, seq, [tok, *guess]) else []

    def _verify(self, tok: int, guess: list[int]) -> None:
        """Decode `tok` and the guessed tokens in one batch, then sample row after row
        while the sampler picks the guessed token; the cache keeps what was kept."""
        ctx, seq = self.ctx, self.seq
        held = len(ctx.tokens[seq])
        t0 = time.perf_counter()
        # checked batches compute each row as a single token would (the cells count as
        # written one token per call); unchecked ones (:speculate true) are recorded as
        # such and never reused for another prompt
        ctx.feed(seq, [tok, *guess], logits_all=True, single=self.speculate is None)
        kept = 0
        for i in range(len(guess) + 1):
            new = self.sampler.sample(ctx.ptr, i)
            self._take(new)
            if i == len(guess) or new != guess[i] or self.end_at(new):
                break
            kept += 1
        ctx.trim(seq, held + kept + 1)
        self.model.step_costs.record(len(guess) + 1, time.perf_counter() - t0)
        self.payoff.observe(len(guess), kept)
        assert self.drafter is not None
        self.drafter.record(len(guess), kept)
        self.stats.drafted += len(guess)
        self.stats.draft_kept += kept

    def _advance(self, tok: int) -> bool:
        """Decode `tok`; false (nothing decoded) when the context is full and its cache
        cannot shift (the gene engine's): the generation then ends as at its token limit,
        finish reason "length", as an OpenAI-style API ends at the context length."""
        ctx, seq = self.ctx, self.seq
        if len(ctx.tokens[seq]) + 1 > ctx.n_ctx_seq:
            n_keep = 1 if ctx.tokens[seq][:1] == [self.model.bos] else 0
            if not ctx.shift(seq, n_keep):
                self.stats.context_full = True
                return False
            self.stats.shifted += 1
            self.history = list(ctx.tokens[seq])
            self.history.append(tok)
            self.prompt_len = len(self.history)  # shifted cells have no schedule to replay
            if self.drafter is not None:
                self.drafter.reset()
        self._idx = ctx.feed_one(seq, tok)
        return True

    def _emit(self, chunk: str) -> str:
        if chunk:
            self.parts.append(chunk)
            if self.on_token is not None:
                self.on_token(chunk)
        return chunk

    def _finish(self, reason: str) -> str:
        self.done = True
        self.stats.finish_reason = reason
        if reason == "length":
            self.stats.grammar_complete = self.sampler.grammar_complete(self.model.eos)
        self.model.last_stats = self.stats
        self.sampler.close()
        return self._emit(self.text.finish(cut=reason == "length"))

    def run(self) -> str:
        """Generate to the end and return the whole text."""
        for _ in self:
            pass
        return "".join(self.parts)
