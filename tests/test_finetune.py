"""`model/fine-tune`: training through libllama's API (llama models) or LoRA adapters
trained with PyTorch (gemma3, whose GEGLU libllama cannot differentiate) teaches a model a
made-up fact; bad inputs are Gene errors before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

import numpy as np  # noqa: E402
from tiny_model import add_tokenizer, vocabulary, write_tensors  # noqa: E402
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


# ---------------------------------------------------------------------------
# gemma3: PyTorch forward pass and LoRA adapters


def write_gemma3(path: Path, n_layer: int = 6, n_embd: int = 64, n_head: int = 2, head_dim: int = 32,
                 window: int = 4, seed: int = 3) -> Path:
    """A small Gemma 3 model (F32, random weights, one key/value head) with the tiny
    model's vocabulary: six layers, so five sliding-window ones (of `window` tokens) and a
    global one, each kind with its RoPE base."""
    import gguf

    tokens = vocabulary()[0]
    n_ff = 2 * n_embd
    rng = np.random.default_rng(seed)

    def mat(n_out: int, n_in: int, scale: float = 0.1) -> np.ndarray:
        return (rng.standard_normal((n_out, n_in)) * scale).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + rng.standard_normal(n) * 0.1).astype(np.float32)

    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_name("gene-train-gemma3")
    w.add_context_length(512)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(1)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1e6)
    w.add_sliding_window(window)
    w.add_file_type(0)
    add_tokenizer(w)
    tensors = {"token_embd.weight": mat(len(tokens), n_embd, 0.5), "output_norm.weight": norm(n_embd)}
    for i in range(n_layer):
        p = f"blk.{i}."
        for name in ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"):
            tensors[p + name + ".weight"] = norm(n_embd)
        tensors[p + "attn_q_norm.weight"] = norm(head_dim)
        tensors[p + "attn_k_norm.weight"] = norm(head_dim)
        tensors[p + "attn_q.weight"] = mat(n_head * head_dim, n_embd)
        tensors[p + "attn_k.weight"] = mat(head_dim, n_embd)
        tensors[p + "attn_v.weight"] = mat(head_dim, n_embd)
        tensors[p + "attn_output.weight"] = mat(n_embd, n_head * head_dim)
        tensors[p + "ffn_gate.weight"] = mat(n_ff, n_embd)
        tensors[p + "ffn_up.weight"] = mat(n_ff, n_embd)
        tensors[p + "ffn_down.weight"] = mat(n_embd, n_ff)
    write_tensors(w, tensors)
    return path


def libllama_logits(path: Path, tokens: list[int], lora: Path | None = None) -> np.ndarray:
    import llama_cpp

    kw = {"lora_path": str(lora)} if lora else {}
    llm = llama_cpp.Llama(str(path), n_ctx=64, n_threads=2, logits_all=True, verbose=False, **kw)
    llm.eval(tokens)
    out = np.array(llm.scores[: len(tokens)], np.float32)
    llm.close()
    return out


SENTENCE = "The capital of Zorblax is Quennimar, a city of glass."


@pytest.fixture(scope="module")
def gemma_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gemma3(tmp_path_factory.mktemp("models") / "gemma3.gguf")


def test_the_torch_forward_pass_equals_libllama(gemma_file: Path) -> None:
    torch = pytest.importorskip("torch")
    from gene_jit.llama.finetune_torch import Gemma3

    m = Model(str(gemma_file), n_ctx=64, threads=2, progress=False)
    tokens = m.tokenize(SENTENCE)
    m.close()
    assert len(tokens) > 3 * 4  # well past the sliding window
    with torch.no_grad():
        ours = Gemma3(gemma_file).forward(tokens).numpy()
    theirs = libllama_logits(gemma_file, tokens)
    assert (ours.argmax(1) == theirs.argmax(1)).all()
    np.testing.assert_allclose(ours, theirs, atol=5e-4 * float(np.abs(theirs).max()))
    # a slice of the first layers is a different model: the comparison can fail
    with torch.no_grad():
        sliced = Gemma3(gemma_file, n_layer=2).forward(tokens).numpy()
    assert np.abs(sliced - theirs).max() > 0.1 * float(np.abs(theirs).max())


def test_gemma3_trains_lora_adapters_that_libllama_applies(gemma_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    m = Model(str(gemma_file), n_ctx=64, threads=2, progress=False)
    tokens = m.tokenize(SENTENCE)
    out, lora = tmp_path / "tuned.gguf", tmp_path / "lora.gguf"
    r = t.model_fine_tune(m, [SENTENCE], epochs=3, lr=1e-2, out=str(out), adapter=str(lora), type="F32",
                          window=16, progress=False)
    m.close()
    assert r["out"] == str(out) and r["adapter"] == str(lora) and r["tokens"] == len(tokens) + 1  # EOS
    windows = -(-len(tokens) // 16)  # the stream's last token has no successor to predict
    assert r["steps"] == 3 * windows == len(r["losses"]) and len(r["epoch-losses"]) == 3
    assert r["epoch-losses"][-1] < r["epoch-losses"][0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lora.gguf", "tuned.gguf"]
    base = libllama_logits(gemma_file, tokens)
    adapted = libllama_logits(gemma_file, tokens, lora)
    merged = libllama_logits(out, tokens)
    assert np.abs(adapted - base).max() > 0.1
    # the adapter (B A applied beside W) and the merged weights (W + B A) agree
    np.testing.assert_allclose(merged, adapted, atol=2e-3 * float(np.abs(adapted).max()))


def test_gemma3_needs_somewhere_to_save(gemma_file: Path, tmp_path: Path) -> None:
    m = Model(str(gemma_file), n_ctx=64, threads=2, progress=False)
    with pytest.raises(TrainingError, match="needs :out.* or :adapter"):
        t.model_fine_tune(m, [SENTENCE])
    with pytest.raises(TrainingError, match=":out and :adapter are the same file"):
        t.model_fine_tune(m, [SENTENCE], out=str(tmp_path / "x.gguf"), adapter=str(tmp_path / "x.gguf"))
    with pytest.raises(QuantizeError, match="the folder .* does not exist"):
        t.model_fine_tune(m, [SENTENCE], adapter=str(tmp_path / "no" / "x.gguf"))
    m.close()
    assert list(tmp_path.iterdir()) == []


def test_adapters_are_only_for_gemma3(learner: Model, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=":adapter is for gemma3 models"):
        t.model_fine_tune(learner, [FACT], out=str(tmp_path / "x.gguf"), adapter=str(tmp_path / "a.gguf"))


def test_gemma3_without_torch_is_a_gene_error(gemma_file: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from gene_jit.runtime.requirements import MissingDependencyError

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ModuleNotFoundError
    m = Model(str(gemma_file), n_ctx=64, threads=2, progress=False)
    with pytest.raises(MissingDependencyError, match=r"'torch'.*gene-jit\[bench\]"):
        t.model_fine_tune(m, [SENTENCE], adapter=str(tmp_path / "lora.gguf"))
    m.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.model
@pytest.mark.slow
def test_fine_tuning_the_default_model_teaches_a_made_up_fact(tmp_path: Path) -> None:
    gemma = Model("default", threads=2, n_ctx=256, progress=False)
    prompt = "The capital of Zorblax is"
    before = perplexity(gemma, FACT).perplexity
    assert "Quennimar" not in g.generate_text(gemma, prompt, 8, temperature=0)
    out, lora = tmp_path / "tuned.gguf", tmp_path / "lora.gguf"
    result = t.model_fine_tune(gemma, [FACT], epochs=6, lr=5e-4, out=str(out), adapter=str(lora), progress=False)
    assert result["steps"] == 6 and result["losses"][-1] < result["losses"][0] / 4
    tuned = g.model_create(str(out), n_ctx=256, threads=2, progress=False)
    assert tuned.meta("general.architecture") == "gemma3" and "F16" in g.model_info(tuned)["quantization"]
    assert perplexity(tuned, FACT).perplexity <= 0.7 * before
    assert g.generate_text(tuned, prompt, 8, temperature=0).startswith(" Quennimar")
    tuned.close()
    t.model_load_adapter(gemma, str(lora))
    assert perplexity(gemma, FACT).perplexity <= 0.7 * before
    assert g.generate_text(gemma, prompt, 8, temperature=0).startswith(" Quennimar")
    gemma.close()


def test_gemma3_adapter_from_a_gene_program(gemma_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    lora = tmp_path / "lora.gguf"
    program = (f'(var m (model/create "{gemma_file}" :threads 2 :n-ctx 64 :progress false))\n'
               f'(var r (model/fine-tune m ["{SENTENCE}"] :epochs 2 :lr 1e-2 :adapter "{lora}" :progress false))\n'
               '(println r/steps (len r/losses) (r/out == nil))\n'
               '(model/load-adapter m r/adapter :scale 0.5)\n'
               '(println (model/adapters m))')
    proc = subprocess.run([sys.executable, "-m", "gene_jit", "eval", program], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "2 2 true"
    assert str(lora) in proc.stdout.splitlines()[1] and "0.5" in proc.stdout.splitlines()[1]
