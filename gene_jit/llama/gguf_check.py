"""Checks on a GGUF file before libllama reads it.

libllama trusts much of a model file: some bad values make it abort the whole process
(a `GGML_ASSERT`), not return an error. A GGUF downloaded from anywhere is untrusted
input, so the header, the metadata libllama builds its model from (layer, head and
vocabulary counts, embedding length) and every tensor's shape, type and offset are
checked here first, against each other and against the file size. A bad value is a
`BadModelError` that names the key.

The file is memory-mapped and walked once with bounds checks; tensor data is never read.
(`gguf.GGUFReader` builds a NumPy view per vocabulary entry, about ten seconds for the
default model's 262k tokens, so only its constants are used.)
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from gene_jit.llama.errors import BadModelError

MAGIC = b"GGUF"
VERSIONS = (2, 3)
HEADER_SIZE = 24  # magic, version (u32), tensor count (u64), metadata count (u64)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_NAME = 64  # GGML_MAX_NAME: tensor names are at most 63 bytes
MAX_LAYERS = 512  # LLAMA_MAX_LAYERS
MAX_EXPERTS = 512  # LLAMA_MAX_EXPERTS
MAX_HEAD_DIM = 1 << 14
MAX_WIDTH = 1 << 20  # embedding and feed-forward widths beyond any real model
MAX_TOKEN_TYPE = 6  # LLAMA_TOKEN_TYPE_BYTE, the last of llama_token_type

_SCALAR = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h", GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<B", GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}
_INTS = {GGUFValueType.UINT8, GGUFValueType.INT8, GGUFValueType.UINT16, GGUFValueType.INT16,
         GGUFValueType.UINT32, GGUFValueType.INT32, GGUFValueType.UINT64, GGUFValueType.INT64}
_FLOATS = {GGUFValueType.FLOAT32, GGUFValueType.FLOAT64}
# arrays whose elements are kept (the rest are skipped, only their length is kept)
_KEEP_ARRAY = 4096


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]  # ne[0] first, as ggml orders dimensions
    type: int
    offset: int
    nbytes: int


@dataclass
class GGUFInfo:
    """What the checks read: metadata values (arrays longer than `_KEEP_ARRAY` hold only
    their length in `lengths`), the element type of each array, and the tensors."""

    path: Path
    version: int
    kv: dict[str, Any] = field(default_factory=dict)
    types: dict[str, GGUFValueType] = field(default_factory=dict)
    item_types: dict[str, GGUFValueType] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    data_offset: int = 0

    @property
    def arch(self) -> str:
        return str(self.kv.get("general.architecture", ""))

    def context_length(self) -> int | None:
        value = self.kv.get(f"{self.arch}.context_length")
        return value if isinstance(value, int) else None


class _Bad(Exception):
    """A problem found while walking the file; becomes a BadModelError naming the file."""


class _NotAModel(_Bad):
    """A well-formed GGUF that holds something other than a model (an adapter, an
    importance matrix, only a vocabulary); the text says what it is."""


class _Cursor:
    """Bounds-checked little-endian reads from the mapped file."""

    def __init__(self, buf: Any, size: int) -> None:
        self.buf, self.size, self.pos = buf, size, 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _Bad(f"the file is truncated: {what} runs past its end ({self.size} bytes)")

    def scalar(self, fmt: str, what: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self, what: str) -> str:
        n = self.scalar("<Q", what)
        self.need(n, what)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", "replace")

    def skip_strings(self, count: int, what: str) -> None:
        buf, pos, size, unpack = self.buf, self.pos, self.size, struct.unpack_from
        for _ in range(count):
            if pos + 8 > size:
                break
            pos += 8 + unpack("<Q", buf, pos)[0]
            if pos > size:
                break
        else:
            self.pos = pos
            return
        raise _Bad(f"the file is truncated: {what} runs past its end ({size} bytes)")


_cache: dict[tuple[str, int, int], GGUFInfo] = {}


def check_model_file(path: Path) -> GGUFInfo:
    """The metadata of `path` once it has passed every check (cached per file version)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise BadModelError(f"cannot read model file {path}: {exc.strerror}") from exc
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    info = _cache.get(key)
    if info is None:
        try:
            info = _read_and_check(path, st.st_size)
        except _NotAModel as exc:
            raise BadModelError(f"{path} is {exc}") from None
        except _Bad as exc:
            raise BadModelError(f"{path} is not a usable GGUF model: {exc}") from None
        _cache[key] = info
    return info


def read_tables(path: Path) -> GGUFInfo:
    """The header, metadata and tensor table of `path`, walked with the bounds checks but
    none of the model checks (for readers of tensors, such as the gene engine)."""
    try:
        size = path.stat().st_size
        return _read(path, size)
    except OSError as exc:
        raise BadModelError(f"cannot read model file {path}: {exc.strerror}") from exc
    except _Bad as exc:
        raise BadModelError(f"{path} is not a usable GGUF file: {exc}") from None


def _read_and_check(path: Path, size: int) -> GGUFInfo:
    info = _read(path, size)
    _check_kind(info)
    _check_model(info)
    return info


def _read(path: Path, size: int) -> GGUFInfo:
    try:
        with path.open("rb") as f:
            if size < HEADER_SIZE:
                head = f.read(4)
                if len(head) == 4 and head != MAGIC or len(head) < 4 and head != MAGIC[: len(head)]:
                    raise _Bad("it does not start with 'GGUF'")
                raise _Bad(f"the file is truncated: {size} bytes, shorter than the {HEADER_SIZE}-byte header")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                info = _walk(path, buf, size)
    except OSError as exc:
        raise BadModelError(f"cannot read model file {path}: {exc.strerror}") from exc
    return info


def _walk(path: Path, buf: Any, size: int) -> GGUFInfo:
    cur = _Cursor(buf, size)
    if bytes(buf[:4]) != MAGIC:
        raise _Bad("it does not start with 'GGUF'")
    cur.pos = 4
    version = cur.scalar("<I", "the version")
    if version not in VERSIONS:
        raise _Bad(f"GGUF version {version} is not supported (only versions 2 and 3 are)")
    n_tensors = cur.scalar("<Q", "the tensor count")
    n_kv = cur.scalar("<Q", "the metadata count")
    # every metadata entry takes at least 13 bytes and every tensor entry at least 24
    if n_kv * 13 > size or n_tensors * 24 > size:
        raise _Bad(f"the header claims {n_kv} metadata entries and {n_tensors} tensors, "
                   f"more than a file of {size} bytes can hold")
    info = GGUFInfo(path, version)
    for i in range(n_kv):
        _read_kv(cur, info, i)
    align = info.kv.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(align, int) or align <= 0 or align & (align - 1) or align > 1 << 20:
        raise _Bad(f"general.alignment is {align!r}; it must be a power of two")
    for i in range(n_tensors):
        _read_tensor(cur, info, i, align)
    info.data_offset = (cur.pos + align - 1) // align * align
    room = size - info.data_offset
    for t in info.tensors.values():
        if t.offset % align:
            raise _Bad(f"tensor {t.name}: its offset {t.offset} is not a multiple of the alignment {align}")
        if t.offset + t.nbytes > room:
            raise _Bad(f"tensor {t.name}: its data ({t.nbytes} bytes at offset {t.offset}) runs past "
                       f"the end of the file (the data section holds {max(room, 0)} bytes)")
    return info


def _value_type(cur: _Cursor, what: str) -> GGUFValueType:
    code = cur.scalar("<I", what)
    try:
        return GGUFValueType(code)
    except ValueError:
        raise _Bad(f"{what} is {code}, not a GGUF value type") from None


def _read_kv(cur: _Cursor, info: GGUFInfo, i: int) -> None:
    key = cur.string(f"the key of metadata entry {i}")
    if not key or len(key) > 65535:
        raise _Bad(f"metadata entry {i} has an empty or overlong key")
    if key in info.kv or key in info.lengths:
        raise _Bad(f"the key {key} appears twice")
    vtype = _value_type(cur, f"the type of {key}")
    info.types[key] = vtype
    if vtype != GGUFValueType.ARRAY:
        info.kv[key] = _read_scalar(cur, vtype, key)
        return
    itype = _value_type(cur, f"the element type of {key}")
    info.item_types[key] = itype
    count = cur.scalar("<Q", f"the length of {key}")
    if itype == GGUFValueType.ARRAY:
        raise _Bad(f"{key} is an array of arrays, which libllama does not read")
    info.lengths[key] = count
    if itype == GGUFValueType.STRING:
        cur.need(count * 8, f"the array {key}")
        if count <= _KEEP_ARRAY:
            info.kv[key] = [cur.string(f"the array {key}") for _ in range(count)]
        else:
            cur.skip_strings(count, f"the array {key}")
        return
    fmt = _SCALAR[itype]
    width = struct.calcsize(fmt)
    cur.need(count * width, f"the array {key}")
    if count <= _KEEP_ARRAY or key == "tokenizer.ggml.token_type":
        values = list(struct.unpack_from(f"<{count}{fmt[1]}", cur.buf, cur.pos))
        info.kv[key] = [bool(v) for v in values] if itype == GGUFValueType.BOOL else values
    cur.pos += count * width


def _read_scalar(cur: _Cursor, vtype: GGUFValueType, key: str) -> Any:
    if vtype == GGUFValueType.STRING:
        return cur.string(f"the value of {key}")
    value = cur.scalar(_SCALAR[vtype], f"the value of {key}")
    if vtype == GGUFValueType.BOOL:
        if value > 1:
            raise _Bad(f"{key} is a boolean holding {value}")
        return bool(value)
    return value


def _read_tensor(cur: _Cursor, info: GGUFInfo, i: int, align: int) -> None:
    name = cur.string(f"the name of tensor {i}")
    if not name or len(name.encode()) >= MAX_NAME:
        raise _Bad(f"tensor {i} has an empty name or one of {MAX_NAME} bytes or more: {name[:80]!r}")
    if name in info.tensors:
        raise _Bad(f"tensor {name} appears twice")
    n_dims = cur.scalar("<I", f"the rank of tensor {name}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise _Bad(f"tensor {name} has {n_dims} dimensions (1 to {MAX_DIMS} are possible)")
    shape = tuple(cur.scalar("<q", f"the shape of tensor {name}") for _ in range(n_dims))
    if any(d <= 0 for d in shape):
        raise _Bad(f"tensor {name} has the shape {list(shape)}: every dimension must be at least 1")
    code = cur.scalar("<I", f"the type of tensor {name}")
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(code)]
    except (ValueError, KeyError):
        raise _Bad(f"tensor {name} has type {code}, not a ggml tensor type") from None
    if shape[0] % block:
        raise _Bad(f"tensor {name}: its first dimension {shape[0]} is not a multiple of the "
                   f"block size {block} of its type {GGMLQuantizationType(code).name}")
    count = math.prod(shape)
    if count >= 1 << 62:
        raise _Bad(f"tensor {name} has the shape {list(shape)}, too large for any file")
    offset = cur.scalar("<Q", f"the offset of tensor {name}")
    info.tensors[name] = Tensor(name, shape, code, offset, count // block * type_size)


# ------------------------------------------------------------------ the model's metadata


def _bad(key: str, value: Any, why: str) -> _Bad:
    shown = value if not isinstance(value, str) else repr(value[:80])
    return _Bad(f"{key} is {shown}: {why}")


def _int(info: GGUFInfo, key: str, lo: int, hi: int, required: bool = False) -> int | None:
    """The integer at `key` (one value), within lo..hi."""
    if key not in info.types:
        if required:
            raise _Bad(f"the key {key} is missing")
        return None
    value = info.kv.get(key)
    if info.types[key] not in _INTS or isinstance(value, bool):
        raise _bad(key, value, f"it must be an integer, not a value of type {info.types[key].name.lower()}")
    assert isinstance(value, int)
    if not lo <= value <= hi:
        raise _bad(key, value, f"it must be between {lo} and {hi}")
    return value


def _ints(info: GGUFInfo, key: str, lo: int, hi: int, n_layer: int, required: bool = False) -> list[int] | None:
    """An integer given once or per layer (an array of `n_layer` values)."""
    if info.types.get(key) != GGUFValueType.ARRAY:
        one = _int(info, key, lo, hi, required)
        return None if one is None else [one] * n_layer
    if info.item_types[key] not in _INTS:
        raise _Bad(f"{key} is an array of {info.item_types[key].name.lower()}, not of integers")
    values = info.kv.get(key)
    if info.lengths[key] != n_layer or not isinstance(values, list):
        raise _Bad(f"{key} has {info.lengths[key]} values, but the model has {n_layer} layers")
    for v in values:
        if not lo <= v <= hi:
            raise _bad(key, values[:8], f"every value must be between {lo} and {hi}")
    return list(values)


def _float(info: GGUFInfo, key: str, lo: float, hi: float) -> None:
    if key not in info.types:
        return
    value = info.kv.get(key)
    if info.types[key] not in _FLOATS or not isinstance(value, float):
        raise _bad(key, value, f"it must be a float, not a value of type {info.types[key].name.lower()}")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise _bad(key, value, f"it must be a finite number between {lo:g} and {hi:g}")


def _string(info: GGUFInfo, key: str, required: bool = False) -> str | None:
    if key not in info.types:
        if required:
            raise _Bad(f"the key {key} is missing")
        return None
    if info.types[key] != GGUFValueType.STRING:
        raise _bad(key, info.kv.get(key), f"it must be a string, not a value of type {info.types[key].name.lower()}")
    return str(info.kv[key])


def _check_kind(info: GGUFInfo) -> None:
    """Files of the GGUF family that are no model are named for what they are: without
    this an adapter or an importance matrix fails on the first hyperparameter it lacks
    (a message about block_count that hides the real mistake)."""
    kind = info.kv.get("general.type") if info.types.get("general.type") == GGUFValueType.STRING else None
    path = str(info.path)
    if kind == "adapter":
        sub = info.kv.get("adapter.type")
        what = "a LoRA adapter" if sub == "lora" else f"an adapter ({sub or 'of no adapter.type'})"
        made_for = f" for {info.arch} models" if info.arch else ""
        raise _NotAModel(
            f"{what}{made_for} (general.type is 'adapter'), not a model: create its base model "
            f'and apply the adapter with (model/load-adapter model "{path}")')
    if kind == "imatrix":
        raise _NotAModel("an importance matrix (general.type is 'imatrix'), data for quantising a "
                         "model, not a model itself; give the path of a model .gguf file")
    if kind == "mmproj":
        raise _NotAModel("a multimodal projector (general.type is 'mmproj'), not a language model; "
                         "give the path of a model .gguf file")
    if kind not in (None, "model"):
        raise _NotAModel(f"not a model: its general.type is {kind[:80]!r} (a model's is 'model')")
    if not info.tensors:
        raise _NotAModel("a vocabulary-only file (it holds no weight tensors), not a model; "
                         "give the path of a model .gguf file")


_GENERAL_STRINGS = tuple(f"general.{k}" for k in (
    "name", "type", "basename", "size_label", "license", "finetune", "description", "quantized_by"))


def _check_model(info: GGUFInfo) -> None:
    arch = _string(info, "general.architecture", required=True)
    if not arch or not all(c.isalnum() or c in "-_." for c in arch):
        raise _bad("general.architecture", arch, "not an architecture name")
    for key in _GENERAL_STRINGS:  # read as strings when libllama describes the model
        _string(info, key)
    for key in ("general.file_type", "general.quantization_version"):
        _int(info, key, 0, 1 << 16)
    n_layer = _int(info, f"{arch}.block_count", 1, MAX_LAYERS, required=True)
    assert n_layer is not None
    n_embd = _int(info, f"{arch}.embedding_length", 1, MAX_WIDTH, required=True)
    assert n_embd is not None
    _int(info, f"{arch}.context_length", 1, 1 << 24, required=True)
    _ints(info, f"{arch}.feed_forward_length", 0, MAX_WIDTH, n_layer)
    _check_heads(info, arch, n_layer, n_embd)
    for suffix in ("attention.layer_norm_rms_epsilon", "attention.layer_norm_epsilon"):
        _float(info, f"{arch}.{suffix}", 0.0, 1.0)
    _float(info, f"{arch}.rope.freq_base", 1e-6, 1e12)
    _float(info, f"{arch}.rope.scaling.factor", 0.0, 1e6)
    _float(info, f"{arch}.rope.freq_scale", 1e-6, 1e6)
    # 0: no sliding window, as libllama's llama_model_save_to_file writes for such models
    _int(info, f"{arch}.attention.sliding_window", 0, 1 << 24)
    n_expert = _int(info, f"{arch}.expert_count", 0, MAX_EXPERTS) or 0
    _int(info, f"{arch}.expert_used_count", 0, n_expert)
    n_vocab = _check_vocab(info)
    _int(info, f"{arch}.vocab_size", n_vocab, n_vocab)
    _check_tensors(info, arch, n_layer, n_embd, n_vocab)


def _check_heads(info: GGUFInfo, arch: str, n_layer: int, n_embd: int) -> None:
    heads = _ints(info, f"{arch}.attention.head_count", 0, 1 << 12, n_layer, required=True)
    assert heads is not None
    kv_heads = _ints(info, f"{arch}.attention.head_count_kv", 0, 1 << 12, n_layer) or heads
    for layer, (h, hk) in enumerate(zip(heads, kv_heads, strict=True)):
        if h == 0 and hk == 0:
            continue  # a layer without attention (recurrent hybrids)
        if h == 0 or hk == 0 or h % hk:
            raise _Bad(f"{arch}.attention.head_count_kv is {hk} in layer {layer}: it must divide "
                       f"{arch}.attention.head_count ({h})")
    key_len = _int(info, f"{arch}.attention.key_length", 1, MAX_HEAD_DIM)
    _int(info, f"{arch}.attention.value_length", 1, MAX_HEAD_DIM)
    if key_len is None and max(heads) and n_embd % max(heads):
        raise _Bad(f"{arch}.attention.head_count is {max(heads)}: it must divide "
                   f"{arch}.embedding_length ({n_embd}) when no key_length is given")
    head_dim = key_len or (n_embd // max(heads) if max(heads) else n_embd)
    _int(info, f"{arch}.rope.dimension_count", 1, head_dim)


def _check_vocab(info: GGUFInfo) -> int:
    key = "tokenizer.ggml.tokens"
    if info.types.get(key) != GGUFValueType.ARRAY or info.item_types.get(key) != GGUFValueType.STRING:
        raise _Bad(f"{key} is missing or not an array of strings")
    n_vocab = info.lengths[key]
    if not 1 <= n_vocab < 1 << 31:
        raise _Bad(f"{key} has {n_vocab} entries")
    for other, itype in (("tokenizer.ggml.scores", GGUFValueType.FLOAT32),
                         ("tokenizer.ggml.token_type", GGUFValueType.INT32)):
        if other not in info.types:
            continue
        if info.types[other] != GGUFValueType.ARRAY or info.item_types[other] != itype:
            raise _Bad(f"{other} must be an array of {itype.name.lower()}")
        if info.lengths[other] != n_vocab:
            raise _Bad(f"{other} has {info.lengths[other]} entries, but {key} has {n_vocab}")
    types = info.kv.get("tokenizer.ggml.token_type")
    if isinstance(types, list) and types and not 0 <= min(types) <= max(types) <= MAX_TOKEN_TYPE:
        bad = next(t for t in types if not 0 <= t <= MAX_TOKEN_TYPE)
        raise _Bad(f"tokenizer.ggml.token_type holds {bad}, not a token type (0..{MAX_TOKEN_TYPE})")
    _string(info, "tokenizer.ggml.model", required=True)
    for name, vtype in info.types.items():
        if name.startswith("tokenizer.ggml.") and name.endswith("_token_id"):
            # -1 (or its unsigned twin) is how converters write "no such token"
            if info.kv.get(name) not in (-1, 0xFFFFFFFF):
                _int(info, name, 0, n_vocab - 1)
        elif name.startswith("tokenizer.ggml.add_") and vtype != GGUFValueType.BOOL:
            raise _bad(name, info.kv.get(name), "it must be a boolean")
    if "tokenizer.chat_template" in info.types:
        _string(info, "tokenizer.chat_template")
    merges = "tokenizer.ggml.merges"
    if merges in info.types and (info.types[merges] != GGUFValueType.ARRAY
                                 or info.item_types[merges] != GGUFValueType.STRING):
        raise _Bad(f"{merges} must be an array of strings")
    return n_vocab


def _check_tensors(info: GGUFInfo, arch: str, n_layer: int, n_embd: int, n_vocab: int) -> None:
    tensors = info.tensors
    embd = tensors.get("token_embd.weight")
    if embd is None:
        raise _Bad("the tensor token_embd.weight is missing")
    if embd.shape[:2] != (n_embd, n_vocab) or len(embd.shape) != 2:
        raise _Bad(f"token_embd.weight has the shape {list(embd.shape)}, but {arch}.embedding_length "
                   f"is {n_embd} and tokenizer.ggml.tokens has {n_vocab} entries")
    out = tensors.get("output.weight")
    if out is not None and out.shape[:2] != (n_embd, n_vocab):
        raise _Bad(f"output.weight has the shape {list(out.shape)}, not [{n_embd}, {n_vocab}]")
    layers: dict[int, dict[str, tuple[int, ...]]] = {}
    for name, t in tensors.items():
        if not name.startswith("blk."):
            continue
        index, _, suffix = name[4:].partition(".")
        if not index.isdigit() or not suffix:
            raise _Bad(f"tensor {name} does not name its layer as blk.<number>.<name>")
        layers.setdefault(int(index), {})[suffix] = t.shape
    if layers and max(layers) + 1 != n_layer or len(layers) not in (0, n_layer):
        found = max(layers) + 1 if layers else 0
        raise _Bad(f"{arch}.block_count is {n_layer}, but the file has tensors for {found} layers")
    # layers of one kind hold the same tensors; models that mix kinds of layer (experts
    # in some, per-layer hyperparameters) are left to libllama's own shape checks
    mixed = f"{arch}.expert_count" in info.types or any(
        info.types[k] == GGUFValueType.ARRAY for k in info.types if k.startswith(arch + "."))
    first = layers.get(0, {})
    for layer, parts in sorted(layers.items()) if not mixed else ():
        if len(parts) != len(first):
            raise _Bad(f"layer {layer} has {len(parts)} tensors but layer 0 has {len(first)} "
                       f"(tensor count per layer must match)")


def check_path_kind(path: Path) -> None:
    """A directory or other non-file given as a model is named as such."""
    if path.is_dir():
        raise BadModelError(f"{path} is a directory, not a model file; pass the path of a .gguf file inside it")
    if path.exists() and not path.is_file():
        raise BadModelError(f"{path} is not a regular file")
    if os.path.isfile(path) and not os.access(path, os.R_OK):
        raise BadModelError(f"cannot read model file {path}: permission denied")
