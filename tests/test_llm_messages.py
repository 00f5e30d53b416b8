"""LLM errors that point the right way: a context-full error's advice works where it is
given (batch-generate takes :truncate as generate-text does), format-chat-prompt with the
model first names the order it takes, and JSON schemas that no value satisfies are
refused before generation instead of running to the token limit and blaming it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tiny_model import write_tiny_model  # noqa: E402

from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama.errors import GrammarError, LlamaError  # noqa: E402
from gene_jit.llama.grammar import schema_to_gbnf  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402
from gene_jit.llama.schema import bounded  # noqa: E402

LONG = "The cat sat on the mat and the dog ran in the park. " * 20


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    m = Model(str(write_tiny_model(tmp_path_factory.mktemp("m") / "tiny.gguf")), n_ctx=64, threads=1,
              progress=False)
    yield m
    m.close()


CALLS = {
    "generate-text": lambda m, **kw: g.generate_text(m, LONG, 3, temperature=0, **kw),
    "batch-generate": lambda m, **kw: g.batch_generate(m, [LONG, "hi"], 3, temperature=0, **kw),
    "model/generate": lambda m, **kw: g.model_generate(m, LONG, 3, temperature=0, **kw),
    "chat-send": lambda m, **kw: g.chat_send(g.chat_session(m), LONG, 3, **kw),
}


@pytest.mark.parametrize("entry", sorted(CALLS))
def test_the_context_full_advice_is_taken(tiny: Model, entry: str) -> None:
    """Wherever a context-full error advises :truncate true, the call takes it."""
    try:
        CALLS[entry](tiny)
    except LlamaError as exc:  # ContextFullError, or chat-send's own
        if ":truncate true" in exc.message:
            assert CALLS[entry](tiny, truncate=True)
    else:
        pytest.fail(f"{entry}: a prompt of {len(tiny.tokenize(LONG))} tokens fit a context of 256")


def test_batch_truncate_gives_what_generate_text_gives(tiny: Model) -> None:
    one = [g.generate_text(tiny, p, 3, temperature=0, truncate=True) for p in (LONG, "hi")]
    assert g.batch_generate(tiny, [LONG, "hi"], 3, temperature=0, truncate=True) == one


def test_format_chat_prompt_with_the_model_first(tiny: Model) -> None:
    with pytest.raises(LlamaError) as info:
        g.format_chat_prompt_fn(tiny, [], "Name a colour.")
    assert "(format-chat-prompt history message model)" in info.value.message
    assert "Name a colour" not in info.value.message
    assert "Name a colour." in g.format_chat_prompt_fn([], "Name a colour.", tiny)


UNSATISFIABLE = [
    ({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 1}, "minItems": 3,
      "uniqueItems": True}, "minItems 3 needs 3 different items but items allows only 2 values"),
    ({"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 3, "uniqueItems": True}, "only 2 values"),
    ({"type": "array", "items": {"type": "boolean"}, "minItems": 3, "uniqueItems": True}, "only 2 values"),
    ({"type": "array", "items": {"const": 1}, "minItems": 2, "uniqueItems": True}, "only 1 value"),
    ({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 10, "multipleOf": 5},
      "minItems": 4, "uniqueItems": True}, "only 3 values"),
    ({"type": "object", "properties": {}, "required": ["a"], "additionalProperties": False},
     '"a" is required but it is not in properties and additionalProperties is false'),
    ({"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["a", "b"],
      "additionalProperties": False}, '"a" is required'),
    ({"type": "object", "required": ["a", "b"], "maxProperties": 1}, "2 keys are required but maxProperties is 1"),
    ({"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "null"}, "minItems": 2,
                                              "uniqueItems": True}}},
     "at $.properties.xs: minItems 2 needs 2 different items"),
]


@pytest.mark.parametrize(("schema", "words"), UNSATISFIABLE)
def test_unsatisfiable_schemas_are_refused_up_front(tiny: Model, schema: dict[str, Any], words: str) -> None:
    with pytest.raises(GrammarError) as info:
        g.generate_json(tiny, "List:", schema, 20)
    assert words in info.value.message and "raise n" not in info.value.message, info.value.message


@pytest.mark.parametrize("schema", [
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 2}, "minItems": 3, "uniqueItems": True},
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 1}, "minItems": 2, "uniqueItems": True},
    {"type": "array", "items": {"type": "integer"}, "minItems": 5, "uniqueItems": True},
    {"type": "object", "properties": {}, "required": ["a"]},  # additionalProperties defaults to true
    {"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["a", "b"]},
    {"type": "object", "required": ["a"], "maxProperties": 1},
])
def test_satisfiable_schemas_still_make_grammars(schema: dict[str, Any]) -> None:
    gbnf = schema_to_gbnf(bounded(schema))
    for key in schema.get("required", []):
        assert f'\\"{key}\\"' in gbnf  # the required key is in the grammar
