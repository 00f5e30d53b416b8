"""`model/perplexity` and `gene-jit perplexity`: the NLL of each window's second half,
checked against llama-cpp-python's logits over the same windows."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from gene_jit.llama import bindings  # noqa: E402
from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama import tools_api as t  # noqa: E402
from gene_jit.llama.errors import LlamaError  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402
from gene_jit.llama.options import OptionError  # noqa: E402
from gene_jit.llama.perplexity import perplexity  # noqa: E402

pytestmark = pytest.mark.model

WINDOW = 96
TEXT = (
    "The lighthouse stood at the end of a long stone pier, and every evening the keeper "
    "climbed its spiral stairs to light the lamp. Ships passing in the night relied on its "
    "steady beam to find the harbour entrance between the rocks. In winter the storms were "
    "fierce, and waves broke over the pier so that the keeper had to wait for a calm moment "
    "before crossing. He kept a logbook in which he wrote the weather, the ships he saw and "
    "the hours the lamp burned. Over forty years the logbook grew into a shelf of volumes, "
    "and historians later used it to study how the climate of the coast had changed. The "
    "town below the lighthouse grew from a fishing village into a small port with a market, "
    "a school and a railway station. Children from the school visited the lighthouse every "
    "spring, and the keeper showed them the great lens, which was made of hundreds of glass "
    "prisms arranged in rings. He explained that the lens gathered the light of a small "
    "flame and sent it out across the sea in a narrow beam that could be seen for twenty "
    "miles. When electricity finally reached the lighthouse, the flame was replaced by a "
    "bulb, but the lens remained the same, turning slowly on its bed of mercury."
)


@pytest.fixture(scope="module")
def gemma() -> Model:
    return Model("default", threads=2, n_ctx=512, progress=False)


def reference(model_path: Path, tokens: list[int], bos: int, window: int) -> float:
    """llama-cpp-python's perplexity over the same windows, from its logits."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(model_path), n_ctx=window, n_batch=window, logits_all=True, n_threads=2,
                verbose=False)
    bindings.restore_logging()
    nll: list[float] = []
    for w in range(len(tokens) // window):
        chunk = tokens[w * window : (w + 1) * window]
        llm.reset()
        llm.eval([bos, *chunk[1:]])
        logits = np.asarray(llm.scores[:window], dtype=np.float64)
        for j in range(window // 2, window - 1):
            row = logits[j]
            peak = row.max()
            nll.append(peak + math.log(np.exp(row - peak).sum()) - row[chunk[j + 1]])
    llm.close()
    return math.exp(sum(nll) / len(nll))


def test_equals_llama_cpp_python_over_the_same_windows(gemma: Model) -> None:
    ours = t.model_perplexity(gemma, TEXT, window=WINDOW)
    tokens = gemma.tokenize(TEXT)
    assert ours["windows"] == len(tokens) // WINDOW >= 2
    assert ours["tokens"] == ours["windows"] * (WINDOW - 1 - WINDOW // 2)
    ref = reference(gemma.path, tokens, gemma.bos, WINDOW)
    assert abs(ours["perplexity"] - ref) / ref < 0.005, (ours, ref)
    assert 0 < ours["error"] < ours["perplexity"]


def test_generation_is_unaffected(gemma: Model) -> None:
    before = g.generate_text(gemma, "The lighthouse keeper", 6, temperature=0)
    perplexity(gemma, TEXT, WINDOW)
    assert g.generate_text(gemma, "The lighthouse keeper", 6, temperature=0) == before


def test_a_short_text_is_one_window(gemma: Model) -> None:
    r = perplexity(gemma, "The cat sat on the mat.", 512)
    n = len(gemma.tokenize("The cat sat on the mat."))
    assert (r.windows, r.window, r.tokens) == (1, n, n - 1 - n // 2)
    assert r.perplexity > 1


def test_bad_inputs_are_gene_errors(gemma: Model) -> None:
    with pytest.raises(LlamaError, match="at least 4 tokens"):
        t.model_perplexity(gemma, "Hi")
    with pytest.raises(LlamaError, match="the text as a string"):
        t.model_perplexity(gemma, 42)
    with pytest.raises(OptionError, match=r":window expects an integer from 4"):
        t.model_perplexity(gemma, TEXT, window=2)
    with pytest.raises(OptionError, match="does not take :windw; did you mean :window"):
        t.model_perplexity(gemma, TEXT, windw=64)
    with pytest.raises(LlamaError, match="needs a model"):
        t.model_perplexity("default", TEXT)


def test_cli_prints_perplexity_with_its_error(tmp_path: Path, gemma: Model) -> None:
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    proc = subprocess.run([sys.executable, "-m", "gene_jit", "perplexity", "default", str(text), "--window",
                           str(WINDOW), "--threads", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected = perplexity(gemma, TEXT, WINDOW)
    assert f"PPL = {expected.perplexity:.4f} +/- " in proc.stdout
    missing = subprocess.run([sys.executable, "-m", "gene_jit", "perplexity", "default", str(tmp_path / "none.txt")],
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


def test_empty_texts_say_what_is_expected(gemma: Model) -> None:
    for empty in ("", "  \n"):
        with pytest.raises(LlamaError, match="needs the text as a non-blank string"):
            t.model_perplexity(gemma, empty)
    with pytest.raises(LlamaError, match=r"at least 4 tokens \(BOS included\), got 2"):
        t.model_perplexity(gemma, "Hi")


def test_every_model_tool_refuses_a_closed_model(tmp_path: Path) -> None:
    from tiny_model import write_tiny_model

    m = Model(str(write_tiny_model(tmp_path / "tiny.gguf")), n_ctx=64, threads=1, progress=False)
    m.close()
    calls = [lambda: t.model_perplexity(m, TEXT), lambda: t.model_load_adapter(m, str(tmp_path / "a.gguf")),
             lambda: t.model_set_adapters(m, []), lambda: t.model_remove_adapter(m), lambda: t.model_adapters(m),
             lambda: t.model_fine_tune(m, ["a text"]), lambda: g.model_info(m),
             lambda: g.generate_text(m, "The cat", 2), lambda: g.tokenizer_encode(g.Tokenizer(m), "cat")]
    g.model_close(m)  # closing twice is harmless
    for call in calls:
        with pytest.raises(LlamaError, match="the model tiny.gguf was closed"):
            call()


def test_cli_refuses_what_is_not_text(tmp_path: Path) -> None:
    from gene_jit.llama.perplexity_cli import read_text

    (tmp_path / "bin.dat").write_bytes(bytes(range(256)))
    (tmp_path / "nul.txt").write_bytes(b"plain\0text")
    (tmp_path / "ok.txt").write_text("caf\u00e9 au lait", encoding="utf-8")
    with pytest.raises(LlamaError, match=r"bin.dat is not a UTF-8 text file \(byte 128"):
        read_text(tmp_path / "bin.dat")
    with pytest.raises(LlamaError, match=r"nul.txt is not a text file \(byte 5 is a NUL\)"):
        read_text(tmp_path / "nul.txt")
    with pytest.raises(LlamaError, match="Is a directory"):
        read_text(tmp_path)
    assert read_text(tmp_path / "ok.txt") == "caf\u00e9 au lait"
    (tmp_path / "empty.txt").write_text(" \n")
    empty = subprocess.run([sys.executable, "-m", "gene_jit", "perplexity", "default", str(tmp_path / "empty.txt")],
                           capture_output=True, text=True, timeout=300)
    assert empty.returncode == 1 and "empty.txt is empty" in empty.stderr and "Traceback" not in empty.stderr


@pytest.mark.parametrize("command", [["perplexity", "default", "t.txt"], ["quantize", "default", "o.gguf", "Q8_0"]])
@pytest.mark.parametrize("threads", ["0", "-2", "two", "1025"])
def test_cli_threads_must_be_a_positive_count(tmp_path: Path, command: list[str], threads: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "gene_jit", *command, "--threads", threads], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"--threads: expected a number of threads from 1 to 1024, got '{threads}'" in proc.stderr
    assert list(tmp_path.iterdir()) == []
