"""Constrained generation: the lazily applied grammar gives the same greedy output as a
grammar filtering every candidate; JSON mode always ends; bad grammars and schemas are
Gene errors that say what is wrong. Runs on the tiny GGUF, plus one check on the default
model (marked `model`)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tiny_model import write_tiny_model  # noqa: E402

from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama import sampler as sampler_mod  # noqa: E402
from gene_jit.llama.errors import GrammarError, LlamaError  # noqa: E402
from gene_jit.llama.generate import Generation  # noqa: E402
from gene_jit.llama.grammar import schema_to_gbnf  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402
from gene_jit.llama.sampler import Sampler, Sampling  # noqa: E402
from gene_jit.runtime.errors import GeneError  # noqa: E402

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 10}, "age": {"type": "integer"},
                   "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3}},
    "required": ["name", "age", "tags"],
}
GRAMMARS = {
    "yes-no": 'root ::= ("yes" | "no") "."',
    "digits": 'root ::= [1-9] [0-9]{2,6} " apples"',
    "person": schema_to_gbnf(PERSON),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Model:
    path = write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")
    return Model(str(path), n_ctx=512, threads=2)


def constrained(m: Model, prompt: str, grammar: str, n: int, lazy: bool, **kw: Any) -> tuple[str, list[int], Sampler]:
    """Generate under `grammar` with the grammar applied lazily or to every candidate."""
    sampling = Sampling.from_kwargs(m, dict(kw, grammar=grammar))
    sampling.lazy_grammar = lazy
    m.ctx.clear()
    gen = Generation(m, m.ctx, m.prompt_tokens(prompt), n, sampling)
    text = gen.run()
    return text, list(gen.stats.tokens), gen.sampler


@pytest.mark.parametrize("name", sorted(GRAMMARS))
@pytest.mark.parametrize("prompt", ["The cat", "Give a person as JSON:", "Numbers like 1, 2"])
def test_lazy_grammar_equals_eager_greedy(tiny: Model, name: str, prompt: str) -> None:
    eager = constrained(tiny, prompt, GRAMMARS[name], 120, lazy=False, temperature=0)
    lazy = constrained(tiny, prompt, GRAMMARS[name], 120, lazy=True, temperature=0)
    assert lazy[0] == eager[0] and lazy[1] == eager[1]
    assert eager[2].checks == 0  # the reference really filtered every candidate
    assert lazy[2].checks == len(lazy[1]) + 1  # every sampled token, and the final EOG
    assert tiny.last_stats.finish_reason == "stop"


def test_lazy_grammar_with_penalties_is_penalised_greedy(tiny: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    # with a repeat penalty each token must be the best penalised logit among the tokens
    # the grammar allows (here: the digit tokens), computed afresh from the raw logits
    seen: list[Any] = []
    real = Sampler._logits

    def recording(self: Sampler, ctx: int, idx: int) -> Any:
        row = real(self, ctx, idx)
        if not seen or seen[-1][0] != len(self_tokens(self)):
            seen.append((len(self_tokens(self)), row.copy()))
        return row

    accepted: dict[int, list[int]] = {}

    def self_tokens(sampler: Sampler) -> list[int]:
        return accepted.setdefault(id(sampler), [])

    real_sample = Sampler.sample

    def sample(self: Sampler, ctx: int, idx: int) -> int:
        tok = real_sample(self, ctx, idx)
        self_tokens(self).append(tok)
        return tok

    monkeypatch.setattr(Sampler, "_logits", recording)
    monkeypatch.setattr(Sampler, "sample", sample)
    text, tokens, sampler = constrained(tiny, "The cat", "root ::= [0-9]{30}", 40, lazy=True,
                                        temperature=0, repeat_penalty=1.5)
    assert sampler.stateful and len(text) == 30 and text.isdigit()
    digits = [t for t in range(tiny.n_vocab) if tiny.piece(t).isdigit()]
    for step, logits in seen[: len(tokens)]:
        recent = set(tokens[max(0, step - 64) : step])
        best = max(digits, key=lambda t: logits[t] / 1.5 if t in recent and logits[t] > 0
                   else logits[t] * 1.5 if t in recent else logits[t])
        assert tokens[step] == best, step
    plain = constrained(tiny, "The cat", "root ::= [0-9]{30}", 40, lazy=True, temperature=0)[0]
    assert plain != text  # the penalty changed the output


def test_shortlist_settles_rejections_like_a_full_pass(tiny: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    # the tiny vocabulary is smaller than the real shortlist: shrink it so that it is used
    monkeypatch.setattr(sampler_mod, "SHORTLIST", 24)
    resamples = full_passes = 0
    for grammar in GRAMMARS.values():
        eager = constrained(tiny, "Give a person as JSON:", grammar, 120, lazy=False, temperature=0)
        lazy = constrained(tiny, "Give a person as JSON:", grammar, 120, lazy=True, temperature=0)
        assert lazy[:2] == eager[:2]
        assert lazy[2].shortlist == 24
        resamples += lazy[2].resamples
        full_passes += lazy[2].full_passes
    assert full_passes < resamples  # some rejections never touched the whole vocabulary


def test_lazy_grammar_with_penalties_equals_eager(tiny: Model) -> None:
    for prompt in ("The cat", "Give a person as JSON:"):
        kw: dict[str, Any] = {"temperature": 0, "repeat_penalty": 1.3}
        eager = constrained(tiny, prompt, GRAMMARS["person"], 120, lazy=False, **kw)
        lazy = constrained(tiny, prompt, GRAMMARS["person"], 120, lazy=True, **kw)
        assert lazy[:2] == eager[:2]
        assert lazy[2].stateful and lazy[2].resamples > 0


def test_lazy_grammar_sampling_obeys_the_grammar(tiny: Model) -> None:
    for seed in range(4):
        text, _, sampler = constrained(tiny, "Answer:", GRAMMARS["digits"], 20, lazy=True, temperature=1.0, seed=seed)
        assert text.endswith(" apples") and text[:-7].isdigit() and 3 <= len(text[:-7]) <= 7
        assert sampler.checks > 0


def test_constrained_generation_reads_logits_only_on_rejections(tiny: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    from gene_jit.llama import bindings

    raw = bindings.lib()
    real = raw.llama_get_logits_ith
    calls: list[int] = []

    def counted(ctx: Any, i: int) -> Any:
        calls.append(i)
        return real(ctx, i)

    monkeypatch.setattr(raw, "llama_get_logits_ith", counted, raising=False)
    _, tokens, sampler = constrained(tiny, "Give a person as JSON:", GRAMMARS["person"], 120, lazy=True, temperature=0)
    # and once more: the first token's logit, checked for NaN (gene_jit.llama.sampler)
    assert len(calls) == sampler.resamples + 1 < sampler.checks


# ------------------------------------------------------------- JSON mode always ends

UNBOUNDED_STRING = {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}
UNBOUNDED_ARRAY = {"type": "object", "properties": {"nums": {"type": "array", "items": {"type": "integer"}}},
                   "required": ["nums"]}


def test_json_mode_bounds_unbounded_strings(tiny: Model) -> None:
    # the tiny model's random weights rarely choose '"': without the library's length
    # limit this string would run to the token budget and fail
    value = g.generate_json(tiny, "A word:", UNBOUNDED_STRING, 400)
    stats = tiny.last_stats
    assert stats.finish_reason == "stop"
    assert len(value["word"]) <= g.JSON_MAX_STRING
    # '{"word":"' + at most JSON_MAX_STRING characters (an escape is up to 6 tokens) + '"}'
    assert stats.generated <= 12 + 6 * g.JSON_MAX_STRING


def test_json_mode_bounds_unbounded_arrays(tiny: Model) -> None:
    value = g.generate_json(tiny, "Some numbers:", UNBOUNDED_ARRAY, 400)
    stats = tiny.last_stats
    assert stats.finish_reason == "stop"
    assert len(value["nums"]) <= g.JSON_MAX_ITEMS
    # each integer is at most 17 characters with its comma (the converter's own limit)
    assert stats.generated <= 12 + 18 * g.JSON_MAX_ITEMS


def test_json_cut_by_the_token_limit_is_an_error(tiny: Model) -> None:
    with pytest.raises(LlamaError, match="did not finish the JSON within 3 tokens") as info:
        g.generate_json(tiny, "Give a person as JSON:", PERSON, 3)
    assert isinstance(info.value, GeneError)
    assert tiny.last_stats.finish_reason == "length" and tiny.last_stats.generated == 3


def test_bounded_schema_keeps_explicit_limits() -> None:
    bounded = g._bounded({"type": "object", "properties": {
        "a": {"type": "string", "maxLength": 3}, "b": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
        "c": {"type": "string", "enum": ["x", "y"]}}})
    props = bounded["properties"]
    assert props["a"]["maxLength"] == 3 and props["b"]["maxItems"] == 2
    assert props["b"]["items"]["maxLength"] == g.JSON_MAX_STRING and "maxLength" not in props["c"]
    assert bounded["additionalProperties"] is False


# ------------------------------------------------------------- bad grammars and schemas


@pytest.mark.parametrize(("grammar", "problem"), [
    ("root ::= (((", "expecting ')'"),
    ("root ::= foo", "Undefined rule identifier 'foo'"),
    ('rot ::= "a"', "no rule named root"),
    ('root ::= "a', "unexpected end of input"),
])
def test_invalid_gbnf_names_the_problem(tiny: Model, grammar: str, problem: str, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(GrammarError, match="does not parse as GBNF") as info:
        g.generate_with_grammar(tiny, "x", grammar, 5)
    assert problem in info.value.message
    assert "error parsing grammar" not in capfd.readouterr().err  # reported once, in the error


def test_valid_grammar_after_invalid_ones_still_works(tiny: Model) -> None:
    with pytest.raises(GrammarError):
        g.generate_with_grammar(tiny, "x", "root ::= [a-", 5)
    assert g.generate_with_grammar(tiny, "Answer:", GRAMMARS["yes-no"], 10) in ("yes.", "no.")


def test_grammar_cut_by_the_token_limit_is_an_error(tiny: Model) -> None:
    """Stopping at `n` tokens inside the grammar is reported, never returned as if the
    output matched; an output that may end where it stopped is returned."""
    with pytest.raises(GrammarError, match="did not complete the grammar within 3 tokens"):
        g.generate_with_grammar(tiny, "Count:", 'root ::= "a" [0-9]{40} "z"', 3)
    out = g.generate_with_grammar(tiny, "Count:", "root ::= [a-z]+", 4, temperature=0)
    assert out and out.isalpha() and tiny.last_stats.finish_reason == "length"


@pytest.mark.parametrize("schema", [
    {"type": "nonsense"},
    {"type": 42},
    {"type": "object", "properties": "name"},
    {"$ref": "#/definitions/missing"},
    {"type": "string", "pattern": "(("},
    {"enum": 3},
    "{not json",
    ["type", "object"],
])
def test_invalid_json_schema_is_a_gene_error(tiny: Model, schema: Any) -> None:
    # a GrammarError, or an OptionError for a value that is no schema at all (a list)
    with pytest.raises(LlamaError, match="JSON schema"):
        g.generate_text(tiny, "x", 5, json_schema=schema)


def test_generate_json_with_invalid_schema(tiny: Model) -> None:
    with pytest.raises(GrammarError, match="JSON schema"):
        g.generate_json(tiny, "x", {"type": "nonsense"}, 5)


# ------------------------------------------------------------- the default model


@pytest.fixture(scope="module")
def gemma() -> Model:
    return Model("default", threads=2, n_ctx=1024, progress=False)


@pytest.mark.model
def test_default_model_lazy_json_equals_eager(gemma: Model) -> None:
    # short on purpose: the eager reference filters all 262k tokens at every step
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
              "required": ["city"]}
    grammar = schema_to_gbnf(schema)
    prompt = "Give the largest city of Japan as JSON:"
    eager = constrained(gemma, prompt, grammar, 24, lazy=False, temperature=0)
    lazy = constrained(gemma, prompt, grammar, 24, lazy=True, temperature=0)
    assert lazy[:2] == eager[:2]
    assert gemma.last_stats.finish_reason == "stop"
    sampler = lazy[2]
    # the first sampled token (a newline or a code fence, not '{') is always rejected;
    # the shortlist settles rejections without a pass over the 262k-token vocabulary
    assert 0 < sampler.resamples and sampler.full_passes == 0
