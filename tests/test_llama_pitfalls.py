"""What users of llama.cpp bindings get burned by, each checked on the tiny GGUF (and the
default model where marked `model`): a per-token copy of the logits into Python, chat
templates that run code (CVE-2024-34359), streamed text that splits a UTF-8 character,
and chat prompts that start with two BOS tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tiny_model import write_tiny_model  # noqa: E402

from gene_jit.llama import bindings  # noqa: E402
from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama.errors import LlamaError  # noqa: E402
from gene_jit.llama.generate import TextAssembler  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402
from gene_jit.llama.session import chat_tokens  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Model:
    path = write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")
    return Model(str(path), n_ctx=256, threads=2)


# ------------------------------------------------------------- no logits copy per token

NUMPY_MAKERS = ("array", "asarray", "empty", "zeros", "ones", "full", "frombuffer", "fromiter",
                "copy", "stack", "arange", "ascontiguousarray")


def _count_vocab_arrays(monkeypatch: pytest.MonkeyPatch, n_vocab: int) -> list[str]:
    """Wrap NumPy's array makers: the list collects each call that made an array of
    at least vocabulary size."""
    made: list[str] = []

    def wrap(name: str, real: Any) -> Any:
        def counted(*args: Any, **kw: Any) -> Any:
            out = real(*args, **kw)
            if isinstance(out, np.ndarray) and out.size >= n_vocab:
                made.append(name)
            return out
        return counted

    for name in NUMPY_MAKERS:
        monkeypatch.setattr(np, name, wrap(name, getattr(np, name)))
    monkeypatch.setattr(np.ctypeslib, "as_array", wrap("ctypeslib.as_array", np.ctypeslib.as_array))
    return made


def test_generation_never_copies_logits(tiny: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    # the one-time checks of speculative batch sizes (gene_jit.llama.speculate) do read
    # logits: let them happen before counting
    g.generate_text(tiny, "The cat", 40, temperature=0)
    raw = bindings.lib()
    calls: list[str] = []
    for name in ("llama_get_logits_ith", "llama_get_logits"):
        real = getattr(raw, name, None)
        if real is None:
            continue  # not even declared: nothing can call it

        def counted(*args: Any, _real: Any = real, _name: str = name) -> Any:
            calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(raw, name, counted, raising=False)
    made = _count_vocab_arrays(monkeypatch, tiny.n_vocab)
    tiny.ctx.clear()
    text = g.generate_text(tiny, "The future of AI is", 40, temperature=0.8, top_k=40, seed=3)
    streamed = list(g.generate_text(tiny, "The cat", 40, temperature=0, stream=True))
    assert tiny.last_stats.generated > 20 and text and streamed
    assert calls == [] and made == []
    # the instruments work: model/forward does read the logits into an array
    g.model_forward(tiny, tiny.tokenize("the cat"))
    assert calls == ["llama_get_logits_ith"] and made


# ------------------------------------------------------------- hostile chat templates

HOSTILE = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ joiner.__init__.__globals__['os'].system('touch MARKER') }}",
    "{% for m in messages %}{{ m.__class__.__base__.__subclasses__() }}{% endfor %}",
    "{{ namespace.__init__.__globals__.__builtins__['open']('MARKER', 'w').write('x') }}",
    "{{ messages.append({'role': 'user'}) }}",  # the immutable sandbox: no mutation either
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_chat_template_is_a_gene_error(tmp_path: Path, template: str) -> None:
    marker = tmp_path / "MARKER"
    path = write_tiny_model(tmp_path / "hostile.gguf", chat_template=template.replace("MARKER", str(marker)))
    m = Model(str(path), n_ctx=128, threads=1, progress=False)
    try:
        with pytest.raises(LlamaError) as info:
            g.format_chat_prompt_fn(["Hi", "Hello!"], "How are you?", model=m)
        msg = info.value.message
        assert "chat template" in msg and "hostile.gguf" in msg and "unsafe" in msg
        with pytest.raises(LlamaError, match="unsafe"):
            g.chat_send(g.chat_session(m), "Hi", 4)
        assert not marker.exists()  # nothing ran
    finally:
        m.close()


def test_benign_template_still_renders(tmp_path: Path) -> None:
    template = ("{% for m in messages %}[{{ m['role'] | upper }}] {{ m['content'] | trim }}\n{% endfor %}"
                "{% if add_generation_prompt %}[ASSISTANT] {% endif %}")
    m = Model(str(write_tiny_model(tmp_path / "plain.gguf", chat_template=template)), n_ctx=128, threads=1)
    try:
        prompt = g.format_chat_prompt_fn(["Hi ", "Hello!"], "How are you?", model=m)
        assert prompt == "[USER] Hi\n[ASSISTANT] Hello!\n[USER] How are you?\n[ASSISTANT] "
    finally:
        m.close()


@pytest.mark.parametrize(("template", "problem"), [
    ("{% for m in messages %}", "does not parse"),
    ("{{ raise_exception('only user turns') }}", "refused the messages: only user turns"),
    ("{{ 1 + messages[0]['content'] }}", "failed: TypeError"),
])
def test_broken_templates_are_gene_errors(tmp_path: Path, template: str, problem: str) -> None:
    m = Model(str(write_tiny_model(tmp_path / "broken.gguf", chat_template=template)), n_ctx=128, threads=1)
    try:
        with pytest.raises(LlamaError, match=problem):
            g.format_chat_prompt_fn([], "Hi", model=m)
    finally:
        m.close()


# ------------------------------------------------------------- UTF-8 in streams

EMOJI = "🦙🚀"


def _splits(data: bytes) -> list[list[bytes]]:
    """`data` cut at every set of byte boundaries (2^(n-1) ways)."""
    out = []
    for mask in range(1 << (len(data) - 1)):
        parts, start = [], 0
        for i in range(1, len(data)):
            if mask >> (i - 1) & 1:
                parts.append(data[start:i])
                start = i
        parts.append(data[start:])
        out.append(parts)
    return out


@pytest.mark.parametrize("stops", [[], ["STOP"]])
def test_text_assembler_never_splits_an_emoji(stops: list[str]) -> None:
    data = EMOJI.encode()
    assert len(data) == 8
    for parts in _splits(data):
        t = TextAssembler(stops)
        chunks = [t.push(p) for p in parts] + [t.finish()]
        assert "".join(chunks) == EMOJI, parts
        assert all(c in ("", "🦙", "🚀", EMOJI) for c in chunks), (parts, chunks)


def test_streamed_generation_of_byte_tokens_keeps_emoji_whole(tiny: Model) -> None:
    # the tiny vocabulary has no emoji tokens, so the grammar makes the model spell each
    # emoji as four single-byte tokens
    chunks = list(g.generate_text(tiny, "Rocket:", 12, temperature=0, grammar=f'root ::= "{EMOJI}"', stream=True))
    tokens = tiny.last_stats.tokens
    assert len(tokens) == 8 and all(len(tiny.piece(t)) == 1 for t in tokens)
    assert chunks == ["🦙", "🚀"]
    seen: list[str] = []
    g.generate_text(tiny, "Rocket:", 12, temperature=0, grammar=f'root ::= "{EMOJI}"', on_token=seen.append)
    assert seen == ["🦙", "🚀"]


# ------------------------------------------------------------- one BOS in chat prompts


def _check_one_bos(m: Model) -> None:
    prompt = g.format_chat_prompt_fn(["Hi", "Hello!"], "How are you?", model=m)
    for tokens in (chat_tokens(m, prompt), m.prompt_tokens(prompt)):
        assert tokens[0] == m.bos and tokens.count(m.bos) == 1
    # the seed's chat: generate-text on the rendered prompt
    gen = g.generate_text(m, prompt, 1, temperature=0, stream=True)
    assert gen.history[0] == m.bos and gen.history.count(m.bos) == 1
    gen.run()
    # a plain prompt still gets its BOS
    plain = g.generate_text(m, "How are you?", 1, temperature=0, stream=True)
    assert plain.history[0] == m.bos and plain.history.count(m.bos) == 1
    plain.run()


def test_one_bos_in_chat_prompts(tiny: Model) -> None:
    _check_one_bos(tiny)


@pytest.mark.model
def test_one_bos_in_chat_prompts_default_model() -> None:
    m = Model("default", threads=2, n_ctx=512, progress=False)
    try:
        _check_one_bos(m)
    finally:
        m.close()
