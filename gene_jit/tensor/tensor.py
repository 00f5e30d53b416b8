"""The Tensor value: storage (a NumPy array on the CPU, a Numba device array on CUDA),
a dtype name and a device. Zero-copy to and from NumPy, and to PyTorch through DLPack
(CPU) or the CUDA array interface (GPU)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gene_jit.runtime.errors import GeneTypeError
from gene_jit.tensor.device import CPU, Device
from gene_jit.tensor.dtypes import from_numpy_dtype, to_storage, to_values

PREVIEW = 6  # elements shown when a tensor prints


def _operator(op: str, reflected: bool = False) -> Callable[[Tensor, Any], Tensor]:
    """A Python operator method that runs `gene_jit.tensor.ops.<op>`; `reflected` swaps
    the operands (`2 - t` calls `t.__rsub__(2)`)."""

    def method(self: Tensor, other: Any) -> Tensor:
        # Imported on call: ops imports this module.
        from gene_jit.tensor import ops

        fn: Callable[[Any, Any], Tensor] = getattr(ops, op)
        return fn(other, self) if reflected else fn(self, other)

    method.__name__ = f"{op}_reflected" if reflected else op
    return method


class Tensor:
    """A dense, row-major tensor. `data` is the storage array (bf16 as uint16 bits)."""

    __slots__ = ("data", "dtype", "device", "__weakref__")
    __gene_tensor__ = True  # tier 0's `+ - * /` slow paths hand tensors to the operators
    __gene_type__ = "tensor"  # the kind Gene messages and type-of give

    def __init__(self, data: Any, dtype: str, device: Device = CPU) -> None:
        self.data = data
        self.dtype = dtype
        self.device = device

    # ---- construction and conversion ----

    @classmethod
    def from_numpy(cls, a: Any, dtype: str | None = None) -> Tensor:
        """Wrap a NumPy array; zero-copy when it already has the dtype's storage type."""
        arr = np.asarray(a)
        if dtype is None:
            if arr.dtype == np.bool_:
                arr = arr.astype(np.int32)
            dtype = from_numpy_dtype(arr.dtype)
            return cls(arr, dtype, CPU)
        return cls(to_storage(arr, dtype), dtype, CPU)

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array: the storage itself on the CPU (bf16 widens to
        float32, a copy), a host copy for CUDA tensors."""
        host = self.data.copy_to_host() if self.device.is_cuda else self.data
        return to_values(host, self.dtype)

    def storage_host(self) -> np.ndarray:
        """The raw storage array on the host (bf16 as uint16 bits)."""
        return self.data.copy_to_host() if self.device.is_cuda else self.data

    @classmethod
    def from_torch(cls, t: Any) -> Tensor:
        """A tensor sharing memory with a PyTorch tensor (CPU: DLPack; CUDA: the CUDA
        array interface)."""
        name = str(t.dtype).replace("torch.", "")
        dtype = {
            "float32": "f32",
            "float16": "f16",
            "bfloat16": "bf16",
            "float64": "f64",
            "int32": "i32",
            "int64": "i64",
        }.get(name)
        if dtype is None:
            raise GeneTypeError(f"tensors cannot hold torch dtype {t.dtype}")
        t = t.contiguous()
        if dtype == "bf16":
            t = t.view(__import__("torch").int16)
        if t.is_cuda:
            from gene_jit.tensor_kernels.cuda_support import cuda

            data = cuda().as_cuda_array(t)
            if dtype == "bf16":
                data = data.view(np.uint16)
            return cls(data, dtype, Device("cuda", t.device.index or 0))
        arr = np.from_dlpack(t)
        return cls(arr.view(np.uint16) if dtype == "bf16" else arr, dtype, CPU)

    def to_torch(self) -> Any:
        """A PyTorch tensor sharing this tensor's memory."""
        import torch

        if self.device.is_cuda:
            t = torch.as_tensor(self.data, device=f"cuda:{self.device.index}")
        else:
            t = torch.from_dlpack(self.data)
        return t.view(torch.bfloat16) if self.dtype == "bf16" else t

    def __dlpack__(self, stream: Any = None) -> Any:
        if self.device.is_cuda:
            raise GeneTypeError("DLPack export of CUDA tensors is not supported; use to_torch()")
        return self.data.__dlpack__()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, self.device.index) if self.device.is_cuda else (1, 0)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self.numpy()
        return a.astype(dtype) if dtype is not None else a

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        if not self.device.is_cuda:
            raise AttributeError("__cuda_array_interface__")
        return self.data.__cuda_array_interface__

    # ---- shape ----

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.data.shape)

    @property
    def ndim(self) -> int:
        return len(self.data.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.data.shape:
            n *= int(d)
        return n

    def __len__(self) -> int:
        if self.ndim == 0:
            raise GeneTypeError("a 0-d tensor has no length")
        return self.shape[0]

    # ---- Gene equality and selectors ----

    def __gene_equal__(self, other: Tensor) -> bool:
        """Gene `==` (structural, kinds must match): the same dtype, the same shape and
        equal elements, as NumPy's `array_equal` (NaN is not equal to itself, as a
        Gene float is not; -0.0 equals 0.0). The device does not matter."""
        if self.dtype != other.dtype or self.shape != other.shape:
            return False
        return bool(np.array_equal(self.numpy(), other.numpy()))

    def __gene_get__(self, key: Any) -> Any:
        """`t/0`, `(t ./ 0)`: as `(tensor/get t 0)`, a number or a sub-tensor;
        `t/shape`, `t/dtype`, `t/device`, `t/ndim` and `t/size` as a NumPy array's
        attributes read from Gene (`tensor/shape` and friends give the same)."""
        from gene_jit.tensor import ops

        if isinstance(key, str):
            return self._field(key)
        return ops.get(self, key)

    def _field(self, key: str) -> Any:
        from gene_jit.runtime.values import Symbol

        fields = {"shape": lambda: list(self.shape), "dtype": lambda: Symbol(self.dtype),
                  "device": lambda: self.device, "ndim": lambda: self.ndim,
                  "size": lambda: self.size}
        if key not in fields:
            raise GeneTypeError(
                f'a tensor has no field "{key}": t/0 selects an element, and t/shape, '
                "t/dtype, t/device, t/ndim and t/size (or (tensor/shape t) ...) describe it"
            )
        return fields[key]()

    # ---- printing ----

    def __gene_repr__(self) -> str:
        dims = " ".join(str(d) for d in self.shape)
        return f"#<tensor [{dims}] {self.dtype} {self.device} {self._preview()}>"

    def _preview(self) -> str:
        if self.device.is_cuda:
            # Copy only the few elements shown, never the whole device array.
            flat = self.data.reshape(self.size) if self.size else self.data
            raw_head = flat[:PREVIEW].copy_to_host() if self.size else np.zeros(0)
            raw_tail = flat[self.size - 2 :].copy_to_host() if self.size > PREVIEW else raw_head[:0]
            head, tail = to_values(raw_head, self.dtype), to_values(raw_tail, self.dtype)
        else:
            flat = to_values(np.ascontiguousarray(self.data).reshape(-1), self.dtype)
            head = flat[:PREVIEW] if self.size <= PREVIEW else flat[:4]
            tail = flat[-2:] if self.size > PREVIEW else flat[:0]
        if self.size > PREVIEW:
            head = head[:4]
        parts = [_fmt(x) for x in head]
        if self.size > PREVIEW:
            parts += ["..."] + [_fmt(x) for x in tail]
        return "[" + " ".join(parts) + "]"

    def __repr__(self) -> str:
        return self.__gene_repr__()

    # ---- Python operators (used by infix arithmetic in Gene) ----

    __add__ = _operator("add")
    __radd__ = _operator("add", reflected=True)
    __sub__ = _operator("sub")
    __rsub__ = _operator("sub", reflected=True)
    __mul__ = _operator("mul")
    __rmul__ = _operator("mul", reflected=True)
    __truediv__ = _operator("div")
    __rtruediv__ = _operator("div", reflected=True)
    __matmul__ = _operator("matmul")

    def __neg__(self) -> Tensor:
        from gene_jit.runtime.errors import GeneOverflowError
        from gene_jit.tensor import ops
        from gene_jit.tensor.overflow import overflow

        try:
            return ops.sub(0, self)
        except GeneOverflowError:
            # negation is computed as 0 - t; the error names what the program wrote
            raise overflow("-", "negation", self.dtype) from None

    def __bool__(self) -> bool:
        """Gene truthiness: every value but nil and false is true, a tensor too (tier 0's
        `a / b` tests its divisor for zero before dividing)."""
        return True

    # Tier 0 emits `a + b`, `a - b` and `a * b` inline with an int64 range check on the
    # result (compiler_ops.arith): `r <= COMPACT and r >= -COMPACT` first, then
    # `INT_MIN <= r and r <= INT_MAX`, whose slow path is for ints that overflow. A
    # tensor result is within that check's meaning (it is not an int that overflowed):
    # comparing a tensor with exactly those bounds says so, and any other comparison of
    # a tensor stays what it was, a Gene type error.
    def __ge__(self, other: Any) -> bool:
        if type(other) is int and other in _LOWER_BOUNDS:
            return True
        return NotImplemented

    def __le__(self, other: Any) -> bool:
        if type(other) is int and other in _UPPER_BOUNDS:
            return True
        return NotImplemented


_INT_MIN, _INT_MAX, _COMPACT = -(2**63), 2**63 - 1, 2**30 - 1  # as in compiler_ops.arith
_LOWER_BOUNDS = frozenset((_INT_MIN, -_COMPACT))
_UPPER_BOUNDS = frozenset((_INT_MAX, _COMPACT))


def _fmt(x: Any) -> str:
    if isinstance(x, (np.floating, float)):
        return f"{float(x):.4g}"
    return str(int(x))
