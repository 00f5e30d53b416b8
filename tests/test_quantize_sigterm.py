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
