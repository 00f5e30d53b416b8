"""Fine-tuning a model on texts through libllama's training API (`llama_opt_init`,
`llama_opt_epoch`), on the CPU, with AdamW.

libllama trains float32 weights held in memory, so the model is first converted to F32
(a temporary file, when it is quantised) and loaded without memory-mapping; the tuned
weights are saved with `llama_model_save_to_file` and, unless `:type "F32"` is asked for
an F32 source, quantised to the type asked (F16 by default) into the output file, which
`model/create` loads.

Not every architecture can be trained: libllama aborts the whole process when a graph
holds an operation without a backward pass (Gemma's GEGLU feed-forward, for one). Before
any work a child process therefore builds that architecture's training graph and takes
one step that changes nothing; if it dies, the Gene error says why, and the caller's
process was never at risk. The answer is remembered for the file. Gemma 3 is known to
fail that way and never gets there: it trains LoRA adapters with PyTorch
(gene_jit/llama/finetune_torch.py), saved merged into `:out` or as an adapter (`:adapter`).

Training data: the texts, each with BOS and EOS, are joined and cut into windows of the
context's length (at least 256 tokens in this libllama), the last one padded with EOS.
Padding, not repetition: a window that repeats a short text teaches the model to copy the
earlier copy rather than to learn the text. Each window is one AdamW step (whose update
does not shrink with the share of padding); the loss of each step is returned.

Ctrl-C: libllama's epoch has no way to stop between its batches, so each step is an epoch
of one window, and a Ctrl-C noted during a step (`StopRequest`) ends training after it,
never halfway through an update. Nothing is saved then: the exception says how many steps
were taken and their losses, and the model the call was given was never changed (training
works on a copy of its weights). A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gene_jit.llama import bindings
from gene_jit.llama.bindings import ContextHandle, ModelHandle
from gene_jit.llama.errors import LlamaError
from gene_jit.llama.native_tools import (
    GGML_TYPE_I32,
    LOAD_MODE_NONE,
    OPTIMIZER_ADAMW,
    PARAM_FILTER,
    AdamWParams,
    OptimizerParams,
    OptParams,
    SGDParams,
    tools,
)
from gene_jit.llama.progress import Bar, wanted
from gene_jit.llama.quantize import (
    check_output,
    quantize,
    source_type,
    terminated_as_interrupt,
    type_name,
)

if TYPE_CHECKING:
    from gene_jit.llama.model import Model

DEFAULT_WINDOW = 256
MIN_LR_SHARE = 0.02  # the last steps' learning rate, as a share of :lr (ggml needs > 0)
_trainable: dict[tuple[str, float], str | None] = {}  # (path, mtime) -> why not, or None
_ABORT = re.compile(r"\.(?:c|cpp|h):\d+: (.+)$", re.MULTILINE)


class TrainingError(LlamaError):
    """Training that cannot start: no texts, an architecture libllama cannot train."""

    kind = "fine-tune error"


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: it stopped after a whole step and saved nothing. A
    KeyboardInterrupt, so the CLI exits 130 and the REPL goes on, as for any interrupt."""

    def __init__(self, losses: list[float], total: int) -> None:
        self.losses, self.total = list(losses), total
        shown = ", ".join(f"{x:.4f}" for x in losses[-8:])
        more = "..., " if len(losses) > 8 else ""
        so_far = f"; losses so far: [{more}{shown}]" if losses else ""
        super().__init__(f"model/fine-tune: interrupted after {len(losses)} of {total} steps{so_far}; "
                         "nothing was saved")


class StopRequest:
    """While training runs in the main thread, Ctrl-C asks it to stop after the current
    step (`asked`) instead of raising KeyboardInterrupt wherever Python next runs. Only
    CPython's own handler is replaced: a host's handler, or an ignored SIGINT, is kept."""

    def __init__(self) -> None:
        self.asked = False
        self._old: Any = None

    def __enter__(self) -> StopRequest:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._old = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

    def stop(self, losses: list[float], total: int) -> None:
        """Raise TrainingInterrupted, saying so on stderr, when a stop was asked."""
        if self.asked:
            error = TrainingInterrupted(losses, total)
            print(error, file=sys.stderr, flush=True)
            raise error


@dataclass
class TuneResult:
    out: Path | None  # the tuned model saved, when one was asked for
    losses: list[float] = field(default_factory=list)  # one per optimizer step
    epoch_losses: list[float] = field(default_factory=list)  # mean per epoch
    tokens: int = 0  # tokens per epoch
    seconds: float = 0.0
    adapter: Path | None = None  # the LoRA adapter saved, when one was asked for

    def as_map(self) -> dict[str, Any]:
        return {
            "out": None if self.out is None else str(self.out),
            "losses": list(self.losses),
            "epoch-losses": list(self.epoch_losses),
            "steps": len(self.losses),
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "adapter": None if self.adapter is None else str(self.adapter),
        }


def training_texts(texts: Any) -> list[str]:
    """The texts to train on: a string or an array of strings, not all empty."""
    items = [texts] if isinstance(texts, str) else texts
    if not isinstance(items, list | tuple) or not all(isinstance(t, str) for t in items):
        raise TrainingError("model/fine-tune needs the training texts as a string or an array of strings")
    items = [t for t in items if t.strip()]
    if not items:
        raise TrainingError("model/fine-tune: the training set is empty (no text to learn from)")
    return list(items)


def fine_tune(model: Model, texts: Any, out: Any, epochs: int = 2, lr: float = 1e-4, kind: Any = None,
              window: int = DEFAULT_WINDOW, progress: bool | None = None, adapter: Any = None) -> TuneResult:
    """Train a copy of `model`'s weights on `texts` and save it to `out` (and, for Gemma 3
    models, LoRA adapters to `adapter`)."""
    items = training_texts(texts)
    if model.meta("general.architecture") == "gemma3":
        return _fine_tune_gemma3(model, items, out, epochs, lr, kind, window, progress, adapter)
    if adapter:
        raise TrainingError("model/fine-tune: :adapter is for gemma3 models, which train LoRA adapters; "
                            f"{model.path.name} trains all its weights through libllama (give :out)")
    if not out:
        raise TrainingError('model/fine-tune needs :out, the file to save the tuned model to (:out "tuned.gguf")')
    target = check_output(str(out), model.path)
    src_type = source_type(model.path)
    save_as = type_name(kind) if kind is not None else ("F32" if src_type == "F32" else "F16")
    check_trainable(model)
    started = time.perf_counter()
    # SIGTERM ends the run as Ctrl-C does, so the folder (a GB of f32 weights) goes too
    with terminated_as_interrupt(), tempfile.TemporaryDirectory(dir=target.parent, prefix=".fine-tune.") as folder:
        f32 = model.path if src_type == "F32" else quantize(str(model.path), Path(folder) / "f32.gguf", "F32",
                                                           model.threads, False).path
        trainer = _Trainer(f32, model.threads, window)
        try:
            stream = [t for text in items for t in (*model.tokenize(text, add_special=True), model.eos)]
            result = trainer.train(stream, model.eos, epochs, lr, wanted(progress))
            tuned = Path(folder) / "tuned.gguf"
            tools().llama_model_save_to_file(trainer.model.ptr, str(tuned).encode())
        finally:
            trainer.close()
        if not tuned.is_file():
            raise TrainingError(f"libllama did not save the tuned model to {tuned}")
        if save_as == "F32":
            os.replace(tuned, target)
        else:
            quantize(str(tuned), target, save_as, model.threads, False)
    result.out = target
    result.seconds = time.perf_counter() - started
    return result


def _fine_tune_gemma3(model: Model, items: list[str], out: Any, epochs: int, lr: float, kind: Any,
                      window: int, progress: bool | None, adapter: Any) -> TuneResult:
    """libllama cannot train Gemma 3 (no backward pass for GEGLU): PyTorch trains LoRA
    adapters (gene_jit/llama/finetune_torch.py)."""
    if not out and not adapter:
        raise TrainingError('model/fine-tune needs :out, the file to save the tuned model to (:out "tuned.gguf"), '
                            'or :adapter, the file to save its LoRA adapter to (:adapter "lora.gguf")')
    target = check_output(str(out), model.path) if out else None
    lora = check_output(str(adapter), model.path) if adapter else None
    if target is not None and target == lora:
        raise TrainingError(f"model/fine-tune: :out and :adapter are the same file, {target}")
    save_as = type_name(kind) if kind is not None else "F16"
    from gene_jit.llama.finetune_torch import fine_tune_gemma3, torch_module

    torch_module()  # a missing PyTorch is a Gene error before any work
    return fine_tune_gemma3(model, items, target, lora, epochs, lr, save_as, window, wanted(progress))


class _Trainer:
    """An F32 model loaded for training, with its context and optimizer state."""

    def __init__(self, path: Path, threads: int, window: int) -> None:
        raw = bindings.lib()
        mp = raw.llama_model_default_params()
        p = bindings.struct_value(mp)
        p.load_mode = LOAD_MODE_NONE  # the optimizer writes the weights: no read-only mapping
        p.use_extra_bufts = False
        p.n_gpu_layers = 0
        self.model = ModelHandle(raw.llama_model_load_from_file(str(path), mp), f"model from {path}")
        cp = raw.llama_context_default_params()
        c = bindings.struct_value(cp)
        c.n_ctx = c.n_batch = c.n_ubatch = window
        c.n_threads = c.n_threads_batch = threads
        c.type_k = c.type_v = 0  # F32 cache: gradients flow through it
        c.no_perf = True
        self.ctx = ContextHandle(raw.llama_init_from_model(self.model.ptr, cp), "training context")
        self.window = int(tools().llama_n_ctx(self.ctx.ptr))
        self.n_vocab = int(raw.llama_vocab_n_tokens(raw.llama_model_get_vocab(self.model.ptr)))
        self.pars = OptimizerParams(AdamWParams(1e-4, 0.9, 0.999, 1e-8, 0.0), SGDParams(1e-4, 0.0))

    def train(self, stream: list[int], pad: int, epochs: int, lr: float, show: bool) -> TuneResult:
        t, n = tools(), self.window
        self.pars.adamw.alpha = self.pars.sgd.alpha = lr
        t.llama_opt_init(self.ctx.ptr, self.model.ptr,
                         OptParams(0, t.filter_all, None, t.constant_params, ctypes.addressof(self.pars), OPTIMIZER_ADAMW))
        ndata = max(1, math.ceil((len(stream) - 1) / n))
        padded = stream + [pad] * (n * ndata + 1 - len(stream))
        total = epochs * ndata
        dataset = self._dataset(padded[: n + 1], 1, pad)  # one window, refilled before each step
        data, labels = self._arrays(dataset, 1)
        result = t.ggml_opt_result_init()
        out = TuneResult(Path(), tokens=len(stream))
        try:
            with StopRequest() as stop, Bar("fine-tuning", total, show) as bar:
                for epoch in range(epochs):
                    seen: list[float] = []
                    for i in range(ndata):
                        data[:] = padded[i * n : (i + 1) * n]  # type: ignore[assignment]
                        labels[:] = padded[i * n + 1 : (i + 1) * n + 1]  # type: ignore[assignment]
                        # linear decay: ggml reads the rate before every step, and a
                        # constant one keeps undoing what the last steps learnt
                        rate = lr * max(MIN_LR_SHARE, 1.0 - len(out.losses) / total)
                        self.pars.adamw.alpha = self.pars.sgd.alpha = rate
                        t.ggml_opt_result_reset(result)
                        t.llama_opt_epoch(self.ctx.ptr, dataset, result, None, 1, None, None)
                        seen.append(_loss(result))
                        out.losses.append(seen[-1])
                        bar.update(len(out.losses), f"epoch {epoch + 1} loss {seen[-1]:.4f}")
                        if stop.asked:
                            break
                    if stop.asked:
                        break
                    out.epoch_losses.append(sum(seen) / len(seen))
            stop.stop(out.losses, total)
        finally:
            t.ggml_opt_result_free(result)
            t.ggml_opt_dataset_free(dataset)
        return out

    def _dataset(self, stream: list[int], ndata: int, pad: int) -> int:
        """Windows of the token stream, inputs and next tokens; the last is padded."""
        t, n = tools(), self.window
        ds = int(t.ggml_opt_dataset_init(GGML_TYPE_I32, GGML_TYPE_I32, n, n, ndata, 1))
        data, labels = self._arrays(ds, ndata)
        padded = stream + [pad] * (n * ndata + 1 - len(stream))
        data[:] = padded[: n * ndata]  # type: ignore[assignment]  # ctypes converts ints
        labels[:] = padded[1 : n * ndata + 1]  # type: ignore[assignment]
        return ds

    def _arrays(self, ds: int, ndata: int) -> tuple[Any, Any]:
        """The dataset's inputs and labels as int32 arrays over ggml's own memory."""
        t, size = tools(), self.window * ndata
        data = (ctypes.c_int32 * size).from_address(t.ggml_get_data(t.ggml_opt_dataset_data(ds)))
        labels = (ctypes.c_int32 * size).from_address(t.ggml_get_data(t.ggml_opt_dataset_labels(ds)))
        return data, labels

    def close(self) -> None:
        self.ctx.close()
        self.model.close()


def _loss(result: Any) -> float:
    """The loss of the one step `result` holds."""
    mean, unc = ctypes.c_double(), ctypes.c_double()
    tools().ggml_opt_result_loss(result, ctypes.byref(mean), ctypes.byref(unc))
    return float(mean.value)


# ---------------------------------------------------------------------------
# Can libllama train this architecture? Asked of a child process, which libllama may abort.


def check_trainable(model: Model) -> None:
    """Raise a TrainingError, before any work, when libllama cannot train the model."""
    key = (str(model.path), model.path.stat().st_mtime)
    if key not in _trainable:
        _trainable[key] = _probe(model.path, model.threads)
    why = _trainable[key]
    if why is not None:
        arch = model.meta("general.architecture") or "this"
        raise TrainingError(f"libllama cannot train the {arch} architecture of {model.path.name}: {why}")


def _probe(path: Path, threads: int) -> str | None:
    proc = subprocess.run([sys.executable, "-m", "gene_jit.llama.finetune", str(path), str(threads)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "GENE_LLAMA_LOG": "1"})
    if proc.returncode == 0:
        return None
    # ggml's aborts read "<source file>:<line>: <message>"
    said = [m.group(1) for m in _ABORT.finditer(proc.stderr)]
    return said[0] if said else f"a training step failed (exit status {proc.returncode})"


def _probe_main(path: str, threads: int) -> int:
    """One training step on the 1-D (always F32) weights of `path`, which this process
    never saves: enough for libllama to build the architecture's whole backward graph."""
    trainer = _Trainer(Path(path), threads, DEFAULT_WINDOW)
    t = tools()

    def one_dim(tensor: Any, user: Any) -> bool:
        return bool(t.ggml_n_dims(tensor) == 1)

    keep = PARAM_FILTER(one_dim)
    pars = OptimizerParams(AdamWParams(1e-6, 0.9, 0.999, 1e-8, 0.0), SGDParams(1e-6, 0.0))
    t.llama_opt_init(trainer.ctx.ptr, trainer.model.ptr,
                     OptParams(0, ctypes.cast(keep, ctypes.c_void_p).value, None, t.constant_params,
                               ctypes.addressof(pars), OPTIMIZER_ADAMW))
    dataset = trainer._dataset([1, 2, 3], 1, 0)
    result = t.ggml_opt_result_init()
    t.llama_opt_epoch(trainer.ctx.ptr, dataset, result, None, 1, None, None)
    return 0


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1], int(sys.argv[2])))
