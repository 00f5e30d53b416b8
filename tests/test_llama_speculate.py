"""Speculative generation (gene_jit.llama.speculate): guessed tokens decoded in a batch
must never change the output. Unit tests of the guesser, then the default model: greedy
and seeded sampling, streamed, with stop strings, at short and long contexts, token for
token against one-token decoding."""

from __future__ import annotations

import ctypes

import pytest

from gene_jit.llama.speculate import Drafter, Payoff, StepCosts, speculate_option


def test_drafter_guesses_what_followed_the_latest_occurrence() -> None:
    d = Drafter()
    hist = [1, 2, 3, 9, 1, 2, 3, 7, 8, 1, 2, 3]
    assert d.propose(hist, 2) == [7, 8]  # the later "1 2 3" was followed by 7 8
    assert d.propose(hist, 1) == [7]
    assert Drafter().propose([5, 6, 4, 5, 6], 3) == [4, 5, 6]  # a two-token match
    assert Drafter().propose([1, 2, 3, 4], 2) == []  # nothing repeats
    assert Drafter().propose([1, 1], 2) == []
    assert d.propose(hist, 0) == []


def test_drafter_index_grows_with_the_history() -> None:
    d = Drafter()
    hist = [4, 5, 6]
    assert d.propose(hist, 2) == []
    hist += [4, 5]
    assert d.propose(hist, 2) == [6, 4]
    hist += [6, 1]
    assert d.propose(hist, 2) == []
    hist += [4, 5, 6]
    assert d.propose(hist, 2) == [1, 4]  # the latest occurrence wins


def test_drafter_backs_off_after_misses() -> None:
    d = Drafter()
    hist = [1, 2, 3, 1, 2]
    assert d.propose(hist, 1) == [3]
    d.record(1, 0)
    assert d.propose(hist, 1) == []  # waits one step
    assert d.propose(hist, 1) == [3]
    d.record(1, 0)
    assert [d.propose(hist, 1) for _ in range(3)] == [[], [], [3]]  # then two
    d.record(1, 1)
    assert d.propose(hist, 1) == [3] and d.backoff == 1
    assert (d.proposed, d.accepted) == (3, 1)


def _costs(single: float, batch3: float) -> StepCosts:
    costs = StepCosts()
    for _ in range(3):
        costs.record(1, single)
        costs.record(3, batch3)
    return costs


def test_payoff_guesses_only_while_guesses_are_kept() -> None:
    p = Payoff(_costs(0.02, 0.032))  # a batch of three costs 1.6 single steps
    for _ in range(3):
        p.observe(2, 2)
    assert p.worth(2)
    for _ in range(4):  # the text stops repeating: every guess misses
        p.observe(2, 0)
    assert not p.worth(2)
    for _ in range(6):  # and starts again
        p.observe(2, 2)
    assert p.worth(2)


def test_payoff_takes_a_plain_step_now_and_then() -> None:
    from gene_jit.llama.speculate import REFRESH

    p = Payoff(_costs(0.02, 0.024))
    answers = []
    for _ in range(2 * REFRESH + 2):
        answers.append(p.worth(2))
        if answers[-1]:
            p.observe(2, 2)
    # a single step's cost is renewed after every REFRESH guessing steps
    assert answers == ([True] * REFRESH + [False]) * 2


def test_payoff_weighs_what_batches_cost() -> None:
    cheap, dear = Payoff(_costs(0.02, 0.024)), Payoff(_costs(0.02, 0.06))
    for p in (cheap, dear):
        for _ in range(3):
            p.observe(2, 1)
    assert cheap.worth(2) and not dear.worth(2)
    assert StepCosts().ratio(3) > 1.0  # a prior until measured


def test_step_costs_resist_slow_outliers() -> None:
    costs = StepCosts()
    costs.record(1, 1.2)  # the first decode of a context allocates its buffers
    costs.record(3, 2.0)  # a moment of contention: one step, not what batches cost
    for _ in range(4):
        costs.record(1, 0.01)
    assert costs.ratio(3) == pytest.approx(1.7)  # one slow batch does not stop guessing
    for _ in range(3):
        costs.record(3, 0.016)
    assert costs.ratio(3) == pytest.approx(1.6)


def test_payoff_counts_guesses_it_did_not_decode() -> None:
    p = Payoff(_costs(0.02, 0.032))
    hist = [5, 6, 7, 5, 6]
    for _ in range(4):  # guesses not decoded, then the tokens that followed proved them wrong
        p.skip(len(hist), [7, 5])
        hist.append(9)
        p.step(hist)
    assert p.shadow is None and p.proposed > 2.0 and not p.worth(2)
    q = Payoff(_costs(0.02, 0.032))
    hist = [5, 6, 7, 5, 6]
    for _ in range(3):
        q.skip(len(hist), [7, 5])
        hist.append(7)
        q.step(hist)  # one token known: not settled yet
        hist.append(5)
        q.step(hist)
        hist.append(6)
    assert q.worth(2)


def test_payoff_checks_a_range_only_when_it_can_repay() -> None:
    p = Payoff(_costs(0.02, 0.032))
    for _ in range(4):
        p.step([])
        p.observe(2, 2)
    assert p.worth_check(2, 200)
    assert not p.worth_check(2, 3)  # too few tokens left to repay the check


def test_speculate_option() -> None:
    from gene_jit.llama.errors import LlamaError

    assert speculate_option(None) is None and speculate_option(False) is False
    with pytest.raises(LlamaError, match=":speculate"):
        speculate_option(3)


# -- on the default model ---------------------------------------------------------------

pytest.importorskip("llama_cpp")

from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402

RECIPE = "Write a short recipe for pancakes.\n"  # the model repeats itself: guesses are kept


@pytest.fixture(scope="module")
def gemma() -> Model:
    return Model("default", threads=2, n_ctx=2048, progress=False)


def _run(m: Model, prompt: str, n: int, speculate: bool | None, **kw: object) -> tuple[str, list[int], int, int]:
    m.ctx.clear()
    kw.setdefault("temperature", 0)
    chunks: list[str] = []
    text = g.generate_text(m, prompt, n, speculate=speculate, on_token=chunks.append, **kw)
    st = m.last_stats
    assert "".join(chunks) == text
    return text, list(st.tokens), st.drafted, st.draft_kept


@pytest.mark.model
def test_speculation_keeps_greedy_output(gemma: Model) -> None:
    off = _run(gemma, RECIPE, 48, False)
    on = _run(gemma, RECIPE, 48, None)
    assert on[:2] == off[:2] and len(off[1]) == 48
    assert off[2] == 0
    if any(gemma.exact_batches.verdicts.values()):  # batches agree on this libllama
        assert on[3] > 0, "a repeating text keeps guesses"
    assert on[3] <= on[2]


@pytest.mark.model
def test_speculation_keeps_seeded_sampling(gemma: Model) -> None:
    for temperature in (0.7, 1.2):
        kw = {"temperature": temperature, "seed": 11, "repeat_penalty": 1.1}
        assert _run(gemma, RECIPE, 40, None, **kw)[:2] == _run(gemma, RECIPE, 40, False, **kw)[:2]


@pytest.mark.model
def test_speculation_stops_where_one_token_decoding_stops(gemma: Model) -> None:
    for n in (1, 2, 3, 7):
        assert _run(gemma, RECIPE, n, None)[1] == _run(gemma, RECIPE, n, False)[1]
    full = _run(gemma, RECIPE, 48, False)[0]
    stop = full[len(full) // 2 : len(full) // 2 + 4]
    a = _run(gemma, RECIPE, 48, None, stop=[stop])
    b = _run(gemma, RECIPE, 48, False, stop=[stop])
    assert a[0] == b[0] == full[: full.index(stop)]
    streamed = "".join(g.generate_text(gemma, RECIPE, 30, temperature=0, stream=True))
    assert streamed == _run(gemma, RECIPE, 30, False)[0]


@pytest.mark.model
def test_speculation_keeps_output_at_long_context(gemma: Model) -> None:
    """Past the cache lengths where a batch is computed exactly as one token at a time,
    the default mode checks and stops guessing rather than change the output."""
    prompt = RECIPE * 3 + "The history of computing is a story of machines. " * 24
    off = _run(gemma, prompt, 80, False)
    on = _run(gemma, prompt, 80, None)
    assert on[:2] == off[:2]
    for (size, bucket), same in gemma.exact_batches.verdicts.items():
        assert size in (2, 3) and bucket >= 0 and isinstance(same, bool)
    forced = _run(gemma, prompt, 80, True)
    assert len(forced[1]) == 80 and forced[3] > 0  # guesses wherever found


@pytest.mark.model
def test_exactness_check_leaves_the_cache_as_it_was(gemma: Model) -> None:
    import numpy as np

    from gene_jit.llama.speculate import ExactBatches

    ctx, n = gemma.ctx, gemma.n_vocab
    tokens = gemma.tokenize(RECIPE)

    def next_logits(check: ExactBatches | None) -> np.ndarray:
        ctx.clear()
        ctx.prefill(0, tokens)
        before = list(ctx.tokens[0])
        if check is not None:
            check.allows(ctx, 0, tokens[1:4])
            assert ctx.tokens[0] == before
        idx = ctx.feed_one(0, tokens[1])
        return np.ctypeslib.as_array((ctypes.c_float * n).from_address(ctx.logits_ptr(idx))).copy()

    checker = ExactBatches()
    assert np.array_equal(next_logits(None), next_logits(checker))
    assert checker.checks == 1
    checker.allows(ctx, 0, tokens[1:4])
    assert checker.checks == 1  # remembered


@pytest.mark.model
def test_gene_speculate_keyword(gemma: Model) -> None:
    from gene_jit.llama.errors import LlamaError

    a = g.generate_text(gemma, RECIPE, 12, temperature=0, speculate=False)
    assert a == g.generate_text(gemma, RECIPE, 12, temperature=0)
    with pytest.raises(LlamaError, match=":speculate"):
        g.generate_text(gemma, RECIPE, 4, speculate="yes")
