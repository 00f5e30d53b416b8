"""Importance matrices: collected from libllama's forward pass, read from and written to
llama.cpp's imatrix files.

`collect` runs the model over calibration windows with an evaluation callback on the
context (`cb_eval`, what `llama-imatrix` uses): libllama stops before each matrix
product of a `blk.*` weight and hands the product's node over; its second source is the
weight's input, whose squares are summed per column. The callback reads ggml's tensor
struct, whose layout is checked against ggml's own accessors before it is trusted.

Files: the GGUF imatrix format of `llama-imatrix` (general.type "imatrix", per weight
`<name>.in_sum2` and `<name>.counts`) and its older `.dat` format are read; GGUF is
written, so a matrix made here can be reused by `llama-quantize --imatrix`.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gene_jit.llama import bindings
from gene_jit.llama.errors import LlamaError
from gene_jit.llama.progress import Bar
from gene_jit.llama.quantize import QuantizeError

if TYPE_CHECKING:
    from gene_jit.llama.model import Model

GGML_TYPE_F32 = 0
EVAL_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_bool, ctypes.c_void_p)


class ImatrixFileError(QuantizeError):
    """An importance matrix file that cannot be read."""


class GGMLTensor(ctypes.Structure):
    """struct ggml_tensor of ggml.h (GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64,
    GGML_MAX_SRC 10, GGML_MAX_NAME 64)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def _ggml() -> Any:
    """ggml's accessors, declared on libggml-base beside libllama."""
    from gene_jit.llama.native_tools import tools

    lib = tools().ggml
    for name, returns, params in (
        ("ggml_op_name", ctypes.c_char_p, [ctypes.c_int]),
        ("ggml_get_name", ctypes.c_char_p, [ctypes.c_void_p]),
        ("ggml_nelements", ctypes.c_int64, [ctypes.c_void_p]),
        ("ggml_is_contiguous", ctypes.c_bool, [ctypes.c_void_p]),
        ("ggml_nbytes", ctypes.c_size_t, [ctypes.c_void_p]),
        ("ggml_backend_tensor_get", None, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]),
    ):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = returns, params
    return lib


def _op_number(lib: Any, name: bytes) -> int:
    for op in range(256):
        if lib.ggml_op_name(op) == name:
            return op
    raise LlamaError(f"ggml has no {name.decode()} operation: this libggml is not the one gene-jit knows (a bug)")


@dataclass
class Collector:
    """Sums of squares of each weight's input columns (and, when `grams`, the sums of
    the inputs' outer products, X^T X, that GPTQ needs), over every token seen."""

    grams: bool = False
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    outer: dict[str, np.ndarray] = field(default_factory=dict)  # one per distinct input
    shares: dict[str, str] = field(default_factory=dict)  # weight -> the input key of `outer`
    failure: BaseException | None = None
    stop: Any = None  # a StopRequest: Ctrl-C sets its flag (an exception would be lost in libllama)
    _lib: Any = None
    _mul_mat: int = -1
    _last: tuple[Any, ...] = ()
    _checked: bool = False
    _pending: list[tuple[str, np.ndarray]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lib = _ggml()
        self._mul_mat = _op_number(self._lib, b"MUL_MAT")
        self.callback = EVAL_CALLBACK(self._eval)

    def _eval(self, ptr: int, ask: bool, _: Any) -> bool:
        try:
            if not ask and self.stop is not None and self.stop.asked:
                return False  # Ctrl-C: end this decode early; `collect` then raises
            if not self._checked:
                self._check_layout(ptr)
            t = GGMLTensor.from_address(ptr)
            if t.name == b"result_norm":  # the last layer is done: stop before the output layer
                return ask
            if t.op != self._mul_mat or not t.src[0] or not t.src[1]:
                return False if ask else True
            weight = GGMLTensor.from_address(t.src[0])
            if not weight.name.startswith(b"blk."):
                return False if ask else True
            if not ask:
                self._take(weight.name.decode(), t.src[1])
            return True
        except BaseException as exc:  # a Ctrl-C or a fault: stop the graph, raise after decode
            self.failure = self.failure or exc
            return False

    def _check_layout(self, ptr: int) -> None:
        """The struct read through ggml's accessors says what the fields say."""
        t = GGMLTensor.from_address(ptr)
        n = t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3]
        if self._lib.ggml_get_name(ptr) != t.name or self._lib.ggml_nelements(ptr) != n:
            raise LlamaError("ggml's tensor struct is not laid out as gene-jit expects (a bug)")
        self._checked = True

    def _take(self, name: str, src: int) -> None:
        x_t = GGMLTensor.from_address(src)
        if x_t.type != GGML_TYPE_F32 or not self._lib.ggml_is_contiguous(src):
            return  # libllama's CPU inputs are contiguous float32; anything else is skipped
        cols = int(x_t.ne[0])
        rows = int(x_t.ne[1] * x_t.ne[2] * x_t.ne[3])
        key = (src, x_t.name, cols, rows)  # the graph names each layer's nodes apart
        if self._last and self._last[0] == key:  # q, k and v (gate and up) read the same input
            square, gram_key = self._last[1], self._last[2]
        else:
            x = np.empty((rows, cols), np.float32)
            self._lib.ggml_backend_tensor_get(src, x.ctypes.data, 0, x.nbytes)
            square = np.einsum("ij,ij->j", x, x, dtype=np.float64)
            gram_key = name
            if self.grams:  # multiplied after the decode, not while libllama's threads wait
                self._pending.append((name, x))
            self._last = (key, square, gram_key)
        self.sums[name] = self.sums.get(name, 0) + square
        self.counts[name] = self.counts.get(name, 0) + rows
        if self.grams:
            self.shares[name] = gram_key

    def flush(self) -> None:
        """Add the inputs kept during the last decode to the X^T X sums."""
        for name, x in self._pending:
            gram = x.T @ x
            if name in self.outer:
                self.outer[name] += gram
            else:
                self.outer[name] = gram.astype(np.float64)
        self._pending.clear()
        self._last = ()

    def imatrix(self) -> dict[str, np.ndarray]:
        """Each weight's mean square per input column, as libllama's quantiser takes it."""
        return {k: (v / self.counts[k]).astype(np.float32) for k, v in self.sums.items()}

    def gram(self, name: str) -> np.ndarray:
        return self.outer[self.shares[name]]


def collect(model: Model, windows: list[list[int]], grams: bool = False, show: bool = False) -> Collector:
    """Run `model` over `windows` (token lists, each from position 0) and collect what
    each `blk.*` weight's inputs were."""
    from gene_jit.llama.finetune import StopRequest

    with StopRequest() as stop:
        return _collect(model, windows, Collector(grams=grams, stop=stop), show)


def _collect(model: Model, windows: list[list[int]], col: Collector, show: bool) -> Collector:
    raw = bindings.lib()
    params = raw.llama_context_default_params()
    p = bindings.struct_value(params)
    size = max(map(len, windows))
    p.n_ctx = p.n_batch = p.n_ubatch = size
    p.n_seq_max = 1
    p.n_threads = p.n_threads_batch = model.threads
    p.no_perf = True
    p.cb_eval = ctypes.cast(col.callback, ctypes.c_void_p).value
    ctx = bindings.ContextHandle(raw.llama_init_from_model(model.handle.ptr, params), "context")
    batch = bindings.BatchHandle(size, 1)
    memory = raw.llama_get_memory(ctx.ptr)
    total = sum(map(len, windows))
    done = 0
    try:
        with Bar("collecting the importance matrix", total, show) as bar:
            for tokens in windows:
                raw.llama_memory_clear(memory, True)
                batch.clear()
                for i, tok in enumerate(tokens):
                    # every token an output: else the last layer runs its feed-forward
                    # on the last token only
                    batch.add(tok, i, 0, True)
                rc = raw.llama_decode(ctx.ptr, batch.value())
                if col.stop.asked:
                    raise KeyboardInterrupt
                if col.failure is not None:
                    raise col.failure
                if rc != 0:
                    raise LlamaError(f"libllama could not run the calibration text (llama_decode returned {rc})")
                col.flush()
                done += len(tokens)
                bar.update(done)
    finally:
        batch.close()
        ctx.close()
    return col


# ---------------------------------------------------------------------------
# Files


def read_imatrix(path: str | Path) -> dict[str, np.ndarray]:
    """An importance matrix file of llama-imatrix (GGUF or the older .dat format): each
    weight's mean square per input column."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ImatrixFileError(f"cannot read the importance matrix {p}: no such file")
    with open(p, "rb") as f:
        magic = f.read(4)
    try:
        return _read_gguf(p) if magic == b"GGUF" else _read_dat(p)
    except ImatrixFileError:
        raise
    except (OSError, ValueError, struct.error, KeyError, IndexError) as exc:
        raise ImatrixFileError(f"cannot read the importance matrix {p}: {exc}") from None


def _read_gguf(path: Path) -> dict[str, np.ndarray]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    kind = reader.get_field("general.type")
    if kind is None or kind.contents() != "imatrix":
        raise ImatrixFileError(f"{path} is a GGUF file but not an importance matrix "
                               "(its general.type is not 'imatrix')")
    tensors = {t.name: np.asarray(t.data, np.float64) for t in reader.tensors}
    out: dict[str, np.ndarray] = {}
    for name, sums in tensors.items():
        if not name.endswith(".in_sum2"):
            continue
        weight = name[: -len(".in_sum2")]
        counts = tensors[f"{weight}.counts"].reshape(-1)
        per = sums.reshape(len(counts), -1) / np.maximum(counts, 1)[:, None]
        out[weight] = per.reshape(-1).astype(np.float32)
    if not out:
        raise ImatrixFileError(f"{path} holds no importance matrix entries")
    return out


def _read_dat(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    (n,), pos = struct.unpack_from("<i", data), 4
    if not 0 < n < 1_000_000:
        raise ImatrixFileError(f"{path} is not an importance matrix file (GGUF or llama-imatrix's .dat)")
    out: dict[str, np.ndarray] = {}
    for _ in range(n):
        (length,) = struct.unpack_from("<i", data, pos)
        name = data[pos + 4: pos + 4 + length].decode()
        pos += 4 + length
        ncall, nval = struct.unpack_from("<ii", data, pos)
        pos += 8
        values = np.frombuffer(data, np.float32, nval, pos).astype(np.float64)
        pos += 4 * nval
        out[name] = (values / ncall if ncall > 0 else values).astype(np.float32)
    return out


def write_imatrix(path: str | Path, col: Collector, chunks: int, chunk_size: int, dataset: str) -> None:
    """`col` as a GGUF imatrix file, as llama-imatrix writes it."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch="")
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", [dataset])
    w.add_uint32("imatrix.chunk_count", chunks)
    w.add_uint32("imatrix.chunk_size", chunk_size)
    for name in sorted(col.sums):
        w.add_tensor(f"{name}.in_sum2", np.asarray(col.sums[name], np.float32).reshape(1, -1))
        w.add_tensor(f"{name}.counts", np.array([[col.counts[name]]], np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
