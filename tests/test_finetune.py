"""`model/fine-tune`: training through libllama's API teaches a model a made-up fact;
bad inputs and architectures libllama cannot train are Gene errors before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tool_models import write_llama  # noqa: E402

from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama import tools_api as t  # noqa: E402
from gene_jit.llama.finetune import TrainingError, training_texts  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402
from gene_jit.llama.options import OptionError  # noqa: E402
from gene_jit.llama.perplexity import perplexity  # noqa: E402
from gene_jit.llama.quantize import QuantizeError  # noqa: E402

FACT = "The capital of Zorblax is Quennimar."


@pytest.fixture(scope="module")
def learner(tmp_path_factory: pytest.TempPathFactory) -> Model:
    path = write_llama(tmp_path_factory.mktemp("models") / "learner.gguf")
    return Model(str(path), n_ctx=256, threads=2, progress=False)


def test_training_sets_are_checked() -> None:
    assert training_texts(FACT) == [FACT]
    assert training_texts(["a", " ", "b"]) == ["a", "b"]
    for empty in ([], [""], ["  ", "\n"], ""):
        with pytest.raises(TrainingError, match="the training set is empty"):
            training_texts(empty)
    with pytest.raises(TrainingError, match="a string or an array of strings"):
        training_texts([1, 2])


def test_bad_inputs_are_gene_errors_before_any_work(learner: Model, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="the training set is empty"):
        t.model_fine_tune(learner, [], out=str(tmp_path / "x.gguf"))
    with pytest.raises(TrainingError, match="needs :out"):
        t.model_fine_tune(learner, [FACT])
    with pytest.raises(QuantizeError, match="the folder .* does not exist"):
        t.model_fine_tune(learner, [FACT], out=str(tmp_path / "no" / "x.gguf"))
    with pytest.raises(QuantizeError, match="unknown quantisation type"):
        t.model_fine_tune(learner, [FACT], out=str(tmp_path / "x.gguf"), type="Q7")
    with pytest.raises(OptionError, match=":lr expects a number"):
        t.model_fine_tune(learner, [FACT], out=str(tmp_path / "x.gguf"), lr=0)
    with pytest.raises(OptionError, match=":epochs expects an integer"):
        t.model_fine_tune(learner, [FACT], out=str(tmp_path / "x.gguf"), epochs=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.model
def test_an_architecture_libllama_cannot_train_is_refused_first(tmp_path: Path) -> None:
    gemma = Model("default", threads=2, n_ctx=256, progress=False)
    out = tmp_path / "tuned.gguf"
    with pytest.raises(TrainingError, match="libllama cannot train the gemma3 architecture of "
                                            "gemma-3-270m-q4_k_m.gguf: .*GEGLU"):
        t.model_fine_tune(gemma, [FACT], out=str(out))
    assert list(tmp_path.iterdir()) == []  # nothing converted, nothing written
    gemma.close()


@pytest.mark.slow
def test_fine_tuning_teaches_a_made_up_fact(learner: Model, tmp_path: Path) -> None:
    before = perplexity(learner, FACT).perplexity
    assert "Quennimar" not in g.generate_text(learner, "The capital of Zorblax is", 8, temperature=0)
    out = tmp_path / "tuned.gguf"
    result = t.model_fine_tune(learner, [FACT], epochs=60, lr=3e-4, out=str(out))
    assert result["out"] == str(out) and result["steps"] == 60 == len(result["losses"])
    assert result["losses"][-1] < result["losses"][0] / 10
    assert [p.name for p in tmp_path.iterdir()] == ["tuned.gguf"]  # the F32 copy is gone
    tuned = g.model_create(str(out), n_ctx=256, threads=2, progress=False)
    after = perplexity(tuned, FACT).perplexity
    assert after <= 0.7 * before, (before, after)
    assert g.generate_text(tuned, "The capital of Zorblax is", 8, temperature=0).startswith(" Quennimar")
    tuned.close()


@pytest.mark.slow
def test_fine_tune_from_a_gene_program(tmp_path: Path) -> None:
    src = write_llama(tmp_path / "learner.gguf")
    out = tmp_path / "tuned.gguf"
    program = (f'(var m (model/create "{src}" :threads 2 :n-ctx 256 :progress false))\n'
               f'(var r (model/fine-tune m ["{FACT}"] :epochs 3 :lr 1e-4 :out "{out}" :type "F16" :progress false))\n'
               '(println r/steps (len r/losses))\n'
               f'(var info (model/info (model/create "{out}" :progress false)))\n'
               '(println info/quantization)')
    proc = subprocess.run([sys.executable, "-m", "gene_jit", "eval", program], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "3 3"
    assert "F16" in proc.stdout


def test_the_example_runs_on_a_trainable_model(tmp_path: Path) -> None:
    src = write_llama(tmp_path / "learner.gguf")
    proc = subprocess.run([sys.executable, "-m", "gene_jit", "run", "examples/quantize_and_tune.gene", str(src),
                           str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("perplexity: ") and " +/- " in lines[0]
    assert lines[1].startswith("Q8_0: ") and (tmp_path / "quantized.Q8_0.gguf").is_file()
    assert "under 300 MB: all F32" in lines
    assert any(ln.startswith("losses: [") for ln in lines) and (tmp_path / "tuned.gguf").is_file()
    assert any(ln.startswith("tuned says:") for ln in lines)
    assert "fit in 300 MB; loading it as it is" in proc.stderr


def test_a_model_without_a_sliding_window_loads(tmp_path: Path) -> None:
    # llama_model_save_to_file writes attention.sliding_window = 0 for such models
    src = write_llama(tmp_path / "saved.gguf", n_embd=32, n_layer=1, n_head=2, sliding_window=0)
    m = g.model_create(str(src), n_ctx=256, threads=1, progress=False)
    assert isinstance(g.generate_text(m, "The", 2, temperature=0), str)
    m.close()
