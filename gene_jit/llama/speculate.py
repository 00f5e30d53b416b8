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

A guess that misses costs time, and so does a check: the default mode guesses only where
that is expected to pay on the text at hand. `Payoff` (one per generation) keeps a
decaying count of how many guessed tokens the sampler kept, including guesses it did not
decode (checked against the tokens that followed), and `StepCosts` (one per model)
measures what a batch of each size costs against a single token. A step guesses when
the tokens it is expected to yield cost less than that batch, and a range is checked
only when the savings expected over the rest of the generation exceed the check.
"""

from __future__ import annotations

import ctypes
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from gene_jit.llama.errors import LlamaError
from gene_jit.llama.options import shown

if TYPE_CHECKING:
    from gene_jit.llama.context import Context

__all__ = ["MAX_DRAFT", "Drafter", "ExactBatches", "Payoff", "StepCosts", "speculate_option"]

MAX_DRAFT = 2  # guessed tokens per step
KV_BUCKET = 256  # cache lengths are checked in ranges of this many cells
MAX_BACKOFF = 8  # steps without guessing after repeated misses
PRIOR_BATCH_COST = 0.35  # single steps each extra row of a batch is assumed to cost
DECAY = 0.8  # weight of older guesses in the kept-token estimate
MARGIN = 0.1  # single steps a guessing step must be expected to save
REFRESH = 8  # guessing steps in a row before a plain one renews what a single step costs
COST_WINDOW = 15  # latest step timings per batch size the cost estimate is taken from
MIN_SAMPLES = 3  # timings of a batch size before they alone say what it costs


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

    def needs_check(self, ctx: Context, seq: int, n: int) -> bool:
        """Whether `allows` for a batch of `n` tokens would have to decode to answer."""
        bucket = (len(ctx.tokens[seq]) + n - 1) // KV_BUCKET
        bad = self.first_bad.get(n)
        return (bad is None or bucket < bad) and (n, bucket) not in self.verdicts

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


class StepCosts:
    """Per model: seconds a decoding step costs (decode and sampling), by batch size: the
    median of the latest measurements, which a slow first decode (buffers allocated
    for a new batch shape) or a moment of contention on a shared machine cannot skew."""

    def __init__(self) -> None:
        self.samples: dict[int, deque[float]] = {}

    def record(self, size: int, seconds: float) -> None:
        window = self.samples.get(size)
        if window is None:
            window = self.samples[size] = deque(maxlen=COST_WINDOW)
        window.append(seconds)

    def seconds(self, size: int) -> float | None:
        window = self.samples.get(size)
        if not window:
            return None
        ordered = sorted(window)
        return ordered[len(ordered) // 2]

    def ratio(self, size: int) -> float:
        """What a batch of `size` costs in single steps: measured, once there are enough
        measurements for one slow step not to stop guessing for good (until then the
        prior, unless the measurements say it is cheaper)."""
        prior = 1.0 + PRIOR_BATCH_COST * (size - 1)
        one, many = self.seconds(1), self.seconds(size)
        if not one or not many:
            return prior
        measured = many / one
        return measured if len(self.samples[size]) >= MIN_SAMPLES else min(measured, prior)


class Payoff:
    """Per generation: whether decoding a guess is expected to save time, from how many
    guessed tokens the sampler kept so far (guesses not decoded count too: they are
    compared with the tokens that followed) and what batches cost."""

    def __init__(self, costs: StepCosts) -> None:
        self.costs = costs
        self.kept = 1.0  # decaying counts, starting from an even prior
        self.proposed = 2.0
        self.steps = 2.0  # decaying count of steps, and of steps that had a guess
        self.guessed = 1.0
        self.shadow: tuple[int, list[int]] | None = None  # (history index, guess)
        self.run = 0  # steps in a row that `worth` let guess

    def step(self, hist: list[int]) -> None:
        """A decoding step begins: settle a guess that was not decoded, now that the
        tokens it guessed are known."""
        self.steps = DECAY * self.steps + 1.0
        if self.shadow is None:
            return
        start, guess = self.shadow
        seen = hist[start : start + len(guess)]
        kept = 0
        while kept < len(seen) and seen[kept] == guess[kept]:
            kept += 1
        if kept < len(seen) or len(seen) == len(guess):
            self.shadow = None
            self.observe(len(guess), kept)

    def observe(self, proposed: int, kept: int) -> None:
        self.kept = DECAY * self.kept + kept
        self.proposed = DECAY * self.proposed + proposed
        self.guessed = DECAY * self.guessed + 1.0

    def expected_gain(self, k: int) -> float:
        """Single steps saved by decoding `k` guesses with the pending token: the tokens
        the step yields (one, plus guesses kept in a row) less what the batch costs."""
        rate = self.kept / self.proposed
        tokens = 1.0 + sum(rate**i for i in range(1, k + 1))
        return tokens - self.costs.ratio(k + 1)

    def worth(self, k: int) -> bool:
        if self.run >= REFRESH:
            # what a single step costs is measured only on plain steps: one now and then
            # keeps that figure as current as the batches' (on a machine whose load
            # changes, an old figure would make batches look cheaper than they are)
            self.run = 0
            return False
        if self.expected_gain(k) > MARGIN:
            self.run += 1
            return True
        self.run = 0
        return False

    def worth_check(self, k: int, remaining: int) -> bool:
        """Whether checking a new range (a batch, then its tokens one by one) is expected
        to be repaid by the guessing steps left in this generation."""
        gain = self.expected_gain(k)
        per_step = max(gain + self.costs.ratio(k + 1), 1.0)  # tokens a guessing step yields
        steps_left = remaining * min(self.guessed / self.steps, 1.0) / per_step
        cost = self.costs.ratio(k + 1) + k + 1
        return gain * steps_left > cost

    def skip(self, start: int, guess: list[int]) -> None:
        """A guess not decoded: remember it to compare with what follows."""
        if self.shadow is None:
            self.shadow = (start, guess)


def _row(ctx: Context, index: int, n_vocab: int) -> np.ndarray:
    ptr = ctx.logits_ptr(index)
    return np.ctypeslib.as_array((ctypes.c_float * n_vocab).from_address(ptr))


def speculate_option(value: Any) -> bool | None:
    """`:speculate`: nil (where the output stays the same), true (wherever a guess is
    found) or false (never)."""
    if value is None or isinstance(value, bool):
        return value
    raise LlamaError(f":speculate must be true, false or nil, got {shown(value)}")
