"""Fine-tuning Gemma 3 models with PyTorch: LoRA adapters on a frozen base, on the CPU.

libllama has no backward pass for Gemma 3's GEGLU feed-forward, so these models are
trained outside it. The GGUF's weights are read with the `gguf` package and dequantised
to float32 by the engine's own decoder (gene_jit/engine/weights.py); the forward pass
below is gene_jit/engine/gemma3.gene's math in torch: embeddings scaled by sqrt(width),
RMSNorm by the stored weight (llama.cpp's converter already added Gemma's 1 to it), QK
norm, post-attention and post-feed-forward norms, GeGLU with tanh GELU, five
sliding-window layers with their own RoPE base per global layer, tied output.

Only the adapters learn: for each attention and feed-forward projection W [out, in] a
pair A [r, in], B [out, r] adds (alpha / r) B A x to W x. B starts at zero, so training
starts from the base model exactly. What is saved:

- a LoRA adapter GGUF (`:adapter`), which `model/load-adapter` loads onto the base model;
- a merged model (`:out`): W + (alpha / r) B A written into an F32 copy of the model
  made by libllama's quantiser (so every metadata field and tensor of the original is
  kept), then quantised to F16 or the `:type` asked; `model/create` loads it.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gene_jit.engine.weights import Config, GGUFFile, _matrix, read_config
from gene_jit.llama.finetune import MIN_LR_SHARE, StopRequest, TuneResult
from gene_jit.llama.progress import Bar
from gene_jit.runtime.requirements import import_library
from gene_jit.tensor.device import Device
from gene_jit.tensor_kernels.qgemv_cpu import dequant_rows

if TYPE_CHECKING:
    from gene_jit.llama.model import Model

# GGUF names of the projections that get adapters (numpy shape [out, in] each)
TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
RANK = 16
ALPHA = 32.0
SHARED_FROM = 64  # tokens in a window from which the step's products use several threads


def torch_module() -> Any:
    return import_library("torch", "model/fine-tune of a gemma3 model")


def dense(f: GGUFFile, name: str) -> np.ndarray:
    """A GGUF tensor as float32 [rows, cols] (numpy order), whatever its type."""
    w = _matrix(f, name, Device("cpu"))
    out = np.empty((w.rows, w.cols), np.float32)
    dequant_rows(w.raw, w.kind, np.arange(w.rows, dtype=np.int64), out)
    return out


class Gemma3:
    """A Gemma 3 model's float32 weights in torch, frozen, with LoRA pairs beside the
    projections of its first `n_layer` blocks (all when None; fewer make a slice)."""

    def __init__(self, path: Path, n_layer: int | None = None, rank: int = RANK, alpha: float = ALPHA,
                 seed: int = 0) -> None:
        torch = torch_module()
        f = GGUFFile(path)
        self.cfg: Config = read_config(f)
        self.n_layer = self.cfg.n_layer if n_layer is None else min(n_layer, self.cfg.n_layer)
        self.rank, self.alpha, self.scale = rank, alpha, alpha / rank

        def t(name: str) -> Any:
            return torch.from_numpy(dense(f, name))

        self.embed = t("token_embd.weight")  # [V E], also the output
        self.output = t("output.weight") if "output.weight" in f.tensors else self.embed
        self.output_norm = t("output_norm.weight")[0]
        gen = torch.Generator().manual_seed(seed)
        self.layers: list[dict[str, Any]] = []
        self.lora: dict[str, tuple[Any, Any]] = {}  # GGUF weight name -> (A, B)
        for i in range(self.n_layer):
            layer = {}
            for name in ("attn_norm", "attn_q_norm", "attn_k_norm", "post_attention_norm", "ffn_norm",
                         "post_ffw_norm"):
                layer[name] = t(f"blk.{i}.{name}.weight")[0]
            for name in TARGETS:
                full = f"blk.{i}.{name}.weight"
                w = layer[name] = t(full)
                a = (torch.rand(rank, w.shape[1], generator=gen) * 2 - 1) / math.sqrt(w.shape[1])
                self.lora[full] = (a.requires_grad_(), torch.zeros(w.shape[0], rank, requires_grad=True))
            self.layers.append(layer)

    def parameters(self) -> list[Any]:
        return [p for pair in self.lora.values() for p in pair]

    def forward(self, tokens: list[int]) -> Any:
        """Logits [T V] of every position of `tokens` (one sequence from position 0)."""
        torch = torch_module()
        c = self.cfg
        ids = torch.tensor(tokens, dtype=torch.long)
        x = self.embed[ids] * c.embed_scale
        pos = torch.arange(len(tokens), dtype=torch.float32)
        for i, layer in enumerate(self.layers):
            x = self._attention(i, layer, x, pos)
            x = self._feed_forward(i, layer, x)
        x = _rmsnorm(x, self.output_norm, c.eps)
        return x @ self.output.T

    def _linear(self, i: int, layer: dict[str, Any], name: str, x: Any) -> Any:
        a, b = self.lora[f"blk.{i}.{name}.weight"]
        return x @ layer[name].T + ((x @ a.T) @ b.T) * self.scale

    def _attention(self, i: int, layer: dict[str, Any], x: Any, pos: Any) -> Any:
        torch = torch_module()
        c = self.cfg
        n = x.shape[0]
        h = _rmsnorm(x, layer["attn_norm"], c.eps)
        q = self._linear(i, layer, "attn_q", h).view(n, c.n_head, c.head_dim)
        k = self._linear(i, layer, "attn_k", h).view(n, c.n_head_kv, c.head_dim)
        v = self._linear(i, layer, "attn_v", h).view(n, c.n_head_kv, c.head_dim)
        q = _rmsnorm(q, layer["attn_q_norm"], c.eps)
        k = _rmsnorm(k, layer["attn_k_norm"], c.eps)
        local = c.swa_pattern > 0 and (i + 1) % c.swa_pattern != 0
        base, scale = (c.rope_base_local, 1.0) if local else (c.rope_base, c.rope_scale)
        q, k = _rope(q, pos * scale, base, c.rope_dims), _rope(k, pos * scale, base, c.rope_dims)
        group = c.n_head // c.n_head_kv
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q * c.attn_scale, k)
        gap = pos[:, None] - pos[None, :]  # query position - key position
        masked = gap < 0
        if local and c.window:
            masked = masked | (gap >= c.window)
        att = torch.softmax(scores.masked_fill(masked, float("-inf")), dim=-1)
        o = torch.einsum("hqk,khd->qhd", att, v).reshape(n, c.n_head * c.head_dim)
        return x + _rmsnorm(self._linear(i, layer, "attn_output", o), layer["post_attention_norm"], c.eps)

    def _feed_forward(self, i: int, layer: dict[str, Any], x: Any) -> Any:
        torch = torch_module()
        h = _rmsnorm(x, layer["ffn_norm"], self.cfg.eps)
        g = torch.nn.functional.gelu(self._linear(i, layer, "ffn_gate", h), approximate="tanh")
        y = self._linear(i, layer, "ffn_down", g * self._linear(i, layer, "ffn_up", h))
        return x + _rmsnorm(y, layer["post_ffw_norm"], self.cfg.eps)

    def deltas(self) -> dict[str, np.ndarray]:
        """(alpha / r) B A of every adapted weight, float32 [out, in]."""
        return {name: ((b @ a) * self.scale).detach().numpy() for name, (a, b) in self.lora.items()}


def _rmsnorm(x: Any, w: Any, eps: float) -> Any:
    torch = torch_module()
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def _rope(x: Any, pos: Any, base: float, dims: int) -> Any:
    """NeoX RoPE over the leading `dims` of each head: pairs (j, j + dims / 2)."""
    torch = torch_module()
    half = dims // 2
    freqs = base ** (-torch.arange(half, dtype=torch.float32) * 2 / dims)
    angle = pos[:, None] * freqs[None, :]
    cos, sin = angle.cos()[:, None, :], angle.sin()[:, None, :]
    x1, x2, rest = x[..., :half], x[..., half:dims], x[..., dims:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)


# ---------------------------------------------------------------------------
# Training and saving


def windows(stream: list[int], size: int) -> list[list[int]]:
    """Windows of `size` inputs over the token stream, each with its next tokens: the
    last one shorter rather than padded."""
    return [stream[s:s + size + 1] for s in range(0, max(1, len(stream) - 1), size)]


def train(net: Gemma3, stream: list[int], window: int, epochs: int, lr: float, show: bool,
          threads: int) -> tuple[list[float], list[float]]:
    """AdamW on the adapters, one step per window; the loss of each step and each epoch."""
    torch = torch_module()
    chunks = [w for w in windows(stream, window) if len(w) > 1]
    # the products of a few dozen tokens are too small to share: more threads only wait
    # for each other (40x slower per step on two busy cores)
    was = torch.get_num_threads()
    torch.set_num_threads(max(1, threads) if max(map(len, chunks)) > SHARED_FROM else 1)
    try:
        return _steps(net, chunks, epochs, lr, show)
    finally:
        torch.set_num_threads(was)


def _steps(net: Gemma3, chunks: list[list[int]], epochs: int, lr: float,
           show: bool) -> tuple[list[float], list[float]]:
    torch = torch_module()
    steps = epochs * len(chunks)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    losses: list[float] = []
    epoch_losses: list[float] = []
    with StopRequest() as stop, Bar("fine-tuning", steps, show) as bar:
        for epoch in range(epochs):
            seen = []
            for chunk in chunks:
                if stop.asked:  # Ctrl-C: after a whole step, and nothing is saved
                    break
                logits = net.forward(chunk[:-1])
                loss = torch.nn.functional.cross_entropy(logits, torch.tensor(chunk[1:], dtype=torch.long))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                seen.append(losses[-1])
                # linear decay: a constant rate keeps undoing what the last steps learnt
                for group in opt.param_groups:
                    group["lr"] = lr * max(MIN_LR_SHARE, 1.0 - len(losses) / steps)
                bar.update(len(losses), f"epoch {epoch + 1} loss {losses[-1]:.4f}")
            if stop.asked:
                break
            epoch_losses.append(sum(seen) / len(seen))
    stop.stop(losses, steps)
    return losses, epoch_losses


def write_adapter(net: Gemma3, path: Path) -> None:
    """The adapters as a LoRA GGUF for libllama: lora_a [r, in] and lora_b [out, r] in
    numpy order, which GGUF stores reversed ({in, r}, {r, out}) as libllama expects."""
    import gguf

    tmp = path.with_name(f".{path.name}.partial")
    try:
        w = gguf.GGUFWriter(str(tmp), net.cfg.arch)
        w.add_string("general.type", "adapter")
        w.add_string("adapter.type", "lora")
        w.add_float32("adapter.lora.alpha", float(net.alpha))
        for name, (a, b) in net.lora.items():
            w.add_tensor(name + ".lora_a", a.detach().numpy().astype(np.float32))
            w.add_tensor(name + ".lora_b", b.detach().numpy().astype(np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_merged(model: Model, net: Gemma3, target: Path, save_as: str) -> None:
    """Base weights plus the adapters' products, saved as `save_as` into `target`."""
    import gguf

    from gene_jit.llama.quantize import quantize, terminated_as_interrupt

    # SIGTERM ends the run as Ctrl-C does, so the folder (a GB of f32 weights) goes too
    with terminated_as_interrupt(), tempfile.TemporaryDirectory(dir=target.parent, prefix=".fine-tune.") as folder:
        f32 = quantize(str(model.path), Path(folder) / "f32.gguf", "F32", model.threads, False).path
        reader = gguf.GGUFReader(str(f32), "r+")
        tensors = {t.name: t for t in reader.tensors}
        for name, delta in net.deltas().items():
            data = tensors[name].data
            data[...] = np.asarray(data, np.float32) + delta.reshape(data.shape)
        reader.data.flush()
        del reader, tensors
        if save_as == "F32":
            os.replace(f32, target)
        else:
            quantize(str(f32), target, save_as, model.threads, False)


def fine_tune_gemma3(model: Model, items: list[str], out: Path | None, adapter: Path | None, epochs: int,
                     lr: float, save_as: str, window: int, show: bool) -> TuneResult:
    started = time.perf_counter()
    stream = [t for text in items for t in (*model.tokenize(text, add_special=True), model.eos)]
    net = Gemma3(model.path)
    losses, epoch_losses = train(net, stream, window, epochs, lr, show, model.threads)
    if adapter is not None:
        write_adapter(net, adapter)
    if out is not None:
        write_merged(model, net, out, save_as)
    result = TuneResult(out, losses, epoch_losses, len(stream), adapter=adapter)
    result.seconds = time.perf_counter() - started
    return result
