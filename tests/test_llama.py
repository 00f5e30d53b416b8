"""LLM library tests on the tiny GGUF the tests write (fast), plus `model` tests on the
default Gemma 3 270M model."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tiny_model import write_tiny_model  # noqa: E402

from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama.errors import (  # noqa: E402
    BadModelError,
    ContextFullError,
    GrammarError,
    LlamaError,
    ModelNotFoundError,
)
from gene_jit.llama.generate import TextAssembler  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402
from gene_jit.runtime.errors import GeneError  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Model:
    path = write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")
    return Model(str(path), n_ctx=256, threads=2)


def test_tokenizer_round_trip(tiny: Model) -> None:
    for text in ["Hello world, the future of AI", "héllo wörld ✓ 42", "  spaces\nand\ttabs"]:
        toks = g.tokenize(tiny, text)
        assert toks[0] == tiny.bos
        assert g.decode(tiny, toks) == text
        assert g.decode(tiny, g.tokenize(tiny, text, add_special=False)) == text


def test_tokenizer_create_checks_size(tiny: Model) -> None:
    tok = g.tokenizer_create(tiny)
    assert g.tokenizer_vocab_size(tok) == tiny.n_vocab
    assert g.tokenize("the cat") == tiny.tokenize("the cat")
    with pytest.raises(LlamaError, match="vocabulary"):
        g.tokenizer_create(32000)


def test_special_tokens_parse_only_when_asked(tiny: Model) -> None:
    plain = g.tokenize(tiny, "<|im_end|>", add_special=False)
    special = g.tokenize(tiny, "<|im_end|>", add_special=False, parse_special=True)
    assert len(special) == 1 and len(plain) > 1
    assert tiny.is_eog(special[0])
    assert g.decode(tiny, special, unparse_special=True) == "<|im_end|>"


def test_greedy_is_reproducible(tiny: Model) -> None:
    a = g.generate_text(tiny, "The future of AI is", 20, temperature=0)
    tokens_a = list(tiny.last_stats.tokens)
    tiny.ctx.clear()
    b = g.generate_text(tiny, "The future of AI is", 20, temperature=0)
    assert a == b and tiny.last_stats.tokens == tokens_a and len(tokens_a) > 0


def test_sampling_seed_reproducible(tiny: Model) -> None:
    a = g.generate_text(tiny, "Hello", 15, temperature=0.9, seed=7)
    b = g.generate_text(tiny, "Hello", 15, temperature=0.9, seed=7)
    assert a == b


def test_streaming_matches_and_never_splits_utf8(tiny: Model) -> None:
    full = g.generate_text(tiny, "The cat", 30, temperature=0)
    chunks: list[str] = []
    g.generate_text(tiny, "The cat", 30, temperature=0, on_token=chunks.append)
    assert "".join(chunks) == full
    lazy = list(g.generate_text(tiny, "The cat", 30, temperature=0, stream=True))
    assert "".join(lazy) == full


def test_text_assembler_buffers_utf8_and_stops() -> None:
    t = TextAssembler(["STOP"])
    data = "é✓".encode()
    out = [t.push(data[i : i + 1]) for i in range(len(data))]
    assert out == ["", "é", "", "", "✓"]
    assert t.push(b"ab ST") == "ab "
    assert t.push(b"OP more") == ""
    assert t.stopped and t.finish() == ""


def test_stop_strings(tiny: Model) -> None:
    full = g.generate_text(tiny, "The cat", 30, temperature=0)
    stop = full[5:8]
    cut = g.generate_text(tiny, "The cat", 30, temperature=0, stop=[stop])
    assert cut == full[: full.find(stop)]


def test_forward_logits(tiny: Model) -> None:
    toks = tiny.tokenize("the cat sat")
    last = g.model_forward(tiny, toks)
    full = g.model_forward(tiny, toks, all=True)
    last = getattr(last, "numpy", lambda: last)()
    full = getattr(full, "numpy", lambda: full)()
    assert last.shape == (tiny.n_vocab,) and full.shape == (len(toks), tiny.n_vocab)
    assert abs(full[-1] - last).max() < 1e-3
    # get-next-token continues from model/forward with the greedy choice
    assert g.get_next_token(tiny) == int(last.argmax())


def test_grammar_constrains_output(tiny: Model) -> None:
    out = g.generate_with_grammar(tiny, "Answer:", 'root ::= ("yes" | "no") "."', 10)
    assert out in ("yes.", "no.")
    with pytest.raises(GrammarError):
        g.generate_with_grammar(tiny, "x", "root ::= (((", 5)


def test_generate_json_satisfies_schema(tiny: Model) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"},
                       "ok": {"type": "boolean"}},
        "required": ["name", "age", "ok"],
    }
    value = g.generate_json(tiny, "Give a person as JSON:", schema, 200)
    assert isinstance(value, dict) and set(value) == {"name", "age", "ok"}
    assert isinstance(value["name"], str) and isinstance(value["age"], int)
    assert isinstance(value["ok"], bool)
    json.dumps(value)


def test_batch_equals_one_by_one(tiny: Model) -> None:
    prompts = ["The cat", "Hello world, this", "Numbers like 1, 2"]
    batch = g.batch_generate(tiny, prompts, 12, temperature=0)
    single = [g.generate_text(tiny, p, 12, temperature=0) for p in prompts]
    assert batch == single


def test_chat_second_turn_decodes_only_new_tokens(tiny: Model) -> None:
    chat = g.chat_session(tiny, system="You are terse.")
    g.chat_send(chat, "Hello there", 8, temperature=0)
    first = chat.last_stats
    assert first is not None and first.prompt_decoded == first.prompt_tokens
    g.chat_send(chat, "And the cat?", 8, temperature=0)
    second = chat.last_stats
    assert second is not None
    assert second.prompt_decoded < second.prompt_tokens - first.prompt_tokens + 1
    assert len(g.chat_history(chat)) == 5
    prompt = g.format_chat_prompt_fn(["Hi", "Hello!"], "How are you?", model=tiny)
    assert prompt.startswith("<s><|im_start|>user\nHi<|im_end|>")
    assert prompt.endswith("<|im_start|>assistant\n")
    toks = g.tokenize(tiny, prompt, add_special=False, parse_special=True)
    assert toks.count(tiny.bos) == 1


def test_too_long_prompt_is_a_clear_error(tiny: Model) -> None:
    long_prompt = "the cat sat on the mat " * 200
    with pytest.raises(ContextFullError, match="context"):
        g.generate_text(tiny, long_prompt, 5)
    out = g.generate_text(tiny, long_prompt, 5, temperature=0, truncate=True)
    assert isinstance(out, str)
    # every way of generating keeps to the model's context (batches together made a
    # context of their own as large as the prompt and answered silently)
    for exact in (True, False):
        with pytest.raises(ContextFullError, match="context"):
            g.batch_generate(tiny, ["hi", long_prompt], 5, exact=exact)
        texts = g.batch_generate(tiny, ["hi", long_prompt], 3, temperature=0, exact=exact, truncate=True)
        assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_embeddings_and_find_similar(tiny: Model) -> None:
    v = g.model_embed(tiny, "the cat")
    v = getattr(v, "numpy", lambda: v)()
    assert v.shape == (tiny.n_embd,)
    states = g.model_hidden_states(tiny, tiny.tokenize("the cat sat"))
    states = getattr(states, "numpy", lambda: states)()
    assert states.shape == (len(tiny.tokenize("the cat sat")), tiny.n_embd)
    docs = ["the cat sat", "numbers 1 2 3", "hello world"]
    assert g.find_similar(docs, "the cat sat", 1, model=tiny) == ["the cat sat"]
    assert "0:the cat" not in tiny.embedding_cache and "1:the cat" in tiny.embedding_cache


def test_missing_model_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENE_MODELS", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as info:
        g.model_create("llama-2-7b", "gguf")
    msg = info.value.message
    assert str(tmp_path / "llama-2-7b.gguf") in msg and "to add it" in msg


def test_model_by_name_from_gene_models(tiny: Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_model(tmp_path / "mini.gguf")
    monkeypatch.setenv("GENE_MODELS", str(tmp_path))
    m = g.model_create("mini", "gguf", n_ctx=128, threads=1)
    assert g.model_info(m)["architecture"] == "llama"
    m.close()


def test_bad_model_files(tiny: Model, tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(BadModelError, match="not a (usable )?GGUF"):
        Model(str(junk))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny.path.read_bytes()[:5000])
    with pytest.raises(BadModelError):
        Model(str(truncated))


def test_user_mistakes_are_gene_errors(tiny: Model) -> None:
    with pytest.raises(GeneError):
        g.generate_text(tiny, 42, 5)
    with pytest.raises(GeneError):
        g.generate_text(tiny, "x", 5, temprature=0.5)
    with pytest.raises(GeneError):
        g.decode(tiny, [10**9])
    with pytest.raises(GeneError):
        g.model_create("x.gguf", "onnx")


def test_threads_sharing_a_model(tiny: Model) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results.append(g.generate_text(tiny, f"Hello {i}", 8, temperature=0))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4


@pytest.fixture(scope="module")
def gemma() -> Model:
    return Model("default", threads=2, n_ctx=2048)


@pytest.mark.model
def test_default_model_generates_and_chats(gemma: Model) -> None:
    out = g.generate_text(gemma, "The capital of France is", 8, temperature=0)
    assert out.strip() and out == g.generate_text(gemma, "The capital of France is", 8, temperature=0)
    chat = g.chat_session(gemma)
    reply = g.chat_send(chat, "Say hello.", 16, temperature=0)
    assert reply
    g.chat_send(chat, "Again.", 8, temperature=0)
    assert chat.last_stats is not None and chat.last_stats.prompt_decoded < chat.last_stats.prompt_tokens


@pytest.mark.model
def test_default_model_embeddings_similarity(gemma: Model) -> None:
    from gene_jit.llama.embed import similarity

    a = "The cat sleeps on the sofa."
    b = "A kitten is napping on the couch."
    c = "Quarterly tax filings are due in April."
    assert similarity(gemma, a, b) > similarity(gemma, a, c)


@pytest.mark.model
def test_default_model_json(gemma: Model) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"]}
    value = g.generate_json(gemma, "Give the largest city of Japan as JSON:", schema, 128)
    assert isinstance(value["city"], str) and isinstance(value["population"], int)


@pytest.mark.parametrize("first", ["libllama", "tensor kernels"])
def test_openmp_threads_spin_briefly_unless_the_user_says(first: str) -> None:
    """libgomp, shared by libllama and Numba's parallel kernels, reads its settings once,
    when it loads: whichever of the two loads it, a short spin at barriers is set first
    (libgomp's long default spin made generation 5-30x slower on a busy machine), and a
    wait policy or spin count the user set is kept. libgomp's own report of its settings
    (OMP_DISPLAY_ENV=verbose) gives the spin count it took."""
    import os
    import subprocess
    import sys

    from gene_jit.tensor_kernels.openmp import SPINCOUNT

    code = {"libllama": "from gene_jit.llama import bindings; bindings.lib()",
            "tensor kernels": "import gene_jit; gene_jit.eval('(tensor/softmax (tensor/rand [4 64]))')"}[first]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    cases = [({}, SPINCOUNT), ({"OMP_WAIT_POLICY": "passive"}, "0"),
             ({"OMP_WAIT_POLICY": "active"}, "30000000000"), ({"GOMP_SPINCOUNT": "77"}, "77")]
    for given, spins in cases:
        run_env = {**env, "OMP_DISPLAY_ENV": "verbose", **given}
        proc = subprocess.run([sys.executable, "-c", code], env=run_env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert f"GOMP_SPINCOUNT = '{spins}'" in proc.stderr, (given, proc.stderr[-2000:])
