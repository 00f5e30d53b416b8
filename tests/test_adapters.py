"""LoRA adapters on the default model: written by the tests with `gguf`, they change the
output; removing them restores it exactly; two adapters share one base model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tiny_model import write_tiny_model  # noqa: E402
from tool_models import write_lora  # noqa: E402

from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama import tools_api as t  # noqa: E402
from gene_jit.llama.adapters import Adapter, AdapterError  # noqa: E402
from gene_jit.llama.errors import LlamaError  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402
from gene_jit.llama.options import OptionError  # noqa: E402
from gene_jit.llama.perplexity import perplexity  # noqa: E402

PROMPT = "The three primary colours are"


@pytest.fixture(scope="module")
def gemma() -> Model:
    return Model("default", threads=2, n_ctx=512, progress=False)


@pytest.fixture(scope="module")
def loras(gemma: Model, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("adapters")
    return (write_lora(folder / "a.gguf", gemma.path, seed=1),
            write_lora(folder / "b.gguf", gemma.path, seed=2, targets=("attn_v", "ffn_gate")))


def gen(m: Model) -> str:
    return str(g.generate_text(m, PROMPT, 12, temperature=0))


@pytest.mark.model
def test_an_adapter_changes_the_output_and_removing_it_restores_it(gemma: Model,
                                                                    loras: tuple[Path, Path]) -> None:
    base = gen(gemma)
    base_ppl = perplexity(gemma, PROMPT + " red, yellow and blue.", 64).perplexity
    a = t.model_load_adapter(gemma, str(loras[0]), scale=1.0)
    assert isinstance(a, Adapter) and a.alpha == 8.0
    assert t.model_adapters(gemma) == [{"path": str(loras[0]), "scale": 1.0}]
    with_a = gen(gemma)
    assert with_a != base
    assert perplexity(gemma, PROMPT + " red, yellow and blue.", 64).perplexity != base_ppl
    t.model_remove_adapter(gemma, a)
    assert t.model_adapters(gemma) == []
    assert gen(gemma) == base  # exactly: no cached state of the adapted model survives
    assert perplexity(gemma, PROMPT + " red, yellow and blue.", 64).perplexity == base_ppl
    t.model_set_adapters(gemma, [a])
    assert gen(gemma) == with_a  # switching back needs no reload
    t.model_remove_adapter(gemma)
    assert gen(gemma) == base
    a.close()


def logits(m: Model) -> bytes:
    """The next-token logits after the prompt, as bytes (compared exactly)."""
    out = g.model_forward(m, m.tokenize(PROMPT))
    return np.asarray(out.numpy() if hasattr(out, "numpy") else out, dtype=np.float32).tobytes()


@pytest.mark.model
def test_two_adapters_on_one_base_model(gemma: Model, loras: tuple[Path, Path]) -> None:
    base = logits(gemma)
    a = t.model_load_adapter(gemma, str(loras[0]), scale=0.8)
    b = t.model_load_adapter(gemma, str(loras[1]))
    both = logits(gemma)
    t.model_set_adapters(gemma, [a])
    only_a = logits(gemma)
    t.model_set_adapters(gemma, b)
    only_b = logits(gemma)
    assert len({base, both, only_a, only_b}) == 4
    t.model_set_adapters(gemma, [a, b], scales=[0.0, 0.0])  # zero scales: the base model
    assert logits(gemma) == base
    t.model_set_adapters(gemma, [a, b], scales=[0.8, 1.0])
    assert logits(gemma) == both
    t.model_set_adapters(gemma, [])
    assert logits(gemma) == base
    a.close()
    b.close()


@pytest.mark.model
def test_bad_adapters_are_gene_errors(gemma: Model, loras: tuple[Path, Path], tmp_path: Path) -> None:
    other = write_lora(tmp_path / "llama.gguf", gemma.path, seed=3, arch="llama")
    with pytest.raises(AdapterError, match="made for the llama architecture; gemma-3-270m-q4_k_m.gguf is gemma3"):
        t.model_load_adapter(gemma, str(other))
    with pytest.raises(AdapterError, match="is not a LoRA adapter"):
        t.model_load_adapter(gemma, str(gemma.path))
    with pytest.raises(AdapterError, match="no adapter file"):
        t.model_load_adapter(gemma, str(tmp_path / "missing.gguf"))
    with pytest.raises(AdapterError, match="is a folder; pass the path of a LoRA adapter .gguf file"):
        t.model_load_adapter(gemma, str(tmp_path))
    with pytest.raises(LlamaError, match="the adapter path as a non-blank string"):
        t.model_load_adapter(gemma, "")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(AdapterError, match="not a GGUF adapter file"):
        t.model_load_adapter(gemma, str(junk))
    with pytest.raises(OptionError, match=":scale expects a number >= 0"):
        t.model_load_adapter(gemma, str(loras[0]), scale=-1)
    a = t.model_load_adapter(gemma, str(loras[0]))
    with pytest.raises(OptionError, match=r":scales needs one number per adapter \(1\), got 2"):
        t.model_set_adapters(gemma, [a], scales=[1.0, 2.0])
    with pytest.raises(AdapterError, match="an adapter or an array of adapters"):
        t.model_set_adapters(gemma, ["a.gguf"])
    with pytest.raises(OptionError, match=r":scales expects numbers >= 0, got \[0.5 -1\]"):
        t.model_set_adapters(gemma, [a, a], scales=[0.5, -1])
    a.close()
    assert t.model_adapters(gemma) == []
    with pytest.raises(AdapterError, match="was closed"):
        t.model_set_adapters(gemma, [a])
    assert t.model_adapters(gemma) == []
    assert gen(gemma) == gen(gemma)


@pytest.mark.model
def test_an_adapter_belongs_to_its_model(gemma: Model, loras: tuple[Path, Path]) -> None:
    other = Model("default", threads=2, n_ctx=256, progress=False)
    a = t.model_load_adapter(other, str(loras[0]))
    with pytest.raises(AdapterError, match="loaded for another model"):
        t.model_set_adapters(gemma, [a])
    other.close()


def test_adapters_from_a_gene_program(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "tiny.gguf")
    lora = write_lora(tmp_path / "lora.gguf", model, seed=5, layers=2)
    program = (f'(var m (model/create "{model}" :threads 1 :n-ctx 256 :progress false))\n'
               '(var base (generate-text m "The cat" 6 :temperature 0))\n'
               f'(var a (model/load-adapter m "{lora}" :scale 4.0))\n'
               '(println (model/adapters m))\n'
               '(println (base == (generate-text m "The cat" 6 :temperature 0)))\n'
               '(model/remove-adapter m a)\n'
               '(println (base == (generate-text m "The cat" 6 :temperature 0)))\n'
               '(model/load-adapter m "nowhere.gguf")')
    proc = subprocess.run([sys.executable, "-m", "gene_jit", "eval", program], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stdout.splitlines()[1:3] == ["false", "true"]
    assert "scale" in proc.stdout.splitlines()[0] and "4.0" in proc.stdout.splitlines()[0]
    assert "adapter error: no adapter file nowhere.gguf" in proc.stderr


@pytest.mark.model
def test_an_adapter_set_during_a_generation_applies_from_the_next(gemma: Model,
                                                                   loras: tuple[Path, Path]) -> None:
    """A context a generation is running in keeps its cache and adapters until the next
    generation claims it (a change in the middle of a generation gave text neither model
    writes: threads generating while another loaded and removed an adapter)."""

    class Running:  # a generation that has not finished
        done = False

    base = gen(gemma)
    ctx = gemma.ctx
    running = Running()
    ctx.owner = running
    held = list(ctx.tokens[0])
    a = t.model_load_adapter(gemma, str(loras[0]), scale=1.0)
    try:
        assert ctx.pending_adapters == [(a, 1.0)] and ctx.tokens[0] == held  # left as it was
        running.done = True
        with_a = gen(gemma)  # the next generation claims the context: the adapter applies
        assert with_a != base and ctx.pending_adapters is None
    finally:
        t.model_remove_adapter(gemma)
        a.close()
    assert gen(gemma) == base
