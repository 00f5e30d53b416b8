"""ONNX models through ONNX Runtime: `(model/create "m.onnx" "onnx" :device :cpu)`.

One `InferenceSession` per model file and provider list, kept while a model uses it
and reused by every `model/forward` (and by a second `model/create` of the same file).
Inputs are checked against the model's declared names, element types and static
dimensions before ONNX Runtime sees them, so a mistake is a Gene error naming the input;
outputs come back as tensors without a copy. `:device :cuda` uses the CUDA provider when
ONNX Runtime has it and warns loudly on stderr otherwise (`:strict true` makes it an
error): never a silent CPU run.
"""

from __future__ import annotations

import os
import re
import sys
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gene_jit.runtime.errors import GeneError, GeneTypeError
from gene_jit.runtime.requirements import import_library
from gene_jit.runtime.values import Symbol
from gene_jit.tensor.tensor import Tensor

# ONNX element type -> (NumPy dtype, Gene tensor dtype or None where tensors lack it)
ELEMENT_TYPES: dict[str, tuple[Any, str | None]] = {
    "tensor(float)": (np.float32, "f32"),
    "tensor(float16)": (np.float16, "f16"),
    "tensor(double)": (np.float64, "f64"),
    "tensor(int32)": (np.int32, "i32"),
    "tensor(int64)": (np.int64, "i64"),
    "tensor(int8)": (np.int8, None),
    "tensor(uint8)": (np.uint8, None),
    "tensor(int16)": (np.int16, None),
    "tensor(uint16)": (np.uint16, None),
    "tensor(bool)": (np.bool_, None),
    "tensor(string)": (np.object_, None),
}
OPTIONS = ("device", "threads", "strict", "tokenizer")


class OnnxError(GeneError):
    kind = "onnx error"


@dataclass(frozen=True)
class Port:
    """A declared input or output: name, ONNX type, dimensions (int, a symbolic name,
    or None where unknown), and its element type in NumPy and as a Gene dtype name
    (None where there is none), worked out once for every later call."""

    name: str
    onnx_type: str
    dims: tuple[int | str | None, ...] | None
    numpy_dtype: np.dtype | None = field(init=False)
    dtype: str = field(init=False)
    fixed: tuple[tuple[int, int], ...] = field(init=False)  # (axis, size) of static dims

    def __post_init__(self) -> None:
        entry = ELEMENT_TYPES.get(self.onnx_type)
        np_dtype = None if entry is None else np.dtype(entry[0])
        object.__setattr__(self, "numpy_dtype", np_dtype)
        name = self.onnx_type if entry is None else entry[1] or self.onnx_type[7:-1]
        object.__setattr__(self, "dtype", name)
        fixed = tuple((i, d) for i, d in enumerate(self.dims or ()) if type(d) is int and d >= 0)
        object.__setattr__(self, "fixed", fixed)

    def gene(self) -> dict[str, Any]:
        return {"name": self.name, "shape": None if self.dims is None else list(self.dims),
                "dtype": self.dtype, "onnx-type": self.onnx_type}


# NumPy dtype of an output -> the Gene dtype of the tensor that wraps it
_TENSOR_DTYPES = {np.dtype(t): name for t, name in ELEMENT_TYPES.values() if name is not None}


_SESSIONS: weakref.WeakValueDictionary[tuple[Any, ...], Any] = weakref.WeakValueDictionary()


def _device(value: Any) -> str:
    name = value.name if isinstance(value, Symbol) else value
    if name is None:
        return "cpu"
    if isinstance(name, str) and (name in ("cpu", "cuda") or name.startswith("cuda:")):
        return name
    raise OnnxError(f"model/create: :device must be :cpu or :cuda, got {_shown(value)}")


def _shown(value: Any) -> str:
    from gene_jit.tensor.dtypes import shown

    return shown(value)


def _providers(ort: Any, device: str, strict: bool) -> list[Any]:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        index = int(device.split(":")[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    if strict:
        raise OnnxError(_no_provider(ort, device))
    return ["CPUExecutionProvider"]  # OnnxModel warns, once


def _no_provider(ort: Any, device: str) -> str:
    return (f"model/create: :device :{device} asked for, but this onnxruntime has no CUDA "
            f"provider (it has {', '.join(ort.get_available_providers())}); install "
            "onnxruntime-gpu for the GPU")


def _cpu_fallback(path: str, device: str) -> None:
    """The one warning for a model asked on a GPU that runs on the CPU."""
    ort = import_library("onnxruntime", "model/create with the onnx format")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        message = _no_provider(ort, device)
    else:
        message = f"model/create: onnxruntime did not start its CUDA provider for {path}"
    _warn(f"{message}. THE MODEL RUNS ON THE CPU (model/info says ^device cpu).")


def _warn(message: str) -> None:
    print(f"gene-jit: WARNING: {message}", file=sys.stderr, flush=True)


class OnnxModel:
    """An ONNX model with its session. `info`, `forward` and `embed` are what
    `model/info`, `model/forward` and `model/embed` call."""

    def __init__(self, path: Any, device: Any = None, threads: Any = None,
                 strict: Any = False, tokenizer: Any = None) -> None:
        if not isinstance(path, str):
            raise OnnxError(f"model/create: expected the path of a .onnx file, got {_shown(path)}")
        if not os.path.isfile(path):
            what = "a folder, not a .onnx file" if os.path.isdir(path) else "no such file"
            raise OnnxError(f"model/create: {path}: {what}")
        if threads is not None and (type(threads) is not int or threads < 1):
            raise OnnxError(f"model/create: :threads must be a positive int, got {_shown(threads)}")
        if isinstance(tokenizer, str):
            tokenizer = _tokenizer_file(tokenizer)
        if tokenizer is not None and not callable(tokenizer):
            raise OnnxError(
                f"model/create: :tokenizer must be a function from text to token ids or the "
                f"path of a tokenizer.json, got {_shown(tokenizer)}")
        self.path = os.path.abspath(path)
        self.device = _device(device)
        self.tokenizer = tokenizer
        self.session = _session(self.path, self.device, threads, bool(strict))
        self.providers = list(self.session.get_providers())
        if self.device != "cpu" and "CUDAExecutionProvider" not in self.providers:
            _cpu_fallback(path, self.device)
            self.device = "cpu"  # where it runs, as model/info and the printed model say
        self.inputs = [_port(a) for a in self.session.get_inputs()]
        self.outputs = [_port(a) for a in self.session.get_outputs()]
        self._input_by_name = {p.name: p for p in self.inputs}
        self._shared = _shared_symbols(self.inputs)
        self._output_names = [p.name for p in self.outputs]

    def info(self) -> dict[str, Any]:
        return {"format": "onnx", "path": self.path, "device": self.device,
                "providers": list(self.providers),
                "inputs": [p.gene() for p in self.inputs],
                "outputs": [p.gene() for p in self.outputs]}

    def forward(self, inputs: Any, op: str = "model/forward", about: str = "") -> dict[str, Any]:
        """`(model/forward m {^x t})`: a map from output name to tensor; errors name `op`,
        the Gene function that ran the model, and say `about` what it ran."""
        if self.session is None:
            raise OnnxError(f"{op}: {os.path.basename(self.path)} was closed (model/close)")
        feeds = self._feeds(inputs)
        try:
            results = self.session.run(self._output_names, feeds)
        except Exception as exc:  # ONNX Runtime refused the values (a dimension, a rank)
            raise OnnxError(f"{op}: onnxruntime failed on {os.path.basename(self.path)}{about}: "
                            f"{_ort_message(exc)}") from exc
        return {name: _result(value) for name, value in zip(self._output_names, results,
                                                             strict=True)}

    def _feeds(self, inputs: Any) -> dict[str, np.ndarray]:
        if type(inputs) is dict and inputs.keys() == self._input_by_name.keys():
            return self._checked({p.name: _feed(p, inputs[p.name]) for p in self.inputs})
        if not isinstance(inputs, dict):
            if len(self.inputs) == 1:
                inputs = {self.inputs[0].name: inputs}
            else:
                raise OnnxError(f"model/forward: expected a map of inputs {self._names()}, "
                                f"got {_shown(inputs)}")
        unknown = [k for k in inputs if k not in self._input_by_name]
        if unknown:
            raise OnnxError(f"model/forward: the model has no input named '{unknown[0]}'; "
                            f"its inputs are {self._names()}")
        missing = [p.name for p in self.inputs if p.name not in inputs]
        if missing:
            raise OnnxError(f"model/forward: missing input '{missing[0]}'; the model's inputs "
                            f"are {self._names()}")
        return self._checked({p.name: _feed(p, inputs[p.name]) for p in self.inputs})

    def _checked(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return feeds if not self._shared else _same_symbols(feeds, self._shared)

    def _names(self) -> str:
        return ", ".join(f"'{p.name}'" for p in self.inputs)

    def embed(self, text: Any, normalize: bool = True) -> Any:
        """`(model/embed m "text")` or token ids: one vector (mean-pooled over the tokens
        where the model gives one per token), of unit length unless `:normalize false`."""
        from gene_jit.onnx.embed import embed

        return embed(self, text, bool(normalize))

    def close(self) -> None:
        self.session = None

    def __gene_repr__(self) -> str:
        return f"#<onnx model {os.path.basename(self.path)} {self.device}>"

    def __repr__(self) -> str:
        return self.__gene_repr__()


def _tokenizer_file(path: str) -> Any:
    """Text to token ids with a Hugging Face `tokenizer.json` (the `tokenizers` package)."""
    tokenizers = import_library("tokenizers", "model/create with a tokenizer.json")
    if not os.path.isfile(path):
        raise OnnxError(f"model/create: :tokenizer: no such file: {path}")
    try:
        tok = tokenizers.Tokenizer.from_file(path)
    except Exception as exc:  # the package's own error for a file it cannot read
        raise OnnxError(f"model/create: :tokenizer: cannot read {path}: {exc}") from exc

    def encode(text: str) -> list[int]:
        return list(tok.encode(text).ids)

    return encode


def _session(path: str, device: str, threads: int | None, strict: bool) -> Any:
    ort = import_library("onnxruntime", "model/create with the onnx format")
    providers = _providers(ort, device, strict)
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size, repr(providers), threads)
    session = _SESSIONS.get(key)
    if session is not None:
        return session
    options = ort.SessionOptions()
    options.log_severity_level = 4  # errors come back as Gene errors, not log lines
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(path, sess_options=options, providers=providers)
    except Exception as exc:  # InvalidProtobuf, InvalidGraph, Fail, NoSuchFile, ...
        raise OnnxError(f"model/create: onnxruntime cannot load {path}: {_ort_message(exc)}") from exc
    _SESSIONS[key] = session
    return session


def _ort_message(exc: BaseException) -> str:
    """ONNX Runtime's message without its status prefix, which the code ends instead:
    `Protobuf parsing failed. (INVALID_PROTOBUF)`."""
    text = " ".join(str(exc).split())
    # where in ONNX Runtime's C++ sources the check failed says nothing to the program
    text = re.sub(r"(?:Status Message: )?\S*onnxruntime_src/\S+:\d+ (?:[\w:<>*&, ]+?\([^)]*\) )?", "",
                  text)
    m = re.match(r"\[ONNXRuntimeError\] : \d+ : (\w+) : (?:Load model from .*? failed:)?(.*)", text)
    if m is not None:
        text = f"{m.group(2).strip()} ({m.group(1)})"
    return text if len(text) <= 400 else text[:397] + "..."


def _port(arg: Any) -> Port:
    shape = arg.shape
    dims = None if shape is None else tuple(d if isinstance(d, int | str) else None for d in shape)
    return Port(arg.name, arg.type, dims)


def _feed(port: Port, value: Any) -> np.ndarray:
    """`value` as the array ONNX Runtime gets for `port`, checked first."""
    want = port.numpy_dtype
    if want is None:
        raise OnnxError(f"model/forward: input '{port.name}' has type {port.onnx_type}, which "
                        "gene-jit cannot pass")
    array = _array(port, value, want)
    if port.dims is not None:
        if array.ndim != len(port.dims):
            raise OnnxError(f"model/forward: input '{port.name}' has {len(port.dims)} dimensions "
                            f"{_dims(port.dims)}, got {array.ndim} (shape {_dims(array.shape)})")
        shape = array.shape
        for i, d in port.fixed:
            if shape[i] != d:
                raise OnnxError(f"model/forward: input '{port.name}' must have {d} in "
                                f"dimension {i} {_dims(port.dims)}, got shape {_dims(shape)}")
    return array


def _shared_symbols(ports: list[Port]) -> list[tuple[str, str, int]]:
    """(dimension name, input, axis) of each named dimension (`batch`, `seq`) that two or
    more inputs declare: only those can disagree."""
    uses = [(d, p.name, axis) for p in ports for axis, d in enumerate(p.dims or ())
            if type(d) is str]
    names = [d for d, _, _ in uses]
    return [u for u in uses if names.count(u[0]) > 1]


def _same_symbols(feeds: dict[str, np.ndarray],
                  shared: list[tuple[str, str, int]]) -> dict[str, np.ndarray]:
    """Each named dimension has one size across the inputs, as the model declares: a
    mismatch named here rather than deep inside an operator."""
    seen: dict[str, tuple[int, str]] = {}
    for dim, name, axis in shared:
        size = feeds[name].shape[axis]
        first = seen.setdefault(dim, (size, name))
        if first[0] != size:
            raise OnnxError(
                f"model/forward: dimension '{dim}' is {first[0]} in input '{first[1]}' but "
                f"{size} in input '{name}' {_dims(feeds[name].shape)}; the model declares "
                "them the same")
    return feeds


def _dims(dims: tuple[Any, ...]) -> str:
    return "[" + " ".join("?" if d is None else str(d) for d in dims) + "]"


def _array(port: Port, value: Any, want: np.dtype) -> np.ndarray:
    if type(value) is Tensor:
        if port.dtype != value.dtype:
            how = (f"convert it with (tensor/astype t :{port.dtype})" if port.dtype in _GENE_DTYPES
                   else "tensors have no bool: pass Gene booleans ([true false]) or a NumPy "
                   "bool array" if port.dtype == "bool"
                   else f"tensors have no {port.dtype}: pass a NumPy array of {port.dtype} or "
                   "Gene numbers")
            raise OnnxError(f"model/forward: input '{port.name}' must be {port.dtype} "
                            f"({port.onnx_type}), got {_a(value.dtype)} tensor; {how}")
        return _c_order(value.storage_host())
    if isinstance(value, np.ndarray):
        if want.kind == "O" and value.dtype.kind in "US":  # NumPy strings for a string input
            return value.astype(object)
        if value.dtype != want:
            raise OnnxError(f"model/forward: input '{port.name}' must be {want} "
                            f"({port.onnx_type}), got a NumPy array of {value.dtype}")
        return _c_order(value)
    return _from_values(port, value, want)


def _from_values(port: Port, value: Any, want: np.dtype) -> np.ndarray:
    """Gene numbers and nested arrays: ints fit any numeric input whose range holds them,
    floats only a float one; strings a string input."""
    try:
        array = np.asarray(value, dtype=object if want.kind == "O" else None)
    except (ValueError, OverflowError) as exc:  # ragged nesting, an int beyond 64 bits
        why = "rows of different lengths" if isinstance(exc, ValueError) else str(exc)
        raise OnnxError(f"model/forward: input '{port.name}' is not a rectangular array of "
                        f"numbers ({why}): {_shown(value)}") from exc
    kind = array.dtype.kind
    if want.kind == "O":
        ok = all(type(v) is str for v in array.flat)
    else:
        ok = (kind in "iu" and want.kind in "iuf") or (kind == "f" and want.kind == "f") or (
            kind == "b" and want.kind == "b")
    if not ok:
        raise GeneTypeError(f"model/forward: input '{port.name}' must be {port.dtype} "
                            f"({port.onnx_type}), got {_shown(value)}")
    if kind in "iu" and want.kind in "iu" and array.size:
        info = np.iinfo(want)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise OnnxError(f"model/forward: input '{port.name}' is {port.dtype}, which cannot "
                            f"hold {bad} (its range is {info.min} to {info.max})")
    return array.astype(want)


_GENE_DTYPES = frozenset(name for _, name in ELEMENT_TYPES.values() if name is not None)


def _a(dtype: str) -> str:
    """`an f32`, `an i64`, `a bf16`: the article as the dtype's name is spoken."""
    return f"an {dtype}" if dtype[:1] in "aeifo" else f"a {dtype}"


def _result(value: Any) -> Any:
    """An output as a tensor sharing ONNX Runtime's array; types tensors lack stay arrays."""
    dtype = _TENSOR_DTYPES.get(value.dtype) if isinstance(value, np.ndarray) else None
    return value if dtype is None else Tensor(value, dtype)


def _c_order(a: np.ndarray) -> np.ndarray:
    """`a` itself when C-contiguous, else a C-ordered copy (0-d arrays keep their shape,
    which np.ascontiguousarray would make 1-d)."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)
