"""A model whose weights make its logits NaN is refused with an error naming its file,
whichever way it is sampled, instead of generating empty text as if all were well."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

from tiny_model import write_tiny_model  # noqa: E402

from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama.errors import LlamaError  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402


def write_nan_model(path: Path, tensor: str) -> Path:
    """The tiny model with every weight of `tensor` (f32) set to NaN."""
    write_tiny_model(path)
    reader = gguf.GGUFReader(str(path))
    info = next(t for t in reader.tensors if t.name == tensor)
    offset, size = int(info.data_offset), int(info.n_bytes)
    del reader
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(np.full(size // 4, np.nan, dtype=np.float32).tobytes())
    return path


@pytest.fixture(scope="module", params=["output.weight", "blk.0.ffn_down.weight"])
def nan_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Model:
    path = write_nan_model(tmp_path_factory.mktemp("nan") / "broken.gguf", request.param)
    return Model(str(path), n_ctx=128, threads=1, progress=False)


CALLS: dict[str, Callable[[Model], Any]] = {
    "greedy": lambda m: g.generate_text(m, "The cat", 4, temperature=0),
    "sampled": lambda m: g.generate_text(m, "The cat", 4, temperature=0.8, seed=3),
    "grammar": lambda m: g.generate_with_grammar(m, "x", 'root ::= [a-z]+', 4),
    "json": lambda m: g.generate_json(m, "x", {"type": "object"}, 8),
    "batch": lambda m: g.batch_generate(m, ["a", "b c"], 3, temperature=0),
    "batch-together": lambda m: g.batch_generate(m, ["a", "b c"], 3, temperature=0, exact=False),
    "next-token": lambda m: g.get_next_token(m, "The cat"),
    "chat": lambda m: g.chat_send(g.chat_session(m), "Hi", 3),
    "repeat-penalty": lambda m: g.generate_text(m, "The cat", 4, repeat_penalty=1.3),
}


@pytest.mark.parametrize("how", sorted(CALLS))
def test_nan_logits_are_an_error_naming_the_file(nan_model: Model, how: str) -> None:
    with pytest.raises(LlamaError) as info:
        CALLS[how](nan_model)
    assert "NaN" in info.value.message and "broken.gguf" in info.value.message, info.value.message


def test_finite_logits_generate_as_before(tmp_path: Path) -> None:
    m = Model(str(write_tiny_model(tmp_path / "fine.gguf")), n_ctx=128, threads=1, progress=False)
    try:
        assert len(g.generate_text(m, "The cat", 4, temperature=0)) > 0
        assert m.last_stats is not None and m.last_stats.generated == 4
    finally:
        m.close()
