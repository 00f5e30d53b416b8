"""SIGTERM (a timeout, kill, a cancelled job) during a quantisation removes the temporary
output as Ctrl-C does, and the process still ends by SIGTERM: from `gene-jit quantize`
and from `model/create ... :quantize`, which writes its copy beside the source."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from test_tool_interrupts import Terminal, leftovers  # noqa: E402
from tool_models import write_llama  # noqa: E402


@pytest.mark.parametrize("how", ["cli", "model/create"])
def test_sigterm_while_quantising_leaves_no_partial_file(tmp_path: Path, how: str) -> None:
    src = write_llama(tmp_path / "big.gguf", n_embd=512, n_layer=4, n_head=8)  # about a second of work
    if how == "cli":
        args = ["quantize", str(src), str(tmp_path / "small.gguf"), "Q4_K_M", "--no-calibration", "--threads", "1"]
    else:
        args = ["eval", f'(model/create "{src}" :quantize "Q4_0" :threads 1)']
    term = Terminal([sys.executable, "-m", "gene_jit", *args], tmp_path)
    term.wait_for(r"quantising to Q4")
    term.proc.send_signal(signal.SIGTERM)
    _, code = term.finish()
    assert code == -signal.SIGTERM, term.seen[-2000:]
    assert leftovers(tmp_path, {"big.gguf"}) == []


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_sigterm_while_fine_tuning_leaves_no_folder(tmp_path: Path, arch: str) -> None:
    """model/fine-tune works in a temporary folder beside its output (an F32 copy of the
    model, a GB for the default one): SIGTERM removes it as Ctrl-C does."""
    from test_finetune import write_gemma3
    from test_tool_interrupts import FACT, MANY

    if arch == "gemma3":
        pytest.importorskip("torch")
        learner = write_gemma3(tmp_path / "learner.gguf", n_layer=2)
    else:
        learner = write_llama(tmp_path / "learner.gguf", n_embd=64, n_layer=2, n_head=4)
    also = f' :adapter "{tmp_path / "lora.gguf"}"' if arch == "gemma3" else ""
    program = tmp_path / "tune.gene"
    program.write_text(f'(var m (model/create "{learner}" :threads 1 :n-ctx 256 :progress false))\n'
                       f'(model/fine-tune m ["{FACT}"] :epochs {MANY} :lr 1e-4 :out "{tmp_path / "tuned.gguf"}"{also})\n')
    term = Terminal([sys.executable, "-m", "gene_jit", "run", str(program)], tmp_path)
    term.wait_for(r"epoch \d+ loss \d")
    term.proc.send_signal(signal.SIGTERM)
    _, code = term.finish()
    assert code == -signal.SIGTERM, term.seen[-2000:]
    assert leftovers(tmp_path, {"learner.gguf", "tune.gene"}) == []
