"""CUDA versions of tensor ops, looked up by name from `ops.on_device`.

Ops defined here run Numba CUDA kernels on device arrays; any op not defined here runs
on the host and its result moves back to the device (correct, but it copies), so this
module grows op by op as the hot paths need it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gene_jit.tensor.ops import TensorShapeError, as_tensor, fmt_shape, to
from gene_jit.tensor.tensor import Tensor


def _f32_3d(t: Tensor, op: str) -> Any:
    from gene_jit.tensor.ops import astype

    if t.dtype != "f32":
        t = astype(t, "f32")
    if t.ndim == 2:
        return t.data.reshape(1, *t.shape)
    if t.ndim == 3:
        return t.data
    raise TensorShapeError(f"{op}: expected [heads tokens dim] or [tokens dim], got {fmt_shape(t.shape)}")


def attention(q: Any, k: Any, v: Any, causal: bool = True, scale: Any = None, offset: int = 0) -> Tensor:
    """Fused attention on the GPU (see ops_nn.attention for the contract)."""
    from gene_jit.tensor_kernels import attention_cuda
    from gene_jit.tensor_kernels.cuda_support import cuda

    q, k, v = as_tensor(q), as_tensor(k), as_tensor(v)
    dev = q.device
    k, v = to(k, dev), to(v, dev)
    qd, kd, vd = _f32_3d(q, "tensor/attention"), _f32_3d(k, "tensor/attention"), _f32_3d(v, "tensor/attention")
    if kd.shape != vd.shape or qd.shape[2] != kd.shape[2] or qd.shape[0] % kd.shape[0]:
        raise TensorShapeError(
            f"tensor/attention: q {fmt_shape(q.shape)} does not fit k {fmt_shape(k.shape)} and v {fmt_shape(v.shape)}"
        )
    sc = 1.0 / math.sqrt(qd.shape[2]) if scale is None else float(scale)
    out = cuda().device_array(qd.shape, np.float32)
    if qd.shape[1] == 1 and not causal:
        attention_cuda.decode_attention(qd.reshape(qd.shape[0], qd.shape[2]), kd, vd, kd.shape[1], sc,
                                        out.reshape(qd.shape[0], qd.shape[2]))
    else:
        attention_cuda.attention(qd, kd, vd, bool(causal), sc, int(offset), out)
    return Tensor(out.reshape(q.shape), "f32", dev)
