"""The engine's tensor ops (ops.py) on a CUDA device, the model's weights placed there, a
KV cache in device memory, and `Rows`: where each row of a forward call goes.

ops.py checks the operands and hands its ops here when they live on a CUDA device; the
kernels are those of cuda_kernels.py. On the GPU a forward call's `pos` may be a `Rows`
(device int32 positions and cache slots, one per token) instead of the first position:
one call then decodes a batch of sequences, each at its own position in its own slot of
a `DeviceKVCache`, and a captured graph (cuda_graph.py) reads the rows of each step from
device memory. A plain integer position means consecutive positions in slot 0.

Nothing here copies between host and device except when a call's tokens or positions
come from the host (eager calls); during a graph capture every operand is already on the
device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gene_jit.engine.ops import KVCache, TensorShapeError
from gene_jit.engine.weights import Weight
from gene_jit.runtime.errors import GeneTypeError
from gene_jit.runtime.values import Symbol
from gene_jit.tensor.device import Device
from gene_jit.tensor.tensor import Tensor
from gene_jit.tensor_kernels.cuda_support import Capture, DeviceError, cuda, device_empty
from gene_jit.tensor_kernels.qgemv_cpu import BF16, F16, F32, Q4_0, Q4_K, Q5_0, Q6_K, Q8_0

__all__ = ["DeviceKVCache", "Rows", "place_model"]


def _k() -> Any:
    from gene_jit.engine import cuda_kernels

    return cuda_kernels


class Rows:
    """Positions `pos [T]` and cache slots `slot [T]` (int32, device memory) of the T rows
    of a forward call on the GPU."""

    __slots__ = ("pos", "slot", "n")

    def __init__(self, pos: Any, slot: Any) -> None:
        self.pos, self.slot, self.n = pos, slot, int(pos.shape[0])

    @classmethod
    def from_host(cls, pos: Any, slot: Any) -> Rows:
        cu = cuda()
        return cls(cu.to_device(np.asarray(pos, np.int32)), cu.to_device(np.asarray(slot, np.int32)))

    def __gene_repr__(self) -> str:
        return f"#<rows {self.n} on the GPU>"

    __repr__ = __gene_repr__


class DeviceKVCache(KVCache):
    """Keys and values of every layer for `slots` sequences of up to `n_ctx` positions in
    device memory: k[layer], v[layer] are [slots, Hkv, n_ctx, D] float16 (the CPU cache's
    values, which it rounds to f16, are the same)."""

    __slots__ = ("slots",)

    def __init__(self, n_layer: int, kv_heads: int, head_dim: int, n_ctx: int, device: Device,
                 slots: int = 1) -> None:
        cu = cuda()
        self.n_ctx, self.kv_heads, self.head_dim, self.device = n_ctx, kv_heads, head_dim, device
        self.slots = slots
        shape = (slots, kv_heads, n_ctx, head_dim)
        self.k = [cu.device_array(shape, np.float16) for _ in range(n_layer)]
        self.v = [cu.device_array(shape, np.float16) for _ in range(n_layer)]

    def __gene_repr__(self) -> str:
        return (f"#<kv-cache {len(self.k)} layers, {self.slots} x {self.n_ctx} positions, "
                f"{self.device}>")

    __repr__ = __gene_repr__


# ---- placing a model on the device ----


def _place_weight(w: Weight, device: Device) -> Weight:
    if w.kind in (F32, F16, BF16) and w.cols % 8:
        raise DeviceError(f"{w.name}: rows of {w.cols} values; the GPU kernels take plain rows "
                          "in multiples of 8")
    raw = w.raw
    if w.kind == F32:
        raw = raw.view(np.float32)
    elif w.kind == F16:
        raw = raw.view(np.float16)
    elif w.kind == BF16:
        raw = raw.view(np.uint16)
    elif w.kind in (Q8_0, Q4_0):
        from gene_jit.engine.cuda_qdot import pack

        raw = pack(raw, w.kind, w.cols)
    return Weight(w.name, w.type_name, w.rows, w.cols, cuda().to_device(np.ascontiguousarray(raw)),
                  device)


def _place(value: Any, device: Device) -> Any:
    if isinstance(value, Weight):
        return _place_weight(value, device)
    if isinstance(value, Tensor):
        return Tensor(cuda().to_device(np.ascontiguousarray(value.data)), value.dtype, device)
    if isinstance(value, dict):
        return {k: _place(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [_place(v, device) for v in value]
    return value


GROUPS = (("wq", "wk", "wv"), ("w-gate", "w-up"))  # products of one x, one launch each


class _Group:
    """Packed weights that multiply the same x, their rows one after another in `raw`:
    the first product of an x computes all of them in one launch, and the others take
    their part of its output."""

    __slots__ = ("raw", "kind", "edges", "last")

    def __init__(self, raw: Any, kind: int, sizes: list[int]) -> None:
        self.raw, self.kind = raw, kind
        self.edges = [0, *np.cumsum(sizes).tolist()]  # first rows of the members, then N
        self.last: tuple[Any, ...] = ()  # (x, its address and shape, outputs) of the last x

    def outputs(self, x: Tensor, xa: Any) -> list[Any]:
        key = (_address(xa), tuple(xa.shape))
        if self.last and self.last[1] == key:
            return self.last[2]
        from gene_jit.engine import cuda_qdot

        t = xa.shape[0]
        xq, xd = _quantised(x, xa)
        e = self.edges
        flat = device_empty((t * e[-1],))
        cuda_qdot.linear(self.raw, self.kind, xq, xd, flat, (e[1], e[2] if len(e) > 3 else e[-1]))
        outs = [flat[t * e[i]: t * e[i + 1]].reshape(t, e[i + 1] - e[i]) for i in range(len(e) - 1)]
        self.last = (xa, key, outs)  # xa kept alive: its address names it while listed
        return outs


_GROUP_OF: dict[int, tuple[Weight, _Group, int]] = {}


def _place_group(ws: list[Weight], device: Device) -> list[Weight]:
    from gene_jit.engine.cuda_qdot import pack

    kind = ws[0].kind
    raw = cuda().to_device(np.concatenate([pack(w.raw, kind, w.cols) for w in ws]))
    group = _Group(raw, kind, [w.rows for w in ws])
    placed, r0 = [], 0
    for i, w in enumerate(ws):
        d = Weight(w.name, w.type_name, w.rows, w.cols, raw[r0: r0 + w.rows], device)
        _GROUP_OF[id(d)] = (d, group, i)
        placed.append(d)
        r0 += w.rows
    return placed


def _place_layer(layer: dict[str, Any], device: Device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for names in GROUPS:
        ws = [layer.get(n) for n in names]
        if all(isinstance(w, Weight) for w in ws):
            kinds = {(w.kind, w.cols) for w in ws}  # type: ignore[union-attr]
            if len(kinds) == 1 and ws[0].kind in (Q8_0, Q4_0):  # type: ignore[union-attr]
                out.update(zip(names, _place_group(ws, device), strict=True))  # type: ignore[arg-type]
    return {k: out[k] if k in out else _place(v, device) for k, v in layer.items()}


def place_model(model: dict[str, Any], device: Device) -> dict[str, Any]:
    """The model map with every weight copied to the device once (quantised blocks stay
    quantised; Q8_0 and Q4_0 packed, GROUPS of them in one array); the config is kept as
    it is."""
    out = {k: _place(v, device) for k, v in model.items() if k not in ("config", "layers")}
    out["layers"] = [_place_layer(layer, device) for layer in model["layers"]]
    out["config"] = model["config"]
    if out["output"] is not out["embed"] and model["output"] is model["embed"]:
        out["output"] = out["embed"]  # tied: one copy
    return out


# ---- operands ----


def _f32(op: str, x: Any, ndim: int | None, what: str = "x") -> Any:
    if not isinstance(x, Tensor) or not x.device.is_cuda:
        raise GeneTypeError(f"{op}: {what} must be a tensor on the GPU, got {type(x).__name__}")
    if x.dtype != "f32":
        raise GeneTypeError(f"{op}: {what} must be an f32 tensor, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise TensorShapeError(f"{op}: {what} must have {ndim} axes, got shape {list(x.shape)}")
    data = x.data
    if not data.is_c_contiguous():
        if Capture.active is not None:
            raise DeviceError(f"{op}: {what} is not contiguous")
        data = cuda().to_device(np.ascontiguousarray(data.copy_to_host()))
    return data


_ROWS: dict[tuple[int, int], Rows] = {}


def rows_of(op: str, pos: Any, t: int, n_ctx: int | None = None) -> Rows:
    """The rows of a call: `pos` itself, or rows pos .. pos + t - 1 of slot 0."""
    if isinstance(pos, Rows):
        if pos.n != t:
            raise TensorShapeError(f"{op}: {pos.n} rows for {t} tokens")
        return pos
    if isinstance(pos, bool) or not isinstance(pos, int) or pos < 0:
        raise GeneTypeError(f"{op}: the position must be an integer >= 0, got {pos!r}")
    if n_ctx is not None and pos + t > n_ctx:
        raise TensorShapeError(f"{op}: positions {pos}..{pos + t - 1} are past the cache's {n_ctx}")
    rows = _ROWS.get((pos, t))
    if rows is None:
        if len(_ROWS) > 256:
            _ROWS.clear()
        rows = _ROWS[(pos, t)] = Rows.from_host(np.arange(pos, pos + t), np.zeros(t))
    return rows


# ---- the ops (ops.py's checks done) ----


_ROUNDING = {F16: 1, BF16: 2, Q8_0: 3, Q4_0: 3, Q5_0: 3, Q4_K: 4, Q6_K: 4}
_LAST_ROUNDED: list[Any] = [None, 0, None]  # x (kept alive, so its id stays its own), rounding, result


def _rounded(x: Tensor, xa: Any, kind: int) -> Any:
    """x's values rounded for weights of `kind`, shared by the products that read the same
    x with the same rounding (q, k and v; gate and up)."""
    if _LAST_ROUNDED[0] is x and _LAST_ROUNDED[1] == _ROUNDING[kind]:
        return _LAST_ROUNDED[2]
    rounded = device_empty(xa.shape)
    _k().round_activations(kind, xa, rounded)
    _LAST_ROUNDED[:] = [x, _ROUNDING[kind], rounded]
    return rounded


def linear(x: Any, w: Any) -> Tensor:
    op = "tensor/linear"
    xa = _f32(op, x, 2)
    t, k = xa.shape
    if isinstance(w, Weight):
        if k != w.cols:
            raise TensorShapeError(f"{op}: x has {k} columns, weight {w.name} takes {w.cols}")
        raw, kind, n = w.raw, w.kind, w.rows
    else:
        raw = _f32(op, w, 2, "the weight")
        if raw.shape[1] != k:
            raise TensorShapeError(f"{op}: x has {k} columns, the weight takes {raw.shape[1]}")
        kind, n = F32, raw.shape[0]
    prompt = t >= MATMUL_ROWS and Capture.active is None and _torch() is not None
    if kind in (Q8_0, Q4_0) and not prompt:
        from gene_jit.engine import cuda_qdot

        grouped = _GROUP_OF.get(id(w))
        if grouped is not None and grouped[0] is w:
            return Tensor(grouped[1].outputs(x, xa)[grouped[2]], "f32", x.device)

        xq, xd = _quantised(x, xa)
        out = device_empty((t, n))
        cuda_qdot.linear(raw, kind, xq, xd, out)
        return Tensor(out, "f32", x.device)
    if kind != F32:
        xa = _rounded(x, xa, kind)
    if prompt:
        return Tensor(_matmul(raw, kind, n, xa), "f32", x.device)
    out = device_empty((t, n))
    _k().linear(raw, kind, xa, out)
    return Tensor(out, "f32", x.device)


_QUANTISED: dict[tuple[int, tuple[int, ...]], tuple[Any, Any, Any]] = {}


def _address(a: Any) -> int:
    try:
        return int(a.__cuda_array_interface__["data"][0])
    except AttributeError:  # Numba's simulator: a host array
        return int(a.__array_interface__["data"][0])


def _remember_quantised(a: Any, xq: Any, xd: Any) -> None:
    """xq, xd: the 8-bit blocks of a's values, which the op that wrote `a` [T, K] wrote
    beside it; a later product reads them instead of quantising `a` again. Entries keep
    their arrays alive, so an address names one array while it is listed."""
    if len(_QUANTISED) >= 8:
        del _QUANTISED[next(iter(_QUANTISED))]
    _QUANTISED[(_address(a), tuple(a.shape))] = (a, xq, xd)


def _quantised(x: Tensor, xa: Any) -> tuple[Any, Any]:
    """x quantised to 8-bit blocks for the integer products: as written beside it (norms,
    GeGLU), else quantised now (and kept for the next products of the same x: q, k and
    v; gate and up)."""
    key = (_address(xa), tuple(xa.shape))
    hit = _QUANTISED.get(key)
    if hit is not None:
        return hit[1], hit[2]
    from gene_jit.engine import cuda_qdot

    t, k = xa.shape
    xq, xd = device_empty((t, k // 4), np.int32), device_empty((t, k // 32))
    cuda_qdot.quantise_q8(xa, xq, xd)
    _remember_quantised(xa, xq, xd)
    return xq, xd


def _quant_buffers(shape: tuple[int, ...]) -> tuple[Any, Any]:
    """Buffers for the 8-bit blocks of a [T, K] result (K a multiple of 32), else Nones."""
    if len(shape) != 2 or shape[1] % 32 or not shape[0]:
        return None, None
    return device_empty((shape[0], shape[1] // 4), np.int32), device_empty((shape[0], shape[1] // 32))


MATMUL_ROWS = 65  # products of this many tokens or more go to cuBLAS (through torch) when present
_SCRATCH_VALUES = 1 << 24  # weight values decoded at a time for it (64 MB of f32)
_TORCH: list[Any] = []


def _torch() -> Any:
    """torch, when it is installed with CUDA (it is optional: prompts then use the kernels)."""
    if not _TORCH:
        try:
            import torch

            _TORCH.append(torch if torch.cuda.is_available() else None)
        except ImportError:
            _TORCH.append(None)
    return _TORCH[0]


def _matmul(raw: Any, kind: int, n: int, xa: Any) -> Any:
    """x [T, K] . w^T for a prompt: bands of w decoded to f32 in a scratch buffer, each
    multiplied by cuBLAS (f32, no TF32), on the stream the kernels use."""
    torch = _torch()
    cu = cuda()
    t, k = xa.shape
    band = max(1, min(n, _SCRATCH_VALUES // k))
    scratch = cu.device_array((band, k), np.float32)
    ids = cu.to_device(np.arange(n, dtype=np.int32))
    out = device_empty((t, n))
    x_t, out_t, w_t = (torch.as_tensor(a, device="cuda") for a in (xa, out, scratch))
    for r0 in range(0, n, band):
        r1 = min(n, r0 + band)
        if kind == F32:
            w_t[: r1 - r0].copy_(torch.as_tensor(raw[r0:r1], device="cuda"))
        else:
            _k().embed_rows(raw, kind, ids[r0:r1], 1.0, scratch[: r1 - r0])
        out_t[:, r0:r1] = x_t @ w_t[: r1 - r0].T
    return out


def embed_rows(w: Weight, tokens: Any) -> Tensor:
    op = "tensor/embed-rows"
    if isinstance(tokens, Tensor) and tokens.device.is_cuda:
        if tokens.dtype != "i32" or tokens.ndim != 1:
            raise GeneTypeError(f"{op}: token ids on the GPU must be a 1-d i32 tensor")
        ids = tokens.data
    else:
        from gene_jit.engine.ops import _token_ids

        ids = cuda().to_device(_token_ids(op, tokens, w.rows).astype(np.int32))
    out = device_empty((int(ids.shape[0]), w.cols))
    _k().embed_rows(w.raw, w.kind, ids, 1.0, out)
    return Tensor(out, "f32", w.device)


def ggml_rmsnorm(x: Any, w: Any, eps: Any) -> Tensor:
    op = "tensor/ggml-rmsnorm"
    xa = _f32(op, x, None)
    wa = _f32(op, w, 1, "the weight")
    if x.ndim < 1 or wa.shape[0] != x.shape[-1]:
        raise TensorShapeError(f"{op}: weight of {wa.shape[0]} values for rows of "
                               f"{x.shape[-1] if x.ndim else 0}")
    cols = x.shape[-1]
    flat = xa.reshape(x.size // cols, cols)
    out = device_empty(flat.shape)
    xq, xd = _quant_buffers(tuple(x.shape))
    _k().rmsnorm(flat, wa, float(eps), out, xq, xd)
    if xq is not None:
        _remember_quantised(out, xq, xd)
    return Tensor(out.reshape(x.shape), "f32", x.device)


def gated(act: str, gate: Any, up: Any) -> Tensor:
    """tensor/geglu (act "gelu") and tensor/swiglu ("silu"), writing the 8-bit blocks the
    down product reads beside the output."""
    op = "tensor/geglu" if act == "gelu" else "tensor/swiglu"
    g, u = _f32(op, gate, None, "gate"), _f32(op, up, None, "up")
    if gate.shape != up.shape:
        raise TensorShapeError(f"{op}: gate {list(gate.shape)} and up {list(up.shape)} differ")
    out = device_empty((gate.size,))
    xq, xd = _quant_buffers(tuple(gate.shape))
    _k().gated(act, g.reshape(gate.size), u.reshape(gate.size), out, xq, xd)
    result = out.reshape(gate.shape)
    if xq is not None:
        _remember_quantised(result, xq, xd)
    return Tensor(result, "f32", gate.device)


_NO_FACTORS: list[Any] = []
# "f32": attention sums in f32 over keys split between warps (fast); "f16": in key order
# with the running sum rounded to f16, as the CPU engine computes it (for comparisons)
ATTENTION_ROUNDING = "f32"


def _rope_setup(op: str, xa: Any, pos: Any, mode: Any, dims: Any, factors: Any) -> tuple[Any, ...]:
    """rope-at's operands checked: (rows, n_rot, neox, factors array, whether used)."""
    t, _, d = xa.shape
    n_rot = d if dims is None else dims
    if not isinstance(n_rot, int) or n_rot < 2 or n_rot > d or n_rot % 2:
        raise TensorShapeError(f"{op}: :dims {n_rot} must be even and at most the head width {d}")
    name = mode.name if isinstance(mode, Symbol) else str(mode)
    if name not in ("neox", "adjacent"):
        raise GeneTypeError(f"{op}: :mode must be :neox or :adjacent, got {name}")
    rows = rows_of(op, pos, t)
    if factors is None:
        if not _NO_FACTORS:
            _NO_FACTORS.append(cuda().to_device(np.ones(1, np.float32)))
        fac, use = _NO_FACTORS[0], False
    else:
        fac, use = _f32(op, factors, 1, ":factors"), True
        if fac.shape[0] != n_rot // 2:
            raise TensorShapeError(f"{op}: :factors holds {fac.shape[0]} values, {n_rot // 2} are needed")
    return rows, n_rot, name == "neox", fac, use


def rope_at(x: Any, pos: Any, base: Any, scale: Any, mode: Any, dims: Any, factors: Any) -> Tensor:
    xa = _f32("tensor/rope-at", x, 3)
    rows, n_rot, neox, fac, use = _rope_setup("tensor/rope-at", xa, pos, mode, dims, factors)
    out = device_empty(xa.shape)
    _k().rope(xa, rows.pos, float(base), float(scale), n_rot, neox, fac, use, out)
    return Tensor(out, "f32", x.device)


def rmsnorm_rope(x: Any, w: Any, eps: Any, pos: Any, base: Any, scale: Any, mode: Any, dims: Any,
                 factors: Any, mul: Any) -> Tensor:
    """RoPE(RMSNorm(x) * w) * mul per head in one kernel (cuda_fused.py)."""
    from gene_jit.engine import cuda_fused

    op = "tensor/rmsnorm-rope"
    xa = _f32(op, x, 3)
    wa = _f32(op, w, 1, "the weight")
    if wa.shape[0] != xa.shape[2]:
        raise TensorShapeError(f"{op}: weight of {wa.shape[0]} values for heads of {xa.shape[2]}")
    rows, n_rot, neox, fac, use = _rope_setup(op, xa, pos, mode, dims, factors)
    out = device_empty(xa.shape)
    if xa.shape[2] > cuda_fused.MAX_HEAD:  # wider heads than its shared memory holds
        normed = device_empty(xa.shape)
        t, h, d = xa.shape
        _k().rmsnorm(xa.reshape(t * h, d), wa, float(eps), normed.reshape(t * h, d))
        _k().rope(normed, rows.pos, float(base), float(scale), n_rot, neox, fac, use, out)
        if mul is None:
            return Tensor(out, "f32", x.device)
        from gene_jit.tensor_kernels import elementwise_cuda as ew

        scaled = device_empty((out.size,))
        ew.binary_scalar(out.reshape(out.size), float(mul), scaled, "mul", False)
        return Tensor(scaled.reshape(xa.shape), "f32", x.device)
    cuda_fused.norm_rope(xa, wa, float(eps), rows.pos, float(base), float(scale), n_rot, neox, fac,
                         use, None if mul is None else float(mul), out)
    return Tensor(out, "f32", x.device)


def add_rmsnorm(x: Any, y: Any, w: Any, eps: Any) -> Tensor:
    """x + RMSNorm(y) * w over the last axis, one kernel (cuda_fused.py)."""
    from gene_jit.engine import cuda_fused

    op = "tensor/add-rmsnorm"
    xa, ya = _f32(op, x, None), _f32(op, y, None, "y")
    wa = _f32(op, w, 1, "the weight")
    shape = tuple(y.shape)
    if tuple(x.shape) != shape or not shape or wa.shape[0] != shape[-1]:
        raise TensorShapeError(f"{op}: x {list(x.shape)}, y {list(shape)} and a weight of "
                               f"{wa.shape[0]} values do not fit")
    cols = shape[-1]
    out = device_empty(shape)
    rows = y.size // cols
    cuda_fused.add_rmsnorm(xa.reshape(rows, cols), ya.reshape(rows, cols), wa, float(eps),
                           out.reshape(rows, cols))
    return Tensor(out, "f32", y.device)


def residual_rmsnorm(x: Any, y: Any, w: Any, eps: Any, post: Any) -> list[Tensor]:
    """[x2 h]: x2 = x + RMSNorm(y) * post (x + y when post is None), h = RMSNorm(x2) * w
    with h's 8-bit blocks beside it, one kernel (cuda_fused.py)."""
    from gene_jit.engine import cuda_fused

    op = "tensor/residual-rmsnorm"
    xa, ya = _f32(op, x, None), _f32(op, y, None, "y")
    wa = _f32(op, w, 1, "the weight")
    pa = None if post is None else _f32(op, post, 1, "^post")
    shape = tuple(y.shape)
    cols = shape[-1] if shape else 0
    if tuple(x.shape) != shape or not shape or wa.shape[0] != cols or (pa is not None and pa.shape[0] != cols):
        raise TensorShapeError(f"{op}: x {list(x.shape)}, y {list(shape)}, a weight of {wa.shape[0]} "
                               f"values{'' if pa is None else f' and ^post of {pa.shape[0]}'} do not fit")
    rows = y.size // cols
    x2, h = device_empty(shape), device_empty(shape)
    xq, xd = _quant_buffers(shape)
    if rows:
        cuda_fused.residual_rmsnorm(xa.reshape(rows, cols), ya.reshape(rows, cols), pa, wa, float(eps),
                                    x2.reshape(rows, cols), h.reshape(rows, cols), xq, xd)
    if xq is not None:
        _remember_quantised(h, xq, xd)
    return [Tensor(x2, "f32", y.device), Tensor(h, "f32", y.device)]


def _cache(op: str, cache: Any) -> DeviceKVCache:
    if not isinstance(cache, DeviceKVCache):
        raise DeviceError(f"{op}: tensors on the GPU need a cache on the GPU, got {cache!r}")
    return cache


def kv_store(cache: Any, layer: int, k: Any, v: Any, pos: Any) -> None:
    op = "tensor/kv-store"
    c = _cache(op, cache)
    ka, va = _f32(op, k, 3, "k"), _f32(op, v, 3, "v")
    want = (ka.shape[0], c.kv_heads, c.head_dim)
    if tuple(ka.shape) != want or tuple(va.shape) != want:
        raise TensorShapeError(f"{op}: k and v must be {list(want)}, got {list(ka.shape)} and "
                               f"{list(va.shape)}")
    rows = rows_of(op, pos, want[0], c.n_ctx)
    _k().kv_store(ka, va, rows.pos, rows.slot, c.k[layer], c.v[layer])


def qk_rope_store(op: str, cache: Any, layer: int, q: Any, k: Any, v: Any, wq: Any, wk: Any, eps: Any,
                  pos: Any, base: Any, scale: Any, mode: Any, dims: Any, factors: Any, mul: Any) -> Tensor:
    """RoPE of q and of k, after their RMSNorms with wq and wk unless those are None; k's
    result and v into the cache: one kernel (cuda_fused.py)."""
    from gene_jit.engine import cuda_fused

    c = _cache(op, cache)
    qa, ka, va = _f32(op, q, 3, "q"), _f32(op, k, 3, "k"), _f32(op, v, 3, "v")
    norm = wq is not None
    wqa: Any = None
    wka: Any = None
    if norm:
        wqa, wka = _f32(op, wq, 1, "q's weight"), _f32(op, wk, 1, "k's weight")
    t, h, d = qa.shape
    want = (t, c.kv_heads, c.head_dim)
    if tuple(ka.shape) != want or tuple(va.shape) != want or d != c.head_dim or h % c.kv_heads:
        raise TensorShapeError(f"{op}: q {list(qa.shape)}, k {list(ka.shape)} and v {list(va.shape)} "
                               f"do not fit a cache of {c.kv_heads} heads of {c.head_dim}")
    if norm and (wqa.shape[0] != d or wka.shape[0] != d):
        raise TensorShapeError(f"{op}: weights of {wqa.shape[0]} and {wka.shape[0]} values for heads of {d}")
    rows, n_rot, neox, fac, use = _rope_setup(op, qa, rows_of(op, pos, t, c.n_ctx), mode, dims, factors)
    if d > cuda_fused.MAX_HEAD:  # wider heads than its shared memory holds: the ops one by one
        if not norm:
            out = rope_at(q, rows, base, scale, mode, dims, factors)
            kv_store(c, layer, rope_at(k, rows, base, scale, mode, dims, factors), v, rows)
            return out
        out = rmsnorm_rope(q, wq, eps, rows, base, scale, mode, dims, factors, mul)
        kv_store(c, layer, rmsnorm_rope(k, wk, eps, rows, base, scale, mode, dims, factors, None),
                 v, rows)
        return out
    out = device_empty(qa.shape)
    cuda_fused.qk_rope_store(qa, ka, va, wqa, wka, 0.0 if eps is None else float(eps), rows.pos,
                             rows.slot, float(base), float(scale), n_rot, neox, fac, use,
                             None if mul is None else float(mul), out, c.k[layer], c.v[layer])
    return Tensor(out, "f32", q.device)


def kv_attention(cache: Any, layer: int, q: Any, pos: Any, window: int, scale: float) -> Tensor:
    op = "tensor/kv-attention"
    c = _cache(op, cache)
    qa = _f32(op, q, 3, "q")
    t, h, d = qa.shape
    if d != c.head_dim or h % c.kv_heads:
        raise TensorShapeError(f"{op}: q is {list(qa.shape)}; the cache holds {c.kv_heads} "
                               f"heads of {c.head_dim}")
    rows = rows_of(op, pos, t, c.n_ctx)
    out = device_empty(qa.shape)
    # the 8-bit blocks of the heads merged ([T, H*D]), which the output product reads
    xq, xd = _quant_buffers((t, h * d)) if d % 32 == 0 else (None, None)
    _k().attention(qa, c.k[layer], c.v[layer], rows.pos, rows.slot, window, scale, out,
                   ATTENTION_ROUNDING == "f16", xq, xd)
    if xq is not None:
        _remember_quantised(out.reshape(t, h * d), xq, xd)
    return Tensor(out, "f32", q.device)
