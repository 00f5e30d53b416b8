"""GGUF weights and model configuration for the native engine.

The file's header, metadata and tensor table are those the model-file checks read
(gene_jit/llama/gguf_check.py: one walk of the header that skips the vocabulary's
strings, which `gguf.GGUFReader` would turn into 262k NumPy views, seconds of start-up);
the file is memory-mapped, and a `Weight` is a view of the tensor's bytes in it
(`raw [rows, row_bytes]` uint8), and stays in its GGUF
type (quantised blocks or plain floats) until a product decodes it in registers
(gene_jit/tensor_kernels/qgemv_cpu.py). Nothing is copied when weights are placed on the
CPU; small vectors (norm weights) are read as float32 tensors.

`Config` is read from the GGUF metadata, the way llama.cpp reads it for the two
architectures the engine runs (`gemma3`, `llama`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gene_jit.llama.errors import BadModelError
from gene_jit.tensor.device import Device
from gene_jit.tensor.tensor import Tensor
from gene_jit.tensor_kernels.qgemv_cpu import BLOCKS, KINDS, Q4_K

ARCHITECTURES = ("gemma3", "llama")
READS = "F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q6_K"


@dataclass(frozen=True)
class Config:
    """What the forward pass needs to know about a model (names as in Gene's config map)."""

    arch: str
    n_layer: int
    n_embd: int  # E: width of the residual stream
    n_head: int  # H: query heads
    n_head_kv: int  # Hkv: key/value heads (grouped-query attention when < H)
    head_dim: int  # D: width of a query/key head
    n_ff: int  # F: feed-forward width
    n_vocab: int  # V
    n_ctx_train: int
    eps: float  # RMSNorm epsilon
    rope_base: float  # RoPE base of global layers
    rope_base_local: float  # RoPE base of sliding-window layers
    rope_scale: float  # frequency scale (1 / linear scaling factor)
    rope_dims: int  # leading dimensions of a head that rotate
    rope_mode: str  # "neox" (pairs i, i + n/2) or "adjacent" (pairs 2i, 2i + 1)
    window: int  # sliding window of local layers (0: none)
    swa_pattern: int  # every swa_pattern-th layer is global (0: all global)
    attn_scale: float  # multiplies q k^T
    embed_scale: float  # multiplies the token embeddings

    def as_map(self) -> dict[str, Any]:
        return {k.replace("_", "-"): v for k, v in self.__dict__.items()}


class Weight:
    """A weight matrix `[rows, cols]` (one output feature per row) in its GGUF type, as
    a view of the model file's bytes: `raw [rows, row_bytes]` uint8."""

    __slots__ = ("name", "kind", "type_name", "rows", "cols", "raw", "device", "_aux")

    def __init__(self, name: str, type_name: str, rows: int, cols: int, raw: np.ndarray,
                 device: Device) -> None:
        self.name, self.type_name, self.rows, self.cols = name, type_name, rows, cols
        self.kind = KINDS[type_name.lower()]
        self.raw = raw
        self.device = device
        self._aux: np.ndarray | None = None

    @property
    def aux(self) -> np.ndarray:
        """What the CPU's integer products read beside the blocks: Q4_K's six-bit scales
        and mins unpacked (gene_jit/tensor_kernels/qdot_cpu.py), unpacked on first use;
        an empty row per weight row for the other types."""
        if self._aux is None:
            from gene_jit.tensor_kernels import qdot_cpu

            self._aux = (qdot_cpu.q4_k_aux(self.raw) if self.kind == Q4_K
                         else np.zeros((self.rows, 0), np.uint8))
        return self._aux

    @property
    def nbytes(self) -> int:
        return int(self.raw.nbytes)

    def __gene_repr__(self) -> str:
        return f"#<weight {self.name} {self.type_name} [{self.rows} {self.cols}] {self.device}>"

    __repr__ = __gene_repr__


class FileTensor:
    """A tensor of the file: `shape` with ne[0] first (as ggml orders dimensions),
    `data` its bytes (uint8, a view of the memory map)."""

    __slots__ = ("name", "tensor_type", "shape", "n_elements", "data")

    def __init__(self, name: str, tensor_type: Any, shape: tuple[int, ...], data: np.ndarray) -> None:
        self.name, self.tensor_type, self.shape, self.data = name, tensor_type, shape, data
        self.n_elements = math.prod(shape)


class GGUFFile:
    """A GGUF file opened for the engine: metadata values and tensors by name. The
    metadata holds every scalar and every array of up to gguf_check's _KEEP_ARRAY values
    (the vocabulary's arrays are skipped: libllama reads the vocabulary)."""

    def __init__(self, path: Path) -> None:
        from gguf.constants import GGMLQuantizationType

        from gene_jit.llama.gguf_check import read_tables

        info = read_tables(path)  # the header's and tensors' bounds checks
        try:
            self.map = np.memmap(path, np.uint8, mode="r")
        except (ValueError, OSError) as exc:
            raise BadModelError(f"cannot map the model file {path}: {exc}") from None
        self.path = path
        self.kv = info.kv
        base = info.data_offset
        self.tensors = {
            t.name: FileTensor(t.name, GGMLQuantizationType(t.type), t.shape,
                               self.map[base + t.offset : base + t.offset + t.nbytes])
            for t in info.tensors.values()}
        self.arch = str(self.get("general.architecture", ""))

    def get(self, key: str, default: Any = None) -> Any:
        value = self.kv.get(key)
        if value is None:
            return default
        if isinstance(value, list) and value and all(v == value[0] for v in value):
            return value[0]  # per-layer arrays that hold one value
        return value

    def need(self, key: str) -> Any:
        value = self.get(key)
        if value is None or isinstance(value, list):
            raise BadModelError(f"{self.path.name}: the metadata has no single value for {key}")
        return value


def read_config(f: GGUFFile) -> Config:
    arch = f.arch
    if arch not in ARCHITECTURES:
        raise BadModelError(
            f"{f.path.name} is a '{arch}' model; the gene engine runs {', '.join(ARCHITECTURES)} "
            "(create the model without :engine to run it on libllama)")
    a = arch + "."
    n_embd = int(f.need(a + "embedding_length"))
    n_head = int(f.need(a + "attention.head_count"))
    head_dim = int(f.get(a + "attention.key_length", n_embd // n_head))
    scaling = str(f.get(a + "rope.scaling.type", "none"))
    if scaling not in ("none", "linear"):
        raise BadModelError(f"{f.path.name}: RoPE scaling '{scaling}' is not supported by the "
                            "gene engine (none and linear are)")
    factor = float(f.get(a + "rope.scaling.factor", 1.0) or 1.0)
    gemma = arch == "gemma3"
    if int(f.get(a + "attention.value_length", head_dim)) != head_dim:
        raise BadModelError(f"{f.path.name}: keys and values of different widths are not "
                            "supported by the gene engine")
    n_layer = int(f.need(a + "block_count"))
    # llama.cpp scales Gemma 3 27B's queries by the model width per head, others by D
    attn_width = n_embd // n_head if gemma and n_layer == 62 else head_dim
    window = int(f.get(a + "attention.sliding_window", 0) or 0) if gemma else 0
    embd = _tensor(f, "token_embd.weight")
    return Config(
        arch=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=int(f.get(a + "attention.head_count_kv", n_head)),
        head_dim=head_dim,
        n_ff=int(f.need(a + "feed_forward_length")),
        n_vocab=int(embd.shape[1]),
        n_ctx_train=int(f.get(a + "context_length", 0)),
        eps=float(f.get(a + "attention.layer_norm_rms_epsilon", 1e-6)),
        rope_base=float(f.get(a + "rope.freq_base", 10000.0)),
        # llama.cpp gives Gemma 3's sliding-window layers a base of 10,000, unscaled
        rope_base_local=10000.0 if gemma else float(f.get(a + "rope.freq_base", 10000.0)),
        rope_scale=1.0 / factor,
        rope_dims=int(f.get(a + "rope.dimension_count", head_dim)),
        rope_mode="neox" if gemma else "adjacent",
        window=window,
        swa_pattern=6 if gemma and window else 0,
        attn_scale=1.0 / math.sqrt(attn_width),
        embed_scale=math.sqrt(n_embd) if gemma else 1.0,
    )


def _tensor(f: GGUFFile, name: str) -> Any:
    t = f.tensors.get(name)
    if t is None:
        raise BadModelError(f"{f.path.name} has no tensor {name}, which a {f.arch} model needs")
    return t


def _matrix(f: GGUFFile, name: str, device: Device) -> Weight:
    t = _tensor(f, name)
    type_name = t.tensor_type.name
    if type_name.lower() not in KINDS:
        raise BadModelError(f"{f.path.name}: tensor {name} is {type_name}; the gene engine reads "
                            f"{READS} (create the model without :engine to run it on libllama)")
    cols = int(t.shape[0])
    rows = int(t.n_elements) // cols
    block_bytes, block_values = BLOCKS[KINDS[type_name.lower()]]
    if cols % block_values:
        raise BadModelError(f"{f.path.name}: tensor {name} has rows of {cols} values, not whole "
                            f"{type_name} blocks")
    raw = np.asarray(t.data).view(np.uint8).reshape(rows, cols // block_values * block_bytes)
    return Weight(name, type_name, rows, cols, raw, device)


def _vector(f: GGUFFile, name: str) -> Tensor:
    t = _tensor(f, name)
    data = np.asarray(t.data)
    if t.tensor_type.name != "F32":
        w = _matrix(f, name, Device("cpu"))
        from gene_jit.tensor_kernels.qgemv_cpu import dequant_rows

        out = np.empty((w.rows, w.cols), np.float32)
        dequant_rows(w.raw, w.kind, np.arange(w.rows, dtype=np.int64), out)
        data = out
    return Tensor.from_numpy(data.reshape(-1).view(np.float32))


# GGUF tensor name in a block -> key of the layer map the Gene forward pass reads
LAYER_MATRICES = {"attn_q": "wq", "attn_k": "wk", "attn_v": "wv", "attn_output": "wo",
                  "ffn_gate": "w-gate", "ffn_up": "w-up", "ffn_down": "w-down"}
LAYER_VECTORS = {"attn_norm": "attn-norm", "attn_q_norm": "q-norm", "attn_k_norm": "k-norm",
                 "post_attention_norm": "post-attn-norm", "ffn_norm": "ffn-norm",
                 "post_ffw_norm": "post-ffn-norm"}


def load_weights(f: GGUFFile, cfg: Config, device: Device) -> dict[str, Any]:
    """The model map the Gene forward pass reads: embeddings, output and one map per layer."""
    if device.is_cuda:
        from gene_jit.tensor_kernels.cuda_support import DeviceError

        raise DeviceError("the gene engine runs on :cpu so far; its CUDA path is not built yet")
    names = set(f.tensors)
    biases = sorted(n for n in names if n.endswith(".bias"))
    if biases:
        raise BadModelError(f"{f.path.name}: the gene engine has no bias terms ({biases[0]})")
    layers = []
    for i in range(cfg.n_layer):
        layer: dict[str, Any] = {}
        for gguf_name, key in LAYER_MATRICES.items():
            layer[key] = _matrix(f, f"blk.{i}.{gguf_name}.weight", device)
        for gguf_name, key in LAYER_VECTORS.items():
            name = f"blk.{i}.{gguf_name}.weight"
            layer[key] = _vector(f, name) if name in names else None
        layers.append(layer)
    embed = _matrix(f, "token_embd.weight", device)
    output = _matrix(f, "output.weight", device) if "output.weight" in names else embed
    rope_freqs = _vector(f, "rope_freqs.weight") if "rope_freqs.weight" in names else None
    return {
        "config": cfg.as_map(),
        "embed": embed,  # [V E]
        "output-norm": _vector(f, "output_norm.weight"),  # [E]
        "output": output,  # [V E] (the embeddings when tied)
        "rope-factors": rope_freqs,  # [D / 2] or nil
        "layers": layers,
    }
