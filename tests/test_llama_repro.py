"""Greedy output is a function of the prompt and the options alone: whatever the model
object decoded before, in whichever thread, streamed or not, with or without speculative
steps, alone or inside batch-generate. libllama computes a row differently depending on
the batch it is decoded in, so this holds only because every token list is decoded on
one schedule (gene_jit.llama.context). The prompts below sit on near-ties of the default
model (two next tokens within a few hundredths of a logit), where any difference in the
arithmetic shows in the text."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tiny_model import write_tiny_model  # noqa: E402

from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama.context import PROMPT_CHUNK, Context  # noqa: E402
from gene_jit.llama.errors import LlamaError  # noqa: E402
from gene_jit.llama.generate import Generation, Sampling  # noqa: E402
from gene_jit.llama.model import POOL_SIZE, Model  # noqa: E402

# "Once upon a time" continued after "Once" gave ", there was a small town in the"
# instead of ", there was a little girl named Lily"; "Cats like to" is " play" or " eat"
# by 0.009 of a logit depending on the batch.
NEAR_TIES = ["Once upon a time", "Cats like to", "The sky is", "Water boils at"]
BATCH_PROMPTS = ["The sky is", "Water boils at", "The capital of Italy is", "Cats like to"]
LONG = "The history of computing is a story of machines that grew smaller and faster. " * 14


def _greedy(m: Model, prompt: str, n: int = 12, **kw: object) -> str:
    return str(g.generate_text(m, prompt, n, temperature=0, **kw))


def _logits(ctx: Context, index: int) -> np.ndarray:
    row = (ctypes.c_float * ctx.n_vocab).from_address(ctx.logits_ptr(index))
    return np.ctypeslib.as_array(row).copy()


def _histories(m: Model, tokens: list[int]) -> list[Callable[[Context], None]]:
    """Ways to leave a context holding something else before `tokens` is decoded."""
    other = m.tokenize(" and then something else entirely", add_special=False)
    half = len(tokens) // 2
    return [
        lambda c: None,
        lambda c: c.prefill(0, tokens[:2]),  # a short prefix, then one token at a time
        lambda c: [c.feed_one(0, t) for t in tokens[len(c.tokens[0]):half]],
        lambda c: c.prefill(0, tokens[:half] + other),  # shares a prefix, then differs
        lambda c: c.prefill(0, tokens[: PROMPT_CHUNK + 3]),  # past a chunk boundary
        lambda c: c.prefill(0, tokens, prompt_len=3),  # the same tokens, as generated
        lambda c: c.feed(0, tokens[len(c.tokens[0]) :], logits_all=True),
        lambda c: c.prefill(0, tokens),  # the same prompt again
    ]


def _check_prefill_ignores_history(m: Model, firsts: int = 4, prompt_lens: tuple[int | None, ...] = (None, -5)) -> None:
    tokens = m.prompt_tokens(LONG)[: PROMPT_CHUNK + 60]
    assert len(tokens) == PROMPT_CHUNK + 60
    ctx = m.new_context(n_ctx=512)
    ctx.canonical = True
    try:
        for prompt_len in (None if k is None else len(tokens) + k for k in prompt_lens):
            ctx.clear()
            ref = _logits(ctx, ctx.prefill(0, tokens, prompt_len))
            for before in _histories(m, tokens):
                for first in _histories(m, tokens)[:firsts]:
                    ctx.clear()
                    first(ctx)
                    before(ctx)
                    got = _logits(ctx, ctx.prefill(0, tokens, prompt_len))
                    assert np.array_equal(got, ref)
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Model:
    path = write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")
    return Model(str(path), n_ctx=512, threads=2)


def test_prefill_logits_ignore_what_the_context_held(tiny: Model) -> None:
    _check_prefill_ignores_history(tiny)


def test_a_refused_batch_leaves_the_context_as_it_was(tiny: Model) -> None:
    """Every decode goes through one call with one recovery: a batch libllama refuses
    (here an out-of-vocabulary token) leaves each sequence holding what it held."""
    ctx = tiny.ctx
    tokens = tiny.prompt_tokens("the cat sat on the mat")
    with ctx.lock:
        ctx.clear()
        ref = _logits(ctx, ctx.prefill(0, tokens))
        for bad in (lambda: ctx.feed(0, [tiny.n_vocab + 7]),
                    lambda: ctx.feed_one(0, -3),
                    lambda: ctx.feed(0, [tokens[1], tiny.n_vocab], logits_all=True)):
            held = (list(ctx.tokens[0]), list(ctx.ends[0]))
            with pytest.raises(LlamaError, match="could not decode"):
                bad()
            assert (ctx.tokens[0], ctx.ends[0]) == held
        assert np.array_equal(_logits(ctx, ctx.prefill(0, tokens)), ref)
    batch = tiny.new_context(n_ctx=512, n_seq=2)
    batch.feed_prompts({0: tokens[:3], 1: tokens[:2]})
    with pytest.raises(LlamaError):
        batch.feed_rows([(0, tokens[3]), (1, tiny.n_vocab)])
    assert batch.tokens == {0: tokens[:3], 1: tokens[:2]}
    batch.feed_rows([(0, tokens[3]), (1, tokens[2])])
    batch.close()


def test_unfinished_streams_keep_their_context(tiny: Model) -> None:
    """A stream being read keeps its own context; one nobody reads any more, or a
    generation that failed to start, frees it (owners are held weakly)."""
    ref = _greedy(tiny, "The cat", 10)
    stream = iter(g.generate_text(tiny, "The cat", 10, temperature=0, stream=True))
    first = next(stream)
    assert tiny.ctx.owner is not None
    assert _greedy(tiny, "Hello world", 10) == _greedy(tiny, "Hello world", 10)
    assert first + "".join(stream) == ref
    size = len(tiny._pool)
    assert size >= 2
    for _ in range(POOL_SIZE + 1):  # abandoned after one chunk each
        next(iter(g.generate_text(tiny, "The cat", 10, temperature=0, stream=True)))
    too_long = tiny.prompt_tokens("the cat sat on the mat " * 200)
    for _ in range(POOL_SIZE + 1):
        with pytest.raises(LlamaError):
            Generation(tiny, tiny.ctx, too_long, 5, Sampling(temperature=0))
    assert _greedy(tiny, "The cat", 10) == ref
    assert len(tiny._pool) == size


def test_batch_generate_exact_option(tiny: Model) -> None:
    prompts = ["The cat", "Hello world, this"]
    fast = g.batch_generate(tiny, prompts, 6, temperature=0, exact=False)
    assert len(fast) == 2 and all(isinstance(t, str) for t in fast)
    with pytest.raises(LlamaError, match=":exact"):
        g.batch_generate(tiny, prompts, 6, exact="yes")


# -- on the default model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma() -> Model:
    return Model("default", threads=2, n_ctx=2048, progress=False)


@pytest.fixture(scope="module")
def refs(gemma: Model) -> dict[tuple[str, int], str]:
    """Each prompt's output (12 and 24 tokens) from another model object, its cache
    cleared before each (nothing decoded before)."""
    out: dict[tuple[str, int], str] = {}
    fresh = Model("default", threads=2, n_ctx=2048, progress=False)
    for p, n in [*((p, 12) for p in NEAR_TIES), *((p, 24) for p in BATCH_PROMPTS)]:
        fresh.ctx.clear()
        out[(p, n)] = _greedy(fresh, p, n)
    fresh.close()
    assert out[("Once upon a time", 12)].startswith(", there was a little girl")
    return out


@pytest.mark.model
def test_default_model_prefill_ignores_history(gemma: Model) -> None:
    _check_prefill_ignores_history(gemma, firsts=2, prompt_lens=(None,))


def _earlier_calls(m: Model, prompt: str) -> list[Callable[[], object]]:
    """Calls that leave the model's caches holding something related to `prompt`."""
    return [
        lambda: _greedy(m, prompt.split()[0], 8),  # a prefix whose continuation is the prompt
        lambda: _greedy(m, prompt, 3),
        lambda: _greedy(m, prompt + " a", 5),
        lambda: _greedy(m, prompt, 20, speculate=True),
        lambda: "".join(g.generate_text(m, prompt, 5, temperature=0, stream=True)),
        lambda: g.model_forward(m, m.tokenize(prompt), all=True),
    ]


@pytest.mark.model
def test_earlier_calls_do_not_change_greedy_output(gemma: Model, refs: dict[tuple[str, int], str]) -> None:
    for prompt in NEAR_TIES[:2]:
        for run in _earlier_calls(gemma, prompt):
            run()
            assert _greedy(gemma, prompt) == refs[(prompt, 12)]
        assert "".join(g.generate_text(gemma, prompt, 12, temperature=0, stream=True)) == refs[(prompt, 12)]
        assert _greedy(gemma, prompt, speculate=False) == refs[(prompt, 12)]


@pytest.mark.model
def test_threads_sharing_a_model_get_the_same_output(gemma: Model, refs: dict[tuple[str, int], str]) -> None:
    results: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(2):
                prompt = NEAR_TIES[(i + j) % len(NEAR_TIES)]
                results.append((prompt, _greedy(gemma, prompt)))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8
    assert all(text == refs[(prompt, 12)] for prompt, text in results)


@pytest.mark.model
def test_interleaved_streams_get_the_same_output(gemma: Model, refs: dict[tuple[str, int], str]) -> None:
    """Streams read in turn, with plain calls in between, and more streams alive than the
    model keeps contexts for (the oldest is rebuilt when it resumes)."""
    once = _greedy(gemma, "Once", 6)
    for count in (2, POOL_SIZE + 1):
        prompts = [NEAR_TIES[i % len(NEAR_TIES)] for i in range(count)]
        streams = [iter(g.generate_text(gemma, p, 12, temperature=0, stream=True)) for p in prompts]
        parts: list[list[str]] = [[] for _ in streams]
        live = set(range(count))
        step = 0
        while live:
            for i in sorted(live):
                chunk = next(streams[i], None)
                if chunk is None:
                    live.discard(i)
                else:
                    parts[i].append(chunk)
            step += 1
            if step == 3:
                assert _greedy(gemma, "Once", 6) == once
        for p, got in zip(prompts, parts, strict=True):
            assert "".join(got) == refs[(p, 12)]


@pytest.mark.model
def test_batch_generate_equals_one_by_one_on_the_default_model(gemma: Model, refs: dict[tuple[str, int], str]) -> None:
    batch = g.batch_generate(gemma, BATCH_PROMPTS, 24, temperature=0)
    assert batch == [refs[(p, 24)] for p in BATCH_PROMPTS]
    assert [_greedy(gemma, p, 24) for p in BATCH_PROMPTS] == batch
    fast = g.batch_generate(gemma, BATCH_PROMPTS, 24, temperature=0, exact=False)
    assert len(fast) == 4 and all(t.strip() for t in fast)
