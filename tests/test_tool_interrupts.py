"""Ctrl-C during the model tools. `model/fine-tune` stops after a whole step, says how
many steps it took and their losses, saves nothing, and the CLI exits 130; in the REPL the
model goes on working and can be tuned again. A quantisation, which libllama cannot stop,
is waited for and its output removed: no file and no busy thread stay behind.

Each program runs in a subprocess whose stderr is a pseudo-terminal, so the progress bar
is drawn: SIGINT is sent once the bar shows that the work is under way."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from conftest import REPO  # noqa: E402
from test_finetune import write_gemma3  # noqa: E402
from tool_models import write_llama  # noqa: E402

FACT = "The capital of Zorblax is Quennimar."
MANY = 10000  # epochs (the most :epochs takes): far more than a test waits for
REPORT = re.compile(r"model/fine-tune: interrupted after (\d+) of (\d+) steps; losses so far: \[([^\]]+)\]; "
                    r"nothing was saved")


class Terminal:
    """A subprocess with stderr on a pseudo-terminal, read as it comes."""

    def __init__(self, args: list[str], cwd: Path, stdin: int | None = subprocess.DEVNULL) -> None:
        master, slave = os.openpty()
        env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "PYTHONUNBUFFERED": "1", "GENE_LLAMA_LOG": "0",
               "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=slave, text=True)
        os.close(slave)
        self.master, self.seen = master, ""

    def wait_for(self, pattern: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.seen):
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                self.proc.kill()
                pytest.fail(f"no {pattern!r} on stderr; it showed:\n{self.seen[-2000:]}")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.seen += chunk.decode(errors="replace")
        return bool(chunk)

    def finish(self, timeout: float = 120) -> tuple[str, int]:
        """stdout and the exit status, once the process ends (its stderr read to the end)."""
        if self.proc.stdin is not None:  # the end of the program's input
            self.proc.stdin.close()
            self.proc.stdin = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(min(1.0, deadline - time.monotonic())):
            if self.proc.poll() is not None and not select.select([self.master], [], [], 0.2)[0]:
                break
        try:
            out, _ = self.proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the process did not end; stderr:\n{self.seen[-2000:]}")
        os.close(self.master)
        return out, self.proc.returncode


def check_report(stderr: str) -> list[float]:
    found = REPORT.search(stderr.replace("\r\n", "\n").replace("\n", " "))
    assert found, stderr[-2000:]
    done, total = int(found.group(1)), int(found.group(2))
    losses = [float(x) for x in found.group(3).replace("...,", "").split(",")]
    assert 1 <= done < total == MANY and len(losses) == min(done, 8)
    assert all(0 <= x < 100 for x in losses)  # cross-entropies, not NaN
    return losses


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture
def learner(tmp_path: Path) -> Path:
    return write_llama(tmp_path / "learner.gguf", n_embd=64, n_layer=2, n_head=4)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_ctrl_c_stops_training_and_the_cli_exits_130(tmp_path: Path, arch: str) -> None:
    # llama trains through libllama's epochs, gemma3 LoRA adapters through PyTorch
    if arch == "gemma3":
        pytest.importorskip("torch")
        learner = write_gemma3(tmp_path / "learner.gguf", n_layer=2)
    else:
        learner = write_llama(tmp_path / "learner.gguf", n_embd=64, n_layer=2, n_head=4)
    out = tmp_path / "tuned.gguf"
    program = tmp_path / "tune.gene"
    lora = tmp_path / "lora.gguf"
    also = f' :adapter "{lora}"' if arch == "gemma3" else ""
    program.write_text(f'(var m (model/create "{learner}" :threads 1 :n-ctx 256 :progress false))\n'
                       '(println "start")\n'
                       f'(model/fine-tune m ["{FACT}"] :epochs {MANY} :lr 1e-4 :out "{out}"{also})\n'
                       '(println "after")\n')
    term = Terminal([sys.executable, "-m", "gene_jit", "run", str(program)], tmp_path)
    term.wait_for(r"epoch \d+ loss \d")
    term.proc.send_signal(signal.SIGINT)
    stdout, code = term.finish()
    assert (stdout, code) == ("start\n", 130), term.seen[-2000:]
    check_report(term.seen)
    assert term.seen.rstrip().endswith("interrupted") and "Traceback" not in term.seen
    # no tuned model, no temporary F32 copy or half-written file beside it
    assert leftovers(tmp_path, {"learner.gguf", "tune.gene"}) == []


def test_after_ctrl_c_the_model_works_in_the_repl(learner: Path, tmp_path: Path) -> None:
    out = tmp_path / "tuned.gguf"
    term = Terminal([sys.executable, "-m", "gene_jit", "repl"], tmp_path, stdin=subprocess.PIPE)
    stdin = term.proc.stdin
    assert stdin is not None
    stdin.write(f'(var m (model/create "{learner}" :threads 1 :n-ctx 256 :progress false))\n'
                f'(var r (model/fine-tune m ["{FACT}"] :epochs {MANY} :out "{out}"))\n')
    stdin.flush()
    term.wait_for(r"epoch \d+ loss \d")
    before = set(os.listdir(tmp_path))
    term.proc.send_signal(signal.SIGINT)
    term.wait_for(r"nothing was saved[\s\S]*interrupted")
    assert not out.exists() and set(os.listdir(tmp_path)) <= before
    stdin.write('(println "gen:" (len (model/generate m "The capital" 4 :temperature 0)))\n'
                f'(var r2 (model/fine-tune m ["{FACT}"] :epochs 2 :out "{out}" :progress false))\n'
                '(println "steps:" r2/steps)\n')
    stdout, code = term.finish()
    assert code == 0, term.seen[-2000:]
    check_report(term.seen)
    lines = stdout.splitlines()
    assert "steps: 2" in lines and any(ln.startswith("gen: ") for ln in lines), stdout
    assert out.is_file() and leftovers(tmp_path, {"learner.gguf", "tuned.gguf"}) == []


QUANTIZE_HOST = """
import os, sys, threading
from gene_jit.llama.quantize import quantize
src, out = sys.argv[1:3]
try:
    quantize(src, out, "Q4_K_M", threads=1, progress=True)
except KeyboardInterrupt:
    busy = [t.name for t in threading.enumerate() if t.name == "gene-quantize" and t.is_alive()]
    print("caught", busy, sorted(os.listdir(os.path.dirname(out))), flush=True)
"""


def test_ctrl_c_during_a_quantisation_leaves_no_file_and_no_thread(tmp_path: Path) -> None:
    src = write_llama(tmp_path / "big.gguf", n_embd=512, n_layer=4, n_head=8)  # about a second of work
    out = tmp_path / "small.gguf"
    term = Terminal([sys.executable, "-c", QUANTIZE_HOST, str(src), str(out)], tmp_path)
    term.wait_for("quantising to Q4_K_M")
    term.proc.send_signal(signal.SIGINT)
    stdout, code = term.finish()
    assert (stdout, code) == ("caught [] ['big.gguf']\n", 0), term.seen[-2000:]
