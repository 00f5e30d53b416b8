"""The user's target API (tests/data/seed.md, a copy of the seed document).

Every ```gene block must parse. The blocks that need only the core language run here
verbatim, beside small fakes written in Gene for the LLM parts they call (a tokenizer, a
`generate-text`, a `chat`), so that what is checked is the seed dialect itself: `;`
comments, `:kw value` named-argument tails, `(= a b)`, `(loop [x e] ...)`, `(fn [x] ...)`,
`str`, `map`, `append` and `read-line`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import run_gene_source

SEED = Path(__file__).resolve().parent / "data" / "seed.md"
BLOCKS = re.findall(r"```gene\n(.*?)```", SEED.read_text(encoding="utf-8"), flags=re.S)


def block(marker: str) -> str:
    """The one seed block that contains `marker`."""
    found = [b for b in BLOCKS if marker in b]
    assert len(found) == 1, f"{len(found)} seed blocks contain {marker!r}"
    return found[0]


def program(*parts: str) -> str:
    """Fakes, seed blocks and driver code, one after another."""
    return "\n".join(parts)


def run_ok(source: str, mode: str, stdin: str = "") -> list[str]:
    result = run_gene_source(source, mode, stdin=stdin, filename="<seed>")
    if result.error is not None:
        pytest.fail(f"seed program failed:\n{result.error}\nstdout:\n{result.stdout}")
    return result.stdout.splitlines()


def test_seed_has_blocks() -> None:
    assert len(BLOCKS) >= 15


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_every_block_parses(index: int) -> None:
    from gene_jit.frontend.reader import read

    forms = read(BLOCKS[index], f"seed.md#block{index}")
    assert forms, "a seed block read as nothing"


# A tokenizer namespace in Gene: `create` returns a value whose members are the encode and
# decode functions, which is how the seed's `(tokenizer/encode tokenizer text)` reads once
# `(var tokenizer (tokenizer/create 32000))` has bound the name.
FAKE_TOKENIZER = """
(ns tokenizer
  (fn create [vocab-size]
    {^vocab-size vocab-size
     ^encode (fnx [tk text] (map (fnx [w] (w .size)) (text .split " ")))
     ^decode (fnx [tk tokens] (str "<" (tokens .size) " tokens>"))}))
(var tokenizer (tokenizer/create 32000))
"""


def test_tokenize_and_decode_wrappers(jit_mode: str) -> None:
    source = program(
        FAKE_TOKENIZER,
        block("(fn tokenize [text]"),
        """
(var tokens (tokenize "What is the meaning of life?"))
(println tokens)
(println (decode tokens))
""",
    )
    assert run_ok(source, jit_mode) == ["[4 2 3 7 2 5]", "<6 tokens>"]


FAKE_GENERATE = """
(var model "m")
(fn generate-text [model prompt n ^temperature]
  (str model "|" prompt "|" n "|" temperature))
"""


def test_generation_with_keyword_tails(jit_mode: str) -> None:
    source = program(
        FAKE_GENERATE,
        block("(fn generate-story"),
        block("(fn generate-code"),
        """
(println (generate-story "Once"))
(println (generate-code "sort a list"))
""",
    )
    assert run_ok(source, jit_mode) == ["m|Once|500|0.8", "m|Write code to sort a list|200|0.2"]


def test_question_answering_and_chat(jit_mode: str) -> None:
    source = program(
        FAKE_GENERATE,
        """
(fn format-qa-prompt [q c] (str "Q:" q " C:" c))
(fn format-chat-prompt [history message] (str (history .size) ">" message))
""",
        block("(fn answer-question"),
        block("(fn chat [message history]"),
        """
(println (answer-question "why" "because"))
(println (chat "hello" ["a" "b"]))
""",
    )
    assert run_ok(source, jit_mode) == ["m|Q:why C:because|100|0.3", "m|2>hello|150|0.7"]


def test_code_assistant_uses_str(jit_mode: str) -> None:
    source = program(
        FAKE_GENERATE,
        block("(fn generate-code"),
        block("(fn code-assistant"),
        """
(println (code-assistant "a parser"))
""",
    )
    assert run_ok(source, jit_mode) == [
        "m|Write code to You are a Gene programming expert.",
        "a parser|200|0.2",
    ]


def test_streaming_loop_with_bindings(jit_mode: str) -> None:
    source = program(
        """
(var model "m")
(var EOS 3)
(var produced 0)
(fn get-next-token [m] (produced += 1))
(fn decode [token] (str "tok" token))
""",
        block("(fn stream-generate"),
        """
(stream-generate "prompt" (fn [text] (println text)))
(println "produced" produced)
""",
    )
    assert run_ok(source, jit_mode) == ["tok1", "tok2", "tok3", "produced 3"]


def test_chatbot_reads_lines_until_eof(jit_mode: str) -> None:
    # The seed's loop has no exit of its own: end of input (read-line gives nil) ends the
    # session through the fake `chat`, which throws on nil.
    source = program(
        """
(fn chat [message history]
  (if (= message nil) (throw "end of input"))
  (str "echo: " message))
""",
        block("(fn chatbot []"),
        """
(try
  (chatbot)
catch *
  (println "bye:" $ex))
""",
    )
    lines = run_ok(source, jit_mode, stdin="hello\nhow are you\n")
    assert lines == ["echo: hello", "echo: how are you", "bye: end of input"]


def test_document_qa_map_and_inner_fn(jit_mode: str) -> None:
    source = program(
        """
(fn get-embeddings [text] (text .size))
(fn find-similar [embeddings question]
  (var best nil)
  (for e in embeddings
    (if (= e (question .size)) (best = e)))
  best)
(fn answer-question [question relevant] (str question "->" relevant))
""",
        block("(fn doc-qa [documents]"),
        """
(doc-qa ["ab" "abc" "abcd"])
(println (answer "xyz"))
(println [(answer "a")])
""",
    )
    assert run_ok(source, jit_mode) == ["xyz->3", "[a->]"]


def test_seed_comment_forms_do_not_evaluate(jit_mode: str) -> None:
    source = program(
        block("(fn transformer-layer"),
        """
(println "defined")
""",
    )
    assert run_ok(source, jit_mode) == ["defined"]


# ---------------------------------------------------------------- the first block, verbatim
#
# The seed binds `model`, `tokenizer` and `device` to values made by the namespaces of the
# same names and then calls `(model/forward model tokens)`: a complex symbol whose head is
# the user's variable falls back to the builtin namespace when that value has no such
# member. Fake namespaces stand in for the LLM library, so only the language is checked.


class FakeModel:
    def __init__(self, name: str, fmt: str) -> None:
        self.name = name
        self.fmt = fmt


class FakeTokenizer:
    def __init__(self, size: int) -> None:
        self.size = size


@pytest.fixture
def fake_llm(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from gene_jit.runtime.libraries import register_all
    from gene_jit.runtime.registry import BUILTINS, Namespace

    register_all()  # the real lazy namespaces first, so that the fakes replace them
    calls: list[str] = []

    def forward(model: object, tokens: list[int]) -> list[int]:
        assert isinstance(model, FakeModel)
        calls.append(f"forward {model.name} {len(tokens)}")
        return [t * 2 for t in tokens]

    def encode(tk: object, text: str) -> list[int]:
        assert isinstance(tk, FakeTokenizer)
        return [len(w) for w in text.split()]

    def hidden(model: object, tokens: list[int]) -> list[float]:
        assert isinstance(model, FakeModel)
        return [float(t) for t in tokens]

    namespaces = {
        "model": {"create": FakeModel, "forward": forward, "get-hidden-states": hidden},
        "tokenizer": {
            "create": FakeTokenizer,
            "encode": encode,
            "decode": lambda tk, toks: f"<{len(toks)} tokens of {tk.size}>",
        },
        "device": {"create": lambda kind: f"device {kind.name}"},
    }
    for name, members in namespaces.items():
        monkeypatch.setitem(BUILTINS, name, Namespace(name, dict(members)))
    monkeypatch.setitem(BUILTINS, "tokenize", lambda text: [len(w) for w in text.split()])
    monkeypatch.setitem(
        BUILTINS, "generate-text", lambda m, prompt, n: f"{m.name}: {prompt} ({n})"
    )
    return calls


def test_first_block_runs_as_written(fake_llm: list[str], jit_mode: str) -> None:
    source = program(
        block("(var model (model/create"),
        """
(println tokens)
(println output)
(println response)
(println device)
""",
    )
    assert run_ok(source, jit_mode) == [
        "[4 2 3 7 2 5]",
        "[8 4 6 14 4 10]",
        "llama-2-7b: The future of AI is (100)",
        "device cuda",
    ]
    assert fake_llm == ["forward llama-2-7b 6"]


def test_tokenizer_and_embeddings_blocks_over_user_variables(
    fake_llm: list[str], jit_mode: str
) -> None:
    source = program(
        block("(var model (model/create"),
        block("(fn tokenize [text]"),
        block("(fn get-embeddings [text]"),
        """
(println (tokenize "a bb ccc"))
(println (decode [1 2]))
(println (get-embeddings "xy z"))
""",
    )
    assert run_ok(source, jit_mode) == ["[1 2 3]", "<2 tokens of 32000>", "[2.0 1.0]"]


def test_the_fallback_needs_a_missing_member(fake_llm: list[str], jit_mode: str) -> None:
    # A map (or any Gene data) named like a namespace keeps its own members.
    lines = run_ok(
        """
(var model {^forward "mine"})
(println model/forward)
(var tokenizer (tokenizer/create 7))
(println (tokenizer/decode tokenizer [1]))
""",
        jit_mode,
    )
    assert lines == ["mine", "<1 tokens of 7>"]
    result = run_gene_source(
        "(var model (model/create \"m\" \"gguf\"))\n(model/no-such model)", jit_mode
    )
    assert result.error is not None and "no-such" in str(result.error)
