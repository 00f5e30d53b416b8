"""The native engine behind the LLM library: `(model/create ... :engine :gene)`.

- `Engine`: a GGUF model's weights (weights.py) and its forward pass, the Gene code of
  `<architecture>.gene` beside this module, run over the ops of ops.py on a device.
- `EngineContext`: what the generation code uses as a context (gene_jit/llama/context.py's
  `Context`, whose bookkeeping it inherits: the fixed decode schedule, prefix reuse,
  trimming), with its one decode call, `_submit`, running the engine on the batch instead
  of libllama. Each sequence has a KV cache of its own; logits rows stay readable by
  batch index (`logits_row`, `logits_ptr`) until the next decode. Its `ptr` is the context
  itself, so samplers read the logits from the array (gene_jit/llama/sampler.py).
- `EngineModel`: a `Model` whose libllama part supplies the vocabulary (tokenizer,
  special tokens, chat template) and the model's description (`model/info`, the trained
  context that bounds :n-ctx); libllama maps the file without repacking it, so its
  pages are the ones the engine's weights view. Every context it makes is an
  `EngineContext`.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from gene_jit.engine import threads
from gene_jit.engine.ops import KVCache, new_cache
from gene_jit.engine.weights import Config, GGUFFile, load_weights, read_config
from gene_jit.llama.context import PROMPT_CHUNK, Context
from gene_jit.llama.errors import LlamaError
from gene_jit.llama.model import Model
from gene_jit.llama.options import OptionError
from gene_jit.tensor.device import CPU, Device, create_device

__all__ = ["Engine", "EngineContext", "EngineModel"]

N_BATCH = 512  # tokens one forward call takes at most (as the libllama contexts)


class Engine:
    """A model's weights on a device and its forward pass in Gene."""

    def __init__(self, path: Path, device: Device) -> None:
        f = GGUFFile(path)
        self.config: Config = read_config(f)
        self.device = device
        if device.is_cuda:
            from gene_jit.engine.cuda_ops import place_model

            self.model = place_model(load_weights(f, self.config, CPU), device)
        else:
            self.model = load_weights(f, self.config, device)
        self.file = f  # keeps the memory map the weights view
        self._forward = _gene_forward(self.config.arch)
        self.lock = threading.Lock()

    def new_cache(self, n_ctx: int, slots: int = 1) -> KVCache:
        """A cache for n_ctx positions (on the GPU: of `slots` sequences)."""
        c = self.config
        return new_cache(c.n_layer, c.n_head_kv, c.head_dim, n_ctx, self.device, slots,
                         "create the model with a smaller :n-ctx")

    def check_logits(self, logits: np.ndarray, position: int) -> None:
        """Refuse logits that hold a NaN (or +inf beside -inf): weights that produce them
        would otherwise sample garbage, or nothing, as if nothing were wrong."""
        if math.isnan(float(logits.sum(dtype=np.float64))):
            raise LlamaError(
                f"the model produced NaN logits at step {position + 1} (position {position}); "
                f"the weights of {self.file.path} may be corrupt")

    def run_forward(self, cache: KVCache, tokens: Any, pos: Any, n_out: int) -> Any:
        """The Gene forward pass: a logits tensor [n_out, V] on the engine's device, or
        None when n_out is 0 (`pos` is the first position, or cuda_ops.Rows on the GPU)."""
        from gene_jit.api import gene_boundary

        with gene_boundary():
            return self._forward(self.model, cache, tokens, pos, n_out)

    def forward(self, cache: KVCache, tokens: list[int], pos: Any, n_out: int) -> np.ndarray | None:
        """Logits [n_out, V] of the last n_out tokens (at positions pos ..); the tokens'
        keys and values join `cache`."""
        out = self.run_forward(cache, tokens, pos, n_out)
        return None if out is None else out.numpy()


_FORWARDS: dict[str, Any] = {}


def _gene_forward(arch: str) -> Any:
    """The `forward` function of the architecture's .gene file (loaded once)."""
    fn = _FORWARDS.get(arch)
    if fn is None:
        from gene_jit.api import run_program

        exported = run_program(str(Path(__file__).with_name(f"{arch}.gene")))
        fn = _FORWARDS[arch] = exported["forward"]
    return fn


class _Batch:
    """The rows of one decode call: (token, position, sequence, wants logits)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rows: list[tuple[int, int, int, bool]] = []

    @property
    def n_tokens(self) -> int:
        return len(self.rows)

    @n_tokens.setter
    def n_tokens(self, n: int) -> None:
        del self.rows[n:]

    def add(self, token: int, pos: int, seq: int, out: bool) -> int:
        self.rows.append((token, pos, seq, out))
        return len(self.rows) - 1

    def close(self) -> None:
        self.rows = []


class EngineContext(Context):
    """A context whose decodes run on the engine (see the module docstring)."""

    def __init__(self, model: EngineModel, n_ctx: int, n_seq: int = 1, canonical: bool = False,
                 pooled: bool = False) -> None:
        # Context.__init__ would create a libllama context: set what its methods use
        self.engine = model.engine
        self.ptr: Any = self
        self.memory = None
        self.n_seq = n_seq
        self.n_ctx_seq = max(1, n_ctx // n_seq)
        self.n_ctx = self.n_ctx_seq * n_seq
        self.n_batch = min(self.n_ctx, N_BATCH)
        self.chunk = min(PROMPT_CHUNK, self.n_batch)
        self.n_vocab = model.n_vocab
        self.canonical = canonical
        self.pooled = pooled
        self.last_used = 0
        self.lock = threading.RLock()
        self.decode_lock: Any = model.decode_lock
        self.threads = model.threads
        self.tokens: dict[int, list[int]] = {s: [] for s in range(n_seq)}
        self.ends: dict[int, list[int]] = {s: [] for s in range(n_seq)}
        self.last_decoded = 0
        self._owner: Any = None
        self.batch: Any = _Batch(max(self.n_batch, n_seq))
        self.gpu = self.engine.device.is_cuda
        if self.gpu:  # one cache, a slot per sequence, so that a batch decodes in one call
            self.gpu_cache: Any = self.engine.new_cache(self.n_ctx_seq, n_seq)
            self.caches = {}
            self.graphs: dict[int, Any] = {}
        else:
            self.caches = {s: self.engine.new_cache(self.n_ctx_seq) for s in range(n_seq)}
        self._rows: dict[int, np.ndarray] = {}

    @staticmethod
    def _seq_rm(memory: Any, seq: int, p0: int, p1: int) -> bool:
        # cells past what `tokens` records are never read (attention stops at the query's
        # own position) and are overwritten by the next decode: nothing to remove
        return True

    def clear(self) -> None:
        for s in self.tokens:
            self.tokens[s] = []
            self.ends[s] = []

    def shift(self, seq: int, n_keep: int) -> bool:
        return False  # cached keys carry their positions' rotation

    def _submit(self, starts: tuple[tuple[int, int], ...]) -> None:
        """Run the engine on the batch: each sequence's rows (consecutive positions after
        what it holds) in one forward call, logits for the rows that asked."""
        rows = list(self.batch.rows)
        self.batch.n_tokens = 0
        if self.gpu:
            with self.decode_lock:
                self._rows = _submit_gpu(self, rows)
            return
        by_seq: dict[int, list[int]] = {}
        for i, (_, _, seq, _) in enumerate(rows):
            by_seq.setdefault(seq, []).append(i)
        logits: dict[int, np.ndarray] = {}
        with self.decode_lock:
            _set_threads(self.threads)
            for seq, index in by_seq.items():
                pos = rows[index[0]][1]
                if [rows[i][1] for i in index] != list(range(pos, pos + len(index))):
                    raise LlamaError("the engine decodes consecutive positions of a sequence")
                wanted = [i for i in index if rows[i][3]]
                n_out = len(index) - index.index(wanted[0]) if wanted else 0
                out = self.engine.forward(self.caches[seq], [rows[i][0] for i in index], pos, n_out)
                for j, i in enumerate(index[len(index) - n_out:]):
                    if rows[i][3]:
                        assert out is not None
                        self.engine.check_logits(out[j], rows[i][1])
                        logits[i] = out[j]
        self._rows = logits

    def logits_row(self, index: int) -> np.ndarray:
        row = self._rows.get(index)
        if row is None:
            raise LlamaError("no logits are available for that position")
        return row

    def logits_ptr(self, index: int) -> int:
        return int(self.logits_row(index).ctypes.data)

    def close(self) -> None:
        self.caches = {}
        self._rows = {}
        for graph in getattr(self, "graphs", {}).values():
            graph.close()
        self.graphs = {}
        self.gpu_cache = None


GRAPH_BATCHES = 64  # decode steps of up to this many rows replay a captured graph


def _submit_gpu(ctx: EngineContext, rows: list[tuple[int, int, int, bool]]) -> dict[int, np.ndarray]:
    """All rows of the batch in one forward call on the GPU, each row at its position in
    its sequence's cache slot; a decode step (one row per sequence, each wanting logits)
    replays the captured graph of its size instead (cuda_graph.py)."""
    from gene_jit.engine.cuda_ops import Rows
    from gene_jit.tensor_kernels.cuda_support import simulator

    for _tok, pos, seq, _ in rows:
        if not 0 <= seq < ctx.n_seq or pos + 1 > ctx.n_ctx_seq:
            raise LlamaError(f"position {pos} of sequence {seq} is past the context")
    toks = [r[0] for r in rows]
    places = [r[1] for r in rows]
    seqs = [r[2] for r in rows]
    wanted = [i for i, r in enumerate(rows) if r[3]]
    n = len(rows)
    if (len(set(seqs)) == n and len(wanted) == n and n <= GRAPH_BATCHES and not simulator()
            and ctx.engine.config.n_vocab * n <= 1 << 26):
        graph = ctx.graphs.get(n)
        if graph is None:
            from gene_jit.engine.cuda_graph import GraphDecoder

            graph = ctx.graphs[n] = GraphDecoder(ctx.engine, ctx.gpu_cache, n)
        logits = graph.step(toks, places, seqs)
        found = {i: logits[i] for i in range(n)}
    else:
        n_out = n - wanted[0] if wanted else 0
        out = ctx.engine.forward(ctx.gpu_cache, toks, Rows.from_host(places, seqs), n_out)
        found = ({i: out[j] for j, i in enumerate(range(n - n_out, n)) if rows[i][3]}
                 if out is not None else {})
    for i, row in found.items():
        ctx.engine.check_logits(row, rows[i][1])
    return found


def _set_threads(n: int) -> None:
    """Kernels run on the calling thread; products split over `n` (threads.py says why)."""
    import numba

    numba.set_num_threads(1)
    threads.set_threads(n)


class EngineModel(Model):
    """A model run by the engine (libllama: vocabulary and description only)."""

    # read by model/load-adapter (gene_jit/llama/adapters.py)
    adapter_refusal = ("model/load-adapter: the gene engine does not apply LoRA adapters yet; "
                       "create the model without :engine to use an adapter")

    def __init__(self, name_or_path: Any = None, fmt: Any = "gguf", n_ctx: int = 4096,
                 threads: int | None = None, device: Any = None, gpu_layers: int | None = None,
                 seed: int | None = None, progress: bool | None = None) -> None:
        if gpu_layers is not None:
            raise OptionError("model/create: :gpu-layers is for libllama; with :engine :gene "
                              "every layer runs on the :device")
        dev = create_device(device)  # an unusable device is an error here, not a fall back
        # libllama's model (mapped, not repacked) describes the file as for :engine :llama
        super().__init__(name_or_path, fmt, n_ctx, threads, None, None, seed, progress, repack=False)
        try:
            self.engine = Engine(self.path, dev)
        except BaseException:
            self.close()
            raise
        self.device = str(dev)

    def _pooled_context(self) -> Context:
        return EngineContext(self, self.n_ctx, canonical=True, pooled=True)

    @property
    def embed_ctx(self) -> Context:
        raise LlamaError("embeddings are not computed by the gene engine yet; create the model "
                         "without :engine for model/embed and model/get-hidden-states")

    def new_context(self, n_ctx: int | None = None, n_seq: int = 1) -> Context:
        return EngineContext(self, n_ctx or self.n_ctx, n_seq)

    def info(self) -> dict[str, Any]:
        out = super().info()
        c = self.engine.config
        out.update({"engine": "gene", "layers": c.n_layer, "embedding-length": c.n_embd,
                    "device": self.device})
        return out

    def __repr__(self) -> str:
        return (f"<model {self.path.name} ({self.n_vocab} tokens, n-ctx {self.n_ctx}, "
                f"gene engine on {self.device})>")
