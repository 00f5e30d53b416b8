"""The public model object: a loaded GGUF with its vocabulary, contexts and KV-cache state.

`Model` owns a `ModelHandle` and creates contexts from it (gene_jit.llama.context): the
main one (sequence 0, which remembers the tokens in its KV cache so that a prompt sharing
a prefix with the last one decodes fewer tokens) and, while a generation still needs the
main one (an unfinished stream, another thread), up to `POOL_SIZE - 1` more like it; an
embeddings context; and contexts for batches and chat sessions. Every context is used
under its own lock, so Python threads sharing a model never corrupt libllama's state.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from pathlib import Path
from typing import Any

from gene_jit.llama import bindings
from gene_jit.llama.bindings import ModelHandle
from gene_jit.llama.context import Context
from gene_jit.llama.errors import BadModelError, LlamaError
from gene_jit.llama.options import OptionError, shown
from gene_jit.llama.resolve import resolve_model
from gene_jit.llama.speculate import ExactBatches, StepCosts

__all__ = ["POOL_SIZE", "Context", "Model", "current_model", "default_threads"]

_current: Model | None = None  # the most recently created model (for one-argument forms)
POOL_SIZE = 4  # contexts like the main one that generations in progress may hold at once


def current_model() -> Model:
    """The most recently created model; the default model when none exists yet."""
    global _current
    if _current is None:
        _current = Model()
    return _current


def default_threads() -> int:
    env = os.environ.get("GENE_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(os.cpu_count() or 1, 8))


class Model:
    """A GGUF model loaded by libllama (`model/create`)."""

    def __init__(
        self,
        name_or_path: Any = None,
        fmt: Any = "gguf",
        n_ctx: int = 4096,
        threads: int | None = None,
        device: Any = None,
        gpu_layers: int | None = None,
        seed: int | None = None,
        progress: bool | None = None,
        repack: bool = True,
    ) -> None:
        global _current
        if fmt is not None and str(getattr(fmt, "name", fmt)).lower() != "gguf":
            raise LlamaError(f"model/create: unsupported model format {shown(fmt)}: the formats are "
                             '"gguf" (libllama) and "onnx" (ONNX Runtime)')
        self.path: Path = resolve_model(None if name_or_path is None else str(name_or_path))
        self.threads = int(threads) if threads else default_threads()
        self.seed = bindings.DEFAULT_SEED if seed is None else int(seed) & 0xFFFFFFFF
        self.device = _device_name(device)
        unusable = getattr(device, "unavailable", None)
        if unusable:  # (device/create :cuda) without a GPU already warned once
            print(f"warning: device {self.device} is unusable ({unusable}); the model runs on the CPU",
                  file=sys.stderr)
            self.device = "cpu"
        layers = _gpu_layers(self.device, gpu_layers)
        if not layers and self.device != "cpu":  # where the model runs: model/info says so
            self.device = "cpu"
        # repack: libllama's CPU weight layouts for its own kernels (false: the plain
        # layout, whose matrix products cost less per row in batches; gene_jit.serve)
        self.repack = repack
        self.handle = ModelHandle(self._load(layers, progress), f"model from {self.path}")
        raw = bindings.lib()
        self.vocab = raw.llama_model_get_vocab(self.handle.ptr)
        self.n_vocab = int(raw.llama_vocab_n_tokens(self.vocab))
        self.n_embd = int(raw.llama_model_n_embd(self.handle.ptr))
        self.n_ctx_train = int(raw.llama_model_n_ctx_train(self.handle.ptr))
        self.bos = int(raw.llama_vocab_bos(self.vocab))
        self.eos = int(raw.llama_vocab_eos(self.vocab))
        self.add_bos = bool(raw.llama_vocab_get_add_bos(self.vocab))
        self.n_ctx = min(int(n_ctx), self.n_ctx_train) if self.n_ctx_train > 0 else int(n_ctx)
        self.decode_lock = threading.Lock()  # one decode at a time over all contexts
        self._ctx: Context | None = None
        self._pool: list[Context] = []  # the main context first
        self._claims = 0
        self._embed_ctx: Context | None = None
        self._batch_ctx: Context | None = None  # batch-generate's, sized by its last use
        self.exact_batches = ExactBatches()  # where speculative steps keep the output
        self.step_costs = StepCosts()  # what decoding steps cost, by batch size
        self._lock = threading.Lock()
        self.embedding_cache: dict[str, Any] = {}
        # per-token facts that never change for a vocabulary, cached so that the token
        # loop makes no libllama call (and no buffer allocation) for them after the first
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}
        self._streams = threading.local()  # get-next-token's state: one a thread
        self.last_stats: Any = None  # Stats of the last generation
        _current = self

    # -- loading -------------------------------------------------------------------

    def _load(self, gpu_layers: int, progress: bool | None) -> int | None:
        raw = bindings.lib()
        params = raw.model_params
        value = raw.llama_model_default_params()
        p = bindings.struct_value(value)
        p.n_gpu_layers = gpu_layers
        p.use_extra_bufts = self.repack
        show = sys.stderr.isatty() if progress is None else progress
        bar = _ProgressBar(self.path.name) if show else None
        if bar is not None:
            p.progress_callback = bindings._callback_pointer(bar.callback)
        del params
        try:
            ptr = raw.llama_model_load_from_file(str(self.path), value)
        finally:
            if bar is not None:
                bar.close()
        if not ptr:
            raise BadModelError(
                f"libllama could not load {self.path}: the file is truncated, corrupt, or of an "
                "architecture this libllama does not support (GENE_LLAMA_LOG=1 shows why)"
            )
        return int(ptr)

    # -- contexts ------------------------------------------------------------------

    @property
    def ctx(self) -> Context:
        """The main context (sequence 0 carries prompts and generations)."""
        with self._lock:
            if self._ctx is None:
                self._ctx = self._pooled_context()
                self._pool.insert(0, self._ctx)
            return self._ctx

    def _pooled_context(self) -> Context:
        """A new context for the pool (an engine model makes its own kind)."""
        return Context(self, self.n_ctx, canonical=True, pooled=True)

    def claim_context(self, owner: Any, tokens: list[int], preferred: Context) -> Context:
        """A context like the main one for `owner` to generate in: `preferred` unless an
        unfinished generation still needs it, else a free one (the one caching most of
        `tokens`), a new one while there are fewer than POOL_SIZE, or the one claimed
        longest ago (whose generation will rebuild its cache when it resumes)."""
        with self._lock:
            self._claims += 1
            ctx = preferred
            if preferred.busy_for(owner):
                free = [c for c in self._pool if not c.busy_for(owner)]
                if free:
                    ctx = max(free, key=lambda c: _common_prefix(c.tokens[0], tokens))
                elif len(self._pool) < POOL_SIZE:
                    ctx = self._pooled_context()
                    self._pool.append(ctx)
                else:
                    ctx = min(self._pool, key=lambda c: c.last_used)
            if getattr(ctx, "pending_adapters", None) is not None and not ctx.busy_for(owner):
                from gene_jit.llama.adapters import settle

                settle(ctx)
            ctx.last_used = self._claims
            ctx.owner = owner
            return ctx

    @property
    def embed_ctx(self) -> Context:
        with self._lock:
            if self._embed_ctx is None:
                self._embed_ctx = Context(self, min(self.n_ctx, 2048), embeddings=True)
            return self._embed_ctx

    def new_context(self, n_ctx: int | None = None, n_seq: int = 1) -> Context:
        return Context(self, n_ctx or self.n_ctx, n_seq)

    # -- vocabulary ----------------------------------------------------------------

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        raw = bindings.lib()
        data = str(text).encode("utf-8")
        cap = len(data) + 8
        buf = (ctypes.c_int32 * cap)()
        n = raw.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (ctypes.c_int32 * cap)()
            n = raw.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            raise LlamaError("the text could not be tokenized")
        return list(buf[:n])

    def prompt_tokens(self, text: str) -> list[int]:
        """Tokens of a prompt to generate from: special tokens written in the text are
        parsed, and BOS is added unless the text starts with it already (a rendered chat
        template writes its own, and a second BOS degrades the model's output)."""
        tokens = self.tokenize(text, add_special=True, parse_special=True)
        if self.add_bos and len(tokens) > 1 and tokens[0] == tokens[1] == self.bos:
            del tokens[0]
        return tokens

    def detokenize(self, tokens: list[int], remove_special: bool = False, unparse_special: bool = False) -> str:
        raw = bindings.lib()
        toks = self.check_tokens(tokens)
        arr = (ctypes.c_int32 * max(len(toks), 1))(*toks)
        cap = 16 * len(toks) + 16
        buf = ctypes.create_string_buffer(cap)
        n = raw.llama_detokenize(self.vocab, arr, len(toks), buf, cap, remove_special, unparse_special)
        if n < 0:
            cap = -n
            buf = ctypes.create_string_buffer(cap)
            n = raw.llama_detokenize(self.vocab, arr, len(toks), buf, cap, remove_special, unparse_special)
        return buf.raw[:n].decode("utf-8", errors="replace")

    def piece(self, token: int, special: bool = False) -> bytes:
        """The bytes of one token (possibly part of a UTF-8 character)."""
        if not special:
            data = self._pieces.get(token)
            if data is None:
                data = self._pieces[token] = self._piece(token, False)
            return data
        return self._piece(token, special)

    def _piece(self, token: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(64)  # per call: threads may decode at once
        n = bindings.lib().llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = bindings.lib().llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    def is_eog(self, token: int) -> bool:
        eog = self._eog.get(token)
        if eog is None:
            eog = self._eog[token] = bool(bindings.lib().llama_vocab_is_eog(self.vocab, token))
        return eog

    def is_control(self, token: int) -> bool:
        """End-of-generation or any other control token (turn markers, BOS, padding)."""
        return self.is_eog(token) or bool(bindings.lib().llama_vocab_is_control(self.vocab, token))

    def token_text(self, token: int) -> str:
        ptr = bindings.lib().llama_vocab_get_text(self.vocab, int(token))
        return ctypes.string_at(ptr).decode("utf-8", "replace") if ptr else ""

    def check_tokens(self, tokens: Any) -> list[int]:
        """Token ids from a Gene array, tensor or numpy array, each within the vocabulary."""
        if hasattr(tokens, "numpy"):
            tokens = tokens.numpy()
        if hasattr(tokens, "tolist"):
            tokens = tokens.tolist()
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            tokens = [tokens]
        if not isinstance(tokens, list | tuple):
            raise LlamaError(f"expected an array of token ids, got {shown(tokens)}")
        out: list[int] = []
        for t in tokens:
            if isinstance(t, float) and t.is_integer():  # a token tensor of a float dtype
                t = int(t)
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < self.n_vocab:
                raise LlamaError(f"{shown(t)} is not a token id of this model (0..{self.n_vocab - 1})")
            out.append(int(t))
        return out

    # -- metadata ------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        raw = bindings.lib()
        buf = ctypes.create_string_buffer(256)
        n = raw.llama_model_meta_val_str(self.handle.ptr, key.encode(), buf, 256)
        if n < 0:
            return None
        if n >= 256:
            buf = ctypes.create_string_buffer(n + 1)
            raw.llama_model_meta_val_str(self.handle.ptr, key.encode(), buf, n + 1)
        return buf.value.decode("utf-8", "replace")

    def chat_template(self) -> str | None:
        ptr = bindings.lib().llama_model_chat_template(self.handle.ptr, None)
        return ctypes.string_at(ptr).decode("utf-8", "replace") if ptr else None

    def info(self) -> dict[str, Any]:
        raw = bindings.lib()
        buf = ctypes.create_string_buffer(256)
        raw.llama_model_desc(self.handle.ptr, buf, 256)
        return {
            "path": str(self.path),
            "name": self.meta("general.name") or self.path.stem,
            "architecture": self.meta("general.architecture"),
            "description": buf.value.decode("utf-8", "replace"),
            "parameters": int(raw.llama_model_n_params(self.handle.ptr)),
            "quantization": _quantisation(buf.value.decode("utf-8", "replace")),
            "size-bytes": int(raw.llama_model_size(self.handle.ptr)),
            "context": self.n_ctx,
            "context-train": self.n_ctx_train,
            "embedding-length": self.n_embd,
            "layers": int(raw.llama_model_n_layer(self.handle.ptr)),
            "vocab-size": self.n_vocab,
            "threads": self.threads,
            "device": self.device,
        }

    @property
    def last_stream(self) -> Any:
        """The sequence get-next-token continues in this thread (threads that share the
        model each have their own: one thread's prompt took over another's stream)."""
        return getattr(self._streams, "stepper", None)

    @last_stream.setter
    def last_stream(self, stepper: Any) -> None:
        self._streams.stepper = stepper

    def close(self) -> None:
        for ctx in (*self._pool, self._embed_ctx, self._batch_ctx):
            if ctx is not None:
                ctx.close()
        self._ctx = self._embed_ctx = self._batch_ctx = None
        self._pool = []
        self.handle.close()

    def __repr__(self) -> str:
        return f"<model {self.path.name} ({self.n_vocab} tokens, n-ctx {self.n_ctx})>"


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _quantisation(desc: str) -> str:
    # llama_model_desc reads "<arch> <size> <file type>", e.g. "gemma3 270M Q4_K - Medium"
    parts = desc.split(" ", 2)
    return parts[2] if len(parts) == 3 else "unknown"


def _device_name(device: Any) -> str:
    """`:device` as (device/create ...) reads it (an unknown name is refused the same way),
    or a torch device's type."""
    from gene_jit.runtime.errors import GeneError
    from gene_jit.tensor.device import parse_device

    typed = getattr(device, "type", None)
    try:
        dev = parse_device(typed if isinstance(typed, str) else device)
    except GeneError as exc:
        raise OptionError(f"model/create: {exc.message}") from None
    return "cpu" if not dev.is_cuda else "cuda" if dev.index == 0 else f"cuda:{dev.index}"


def _gpu_layers(device: str, gpu_layers: int | None) -> int:
    wants_gpu = device.startswith("cuda") or device.startswith("gpu") or bool(gpu_layers)
    if not wants_gpu:
        return 0
    if not bindings.lib().llama_supports_gpu_offload():
        print(
            f"warning: this libllama was built without GPU support; device {device} runs on the CPU",
            file=sys.stderr,
        )
        return 0
    return -1 if gpu_layers is None else int(gpu_layers)


class _ProgressBar:
    """libllama's load progress shown with rich (only on a terminal)."""

    def __init__(self, name: str) -> None:
        from rich.progress import Progress

        self.progress = Progress(transient=True)
        self.task = self.progress.add_task(f"loading {name}", total=1.0)
        self.progress.start()

        def report(fraction: float, user_data: Any) -> bool:
            self.progress.update(self.task, completed=float(fraction))
            return True

        self.callback = bindings._ffi().callback(report, returns="bool", params=["float", "pointer"])

    def close(self) -> None:
        self.progress.stop()
