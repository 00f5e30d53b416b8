"""Every LLM builtin checks the `:kw value` tail of a Gene call: an unknown keyword is an
llm option error naming the function (never two silent positionals), and the keywords
that tokenize and decode document do what they say."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from conftest import run_gene_source  # noqa: E402
from tiny_model import BOS_ID, write_tiny_model  # noqa: E402

from gene_jit.llama import gene_api  # noqa: E402, F401 - registers model/* and tokenizer/*
from gene_jit.runtime.errors import GeneError  # noqa: E402
from gene_jit.runtime.libraries import LLAMA_BUILTINS  # noqa: E402
from gene_jit.runtime.registry import namespace  # noqa: E402

# The arguments each builtin is called with (`m` is the tiny model); the unknown keyword
# follows them, so that every builtin gets far enough to look at its options.
ARGS: dict[str, str] = {
    "generate-text": 'm "x" 2',
    "generate-stream": 'm "x" 2',
    "generate-with-grammar": 'm "x" "root ::= \\"a\\"" 2',
    "generate-json": 'm "x" {^type "object"} 2',
    "batch-generate": 'm ["a"] 2',
    "tokenize": 'm "x"',
    "decode": "m [5]",
    "format-chat-prompt": '[] "hi" m',
    "format-qa-prompt": '"q" "c"',
    "generate-code": '"add two numbers"',
    "find-similar": '[] "x"',
    "get-next-token": 'm "x"',
    "json-grammar": "",
    "chat-session": "m",
    "chat-send": '(chat-session m) "hi" 2',
    "chat-history": "(chat-session m)",
    "model/create": '"default"',
    "model/info": "m",
    "model/forward": "m [5]",
    "model/get-hidden-states": "m [5]",
    "model/embed": 'm "x"',
    "model/generate": 'm "x" 2',
    "model/stats": "m",
    "model/close": "m",
    "model/perplexity": 'm "x y z"',
    "model/quantize": 'm "out.gguf" "Q8_0"',
    "model/load-adapter": 'm "a.gguf"',
    "model/set-adapters": "m []",
    "model/remove-adapter": "m",
    "model/adapters": "m",
    "model/fine-tune": 'm ["x"]',
    "tokenizer/create": "m",
    "tokenizer/encode": 'm "x"',
    "tokenizer/decode": "m [5]",
    "tokenizer/vocab-size": "m",
    "tokenizer/bos": "m",
    "tokenizer/eos": "m",
    "tokenizer/eog?": "m 1",
}


def llm_builtins() -> set[str]:
    names = {n for n in LLAMA_BUILTINS if n != "EOS"}
    for ns in ("model", "tokenizer"):
        names |= {f"{ns}/{member}" for member in namespace(ns).members}
    return names


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


def _error(tiny_path: Path, call: str) -> GeneError:
    source = f'(var m (model/create "{tiny_path}" :threads 1 :n-ctx 128 :progress false))\n{call}'
    result = run_gene_source(source, "0")
    assert isinstance(result.error, GeneError), f"{call}: no error, printed {result.stdout!r}"
    return result.error


def test_the_table_covers_every_llm_builtin() -> None:
    assert set(ARGS) == llm_builtins()


@pytest.mark.parametrize("name", sorted(ARGS))
def test_an_unknown_keyword_is_an_llm_option_error(tiny_path: Path, name: str) -> None:
    err = _error(tiny_path, f"({name} {ARGS[name]} :temprature 1)")
    assert err.kind == "llm option error", err.format()
    assert err.message.startswith(f"{name} does not take :temprature"), err.message


def test_tokenize_keywords_do_what_they_say(tiny_path: Path) -> None:
    prog = (f'(var m (model/create "{tiny_path}" :threads 1 :progress false))\n'
            '(println (tokenize m "hi"))\n'
            '(println (tokenize m "hi" :add-bos false))\n'
            '(println (tokenize m "hi" :add-special false))\n'
            '(println (tokenize m "hi" false))\n'
            '(println (tokenize m "<|im_end|>" :add-bos false))\n'
            '(println (tokenize m "<|im_end|>" :add-bos false :parse-special true))\n'
            '(println (decode m [0 5] :unparse-special true) "|" (decode m [0 5]))\n')
    result = run_gene_source(prog, "0")
    assert result.error is None, result.error
    lines = result.stdout.splitlines()
    with_bos = lines[0].strip("[]").split()
    assert with_bos[0] == str(BOS_ID)
    assert lines[1] == lines[2] == lines[3] == "[" + " ".join(with_bos[1:]) + "]"
    assert len(lines[4].split()) > 1 and lines[5] == "[3]"  # <|im_end|> is token 3
    unparsed, plain = lines[6].split(" | ")
    assert unparsed == "<s>" + plain


@pytest.mark.parametrize(("call", "words"), [
    ('(tokenize m "x" :add-bos 1)', "tokenize: :add-bos expects true or false, got 1"),
    ('(tokenize m "x" 1)', "tokenize: the flag add-special expects true or false, got 1"),
    ('(decode m [5] :bogus true)', "decode does not take :bogus; it takes :remove-special"),
    ('(model/forward m [5] :alll true)', "model/forward does not take :alll; did you mean :all?"),
    ('(find-similar [] "x" :top-k 3)', "find-similar does not take :top-k (an option of generate-text); "
                                       "it takes :k, :documents, :model"),
])
def test_messages_name_what_is_taken(tiny_path: Path, call: str, words: str) -> None:
    err = _error(tiny_path, call)
    assert words in err.message, err.message
