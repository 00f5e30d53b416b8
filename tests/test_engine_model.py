"""The native engine (`:engine :gene`) on the default model (Gemma 3 270M Q4_K_M) against
libllama on the same file: teacher-forced top-1 agreement over more than 1,000 tokens of
ordinary English text, and the library's entry points running on the engine."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from gene_jit.engine.model import EngineModel  # noqa: E402
from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402

pytestmark = pytest.mark.model

TEXT = Path(__file__).with_name("data") / "engine_text.txt"
CHUNK = 64  # tokens per decode call: rows of logits compared at a time


def _rows(m: Model, n: int) -> np.ndarray:
    ctx = m.ctx
    return np.stack([np.ctypeslib.as_array((ctypes.c_float * m.n_vocab).from_address(
        ctx.logits_ptr(i))) for i in range(n)]).copy()


def teacher_forced(a: Model, b: Model, tokens: list[int]) -> tuple[int, float, list[int]]:
    """Both models read `tokens` in chunks with logits for every position: (positions
    whose top-1 token agrees, largest logit difference, positions that disagree)."""
    agree, worst, differ = 0, 0.0, []
    for m in (a, b):
        m.ctx.clear()
    for start in range(0, len(tokens), CHUNK):
        chunk = tokens[start : start + CHUNK]
        rows = []
        for m in (a, b):
            m.ctx.feed(0, chunk, logits_all=True)
            rows.append(_rows(m, len(chunk)))
        top_a, top_b = rows[0].argmax(axis=1), rows[1].argmax(axis=1)
        agree += int((top_a == top_b).sum())
        differ += [start + int(i) for i in np.nonzero(top_a != top_b)[0]]
        worst = max(worst, float(np.abs(rows[0] - rows[1]).max()))
    return agree, worst, differ


@pytest.fixture(scope="module")
def engine() -> EngineModel:
    return EngineModel("default", threads=2, n_ctx=2048)


@pytest.fixture(scope="module")
def llama() -> Model:
    return Model("default", threads=2, n_ctx=2048)


def test_top1_agrees_with_libllama(engine: EngineModel, llama: Model) -> None:
    tokens = llama.tokenize(TEXT.read_text())
    assert len(tokens) >= 1000 and tokens == engine.tokenize(TEXT.read_text())
    agree, worst, differ = teacher_forced(engine, llama, tokens)
    rate = agree / len(tokens)
    print(f"\ntop-1 agreement {agree}/{len(tokens)} = {rate:.2%}; largest logit difference "
          f"{worst:.3f}; positions that differ: {differ}")
    assert rate >= 0.99


def test_library_entry_points(engine: EngineModel) -> None:
    out = g.generate_text(engine, "The capital of France is", 8, temperature=0)
    assert out.strip() and out == g.generate_text(engine, "The capital of France is", 8,
                                                   temperature=0)
    chunks = list(g.generate_text(engine, "The capital of France is", 8, temperature=0,
                                  stream=True))
    assert "".join(chunks) == out
    assert g.generate_text(engine, "Count: one, two, three,", 24, temperature=0,
                           stop=[","]).count(",") == 0
    sampled = g.generate_text(engine, "Once upon a time", 12, temperature=0.8, seed=7)
    assert sampled == g.generate_text(engine, "Once upon a time", 12, temperature=0.8, seed=7)
    value = g.generate_json(engine, "A city and its population as JSON:", {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, 48)
    assert isinstance(value, dict) and isinstance(value.get("city"), str)
    chat = g.chat_session(engine)
    assert g.chat_send(chat, "Say hello.", 12, temperature=0)
    logits = g.model_forward(engine, engine.tokenize("Hello there"))
    assert logits.shape == (engine.n_vocab,)
