"""GPU kernel bench: Numba CUDA decode attention and f16 GEMV against PyTorch (SDPA,
mv) in the same run, with achieved GB/s against the card's measured copy bandwidth.

Each kernel is validated against its float64 reference before it is timed. Timing counts
GPU time only: a sleep kernel first holds the GPU so that a batch of launches queues up
behind it, then CUDA events around the batch give the per-launch time with no launch gaps
(the host-side time per call is printed separately as "call"). Inputs rotate over enough
copies to exceed the 50 MB L2, so repeated launches stream from HBM as a real decode step
does. Run on a GPU machine:
    python bench/gpu_kernels.py
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
    for h, hkv, ctx, d in ((32, 8, 4096, 128), (32, 8, 16384, 128), (32, 32, 8192, 128)):
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
    """GPU time of the kernels' shape variants (rows/warps for GEMV, unroll for decode)."""
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
        for per_sm in (2, 4, 8):
            decode_cuda.BLOCKS_PER_SM = per_sm
            for unroll in (2, 4):
                us, _ = numba_time(lambda i, c=caches, dq=dq, out=out, ctx=ctx, u=unroll: decode_cuda.decode(
                    dq, c[i % len(c)][0], c[i % len(c)][1], ctx, 0.1, out, u))
                print(f"sweep decode H{h}/{hkv} ctx {ctx} blocks/SM {per_sm} unroll {unroll}: {us:6.1f} us "
                      f"{2 * kc.nbytes / us / 1e3:6.0f} GB/s", flush=True)
        decode_cuda.BLOCKS_PER_SM = 4
        del caches


def main() -> None:
    try:
        import torch

        if not torch.cuda.is_available():
            torch = None
    except ImportError:
        torch = None
    cu = cuda()
    name = cu.get_current_device().name
    print(f"device: {name.decode() if isinstance(name, bytes) else name}", flush=True)
    peak = copy_bandwidth(torch)
    sections: list[Callable[[], None]] = [lambda: bench_gemv(peak, torch), lambda: bench_decode(peak, torch)]
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
