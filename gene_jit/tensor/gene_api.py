"""Gene names for tensors and devices: `tensor/*` and `device/*`.

Loaded lazily by gene_jit.runtime.libraries the first time a program touches either
namespace. Gene calls `(tensor/softmax t ^axis 0)` arrive as `softmax(t, axis=0)`.
"""

from __future__ import annotations

from typing import Any

from gene_jit.runtime.builtins import gene_builtin
from gene_jit.runtime.registry import builtin
from gene_jit.runtime.values import Symbol
from gene_jit.tensor import ops, ops_nn
from gene_jit.tensor.device import create_device, open_device
from gene_jit.tensor.tensor import Tensor

TENSOR_NAMES: dict[str, Any] = {
    "create": ops.create,
    "from-array": ops.create,
    "zeros": ops.zeros,
    "ones": ops.ones,
    "rand": ops.rand,
    "randn": ops.randn,
    "arange": ops.arange,
    "seed": ops.seed,
    "shape": ops.shape,
    "reshape": ops.reshape,
    "transpose": ops.transpose,
    "slice": ops.slice_,
    "get": ops.get,
    "stack": ops.stack,
    "concat": ops.concat,
    "add": ops.add,
    "sub": ops.sub,
    "mul": ops.mul,
    "div": ops.div,
    "matmul": ops.matmul,
    "exp": ops.exp,
    "sqrt": ops.sqrt,
    "silu": ops.silu,
    "gelu": ops.gelu,
    "to": ops.to,
    "astype": ops.astype,
    "to-array": ops.to_list,
    "sum": ops_nn.sum_,
    "mean": ops_nn.mean,
    "max": ops_nn.max_,
    "argmax": ops_nn.argmax,
    "softmax": ops_nn.softmax,
    "rmsnorm": ops_nn.rmsnorm,
    "layernorm": ops_nn.layernorm,
    "rope": ops_nn.rope,
    "embedding": ops_nn.embedding,
    "topk": ops_nn.topk,
    "causal-mask": ops_nn.causal_mask,
    "attention": ops_nn.attention,
    "feed-forward": ops_nn.feed_forward,
    "dequantize": ops_nn.dequantize,
}

for _name, _fn in TENSOR_NAMES.items():
    gene_builtin(_name, ns="tensor")(_fn)  # NumPy's errors on bad input name the op


@builtin("dtype", ns="tensor")
def dtype(t: Tensor) -> Symbol:
    """`(tensor/dtype t)`: the symbol `:f32` ..., as `^dtype` takes it."""
    return Symbol(ops.as_tensor(t, op="tensor/dtype").dtype)


@builtin("device", ns="tensor")
def device(t: Tensor) -> Any:
    return ops.as_tensor(t).device


@builtin("tensor?", ns="tensor")
def is_tensor(x: Any) -> bool:
    return isinstance(x, Tensor)


@builtin("create", ns="device")
def device_create(spec: Any = None, strict: Any = False) -> Any:
    """`(device/create :cuda)`: the device; when this machine cannot use it, a warning
    and a device marked unavailable (`:strict true`: an error instead)."""
    return open_device(spec, strict=bool(strict))


@builtin("available?", ns="device")
def device_available(spec: Any = None) -> bool:
    """`(device/available? :cuda)`: whether tensors can be placed on the device."""
    from gene_jit.runtime.errors import GeneError

    try:
        create_device(spec)
    except GeneError:
        return False
    return True
