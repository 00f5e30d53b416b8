"""One argument check for every LLM entry point: unknown keywords (with a suggestion),
types and ranges give the same Gene error everywhere, naming the function, the option,
what it expects and what it got; options are never silently changed."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tiny_model import N_CTX_TRAIN, write_tiny_model  # noqa: E402

from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402
from gene_jit.llama.options import ENTRY_POINTS, OPTIONS, OptionError, check_options  # noqa: E402
from gene_jit.runtime.errors import GeneError  # noqa: E402


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture(scope="module")
def tiny(tiny_path: Path) -> Model:
    return Model(str(tiny_path), n_ctx=256, threads=2, progress=False)


def calls(m: Model) -> dict[str, Callable[..., Any]]:
    """Each sampling entry point, called with a short prompt and the given options."""
    return {
        "generate-text": lambda **kw: g.generate_text(m, "The cat", 2, **kw),
        "generate-stream": lambda **kw: list(g.generate_stream(m, "The cat", 2, **kw)),
        "model/generate": lambda **kw: g.model_generate(m, "The cat", 2, **kw),
        "generate-json": lambda **kw: g.generate_json(m, "x", {"type": "object"}, 2, **kw),
        "generate-with-grammar": lambda **kw: g.generate_with_grammar(m, "x", 'root ::= "a"', 2, **kw),
        "batch-generate": lambda **kw: g.batch_generate(m, ["a", "b"], 2, **kw),
        "chat-send": lambda **kw: g.chat_send(g.chat_session(m), "Hi", 2, **kw),
        "get-next-token": lambda **kw: g.get_next_token(m, "The cat", **kw),
        "generate-code": lambda **kw: g.generate_code("add two numbers", "python", 2, model=m, **kw),
    }


SAMPLING_ENTRIES = ["generate-text", "generate-stream", "model/generate", "generate-json",
                    "generate-with-grammar", "batch-generate", "chat-send", "get-next-token", "generate-code"]


@pytest.mark.parametrize("entry", SAMPLING_ENTRIES)
def test_typo_is_rejected_everywhere_with_a_suggestion(tiny: Model, entry: str) -> None:
    with pytest.raises(OptionError) as info:
        calls(tiny)[entry](temprature=0.5)
    assert info.value.message == f"{entry} does not take :temprature; did you mean :temperature?"
    assert isinstance(info.value, GeneError)


BAD_VALUES = [
    ("top_p", 5, ":top-p expects a number from 0 to 1, got 5"),
    ("top_k", -3, ":top-k expects an integer >= 0, got -3"),
    ("temperature", math.nan, ":temperature expects a number >= 0, got nan"),
    ("temperature", -1.0, ":temperature expects a number >= 0, got -1.0"),
    ("temperature", "hot", ":temperature expects a number >= 0, got \"hot\""),
    ("min_p", 1.5, ":min-p expects a number from 0 to 1, got 1.5"),
    ("repeat_penalty", 0, ":repeat-penalty expects a number > 0, got 0"),
    ("seed", -1, ":seed expects an integer from 0 to 4294967295, got -1"),
    ("seed", 2**40, ":seed expects an integer from 0 to 4294967295, got 1099511627776"),
    ("top_k", 2.5, ":top-k expects an integer >= 0, got 2.5"),
    ("top_k", True, ":top-k expects an integer >= 0, got true"),
]


@pytest.mark.parametrize("entry", SAMPLING_ENTRIES)
@pytest.mark.parametrize(("name", "value", "message"), BAD_VALUES)
def test_bad_values_give_the_same_error_everywhere(tiny: Model, entry: str, name: str, value: Any,
                                                   message: str) -> None:
    with pytest.raises(OptionError) as info:
        calls(tiny)[entry](**{name: value})
    assert info.value.message == f"{entry}: {message}"


@pytest.mark.parametrize("entry", ["generate-text", "batch-generate", "chat-send", "generate-json"])
def test_stop_must_be_strings(tiny: Model, entry: str) -> None:
    for bad, shown in ((5, "5"), (["ok", 3], '["ok" 3]')):
        with pytest.raises(OptionError) as info:
            calls(tiny)[entry](stop=bad)
        assert info.value.message == f"{entry}: :stop expects a string or an array of strings, got {shown}"
    for empty in ("", [""], ["ok", ""]):
        with pytest.raises(OptionError) as info:
            calls(tiny)[entry](stop=empty)
        assert info.value.message == (f"{entry}: :stop holds an empty stop string, which would "
                                      "match before any text; remove it")


@pytest.mark.parametrize(("call", "entry"), [
    (lambda m: g.batch_generate(m, ["a"], -3), "batch-generate"),
    (lambda m: g.generate_text(m, "a", -3), "generate-text"),
    (lambda m: g.chat_send(g.chat_session(m), "a", -3), "chat-send"),
    (lambda m: g.generate_json(m, "a", {"type": "object"}, "two"), "generate-json"),
    (lambda m: g.batch_generate(m, ["a"], 2.5), "batch-generate"),
])
def test_token_counts_are_checked(tiny: Model, call: Callable[[Model], Any], entry: str) -> None:
    with pytest.raises(OptionError) as info:
        call(tiny)
    assert info.value.message.startswith(f"{entry}: the number of tokens expects an integer >= 0, got ")


def test_model_create_checks_its_options(tiny_path: Path) -> None:
    for kw, message in (
        ({"threads": "two"}, "model/create: :threads expects an integer from 1 to 1024, got \"two\""),
        ({"threads": 0}, "model/create: :threads expects an integer from 1 to 1024, got 0"),
        ({"n_ctx": -5}, "model/create: :n-ctx expects an integer from 1 to 16777216, got -5"),
        ({"n_cxt": 64}, "model/create does not take :n-cxt; did you mean :n-ctx?"),
        ({"temperature": 0.5}, "model/create does not take :temperature (an option of generate-text)"),
        ({"progress": "yes"}, "model/create: :progress expects true or false, got \"yes\""),
    ):
        with pytest.raises(OptionError) as info:
            g.model_create(str(tiny_path), **kw)
        assert info.value.message == message


def test_context_size_is_reported_as_libllama_holds_it(tiny_path: Path) -> None:
    m = g.model_create(str(tiny_path), n_ctx=32, threads=1, progress=False)
    try:
        info = g.model_info(m)
        assert info["context"] == m.ctx.n_ctx_seq == m.n_ctx  # what the context really holds
        assert info["context"] >= 32
    finally:
        m.close()
    with pytest.raises(OptionError, match=f"larger than the {N_CTX_TRAIN} tokens"):
        g.model_create(str(tiny_path), n_ctx=N_CTX_TRAIN + 1, threads=1, progress=False)


def test_nil_means_the_default(tiny: Model) -> None:
    out = g.generate_text(tiny, "The cat", 3, temperature=0, top_k=None, seed=None)
    assert isinstance(out, str)


def test_every_entry_point_names_known_options() -> None:
    for entry, names in ENTRY_POINTS.items():
        assert set(names) <= set(OPTIONS), entry
    assert check_options("generate-text", {"temperature": 0, "stop": "x", "speculate": None}) == \
        {"temperature": 0, "stop": "x"}


def test_typo_in_a_gene_program(tiny_path: Path) -> None:
    program = (f'(var m (model/create "{tiny_path}" :threads 1 :progress false))\n'
               '(chat-send (chat-session m) "Hi" 4 :temprature 0.5)')
    proc = subprocess.run([sys.executable, "-m", "gene_jit", "eval", program], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "chat-send does not take :temprature; did you mean :temperature?" in proc.stderr
    assert "Traceback" not in proc.stderr
