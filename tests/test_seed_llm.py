"""The user's acceptance test: every seed block that uses the LLM API (tests/data/seed.md)
runs on the default model, unchanged except for what GENE.md's seed-compatibility rules
allow: the model name "default" instead of "llama-2-7b" (whose literal is checked to
give the clear not-found error) and the default model's vocabulary size in
`(tokenizer/create 32000)`. Driver code after the blocks calls the functions they define
and prints what the tests check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import run_gene_source

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.model

SEED = Path(__file__).resolve().parent / "data" / "seed.md"
BLOCKS = re.findall(r"```gene\n(.*?)```", SEED.read_text(), re.S)
GEMMA_VOCAB = 262144


def block(marker: str) -> str:
    """The one seed block that contains `marker`."""
    found = [b for b in BLOCKS if marker in b]
    assert len(found) == 1, f"{len(found)} seed blocks contain {marker!r}"
    return found[0]


def adapted(text: str) -> str:
    return text.replace('"llama-2-7b"', '"default"').replace("(tokenizer/create 32000)",
                                                              f"(tokenizer/create {GEMMA_VOCAB})")


# The first seed block, adapted: loads the model, tokenizer and device that the others use.
SETUP = adapted(block("# Initialize model")) + block("(fn tokenize [text]")


def run(*parts: str, stdin: str = "") -> list[str]:
    result = run_gene_source("\n".join(parts), "0", stdin=stdin, filename="<seed>")
    if result.error is not None:
        pytest.fail(f"seed program failed:\n{result.error}\nstdout:\n{result.stdout}")
    return result.stdout.splitlines()


def test_running_a_small_llm() -> None:
    lines = run(SETUP, """
(println (len tokens))
(println (tensor/shape output))
(println "response:" (len response))
(println (decode (tokenize "What is the meaning of life?")))
""")
    assert int(lines[0]) > 3
    assert lines[1] == f"[{GEMMA_VOCAB}]"
    assert lines[2] != "response: 0"
    assert lines[3] == "What is the meaning of life?"  # tokenizer round trip


def test_llama_2_7b_is_a_clear_not_found_error() -> None:
    result = run_gene_source(block("# Initialize model"), "0", filename="<seed>")
    from gene_jit.llama.errors import ModelNotFoundError

    assert isinstance(result.error, ModelNotFoundError)
    assert "llama-2-7b" in str(result.error) and "default" in str(result.error)


def test_tokenizer_size_must_match_the_model() -> None:
    result = run_gene_source('(var m (model/create "default")) (tokenizer/create 32000)', "0")
    assert result.error is not None and "262144" in str(result.error)


def test_use_cases() -> None:
    lines = run(
        SETUP,
        block("(fn generate-story"), block("(fn answer-question"), block("(fn generate-code"),
        block("(fn chat [message history]"), block("(fn get-embeddings"),
        """
(println "story:" (len (generate-story "Once upon a time")))
(println "answer:" (answer-question "Where is the Eiffel Tower?" "The Eiffel Tower is in Paris."))
(println "code:" (len (generate-code "reverse a string in Python")))
(println "chat:" (len (chat "Hello!" ["Hi" "Hello, how can I help?"])))
(println "embeddings:" (tensor/shape (get-embeddings "the cat sat")))
""",
    )
    out = {ln.split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in lines if ":" in ln}
    assert int(out["story"]) > 0 and int(out["code"]) > 0 and int(out["chat"]) > 0
    # the answer is sampled (temperature 0.3) and may begin with a newline
    answer = "\n".join(lines).split("answer:", 1)[1].split("\ncode:", 1)[0]
    assert answer.strip()
    # one 640-wide hidden state per token of "the cat sat" (with BOS)
    assert re.fullmatch(r"\[[3-9] 640\]", out["embeddings"])


def test_streaming_generation() -> None:
    lines = run(SETUP, block("(fn stream-generate"), """
(var pieces [])
(fn collect [text]
  (pieces .add text)
  (if ((len pieces) >= 12) (throw "enough")))
(model/forward model (tokenize "The three primary colours are"))
(try (stream-generate "The three primary colours are" collect) catch * (println "stopped:" $ex))
(println (len pieces))
(println (str "[" (decode (get-next-token model)) "]"))
""")
    assert lines[0] == "stopped: enough" and lines[1] == "12"


def test_constrained_generation() -> None:
    lines = run(SETUP, '(var prompt "A JSON object describing a cat:")', block("(fn generate-json"), """
(println (generate-json {^type "object"}))
""")
    assert "\n".join(lines).lstrip().startswith("{")


def test_parallel_batch() -> None:
    lines = run(SETUP, block("(fn batch-generate"), """
(var rows [(tokenize "The sky is") (tokenize "I like the")])
(var logits (batch-generate rows))
(println (tensor/shape logits))
(var one (model/forward model (rows ./ 1)))
(println (tensor/argmax (tensor/reshape (tensor/slice logits 1 2) [262144])) (tensor/argmax one))
""")
    assert lines[0] == f"[2 {GEMMA_VOCAB}]"
    first, second = lines[1].split()
    assert first == second  # the batched row predicts what the sequence alone predicts


def test_chatbot_until_end_of_input() -> None:
    lines = run(SETUP, block("(fn chat [message history]"), block("(fn chatbot []"), """
(try (chatbot) catch * (println "end:" $ex))
""", stdin="Hello!\nWhat is the capital of France?\n")
    assert lines[-1].startswith("end:") and "nil" in lines[-1]
    assert len(lines) >= 2


def test_document_qa() -> None:
    lines = run(SETUP, block("(fn answer-question"), block("(fn get-embeddings"), block("(fn doc-qa"), """
(var docs ["The Eiffel Tower is in Paris and was finished in 1889."
           "Photosynthesis turns light and water into sugar."
           "Gene is a Lisp whose data are genes, arrays and maps."])
(var answer (doc-qa docs))
(println (find-similar (map get-embeddings docs) "When was the Eiffel Tower finished?"))
(println "answer:" (answer "When was the Eiffel Tower finished?"))
""")
    assert lines[0] == "[The Eiffel Tower is in Paris and was finished in 1889.]"
    assert any(ln.startswith("answer:") for ln in lines)


def test_code_assistant() -> None:
    lines = run(SETUP, block("(fn code-assistant"), """
(println "code:" (code-assistant "Write a function that adds two numbers."))
""")
    assert lines and lines[0].startswith("code:")
