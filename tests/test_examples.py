"""Every LLM example under examples/ run through the real CLI (`python -m gene_jit run`) on
the default model, with a short token budget passed as the example's first argument.

Outputs are checked for shape; greedy outputs are compared with the same generation done
in-process through the library, since greedy decoding is reproducible."""

from __future__ import annotations

import os

import pytest
from conftest import REPO, run_cli

from gene_jit.llama import gene_api as g
from gene_jit.llama.model import Model

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.model

TOKENS = "8"


def run_example(name: str, tokens: str = TOKENS, stdin: str = "") -> list[str]:
    proc = run_cli("run", str(REPO / "examples" / f"{name}.gene"), tokens, stdin=stdin, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout.splitlines()


@pytest.fixture(scope="module")
def gemma() -> Model:
    return Model("default", threads=2, n_ctx=2048, progress=False)


def greedy(model: Model, prompt: str, n: int = int(TOKENS)) -> str:
    model.ctx.clear()
    return str(g.generate_text(model, prompt, n, temperature=0))


def test_generate(gemma: Model) -> None:
    lines = run_example("generate")
    tokens = [ln for ln in lines if ln.startswith("tokens:")]
    assert tokens and tokens[0].split(None, 1)[1] == str(gemma.tokenize("What is the meaning of life?")).replace(",", "")
    assert f"logits shape:  [{gemma.n_vocab}]" in lines
    assert "The future of AI is " + greedy(gemma, "The future of AI is") in lines
    assert any(ln.startswith("{^path ") and "^architecture gemma3" in ln for ln in lines)


def test_stream(gemma: Model) -> None:
    out = "\n".join(run_example("stream"))
    head = greedy(gemma, "Once upon a time") + "\n" + greedy(gemma, "The three primary colours are") + "\n"
    assert out.startswith(head)
    # the get-next-token part: the token the priming call returns, then the loop's
    assert out[len(head) :].rstrip("\n") == greedy(gemma, "Count: one, two,")


def test_batch(gemma: Model) -> None:
    prompts = ["The sky is", "My favourite food is", "Programming is", "The ocean is"]
    lines = run_example("batch")
    assert len(lines) == len(prompts)
    # Batched matrix products may round differently from single-row ones, so a near tie
    # can flip late in a sequence on this model (the tiny model's test asserts exact
    # equality); the start of every continuation must agree with the one-by-one run.
    for line, prompt in zip(lines, prompts, strict=True):
        single = prompt + greedy(gemma, prompt)
        shared = len(os.path.commonprefix([line, single]))
        assert line.startswith(prompt) and shared >= len(prompt) + len(single[len(prompt) :]) // 2, (line, single)


def test_chatbot_ends_at_eof() -> None:
    lines = run_example("chatbot", stdin="Hello!\nWhat is the capital of France?\n")
    replies = [ln for ln in lines if ln.startswith("> ")]
    assert len(replies) == 3  # two answers, then the prompt that met the end of input
    assert all(r[2:].strip() for r in replies[:2])
    assert lines[-1] == "(5 messages)"  # system, two user turns, two replies


def test_code_assistant() -> None:
    lines = run_example("code_assistant")
    assert "".join(lines).strip() and "```" not in "\n".join(lines)


def test_doc_qa_picks_the_relevant_document() -> None:
    lines = run_example("doc_qa")
    assert lines[0] == "context: [The Eiffel Tower is in Paris and was finished in 1889.]"
    assert "".join(lines[1:]).strip()


def test_json_output_satisfies_the_schema() -> None:
    lines = run_example("json", tokens="60")
    country = lines[0]
    assert country.startswith("{^name ") and " ^capital " in country and " ^population " in country
    assert lines[1].startswith("capital: ")
    assert lines[2] in ("yes", "no")
    assert lines[3].startswith("{")


def test_readme_quick_start_names_a_working_example() -> None:
    readme = (REPO / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("pip install -e '.[dev]' && gene-jit run "))
    example = line.split("gene-jit run ", 1)[1].split()[0]
    assert (REPO / example).is_file() and example.startswith("examples/")
