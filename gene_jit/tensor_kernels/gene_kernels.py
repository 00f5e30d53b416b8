"""The `kernel` namespace: the C-ABI tensor kernels (gene_jit/tensor_kernels/cabi.py) as
foreign functions that Gene code calls from both tiers.

    (kernel/rmsnorm x w out rows cols eps)      ; x, w, out: float32 arrays or tensors

Each member is a `Kernel`, a callable whose `__gene_foreign__` record (a
`KernelFunction`, i.e. an `ffi.core.ForeignFunction`) holds the Numba cfunc's address
and its C signature: pointer parameters :buffer, shapes :int64, scalars :double and an
:int32 status. Tier 0 calls it like any foreign function; tier 1 emits a direct call to
the address (gene_jit/ir/ffi_calls.py, gene_jit/codegen/emit_ffi.py). The cfunc is
compiled (or loaded from Numba's disk cache) when a member is first called or compiled
against, not when the namespace is imported.

On top of a plain foreign call, both tiers check before the call that every array
argument has the element type the kernel reads, is C-contiguous, and holds at least as
many elements as the shapes say (shapes are never negative), and after it that the
status is OK; a failure is a Gene error that names the kernel and the shapes. Both tiers
build its message with `problem` below (tier 1 through `native_failure`). An ffi buffer
(`ffi/new :float n`) carries its element type and length and is checked as an array is;
an int is never an address, nil never a buffer, and a pointer passes only where its
extent is known (`ffi/addressof` of a buffer): one that C gave back, or `ffi/ptr` made,
is refused, since nothing could check the shapes against it.
Arrays are read where they are: a C-contiguous float32 NumPy array or CPU tensor costs no
copy.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gene_jit.ffi import crash
from gene_jit.ffi.core import ForeignFunction
from gene_jit.ffi.library import Library
from gene_jit.ffi.memory import Buffer
from gene_jit.ffi.types import NULL, address_of, ctype_of, describe, extent_of
from gene_jit.runtime.errors import GeneArityError, GeneError, GeneTypeError
from gene_jit.runtime.registry import namespace
from gene_jit.tensor_kernels import cabi

# cabi pointer kinds -> the NumPy element type of the buffer
DTYPES = {"f32p": "float32", "u16p": "uint16", "u8p": "uint8", "i64p": "int64"}
UNKNOWN, NOT_CONTIGUOUS = -1, -2  # element counts of buffers that cannot be checked / used
MAX_ELEMS = 2**63 - 1


@dataclass(frozen=True)
class Need:
    """Elements a buffer must hold: the product of shape parameters `factors`, divided by
    `div` then times `mul` (GGUF blocks: bytes -> values)."""

    factors: tuple[str, ...]
    div: int = 1
    mul: int = 1

    def count(self, shapes: dict[str, int]) -> int:
        n = 1
        for f in self.factors:
            n *= shapes[f]
        return n // self.div * self.mul


@dataclass(frozen=True)
class Spec:
    """A Gene kernel: its cabi entry, parameter names (C order) and buffer sizes."""

    gene: str
    entry: str
    names: tuple[str, ...]
    needs: dict[str, Need]

    @property
    def full_name(self) -> str:
        return f"kernel/{self.gene}"


def _dequant(gene: str, entry: str, block_bytes: int, block_values: int) -> Spec:
    return Spec(gene, entry, ("raw", "out", "nbytes"),
                {"raw": Need(("nbytes",)), "out": Need(("nbytes",), block_bytes, block_values)})


_ROWS = Need(("rows", "cols"))
_TOKENS = Need(("batch", "tokens", "dim"))
_KV = Need(("kv-heads", "cache-len", "head-dim"))
SPECS: tuple[Spec, ...] = (
    Spec("rmsnorm", "rmsnorm_f32", ("x", "w", "out", "rows", "cols", "eps"),
         {"x": _ROWS, "w": Need(("cols",)), "out": _ROWS}),
    Spec("softmax", "softmax_f32", ("x", "out", "rows", "cols"), {"x": _ROWS, "out": _ROWS}),
    Spec("rope", "rope_f32", ("x", "positions", "out", "batch", "tokens", "dim", "theta"),
         {"x": _TOKENS, "positions": Need(("tokens",)), "out": _TOKENS}),
    Spec("gemv-f32", "gemv_f32", ("w", "x", "out", "n", "k"),
         {"w": Need(("n", "k")), "x": Need(("k",)), "out": Need(("n",))}),
    Spec("gemv-f16w", "gemv_f16w", ("w", "x", "out", "n", "k"),
         {"w": Need(("n", "k")), "x": Need(("k",)), "out": Need(("n",))}),
    Spec("matmul", "matmul_f32", ("a", "b", "out", "batch", "m", "k", "n"),
         {"a": Need(("batch", "m", "k")), "b": Need(("batch", "k", "n")),
          "out": Need(("batch", "m", "n"))}),
    Spec("feed-forward", "feed_forward_f32",
         ("x", "w-gate", "w-up", "w-down", "out", "tokens", "embed", "hidden", "act"),
         {"x": Need(("tokens", "embed")), "w-gate": Need(("hidden", "embed")),
          "w-up": Need(("hidden", "embed")), "w-down": Need(("embed", "hidden")),
          "out": Need(("tokens", "embed"))}),
    Spec("decode-attention", "decode_attention_f32",
         ("q", "k-cache", "v-cache", "out", "heads", "kv-heads", "cache-len", "head-dim",
          "n-ctx", "scale"),
         {"q": Need(("heads", "head-dim")), "k-cache": _KV, "v-cache": _KV,
          "out": Need(("heads", "head-dim"))}),
    _dequant("dequantize-q8-0", "dequant_q8_0", 34, 32),
    _dequant("dequantize-q4-0", "dequant_q4_0", 18, 32),
    _dequant("dequantize-q4-k", "dequant_q4_k", 144, 256),
    _dequant("dequantize-q6-k", "dequant_q6_k", 210, 256),
)

_LIBRARY = Library("kernel", "gene_jit.tensor_kernels.cabi (Numba cfuncs)", ctypes.CDLL(None))
_FFI_TYPE = {"i64": "int64", "f64": "double", **{k: "buffer" for k in DTYPES}}


@dataclass(eq=False)
class KernelFunction(ForeignFunction):
    """The foreign-function record of a kernel. `dtypes` (the element type of each
    pointer parameter, None for scalars) tells tier 1 that this is a kernel: it checks
    buffers and the status as tier 0 does."""

    spec: Spec | None = None
    dtypes: tuple[str | None, ...] = ()


def _record(spec: Spec) -> KernelFunction:
    crash.install()
    kinds = cabi.param_kinds(spec.entry)
    address, signature = cabi.entry(spec.entry)
    return KernelFunction(
        spec.full_name, _LIBRARY, spec.entry, ctype_of("int32"),
        tuple(ctype_of(_FFI_TYPE[k]) for k in kinds), False, address, signature(address),
        spec=spec, dtypes=tuple(DTYPES.get(k) for k in kinds),
    )


# -- checks shared by both tiers ----------------------------------------------------------


def _shapes(spec: Spec, kinds: Sequence[str], summary: Sequence[Any]) -> dict[str, int]:
    return {n: v for n, k, v in zip(spec.names, kinds, summary, strict=True) if k == "i64"}


def problem(rec: KernelFunction, summary: Sequence[Any], status: int = 0) -> GeneError | None:
    """What is wrong with a call, or None. `summary` has, in C order, the element count
    of each buffer (UNKNOWN, NOT_CONTIGUOUS) and the value of each scalar."""
    spec = rec.spec
    assert spec is not None
    kinds = cabi.param_kinds(spec.entry)
    shapes = _shapes(spec, kinds, summary)
    where = f"{spec.full_name} ({', '.join(f'{k}={v}' for k, v in shapes.items())})"
    negative = [k for k, v in shapes.items() if v < 0]
    if negative:
        return GeneError(f"{where}: shape {negative[0]} is negative")
    for name, dtype, count in zip(spec.names, rec.dtypes, summary, strict=True):
        need = spec.needs.get(name)
        if dtype is None or need is None:
            continue
        if count == NOT_CONTIGUOUS:
            return GeneTypeError(f"{where}: {name} is not a C-contiguous array")
        want = need.count(shapes)
        if want > MAX_ELEMS:
            return GeneError(f"{where}: the shapes need {want} {dtype} values in {name}")
        if count != UNKNOWN and count < want:
            return GeneError(f"{where}: {name} holds {count} {dtype} values, the shapes "
                             f"need {want}")
    if status:
        why = "inconsistent shapes" if status == cabi.BAD_SHAPE else "unknown failure"
        return GeneError(f"{where}: the kernel refused the call ({why}, status {status})")
    return None


def native_failure(rec: KernelFunction, status: int, *summary: Any) -> None:
    """Called by compiled code whose kernel call failed (a check or the status): leave
    the Gene error for the entry to raise (gene_jit/codegen/engine.py)."""
    from gene_jit.codegen.engine import PENDING

    try:
        err = problem(rec, summary, status) or GeneError(f"{rec.name}: the call failed")
    except Exception as exc:  # noqa: BLE001 - called from native code, which cannot take one
        err = GeneError(f"{rec.name}: the call failed ({exc})")
    PENDING.append(err)


# -- tier 0 -------------------------------------------------------------------------------


def _buffer(rec: KernelFunction, i: int, value: Any) -> tuple[int, int]:
    """(address, element count) of a buffer argument; raises for the wrong kind of value."""
    spec, dtype = rec.spec, rec.dtypes[i]
    assert spec is not None and dtype is not None
    what = f"{spec.full_name}: argument {i + 1} ({spec.names[i]})"
    data = getattr(value, "data", None) if type(value).__name__ == "Tensor" else value
    if data is not value and getattr(getattr(value, "device", None), "is_cuda", False):
        raise GeneTypeError(f"{what} is a tensor on {value.device}; kernels run on the CPU")
    if isinstance(data, np.ndarray):
        if data.dtype != np.dtype(dtype) or not data.dtype.isnative:
            raise GeneTypeError(f"{what} must be a {dtype} array, got a {data.dtype} array")
        if spec.names[i] == "out" and not data.flags.writeable:
            raise GeneTypeError(f"{what} is a read-only array")
        if not data.flags.c_contiguous:
            return 0, NOT_CONTIGUOUS
        return data.ctypes.data, data.size
    if value is None or value is NULL:
        raise _null_error(rec, i)
    if isinstance(value, Buffer) or getattr(value, "elem", None) is not None:
        return _ffi_buffer(rec, i, value)  # a buffer, or a pointer into one
    try:
        address = address_of(value)
    except TypeError as exc:
        raise GeneTypeError(
            f"{what} must be a {dtype} array or buffer, got {describe(value)} ({exc})"
        ) from None
    if not address:
        raise _null_error(rec, i)
    extent = extent_of(value)
    if extent is None:
        raise GeneTypeError(f"{what} is a pointer to memory of unknown size; pass the array, "
                            "tensor or ffi buffer itself, whose size the kernel checks")
    return address, extent // np.dtype(dtype).itemsize


# ffi buffer element types (kind, size, signed) that hold each kernel element type
_BUFFER_ELEMS = {
    "float32": ("float", 4, True),
    "uint16": ("int", 2, False),
    "uint8": ("int", 1, False),
    "int64": ("int", 8, True),
}


def _ffi_buffer(rec: KernelFunction, i: int, buf: Any) -> tuple[int, int]:
    spec, dtype = rec.spec, rec.dtypes[i]
    assert spec is not None and dtype is not None
    elem = buf.elem
    if (elem.kind, elem.size, elem.signed) != _BUFFER_ELEMS[dtype]:
        raise GeneTypeError(f"{spec.full_name}: argument {i + 1} ({spec.names[i]}) must hold "
                            f"{dtype} values, got a buffer of :{elem.name}")
    try:
        address = address_of(buf)
    except TypeError as exc:
        raise GeneTypeError(f"{spec.full_name}: argument {i + 1} ({spec.names[i]}): {exc}") from None
    return address or 0, (extent_of(buf) or 0) // elem.size


def _null_error(rec: KernelFunction, i: int) -> GeneError:
    spec, dtype = rec.spec, rec.dtypes[i]
    assert spec is not None
    return GeneTypeError(f"{spec.full_name}: argument {i + 1} ({spec.names[i]}) must be a "
                         f"{dtype} buffer, got nil")



def _scalar(rec: KernelFunction, i: int, kind: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int if kind == "i64" else (int, float)):
        spec = rec.spec
        assert spec is not None
        want = "an int" if kind == "i64" else "a number"
        raise GeneTypeError(f"{spec.full_name}: argument {i + 1} ({spec.names[i]}) must be "
                            f"{want}, got {describe(value)}")
    if kind == "i64" and not -(2**63) <= value < 2**63:
        raise GeneTypeError(f"{rec.name}: argument {i + 1} is out of the int64 range")
    return value


class Kernel:
    """A member of the `kernel` namespace (see the module doc). Its record, and so the
    compiled cfunc, is made on first use."""

    __slots__ = ("spec", "_rec")

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._rec: KernelFunction | None = None

    @property
    def __gene_foreign__(self) -> KernelFunction:
        if self._rec is None:
            self._rec = _record(self.spec)
        return self._rec

    @property
    def address(self) -> int:
        return self.__gene_foreign__.address

    def _positional(self, args: tuple[Any, ...], kw: dict[str, Any]) -> list[Any]:
        names = self.spec.names
        values = list(args)
        for key, value in kw.items():  # `:eps 1e-6` tails and `^eps` props
            gene_key = key.replace("_", "-")
            if gene_key not in names or names.index(gene_key) < len(args):
                raise GeneArityError(f"{self.spec.full_name} has no free parameter {gene_key}")
            values += [None] * (names.index(gene_key) + 1 - len(values))
            values[names.index(gene_key)] = value
        if len(values) != len(names) or (kw and None in values):
            raise GeneArityError(f"{self.spec.full_name} takes {len(names)} arguments "
                                 f"[{' '.join(names)}], got {len(args) + len(kw)}")
        return values

    def __call__(self, *args: Any, **kw: Any) -> None:
        rec = self.__gene_foreign__
        values = self._positional(args, kw)
        kinds = cabi.param_kinds(self.spec.entry)
        c_args: list[Any] = []
        summary: list[Any] = []
        for i, (kind, value) in enumerate(zip(kinds, values, strict=True)):
            if kind in DTYPES:
                address, count = _buffer(rec, i, value)
                c_args.append(address)
                summary.append(count)
            else:
                c_args.append(_scalar(rec, i, kind, value))
                summary.append(value)
        err = problem(rec, summary)
        if err is not None:
            raise err
        crash.CURRENT[0] = crash.name_address(rec.name)  # for crash reports (ffi/crash.py)
        try:
            status = rec.cfunc(*c_args)
        finally:
            crash.CURRENT[0] = 0
        if status:
            raise problem(rec, summary, status) or GeneError(f"{rec.name}: the call failed")

    def __repr__(self) -> str:
        return f"<kernel {self.spec.gene} [{' '.join(self.spec.names)}]>"


def host_array(value: Any) -> np.ndarray:
    """`(kernel/array t)`: the NumPy array behind a CPU tensor (shared, not copied), which
    tier-1 code takes as an array argument; a NumPy array is returned as it is."""
    if isinstance(value, np.ndarray):
        return value
    if type(value).__name__ == "Tensor" and isinstance(getattr(value, "data", None), np.ndarray):
        return value.data
    raise GeneTypeError(f"kernel/array needs a CPU tensor, got {describe(value)}")


KERNELS: dict[str, Kernel] = {spec.gene: Kernel(spec) for spec in SPECS}
namespace("kernel").members.update(KERNELS)
namespace("kernel").members["array"] = host_array
