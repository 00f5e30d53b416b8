"""Prompt-lookup speculative decoding that does not change the output.

Small models repeat themselves, and text often repeats its prompt: when the last few
tokens occurred earlier, the tokens that followed them then are a good guess for what
follows now. A generation step decodes the pending token together with up to
`MAX_DRAFT` such guessed tokens in one batch, samples each row in order with the same
sampler chain, and keeps the guesses until the first one the sampler disagrees with. The
sampler sees the same logits in the same order as it would one token at a time, so the
output (greedy or sampled, with its seed) is the same token for token; a batch of three
costs about 1.7 single steps on the CPU, so each kept guess saves most of a step.

That holds only where libllama computes a batch bit for bit as it computes one token at
a time, which depends on its kernels: on the CPU backend, a single query over 512 or more
cached cells takes a split-cache attention path that a batch does not, and batches of
four or more take a tiled one. Rather than assume where those lines lie, `ExactBatches`
checks each batch size at each range of cache lengths the first time it is needed (the
batch decoded both ways, every logit compared) and speculates only where they agree.
`speculate=True` skips the checks (faster at long contexts, where greedy choices between
near-equal tokens may then differ from one-token decoding); `speculate=False` turns it off.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import numpy as np

from gene_jit.llama.errors import LlamaError

if TYPE_CHECKING:
    from gene_jit.llama.model import Context

__all__ = ["MAX_DRAFT", "Drafter", "ExactBatches", "speculate_option"]

MAX_DRAFT = 2  # guessed tokens per step
KV_BUCKET = 256  # cache lengths are checked in ranges of this many cells
MAX_BACKOFF = 8  # steps without guessing after repeated misses


class Drafter:
    """Guesses the next tokens from the latest earlier occurrence of the last three (or
    two) tokens of the history; after a guess that missed entirely it waits a few steps
    before guessing again, doubling the wait while guesses keep missing."""

    def __init__(self) -> None:
        self.reset()
        self.proposed = 0  # guessed tokens decoded
        self.accepted = 0  # guessed tokens kept

    def reset(self) -> None:
        """Forget the index (the history was rewritten, e.g. by a context shift)."""
        self.index2: dict[tuple[int, int], int] = {}
        self.index3: dict[tuple[int, int, int], int] = {}
        self.indexed = 0
        self.skip = 0
        self.backoff = 1

    def propose(self, hist: list[int], k: int) -> list[int]:
        if k <= 0:
            return []
        if self.skip:
            self.skip -= 1
            return []
        self._index(hist)
        if len(hist) < 3:
            return []
        start = self.index3.get((hist[-3], hist[-2], hist[-1]))
        if start is None:
            start = self.index2.get((hist[-2], hist[-1]))
        return [] if start is None else hist[start : start + k]

    def _index(self, hist: list[int]) -> None:
        """Index every 2- and 3-gram that has a following token, keeping the latest
        occurrence (the last tokens themselves have none yet)."""
        i2, i3 = self.index2, self.index3
        for j in range(max(self.indexed, 2), len(hist) - 1):
            i2[(hist[j - 2], hist[j - 1])] = j
            if j >= 3:
                i3[(hist[j - 3], hist[j - 2], hist[j - 1])] = j
        self.indexed = max(self.indexed, len(hist) - 1)

    def record(self, proposed: int, accepted: int) -> None:
        self.proposed += proposed
        self.accepted += accepted
        if accepted:
            self.backoff = 1
        else:
            self.skip = self.backoff
            self.backoff = min(self.backoff * 2, MAX_BACKOFF)


class ExactBatches:
    """Per model: the batch sizes and cache-length ranges where decoding a batch gives
    exactly the logits that decoding its tokens one at a time gives."""

    def __init__(self) -> None:
        self.verdicts: dict[tuple[int, int], bool] = {}
        self.first_bad: dict[int, int] = {}  # batch size -> first range that disagreed
        self.checks = 0

    def allows(self, ctx: Context, seq: int, tokens: list[int]) -> bool:
        """Whether `tokens` may be decoded as one batch after what `seq` holds; checks
        (and remembers) the size and range the first time. Leaves the cache as it was."""
        n, held = len(tokens), len(ctx.tokens[seq])
        bucket = (held + n - 1) // KV_BUCKET
        bad = self.first_bad.get(n)
        if bad is not None and bucket >= bad:
            return False
        verdict = self.verdicts.get((n, bucket))
        if verdict is None:
            verdict = self.verdicts[(n, bucket)] = self._check(ctx, seq, tokens)
            if not verdict:  # (a known bad range returned above, so this one is lower)
                self.first_bad[n] = bucket
        return verdict

    def _check(self, ctx: Context, seq: int, tokens: list[int]) -> bool:
        self.checks += 1
        held = len(ctx.tokens[seq])
        n_vocab = ctx.n_vocab
        try:
            ctx.feed(seq, tokens, logits_all=True)
            rows = [_row(ctx, i, n_vocab).copy() for i in range(len(tokens))]
            ctx.trim(seq, held)
            for i, tok in enumerate(tokens):
                ctx.feed_one(seq, tok)
                if not np.array_equal(rows[i], _row(ctx, 0, n_vocab)):
                    return False
            return True
        finally:
            ctx.trim(seq, held)


def _row(ctx: Context, index: int, n_vocab: int) -> np.ndarray:
    ptr = ctx.logits_ptr(index)
    return np.ctypeslib.as_array((ctypes.c_float * n_vocab).from_address(ptr))


def speculate_option(value: Any) -> bool | None:
    """`:speculate`: nil (where the output stays the same), true (wherever a guess is
    found) or false (never)."""
    if value is None or isinstance(value, bool):
        return value
    raise LlamaError(f":speculate must be true, false or nil, got {value!r}")
