"""The tensor ops the native engine's Gene forward passes use beyond the general
`tensor/*` set: products with GGUF weights, embedding rows, rotary embedding at a
position, and a KV cache.

    (tensor/linear x W)                      ; x [T K] . W [N K]^T -> [T N]
    (tensor/embed-rows W tokens)             ; rows of W for token ids -> [T E]
    (tensor/geglu gate up)                   ; gelu(gate) * up, GELU as ggml rounds it
    (tensor/swiglu gate up)                  ; silu(gate) * up
    (tensor/ggml-rmsnorm x w eps)            ; RMSNorm over the last axis, as ggml rounds it
    (tensor/rope-at x pos base ^scale s ^mode :neox ^dims n ^factors f)   ; x [T H D]
    (tensor/rmsnorm-rope x w eps pos base ...rope-at's options... ^mul m) ; per head
    (tensor/add-rmsnorm x y w eps)           ; x + (tensor/ggml-rmsnorm y w eps)
    (tensor/residual-rmsnorm x y w eps ^post p)   ; [x2 h]: x2 = x + y, or with ^post
        ; x + (tensor/ggml-rmsnorm y p eps); h = (tensor/ggml-rmsnorm x2 w eps): a layer's
        ; closing residual join and the norm of what reads its output next, one GPU kernel
    (tensor/kv-cache model n-ctx)            ; an empty cache for n-ctx positions
    (tensor/kv-store cache layer k v pos)    ; k, v [T Hkv D] at positions pos..
    (tensor/kv-attention cache layer q pos ^window w ^scale s)   ; -> [T H D]
    (tensor/qk-norm-rope-store cache layer q k v wq wk eps pos base ...rmsnorm-rope's options...)
        ; q's rmsnorm-rope (with ^mul); k's, stored with v as kv-store stores them
    (tensor/qk-rope-store cache layer q k v pos base ...rope-at's options...)   ; the same, no norms

`W` is a `Weight` (gene_jit/engine/weights.py: GGUF blocks, dequantised inside the
product) or a float tensor; large products are split over the engine's threads
(threads.py). Each op checks its operands and raises Gene errors that name
it; each dispatches on the device of its operands. The CPU runs the Numba kernels of
gene_jit/tensor_kernels/qdot_cpu.py, qgemv_cpu.py and engine_cpu.py; a CUDA device those of
gene_jit/engine/cuda_kernels.py (through cuda_ops.py). Registered in the `tensor` namespace (loaded
on first use of a name the general set lacks, gene_jit/runtime/libraries.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gene_jit.engine.threads import run_rows, splits
from gene_jit.engine.weights import Weight
from gene_jit.runtime.errors import GeneError, GeneTypeError
from gene_jit.runtime.registry import builtin
from gene_jit.runtime.values import Symbol
from gene_jit.tensor.device import CPU, Device
from gene_jit.tensor.tensor import Tensor
from gene_jit.tensor_kernels import engine_cpu, qdot_cpu, qgemv_cpu
from gene_jit.tensor_kernels.cuda_support import DeviceError

__all__ = ["KVCache", "add_rmsnorm", "embed_rows", "geglu", "ggml_rmsnorm", "kv_attention", "kv_cache",
           "kv_store", "linear", "qk_norm_rope_store", "qk_rope_store", "residual_rmsnorm", "rmsnorm_rope", "rope_at",
           "swiglu"]


class TensorShapeError(GeneError):
    kind = "tensor shape error"


def _device(op: str, *operands: Any) -> Device:
    """The one device the operands live on (checked on every op of a decode step, so
    without building sets)."""
    dev = None
    for o in operands:
        if isinstance(o, (Tensor, Weight, KVCache)):
            d = o.device
            if dev is None:
                dev = d
            elif d is not dev and d != dev:
                raise DeviceError(f"{op}: operands on different devices ({dev}, {d})")
    return CPU if dev is None else dev


def _gpu() -> Any:
    """The ops on a CUDA device (gene_jit/engine/cuda_ops.py), imported on first use."""
    from gene_jit.engine import cuda_ops

    return cuda_ops


def _f32(op: str, x: Any, ndim: int, what: str = "x") -> np.ndarray:
    if not isinstance(x, Tensor):
        raise GeneTypeError(f"{op}: {what} must be a tensor, got {type(x).__name__}")
    a = x.data if x.dtype == "f32" and x.device is CPU else x.numpy()  # f32 storage: itself
    if a.ndim != ndim:
        raise TensorShapeError(f"{op}: {what} must have {ndim} axes, got shape {list(a.shape)}")
    if a.dtype != np.float32 or not a.flags.c_contiguous:
        a = np.ascontiguousarray(a, dtype=np.float32)
    return a


def _int(op: str, value: Any, what: str, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise GeneTypeError(f"{op}: {what} must be an integer >= {lo}, got {value!r}")
    return value


@builtin("linear", ns="tensor")
def linear(x: Any, w: Any) -> Tensor:
    """x [T K] times the weight W [N K] transposed: [T N] (a GEMV for one token),
    computed as llama.cpp's CPU backend computes it for a weight of W's type, so that the
    engine's numbers are libllama's for the same file: quantised weights multiply
    activations quantised to 8-bit blocks with integer block sums (qdot_cpu.py); f16 and
    bf16 weights activations rounded to that type (qgemv_cpu.py)."""
    op = "tensor/linear"
    if _device(op, x, w).is_cuda:
        return _gpu().linear(x, w)
    xa = _f32(op, x, 2)
    t, k = xa.shape
    if isinstance(w, Weight):
        if k != w.cols:
            raise TensorShapeError(f"{op}: x has {k} columns, weight {w.name} takes {w.cols}")
        out = np.empty((t, w.rows), np.float32)
        work = t * w.rows * w.cols
        if w.kind in qdot_cpu.INTEGER_KINDS and t:
            if splits(w.rows, work):  # activations quantised once, rows over the threads
                qargs = (w.kind, w.raw, w.aux, *qdot_cpu.quantize(w.kind, xa), out)
                run_rows(qdot_cpu.rows, qargs, w.rows, work)
            else:
                qdot_cpu.product(w.kind, w.raw, w.aux, xa, out)
            return Tensor(out, "f32")
        if w.kind != qgemv_cpu.F32:
            rounded = np.empty_like(xa)
            qgemv_cpu.round_activations(w.kind, xa, rounded)
            xa = rounded
        if t == 1:
            x0 = xa[0]
            args = (w.raw, w.kind, x0, qgemv_cpu.sums32(x0), out[0])
            run_rows(qgemv_cpu.qgemv_rows, args, w.rows, work)
        elif t > 1:
            run_rows(qgemv_cpu.qmatmul_rows, (w.raw, w.kind, xa, out), w.rows, work)
        return Tensor(out, "f32")
    wa = _f32(op, w, 2, "the weight")
    if wa.shape[1] != k:
        raise TensorShapeError(f"{op}: x has {k} columns, the weight takes {wa.shape[1]}")
    return Tensor(np.ascontiguousarray(xa @ wa.T), "f32")


def _token_ids(op: str, tokens: Any, n: int) -> np.ndarray:
    if isinstance(tokens, Tensor):
        tokens = tokens.numpy().tolist()
    if not isinstance(tokens, list | tuple) or not tokens:
        raise GeneTypeError(f"{op}: tokens must be a non-empty array of token ids")
    for tok in tokens:
        if isinstance(tok, bool) or not isinstance(tok, int) or not 0 <= tok < n:
            raise GeneTypeError(f"{op}: {tok!r} is not a token id (0..{n - 1})")
    return np.asarray(tokens, dtype=np.int64)


@builtin("embed-rows", ns="tensor")
def embed_rows(w: Any, tokens: Any) -> Tensor:
    """The rows of W [V E] for the token ids: [T E] float32."""
    op = "tensor/embed-rows"
    dev = _device(op, w)
    if not isinstance(w, Weight):
        raise GeneTypeError(f"{op}: expected a model weight, got {type(w).__name__}")
    if dev.is_cuda:
        return _gpu().embed_rows(w, tokens)
    ids = _token_ids(op, tokens, w.rows)
    out = np.empty((ids.shape[0], w.cols), np.float32)
    qgemv_cpu.dequant_rows(w.raw, w.kind, ids, out)
    return Tensor(out, "f32")


@builtin("ggml-rmsnorm", ns="tensor")
def ggml_rmsnorm(x: Any, w: Any, eps: Any = 1e-6) -> Tensor:
    """RMSNorm over the last axis of x with weight w, rounded as ggml rounds it (so the
    engine's numbers follow libllama's; tensor/rmsnorm keeps f64 statistics instead)."""
    op = "tensor/ggml-rmsnorm"
    if _device(op, x, w).is_cuda:
        return _gpu().ggml_rmsnorm(x, w, eps)
    if not isinstance(x, Tensor) or x.ndim < 1:
        raise GeneTypeError(f"{op}: x must be a tensor with at least one axis")
    xa = _f32(op, x, x.ndim)
    wa = _f32(op, w, 1, "the weight")
    if wa.shape[0] != xa.shape[-1]:
        raise TensorShapeError(f"{op}: weight of {wa.shape[0]} values for rows of {xa.shape[-1]}")
    out = np.empty_like(xa)
    engine_cpu.rms_norm(xa.reshape(-1, xa.shape[-1]), wa, float(eps), out.reshape(-1, xa.shape[-1]))
    return Tensor(out, "f32")


@builtin("geglu", ns="tensor")
def geglu(gate: Any, up: Any) -> Tensor:
    """gelu(gate) * up, elementwise, with GELU's tanh form computed as ggml computes it
    (for the input rounded to f16, the result rounded to f16)."""
    return _gated("gelu", gate, up)


@builtin("swiglu", ns="tensor")
def swiglu(gate: Any, up: Any) -> Tensor:
    """silu(gate) * up, elementwise, SiLU as ggml computes it (x / (1 + exp(-x)) in f32)."""
    return _gated("silu", gate, up)


def _gated(act: str, gate: Any, up: Any) -> Tensor:
    op = "tensor/geglu" if act == "gelu" else "tensor/swiglu"
    if _device(op, gate, up).is_cuda:
        return _gpu().gated(act, gate, up)
    g = _f32(op, gate, gate.ndim if isinstance(gate, Tensor) else 2, "gate")
    u = _f32(op, up, g.ndim, "up")
    if g.shape != u.shape:
        raise TensorShapeError(f"{op}: gate {list(g.shape)} and up {list(u.shape)} differ")
    out = np.empty_like(g)
    (engine_cpu.geglu if act == "gelu" else engine_cpu.swiglu)(g.reshape(-1), u.reshape(-1), out.reshape(-1))
    return Tensor(out, "f32")


_ROPE_MODES = {"neox": engine_cpu.ROPE_NEOX, "adjacent": engine_cpu.ROPE_ADJACENT}


@builtin("rope-at", ns="tensor")
def rope_at(x: Any, pos: Any, base: Any, scale: Any = 1.0, mode: Any = "neox",
            dims: Any = None, factors: Any = None) -> Tensor:
    """Rotary embedding of x [T H D], token t at position pos + t; `mode` :neox pairs
    (i, i + dims/2), :adjacent pairs (2i, 2i + 1); `dims` leading dimensions rotate (all
    by default); `factors` [dims/2] divide the frequencies (Llama 3's rope_freqs)."""
    op = "tensor/rope-at"
    if _device(op, x, factors).is_cuda:
        return _gpu().rope_at(x, pos, base, scale, mode, dims, factors)
    xa = _f32(op, x, 3)
    start = _int(op, pos, "the position")
    d = xa.shape[2]
    n_rot = d if dims is None else _int(op, dims, ":dims", 2)
    if n_rot > d or n_rot % 2:
        raise TensorShapeError(f"{op}: :dims {n_rot} must be even and at most the head width {d}")
    name = mode.name if isinstance(mode, Symbol) else str(mode)
    if name not in _ROPE_MODES:
        raise GeneTypeError(f"{op}: :mode must be :neox or :adjacent, got {name}")
    fac = np.zeros(0, np.float32) if factors is None else _f32(op, factors, 1, ":factors")
    if fac.size not in (0, n_rot // 2):
        raise TensorShapeError(f"{op}: :factors holds {fac.size} values, {n_rot // 2} are needed")
    positions = np.arange(start, start + xa.shape[0], dtype=np.int64)
    out = np.empty_like(xa)
    engine_cpu.rope_heads(xa, positions, float(base), float(scale), n_rot, _ROPE_MODES[name],
                          fac, out)
    return Tensor(out, "f32")


@builtin("rmsnorm-rope", ns="tensor")
def rmsnorm_rope(x: Any, w: Any, eps: Any, pos: Any, base: Any, scale: Any = 1.0, mode: Any = "neox",
                 dims: Any = None, factors: Any = None, mul: Any = None) -> Tensor:
    """(tensor/rope-at (tensor/ggml-rmsnorm x w eps) pos base ...) times `mul` (when given)
    for x [T H D]: a QK norm, the rotary embedding and a query's scale, one pass over each
    head on the GPU, the same values as the three ops one after the other."""
    op = "tensor/rmsnorm-rope"
    if mul is not None and (isinstance(mul, bool) or not isinstance(mul, int | float)):
        raise GeneTypeError(f"{op}: ^mul must be a number, got {mul!r}")
    if _device(op, x, w, factors).is_cuda:
        return _gpu().rmsnorm_rope(x, w, eps, pos, base, scale, mode, dims, factors, mul)
    xa, wa = _f32(op, x, 3), _f32(op, w, 1, "the weight")
    if wa.shape[0] != xa.shape[2]:
        raise TensorShapeError(f"{op}: weight of {wa.shape[0]} values for heads of {xa.shape[2]}")
    out = rope_at(ggml_rmsnorm(x, w, eps), pos, base, scale, mode, dims, factors)
    if mul is not None:
        out.data *= np.float32(mul)
    return out


@builtin("add-rmsnorm", ns="tensor")
def add_rmsnorm(x: Any, y: Any, w: Any, eps: Any = 1e-6) -> Tensor:
    """x + (tensor/ggml-rmsnorm y w eps): a post-norm's output joining the residual
    stream x, one pass over each row on the GPU."""
    op = "tensor/add-rmsnorm"
    if _device(op, x, y, w).is_cuda:
        return _gpu().add_rmsnorm(x, y, w, eps)
    normed = ggml_rmsnorm(y, w, eps)
    xa = _f32(op, x, normed.ndim)
    if xa.shape != normed.shape:
        raise TensorShapeError(f"{op}: x {list(xa.shape)} and y {list(normed.shape)} differ")
    return Tensor(xa + normed.data, "f32")


@builtin("residual-rmsnorm", ns="tensor")
def residual_rmsnorm(x: Any, y: Any, w: Any, eps: Any = 1e-6, post: Any = None) -> list[Tensor]:
    """A layer's closing residual join and the norm of what reads its output next, as the
    array [x2 h]: x2 = x + y (with a `post` weight: x + (tensor/ggml-rmsnorm y post eps)),
    h = (tensor/ggml-rmsnorm x2 w eps). One pass over each row on the GPU (h's 8-bit
    blocks written beside it for the products that read h), the same values as the ops
    one after the other."""
    op = "tensor/residual-rmsnorm"
    if isinstance(eps, bool) or not isinstance(eps, int | float):
        raise GeneTypeError(f"{op}: eps must be a number, got {eps!r}")
    if _device(op, x, y, w, post).is_cuda:
        return _gpu().residual_rmsnorm(x, y, w, eps, post)
    if not isinstance(y, Tensor) or y.ndim < 1:
        raise GeneTypeError(f"{op}: y must be a tensor with at least one axis")
    ya, xa = _f32(op, y, y.ndim, "y"), _f32(op, x, y.ndim)
    wa = _f32(op, w, 1, "the weight")
    pa = wa if post is None else _f32(op, post, 1, "^post")
    cols = ya.shape[-1]
    if xa.shape != ya.shape or wa.shape[0] != cols or pa.shape[0] != cols:
        raise TensorShapeError(f"{op}: x {list(xa.shape)}, y {list(ya.shape)}, a weight of "
                               f"{wa.shape[0]} values{'' if post is None else f' and ^post of {pa.shape[0]}'}"
                               " do not fit")
    joined = xa + (ya if post is None else ggml_rmsnorm(y, post, eps).data)
    x2 = Tensor(joined, "f32")
    return [x2, ggml_rmsnorm(x2, w, eps)]


class KVCache:
    """Keys and values of every layer for up to `n_ctx` positions of one sequence:
    k[layer], v[layer] are [Hkv, n_ctx, D] float32 (pages are touched as positions fill)."""

    __slots__ = ("k", "v", "n_ctx", "kv_heads", "head_dim", "device")

    def __init__(self, n_layer: int, kv_heads: int, head_dim: int, n_ctx: int,
                 device: Device = CPU) -> None:
        self.n_ctx, self.kv_heads, self.head_dim, self.device = n_ctx, kv_heads, head_dim, device
        shape = (kv_heads, n_ctx, head_dim)
        self.k = [np.zeros(shape, np.float32) for _ in range(n_layer)]
        self.v = [np.zeros(shape, np.float32) for _ in range(n_layer)]

    def __gene_repr__(self) -> str:
        return f"#<kv-cache {len(self.k)} layers, {self.n_ctx} positions, {self.device}>"

    __repr__ = __gene_repr__


@builtin("kv-cache", ns="tensor")
def kv_cache(model: Any, n_ctx: Any) -> KVCache:
    """An empty cache for a model map (its config) and `n_ctx` positions."""
    op = "tensor/kv-cache"
    if not isinstance(model, dict) or not isinstance(model.get("config"), dict):
        raise GeneTypeError(f"{op}: expected an engine model map")
    c = model["config"]
    n = _int(op, n_ctx, "n-ctx", 1)
    return new_cache(c["n-layer"], c["n-head-kv"], c["head-dim"], n, model["embed"].device, 1,
                     f"{op}: pass a smaller n-ctx")


def new_cache(n_layer: int, kv_heads: int, head_dim: int, n_ctx: int, device: Device, slots: int,
              advice: str) -> KVCache:
    """A KVCache (DeviceKVCache on the GPU, `slots` sequences); memory that cannot be had
    is a GeneError that ends with `advice`, not a MemoryError."""
    try:
        if device.is_cuda:
            return _gpu().DeviceKVCache(n_layer, kv_heads, head_dim, n_ctx, device, slots)
        return KVCache(n_layer, kv_heads, head_dim, n_ctx, device)
    except Exception as exc:  # noqa: BLE001  (numba's CUDA errors have no class of their own)
        if not isinstance(exc, MemoryError) and "OUT_OF_MEMORY" not in str(exc):
            raise
        size = 2 * n_layer * kv_heads * head_dim * n_ctx * slots * 4
        raise GeneError(f"a KV cache of {n_ctx} positions ({size / 2**30:.1f} GiB) does not fit in "
                        f"the memory of {device}; {advice}") from None


def _layer(op: str, cache: Any, layer: Any) -> int:
    if not isinstance(cache, KVCache):
        raise GeneTypeError(f"{op}: expected a KV cache (tensor/kv-cache), got {type(cache).__name__}")
    i = _int(op, layer, "the layer")
    if i >= len(cache.k):
        raise GeneTypeError(f"{op}: layer {i} is past the cache's {len(cache.k)} layers")
    return i


def _span(op: str, cache: KVCache, pos: Any, t: int) -> int:
    start = _int(op, pos, "the position")
    if start + t > cache.n_ctx:
        raise TensorShapeError(f"{op}: positions {start}..{start + t - 1} are past the cache's "
                               f"{cache.n_ctx}")
    return start


@builtin("kv-store", ns="tensor")
def kv_store(cache: Any, layer: Any, k: Any, v: Any, pos: Any) -> None:
    """Keep k, v [T Hkv D] as the layer's keys and values at positions pos .. pos + T - 1."""
    op = "tensor/kv-store"
    i = _layer(op, cache, layer)
    if _device(op, cache, k, v).is_cuda:
        return _gpu().kv_store(cache, i, k, v, pos)
    ka, va = _f32(op, k, 3, "k"), _f32(op, v, 3, "v")
    want = (ka.shape[0], cache.kv_heads, cache.head_dim)
    if ka.shape != want or va.shape != want:
        raise TensorShapeError(f"{op}: k and v must be {list(want)}, got {list(ka.shape)} and "
                               f"{list(va.shape)}")
    start = _span(op, cache, pos, ka.shape[0])
    engine_cpu.kv_store(ka, va, start, cache.k[i], cache.v[i])


@builtin("kv-attention", ns="tensor")
def kv_attention(cache: Any, layer: Any, q: Any, pos: Any, window: Any = 0,
                 scale: Any = None) -> Tensor:
    """Attention of q [T H D] (token t at position pos + t) over the layer's cached keys
    and values, causal, within the last `window` positions when window > 0: [T H D]."""
    op = "tensor/kv-attention"
    i = _layer(op, cache, layer)
    if _device(op, cache, q).is_cuda:
        w = _int(op, window, ":window")
        return _gpu().kv_attention(cache, i, q, pos, w, 1.0 / np.sqrt(q.shape[-1]) if scale is None
                                   else float(scale))
    qa = _f32(op, q, 3, "q")
    t, h, d = qa.shape
    if d != cache.head_dim or h % cache.kv_heads:
        raise TensorShapeError(f"{op}: q is {list(qa.shape)}; the cache holds {cache.kv_heads} "
                               f"heads of {cache.head_dim}")
    start = _span(op, cache, pos, t)
    w = _int(op, window, ":window")
    s = 1.0 / np.sqrt(d) if scale is None else float(scale)
    out = np.empty_like(qa)
    engine_cpu.cached_attention(qa, cache.k[i], cache.v[i], start, w, s, out)
    return Tensor(out, "f32")


@builtin("qk-norm-rope-store", ns="tensor")
def qk_norm_rope_store(cache: Any, layer: Any, q: Any, k: Any, v: Any, wq: Any, wk: Any, eps: Any,
                       pos: Any, base: Any, scale: Any = 1.0, mode: Any = "neox", dims: Any = None,
                       factors: Any = None, mul: Any = None) -> Tensor:
    """The attention's inputs after the products: (tensor/rmsnorm-rope q wq eps pos base ...)
    with ^mul, returned; (tensor/rmsnorm-rope k wk eps pos base ...) and v stored as
    (tensor/kv-store cache layer k v pos) stores them. One kernel on the GPU (a block per
    head of q and of k), the same values as the ops one after the other."""
    op = "tensor/qk-norm-rope-store"
    if isinstance(eps, bool) or not isinstance(eps, int | float):
        raise GeneTypeError(f"{op}: eps must be a number, got {eps!r}")
    if mul is not None and (isinstance(mul, bool) or not isinstance(mul, int | float)):
        raise GeneTypeError(f"{op}: ^mul must be a number, got {mul!r}")
    for what, w in (("q's weight", wq), ("k's weight", wk)):
        if not isinstance(w, Tensor):
            raise GeneTypeError(f"{op}: {what} must be a tensor, got {type(w).__name__}")
    return _qk_store(op, cache, layer, q, k, v, (wq, wk, eps), pos, base, scale, mode, dims, factors, mul)


@builtin("qk-rope-store", ns="tensor")
def qk_rope_store(cache: Any, layer: Any, q: Any, k: Any, v: Any, pos: Any, base: Any,
                  scale: Any = 1.0, mode: Any = "neox", dims: Any = None, factors: Any = None) -> Tensor:
    """(tensor/rope-at q pos base ...) returned; (tensor/rope-at k pos base ...) and v stored
    as (tensor/kv-store cache layer k v pos) stores them: tensor/qk-norm-rope-store without
    the norms (Llama), one kernel on the GPU."""
    return _qk_store("tensor/qk-rope-store", cache, layer, q, k, v, None, pos, base, scale, mode,
                     dims, factors, None)


def _qk_store(op: str, cache: Any, layer: Any, q: Any, k: Any, v: Any, norm: Any, pos: Any, base: Any,
              scale: Any, mode: Any, dims: Any, factors: Any, mul: Any) -> Tensor:
    """q's (norm and) RoPE returned, k's stored with v; norm: (wq, wk, eps) or None."""
    i = _layer(op, cache, layer)
    wq, wk, eps = (None, None, None) if norm is None else norm
    if _device(op, cache, q, k, v, wq, wk, factors).is_cuda:
        return _gpu().qk_rope_store(op, cache, i, q, k, v, wq, wk, eps, pos, base, scale, mode, dims,
                                    factors, mul)
    qa, ka, va = _f32(op, q, 3, "q"), _f32(op, k, 3, "k"), _f32(op, v, 3, "v")
    want = (qa.shape[0], cache.kv_heads, cache.head_dim)
    if ka.shape != want or va.shape != want or qa.shape[2] != cache.head_dim or qa.shape[1] % cache.kv_heads:
        raise TensorShapeError(f"{op}: q {list(qa.shape)}, k {list(ka.shape)} and v {list(va.shape)} "
                               f"do not fit a cache of {cache.kv_heads} heads of {cache.head_dim}")
    _span(op, cache, pos, qa.shape[0])
    if norm is None:
        out = rope_at(q, pos, base, scale, mode, dims, factors)
        kv_store(cache, i, rope_at(k, pos, base, scale, mode, dims, factors), v, pos)
        return out
    wqa, wka = _f32(op, wq, 1, "q's weight"), _f32(op, wk, 1, "k's weight")
    if wqa.shape[0] != qa.shape[2] or wka.shape[0] != qa.shape[2]:
        raise TensorShapeError(f"{op}: weights of {wqa.shape[0]} and {wka.shape[0]} values for heads "
                               f"of {qa.shape[2]}")
    out = rmsnorm_rope(q, wq, eps, pos, base, scale, mode, dims, factors, mul)
    kv_store(cache, i, rmsnorm_rope(k, wk, eps, pos, base, scale, mode, dims, factors), v, pos)
    return out
