"""GPU kernel bench: the Numba CUDA kernels against PyTorch in the same run: decode
attention (SDPA), f16 GEMV (mv), f32 matmul (mm, TF32 off), the gated feed-forward,
RMSNorm, LayerNorm, softmax, SiLU and broadcast add, with RoPE and GGUF dequantisation
on their own; achieved GB/s (bandwidth-bound kernels, against the card's measured copy
bandwidth) or TFLOP/s (matmul).

Each kernel is validated against its float64 reference before it is timed. Timing counts
GPU time only: a sleep kernel first holds the GPU so that a batch of launches queues up
behind it, then CUDA events around the batch give the per-launch time with no launch gaps
(the host-side time per call is printed separately as "call"). Inputs rotate over enough
copies to exceed the 50 MB L2, so repeated launches stream from HBM as a real decode step
does. Run on a GPU machine:
    python bench/gpu_kernels.py [--only decode,dequant] [--sweep] [--sweep-gemv]
`--only` keeps the cases whose label contains one of the given words (the copy bandwidth
is always measured); `--sweep` first times the shape variants of the decode kernel.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gene_jit.tensor_kernels import reference as ref  # noqa: E402
from gene_jit.tensor_kernels.cuda_support import cuda  # noqa: E402

REPS = 100
ROUNDS = 5
ROTATE_BYTES = 256 * 1024 * 1024  # > 2x L2: repeated launches cannot hit in cache
ONLY: list[str] = []  # label words from --only; empty: every case


def wanted(label: str) -> bool:
    return not ONLY or any(word in label for word in ONLY)


def copies_for(nbytes: int) -> int:
    return max(1, min(16, math.ceil(ROTATE_BYTES / nbytes)))


_sleep_kernel: Any = None


def numba_hold(ms: float) -> None:
    """Keep the GPU busy for about `ms` so the launches that follow queue up."""
    global _sleep_kernel
    cu = cuda()
    if _sleep_kernel is None:
        @cu.jit
        def hold(n: int) -> None:
            for _ in range(n):
                cu.nanosleep(100000)

        _sleep_kernel = hold
    _sleep_kernel[1, 1](int(ms * 10))


def gpu_time_us(launch: Callable[[int], None], hold: Callable[[float], None], event: Callable[[], Any],
                sync: Callable[[], None], elapsed: Callable[[Any, Any], float]) -> tuple[float, float]:
    """(median GPU us per launch over ROUNDS batches of REPS, host us per call)."""
    for i in range(3):
        launch(i)
    sync()
    t0 = time.perf_counter()
    for i in range(REPS):
        launch(i)
    sync()
    host_us = (time.perf_counter() - t0) / REPS * 1e6
    hold_ms = max(5.0, 2.0 * host_us * REPS / 1e3)  # the hold outlasts the batch's issue
    times = []
    for _ in range(ROUNDS):
        a, b = event(), event()
        hold(hold_ms)
        a.record()
        for i in range(REPS):
            launch(i)
        b.record()
        b.synchronize()
        times.append(elapsed(a, b) * 1e3 / REPS)
    return float(np.median(times)), host_us


def numba_time(launch: Callable[[int], None]) -> tuple[float, float]:
    cu = cuda()
    return gpu_time_us(launch, numba_hold, cu.event, cu.synchronize, cu.event_elapsed_time)


def torch_time(torch: Any, launch: Callable[[int], None]) -> tuple[float, float]:
    def hold(ms: float) -> None:
        torch.cuda._sleep(int(ms * 2e6))  # cycles at about 2 GHz

    return gpu_time_us(launch, hold, lambda: torch.cuda.Event(enable_timing=True),
                       torch.cuda.synchronize, lambda a, b: a.elapsed_time(b))


def copy_bandwidth(torch: Any) -> float:
    """Device-to-device copy GB/s, counting bytes read plus bytes written: a Numba copy
    kernel, and PyTorch's copy where present. Returns the larger."""
    cu = cuda()
    n = 1 << 27  # 1 GiB of 8-byte words

    @cu.jit
    def copy(src: Any, dst: Any) -> None:
        i = cu.grid(1)
        stride = cu.gridsize(1)
        while i < src.size:
            dst[i] = src[i]
            i += stride

    src = cu.to_device(np.arange(n, dtype=np.int64))
    dst = cu.device_array(n, np.int64)
    blocks = 132 * 16
    us, _ = numba_time(lambda i: copy[blocks, 256](src, dst))
    if not np.array_equal(dst[:1000].copy_to_host(), np.arange(1000)):
        raise SystemExit("copy kernel wrote wrong data")
    best = 2 * 8 * n / us / 1e3
    line = f"copy bandwidth (read+write): numba kernel {best:.0f} GB/s"
    if torch is not None:
        ts = torch.empty(8 * n, dtype=torch.uint8, device="cuda").random_()
        td = torch.empty_like(ts)
        tus, _ = torch_time(torch, lambda i: td.copy_(ts))
        tgb = 2 * 8 * n / tus / 1e3
        line += f", torch copy_ {tgb:.0f} GB/s"
        best = max(best, tgb)
        del ts, td
        torch.cuda.empty_cache()
    print(line, flush=True)
    return best


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())


def bench_gemv(peak: float, torch: Any) -> None:
    from gene_jit.tensor_kernels import gemv_cuda

    cu = cuda()
    g = np.random.default_rng(0)
    for n, k in ((4096, 4096), (8192, 8192), (14336, 4096)):
        if not wanted(f"gemv f16 {n}x{k}"):
            continue
        w = (g.standard_normal((n, k)) * 0.02).astype(np.float16)
        x = g.standard_normal(k).astype(np.float32)
        reps = copies_for(w.nbytes)
        dws = [cu.to_device(w) for _ in range(reps)]
        dx, do = cu.to_device(x), cu.to_device(np.full(n, np.nan, np.float32))
        gemv_cuda.gemv(dws[0], dx, do)
        err = rel(do.copy_to_host(), ref.gemv(w, x))
        us, call = numba_time(lambda i, dws=dws, dx=dx, do=do: gemv_cuda.gemv(dws[i % len(dws)], dx, do))
        gbs = (w.nbytes + x.nbytes + 4 * n) / us / 1e3
        line = (f"gemv f16 {n}x{k}: numba {us:7.1f} us {gbs:6.0f} GB/s ({gbs / peak:4.0%} of copy, "
                f"call {call:5.1f} us) rel.err {err:.1e}")
        del dws
        if torch is not None:
            tws = [torch.from_numpy(w).cuda() for _ in range(reps)]
            tx = torch.from_numpy(x).half().cuda()
            tus, _ = torch_time(torch, lambda i, tws=tws, tx=tx: torch.mv(tws[i % len(tws)], tx))
            tg = (w.nbytes + 2 * k + 2 * n) / tus / 1e3
            line += f" | torch {tus:7.1f} us {tg:6.0f} GB/s | speedup {tus / us:4.2f}x"
            del tws
            torch.cuda.empty_cache()
        print(line, flush=True)


def bench_decode(peak: float, torch: Any) -> None:
    from gene_jit.tensor_kernels import attention_cuda

    cu = cuda()
    g = np.random.default_rng(1)
    for h, hkv, ctx, d in ((32, 32, 4096, 128), (32, 8, 4096, 128), (32, 8, 16384, 128), (32, 32, 8192, 128)):
        if not wanted(f"decode attn H{h}/{hkv} ctx {ctx}"):
            continue
        q = g.standard_normal((h, d)).astype(np.float32)
        kc = g.standard_normal((hkv, ctx, d)).astype(np.float16)
        vc = g.standard_normal((hkv, ctx, d)).astype(np.float16)
        nbytes = kc.nbytes + vc.nbytes
        reps = copies_for(nbytes)
        dq = cu.to_device(q)
        caches = [(cu.to_device(kc), cu.to_device(vc)) for _ in range(reps)]
        out = cu.to_device(np.full((h, d), np.nan, np.float32))
        sc = 1 / math.sqrt(d)

        def run(i: int, dq: Any = dq, caches: Any = caches, out: Any = out, ctx: int = ctx, sc: float = sc) -> None:
            dk, dv = caches[i % len(caches)]
            attention_cuda.decode_attention(dq, dk, dv, ctx, sc, out)

        run(0)
        err = rel(out.copy_to_host(), ref.decode_attention(q, kc, vc, ctx, sc))
        us, call = numba_time(run)
        gbs = nbytes / us / 1e3
        line = (f"decode attn H{h}/{hkv} ctx {ctx} d{d} f16: numba {us:6.1f} us {gbs:6.0f} GB/s "
                f"({gbs / peak:4.0%} of copy, call {call:5.1f} us) rel.err {err:.1e}")
        del caches
        if torch is not None:
            import torch.nn.functional as F

            tq = torch.from_numpy(q).half().cuda().view(1, h, 1, d)
            tcs = [(torch.from_numpy(kc).cuda().view(1, hkv, ctx, d), torch.from_numpy(vc).cuda().view(1, hkv, ctx, d))
                   for _ in range(reps)]

            def trun(i: int, tq: Any = tq, tcs: Any = tcs) -> None:
                tk, tv = tcs[i % len(tcs)]
                F.scaled_dot_product_attention(tq, tk, tv, enable_gqa=True)

            tus, _ = torch_time(torch, trun)
            line += f" | torch SDPA {tus:6.1f} us {nbytes / tus / 1e3:6.0f} GB/s | speedup {tus / us:4.2f}x"
            del tcs
            torch.cuda.empty_cache()
        print(line, flush=True)


def _line(label: str, us: float, call: float, err: float, amount: float, unit: str, tus: float | None) -> str:
    """One bench line: `amount` is bytes (unit GB/s) or flops (unit TFLOP/s) per launch."""
    scale = 1e3 if unit == "GB/s" else 1e6
    line = f"{label}: numba {us:8.1f} us {amount / us / scale:7.1f} {unit} (call {call:5.1f} us) rel.err {err:.1e}"
    if tus is not None:
        line += f" | torch {tus:8.1f} us {amount / tus / scale:7.1f} {unit} | speedup {tus / us:4.2f}x"
    return line


def _random_blocks(g: np.random.Generator, kind: str, nblocks: int) -> np.ndarray:
    """Random GGUF blocks with small finite f16 scales (at the offsets reference.py reads)."""
    raw = g.integers(0, 256, size=(nblocks, ref.BLOCK_BYTES[kind]), dtype=np.uint8)
    for col in {"q8_0": (0,), "q4_0": (0,), "q4_k": (0, 2), "q6_k": (208,)}[kind]:
        raw[:, col:col + 2] = g.uniform(0.001, 0.05, nblocks).astype(np.float16).view(np.uint8).reshape(nblocks, 2)
    return raw.reshape(-1)


def bench_new_kernels(torch: Any) -> None:
    """Matmul, feed-forward, row ops, RoPE, dequantisation and element-wise ops, each
    validated against its float64 reference, then timed beside the PyTorch equivalent."""
    g = np.random.default_rng(3)
    for part in (_bench_matmul, _bench_feed_forward, _bench_rows, _bench_rope, _bench_dequant):
        part(g, torch)


def _bench_matmul(g: np.random.Generator, torch: Any) -> None:
    """f32 (NN) matmul, 2048^3."""
    from gene_jit.tensor_kernels import matmul_cuda

    n = 2048
    if not wanted(f"matmul f32 {n}^3"):
        return
    cu = cuda()
    a, b = g.standard_normal((1, n, n)).astype(np.float32), g.standard_normal((1, n, n)).astype(np.float32)
    da, db, do = cu.to_device(a), cu.to_device(b), cu.device_array((1, n, n), np.float32)
    matmul_cuda.matmul(da, db, do)
    err = rel(do.copy_to_host()[0, :64], ref.matmul(a[0, :64], b[0]))
    us, call = numba_time(lambda i: matmul_cuda.matmul(da, db, do))
    tus = None
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = False
        ta, tb = torch.from_numpy(a[0]).cuda(), torch.from_numpy(b[0]).cuda()
        tus, _ = torch_time(torch, lambda i: torch.mm(ta, tb))
    print(_line(f"matmul f32 {n}^3", us, call, err, 2 * n**3, "TFLOP/s", tus), flush=True)


def _bench_feed_forward(g: np.random.Generator, torch: Any) -> None:
    """One token (3 GEMVs, f16 weights) and 64 tokens (gated dual GEMM, f32)."""
    from gene_jit.tensor_kernels import matmul_cuda

    cu = cuda()
    for t, e, f, wdt in ((1, 4096, 14336, np.float16), (64, 2048, 5632, np.float32)):
        label = f"feed-forward T{t} E{e} F{f} {np.dtype(wdt).name}"
        if not wanted(label):
            continue
        x = g.standard_normal((t, e)).astype(np.float32)
        ws = [(g.standard_normal(s) * 0.02).astype(wdt) for s in ((f, e), (f, e), (e, f))]
        dx, dws, dout = cu.to_device(x), [cu.to_device(w) for w in ws], cu.device_array((t, e), np.float32)
        matmul_cuda.feed_forward(dx, *dws, "silu", dout)
        err = rel(dout.copy_to_host(), ref.feed_forward(x, *ws))
        us, call = numba_time(lambda i, dx=dx, dws=dws, dout=dout: matmul_cuda.feed_forward(dx, *dws, "silu", dout))
        tus = None
        if torch is not None:
            import torch.nn.functional as F

            tx = torch.from_numpy(x).cuda().to(torch.float16 if wdt == np.float16 else torch.float32)
            tg, tu, td = (torch.from_numpy(w).cuda() for w in ws)
            tus, _ = torch_time(torch, lambda i, tx=tx, tg=tg, tu=tu, td=td: (F.silu(tx @ tg.T) * (tx @ tu.T)) @ td.T)
        wbytes = sum(w.nbytes for w in ws)
        amount, unit = (wbytes, "GB/s") if t == 1 else (6 * t * e * f, "TFLOP/s")
        print(_line(label, us, call, err, amount, unit, tus), flush=True)


def _bench_rows(g: np.random.Generator, torch: Any) -> None:
    """Row ops and element-wise ops over [4096, 4096] f32: bytes read + written."""
    from gene_jit.tensor_kernels import elementwise_cuda, norms_cuda

    cu = cuda()
    r, c = 4096, 4096
    x = g.standard_normal((r, c)).astype(np.float32)
    w, bias = g.standard_normal(c).astype(np.float32), g.standard_normal(c).astype(np.float32)
    dx, dw, dbias, dout = cu.to_device(x), cu.to_device(w), cu.to_device(bias), cu.device_array((r, c), np.float32)
    tx = torch.from_numpy(x).cuda() if torch is not None else None
    tw = torch.from_numpy(w).cuda() if torch is not None else None
    tbias = torch.from_numpy(bias).cuda() if torch is not None else None
    rows = [
        ("rmsnorm", lambda i: norms_cuda.rmsnorm(dx, dw, 1e-6, dout), lambda: ref.rmsnorm(x[:64], w),
         lambda i: tx * torch.rsqrt((tx * tx).mean(-1, keepdim=True) + 1e-6) * tw),
        ("layernorm", lambda i: norms_cuda.layernorm(dx, dw, dbias, 1e-5, dout), lambda: ref.layernorm(x[:64], w, bias),
         lambda i: torch.nn.functional.layer_norm(tx, (c,), tw, tbias)),
        ("softmax", lambda i: norms_cuda.softmax(dx, dout), lambda: ref.softmax(x[:64]),
         lambda i: torch.softmax(tx, -1)),
        ("silu", lambda i: elementwise_cuda.unary(dx.reshape(r * c), dout.reshape(r * c), "silu"),
         lambda: ref.silu(x[:64]), lambda i: torch.nn.functional.silu(tx)),
        ("add row-broadcast", lambda i: elementwise_cuda.binary(dx.reshape(r * c), dw, dout.reshape(r * c), "add"),
         lambda: x[:64].astype(np.float64) + w, lambda i: tx + tw),
    ]
    for label, launch, want, tlaunch in rows:
        if not wanted(f"{label} {r}x{c} f32"):
            continue
        launch(0)
        err = rel(dout.copy_to_host()[:64], want())
        us, call = numba_time(launch)
        tus = torch_time(torch, tlaunch)[0] if torch is not None else None
        print(_line(f"{label} {r}x{c} f32", us, call, err, 2 * x.nbytes, "GB/s", tus), flush=True)


def _bench_rope(g: np.random.Generator, torch: Any) -> None:  # noqa: ARG001 (no torch peer)
    """RoPE over [32 heads, 512 tokens, 128]."""
    from gene_jit.tensor_kernels import norms_cuda

    if not wanted("rope 32x512x128 f32"):
        return
    cu = cuda()
    xr = g.standard_normal((32, 512, 128)).astype(np.float32)
    pos = np.arange(512, dtype=np.int64)
    dxr, dpos, dor = cu.to_device(xr), cu.to_device(pos), cu.device_array(xr.shape, np.float32)
    norms_cuda.rope(dxr, dpos, 10000.0, dor)
    err = rel(dor.copy_to_host(), ref.rope(xr, pos))
    us, call = numba_time(lambda i: norms_cuda.rope(dxr, dpos, 10000.0, dor))
    print(_line("rope 32x512x128 f32", us, call, err, 2 * xr.nbytes, "GB/s", None), flush=True)


def _bench_dequant(g: np.random.Generator, torch: Any) -> None:  # noqa: ARG001 (no torch peer)
    """Dequantisation of 64M values: bytes read + f32 written."""
    from gene_jit.tensor_kernels import dequant_cuda

    cu = cuda()
    for kind in ("q8_0", "q4_0", "q4_k", "q6_k"):
        nblocks = (1 << 26) // ref.BLOCK_VALUES[kind]
        raw = _random_blocks(g, kind, nblocks)
        label = f"dequant {kind} {nblocks * ref.BLOCK_VALUES[kind] // (1 << 20)}M values"
        if not wanted(label):
            continue
        draw = cu.to_device(raw)
        dq = cu.device_array(dequant_cuda.out_size(kind, raw.size), np.float32)
        dequant_cuda.dequantize(draw, kind, dq)
        check_blocks = 256
        err = rel(dq.copy_to_host()[:check_blocks * ref.BLOCK_VALUES[kind]],
                  ref.DEQUANT[kind](raw[:check_blocks * ref.BLOCK_BYTES[kind]]))
        us, call = numba_time(lambda i, draw=draw, kind=kind, dq=dq: dequant_cuda.dequantize(draw, kind, dq))
        print(_line(label, us, call, err, raw.nbytes + 4 * dq.size, "GB/s", None), flush=True)
        del draw, dq


def _sweep_gemv(g: np.random.Generator) -> None:
    from gene_jit.tensor_kernels import gemv_cuda

    cu = cuda()
    for n, k in ((4096, 4096), (8192, 8192)):
        w = (g.standard_normal((n, k)) * 0.02).astype(np.float16)
        dws = [cu.to_device(w) for _ in range(copies_for(w.nbytes))]
        dx, do = cu.to_device(g.standard_normal(k).astype(np.float32)), cu.device_array(n, np.float32)
        for rows, warps in ((1, 4), (2, 4), (4, 4), (2, 8), (4, 2), (1, 8)):
            us, _ = numba_time(lambda i, dws=dws, dx=dx, do=do, rows=rows, warps=warps: gemv_cuda.gemv(
                dws[i % len(dws)], dx, do, rows, warps))
            print(f"sweep gemv {n}x{k} rows {rows} warps {warps}: {us:7.1f} us {w.nbytes / us / 1e3:6.0f} GB/s",
                  flush=True)
        del dws


def sweep() -> None:
    """GPU time of the kernels' shape variants (rows/warps for GEMV; blocks per SM,
    unroll and warps per block for decode)."""
    from gene_jit.tensor_kernels import decode_cuda

    cu = cuda()
    g = np.random.default_rng(2)
    if "--sweep-gemv" in sys.argv:
        _sweep_gemv(g)
    for h, hkv, ctx in ((32, 8, 4096), (32, 8, 16384), (32, 32, 8192)):
        d = 128
        kc = g.standard_normal((hkv, ctx, d)).astype(np.float16)
        caches = [(cu.to_device(kc), cu.to_device(kc)) for _ in range(copies_for(2 * kc.nbytes))]
        dq, out = cu.to_device(g.standard_normal((h, d)).astype(np.float32)), cu.device_array((h, d), np.float32)
        for per_sm in (0, 1, 2):
            decode_cuda.BLOCKS_PER_SM = per_sm
            for unroll, warps in ((2, 4), (4, 4), (2, 8), (4, 8)):
                if warps > decode_cuda.default_warps(h // hkv):
                    continue
                us, _ = numba_time(lambda i, c=caches, dq=dq, out=out, ctx=ctx, u=unroll, w=warps: decode_cuda.decode(
                    dq, c[i % len(c)][0], c[i % len(c)][1], ctx, 0.1, out, u, w))
                print(f"sweep decode H{h}/{hkv} ctx {ctx} blocks/SM {per_sm} unroll {unroll} warps {warps}: "
                      f"{us:6.1f} us {2 * kc.nbytes / us / 1e3:6.0f} GB/s", flush=True)
        decode_cuda.BLOCKS_PER_SM = 0
        del caches


def main() -> None:
    try:
        import torch

        if not torch.cuda.is_available():
            torch = None
    except ImportError:
        torch = None
    if "--only" in sys.argv:
        ONLY.extend(sys.argv[sys.argv.index("--only") + 1].split(","))
    cu = cuda()
    name = cu.get_current_device().name
    print(f"device: {name.decode() if isinstance(name, bytes) else name}", flush=True)
    peak = copy_bandwidth(torch)
    sections: list[Callable[[], None]] = [lambda: bench_gemv(peak, torch), lambda: bench_decode(peak, torch),
                                          lambda: bench_new_kernels(torch)]
    if "--sweep" in sys.argv:
        sections.insert(0, sweep)
    for section in sections:
        try:
            section()
        except Exception as exc:  # report and go on: one run on a lent GPU should time all it can
            import traceback

            traceback.print_exc()
            print(f"bench section failed: {type(exc).__name__}: {exc}", flush=True)


if __name__ == "__main__":
    main()
