"""A chat turn that fails part way (the program's on-token callback throws, the user
presses Ctrl-C, the message does not fit) leaves the session as it was before the turn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tiny_model import write_tiny_model  # noqa: E402

from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402
from gene_jit.runtime.errors import GeneError  # noqa: E402
from gene_jit.runtime.values import Symbol  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Model:
    path: Path = write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")
    return Model(str(path), n_ctx=256, threads=2, progress=False)


class Stop(Exception):
    pass


def _raise(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize("failure", [Stop("callback"), KeyboardInterrupt()])
def test_a_failed_chat_turn_leaves_no_unanswered_message(tiny: Model, failure: BaseException) -> None:
    session = g.chat_session(tiny, "Be brief.", 128)
    g.chat_send(session, "Hello", 3, temperature=0)
    before = g.chat_history(session)
    with pytest.raises(type(failure)):
        g.chat_send(session, "Again", 3, temperature=0, on_token=lambda chunk: _raise(failure))
    assert g.chat_history(session) == before
    with pytest.raises(GeneError, match="the chat context holds"):
        g.chat_send(session, "word " * 400, 3, temperature=0)
    assert g.chat_history(session) == before
    g.chat_send(session, "Again", 3, temperature=0)
    roles = [m["role"] for m in g.chat_history(session)]
    assert roles == ["system", "user", "assistant", "user", "assistant"]


@pytest.mark.parametrize(("schema", "ref"), [
    ({"$ref": "#/definitions/nope"}, "#/definitions/nope"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}}, "#/$defs/x"),
    ({"$defs": {"y": {"type": "string"}}, "items": {"$ref": "#/$defs/x"}, "type": "array"}, "#/$defs/x"),
])
def test_a_reference_to_nothing_is_named_without_python_reprs(schema: dict[str, object], ref: str) -> None:
    from gene_jit.llama.grammar import schema_to_gbnf

    with pytest.raises(GeneError) as info:
        schema_to_gbnf(schema)
    assert info.value.message == f"JSON schema keyword '$ref': {ref} points at nothing in the schema"


def test_a_model_given_as_an_adapter_is_refused_in_plain_words(tiny: Model) -> None:
    from gene_jit.llama import tools_api

    with pytest.raises(GeneError) as info:
        tools_api.model_load_adapter(tiny, str(tiny.path))
    assert info.value.message.endswith('(general.type is missing, adapter.type is missing; '
                                       'an adapter has "adapter" and "lora")'), info.value.message


def test_forward_checks_all_and_embeddings_show_gene_shapes(tiny: Model) -> None:
    from gene_jit.llama.embed import find_similar

    with pytest.raises(GeneError, match=r'model/forward: :all expects true or false, got "yes"'):
        g.model_forward(tiny, [1, 2], all="yes")
    assert g.model_forward(tiny, [1, 2], all=True).shape[0] == 2
    with pytest.raises(GeneError) as info:
        find_similar(tiny, [[1.0, 2.0], 5.0], [1.0, 2.0])
    assert info.value.message.endswith("got shape []")


def test_quantize_needs_a_type_and_a_gguf_file_to_write(tiny: Model, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    from gene_jit.llama import tools_api as t

    monkeypatch.chdir(tmp_path)
    src = str(tiny.path)
    with pytest.raises(GeneError, match=r'model/quantize: name the type, as in .* :type "Q8_0"\) \(types: F32'):
        t.model_quantize(src, "q.gguf")
    for out in ("default", "gemma3-270m", "q8", "out.bin"):
        builtin = "(it names the built-in model) " if out in ("default", "gemma3-270m") else ""
        stem = out.removesuffix(".bin")
        with pytest.raises(GeneError, match=re.escape(f'model/quantize: the output "{out}" {builtin}')
                           + r"is not a \.gguf file name; .* such as " + f"{stem}-q4_0.gguf"):
            t.model_quantize(src, out, "Q4_0")
    proc = subprocess.run([sys.executable, "-m", "gene_jit", "quantize", src, "default", "Q8_0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert 'gene-jit quantize: the output "default" (it names the built-in model)' in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_find_similar_options_that_match_no_parameter_are_named(tiny: Model) -> None:
    es = [g.model_embed(tiny, "a b"), g.model_embed(tiny, "c")]
    with pytest.raises(GeneError, match="find-similar: has no parameter :top-k; its parameters are items"):
        g.find_similar(es, es[0], Symbol("top-k"), 1)
    for k in (0, -1, 1.5, "1", True):
        with pytest.raises(GeneError, match="k \\(how many to return\\) must be a positive int"):
            g.find_similar(es, es[0], k, model=tiny)
    assert g.find_similar(es, es[1], 1, model=tiny) == [1]


@pytest.mark.parametrize(("call", "text"), [
    (lambda m: g.tokenize(m, None), "tokenize needs a string, got nil"),
    (lambda m: g.decode(m, None), "expected an array of token ids, got nil"),
    (lambda m: g.decode(m, "abc"), 'expected an array of token ids, got "abc"'),
    (lambda m: g.model_forward(m, "hello"), 'expected an array of token ids, got "hello"'),
    (lambda m: g.generate_code("x", 5, 10, model=m), 'the language must be a string or symbol such as "python", got 5'),
    (lambda m: g.format_chat_prompt_fn(5, "x", model=m), "the history must be an array of messages"),
    (lambda m: g.format_chat_prompt_fn([{"role": "user", "content": 5}], "x", model=m),
     "chat message 0 (user) needs ^content, a string, got 5"),
    (lambda m: g.format_chat_prompt_fn([{"role": "assistant"}], "x", model=m),
     "chat message 0 (assistant) needs ^content, a string, got nil"),
    (lambda m: g.format_chat_prompt_fn(["a"], 7, model=m), "the message must be a string, got 7"),
    (lambda m: g.find_similar(None, "q", 1, model=m), "find-similar: the embeddings must be an array"),
    (lambda m: Model(str(m.path), device=Symbol("tpu")), 'unknown device :tpu: expected :cpu or :cuda (or "cuda:N")'),
    (lambda m: g.format_qa_prompt(None, "ctx"), "format-qa-prompt: the question must be a string, got nil"),
    (lambda m: g.format_qa_prompt("q", 5), "the context must be a string or an array of strings, got 5"),
    (lambda m: g.generate_text(m, "x", 3, top_k=10**11), ":top-k expects an integer from 0 to 2147483647"),
    (lambda m: g.generate_text("default", "Hi", 5), 'got two strings, "default" and "Hi": the model comes first'),
])
def test_arguments_of_the_wrong_kind_are_named_in_gene_words(tiny: Model, call: object, text: str) -> None:
    """nil where a text or tokens belong is reported as nil (not as the model next to it),
    and values show as Gene shows them (no Python type names)."""
    with pytest.raises(GeneError) as info:
        call(tiny)  # type: ignore[operator]
    assert text in info.value.message
    assert not re.search(r"\b(NoneType|str|list|dict)\b", info.value.message)


def test_model_info_says_where_the_model_runs(tiny: Model) -> None:
    from gene_jit.llama import bindings

    m = Model(str(tiny.path), n_ctx=64, threads=1, device=Symbol("cuda"), progress=False)
    try:
        gpu = bool(bindings.lib().llama_supports_gpu_offload())
        assert g.model_info(m)["device"] == ("cuda" if gpu else "cpu")
    finally:
        m.close()


def test_a_chat_turn_started_from_its_own_callback_is_refused(tiny: Model) -> None:
    """chat-send from the :on-token of the same session's turn is an error, and the history
    keeps one user message and one reply per turn (it interleaved two turns)."""
    session = g.chat_session(tiny, None, 128)

    def nested(chunk: str) -> None:
        g.chat_send(session, "nested", 2, temperature=0)

    with pytest.raises(GeneError, match="this session is still writing its reply"):
        g.chat_send(session, "Hi", 4, temperature=0, on_token=nested)
    assert g.chat_history(session) == []
    g.chat_send(session, "Hi", 2, temperature=0)
    assert [m["role"] for m in g.chat_history(session)] == ["user", "assistant"]


def test_threads_sharing_a_model_or_a_session_keep_their_own_streams(tiny: Model) -> None:
    """get-next-token continues the stream of the calling thread (one thread's prompt took
    over another's), and chat-send turns from several threads follow one another on a
    shared session, each a user message and its reply."""
    import threading

    def stream(prompt: str) -> list[int]:
        toks = [g.get_next_token(tiny, prompt)]
        toks += [g.get_next_token(tiny) for _ in range(6)]
        return toks

    alone = {p: stream(p) for p in ("The cat", "A dog ran")}
    got: dict[int, list[int]] = {}
    start = threading.Barrier(4)

    def work(i: int) -> None:
        start.wait()
        got[i] = stream(("The cat", "A dog ran")[i % 2])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got[i] == alone[("The cat", "A dog ran")[i % 2]] for i in range(4))

    session = g.chat_session(tiny, None, 256)
    turns = [threading.Thread(target=g.chat_send, args=(session, f"q{i}", 3), kwargs={"temperature": 0})
             for i in range(3)]
    for t in turns:
        t.start()
    for t in turns:
        t.join()
    assert [m["role"] for m in g.chat_history(session)] == ["user", "assistant"] * 3
