"""GPU kernel bench: Numba CUDA decode attention and f16 GEMV against PyTorch (SDPA,
matmul) in the same run, with achieved GB/s against the card's measured copy bandwidth.

Each kernel is validated against its float64 reference before it is timed. Times are
CUDA-event medians over repeated launches. Run on a GPU machine:
    python bench/gpu_kernels.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gene_jit.tensor_kernels import reference as ref  # noqa: E402
from gene_jit.tensor_kernels.cuda_support import cuda  # noqa: E402


def time_ms(fn: Any, reps: int = 50) -> float:
    cu = cuda()
    fn()
    cu.synchronize()
    times = []
    for _ in range(reps):
        a, b = cu.event(), cu.event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(cu.event_elapsed_time(a, b))
    return float(np.median(times))


def time_torch_ms(fn: Any, reps: int = 50) -> float:
    import torch

    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return float(np.median(times))


def copy_bandwidth() -> float:
    """Device-to-device copy GB/s (bytes read + written)."""
    cu = cuda()
    n = 256 * 1024 * 1024
    src = cu.device_array(n, np.uint8)
    dst = cu.device_array(n, np.uint8)
    ms = time_ms(lambda: dst.copy_to_device(src), 20)
    return 2 * n / ms / 1e6


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())


def bench_gemv(peak: float, torch: Any) -> None:
    from gene_jit.tensor_kernels import gemv_cuda

    cu = cuda()
    g = np.random.default_rng(0)
    for n, k in ((4096, 4096), (8192, 8192), (14336, 4096)):
        w = (g.standard_normal((n, k)) * 0.02).astype(np.float16)
        x = g.standard_normal(k).astype(np.float32)
        dw, dx, do = cu.to_device(w), cu.to_device(x), cu.device_array(n, np.float32)
        gemv_cuda.gemv(dw, dx, do)
        err = rel(do.copy_to_host(), ref.gemv(w, x))
        ms = time_ms(lambda dw=dw, dx=dx, do=do: gemv_cuda.gemv(dw, dx, do))
        gbs = (w.nbytes + x.nbytes + 4 * n) / ms / 1e6
        line = f"gemv f16 {n}x{k}: numba {ms * 1e3:8.1f} us {gbs:7.0f} GB/s ({gbs / peak:4.0%} of copy) rel.err {err:.1e}"
        if torch is not None:
            tw, tx = torch.from_numpy(w).cuda(), torch.from_numpy(x).half().cuda()
            tms = time_torch_ms(lambda tw=tw, tx=tx: torch.mv(tw, tx))
            tg = (w.nbytes + 2 * k + 2 * n) / tms / 1e6
            line += f" | torch {tms * 1e3:8.1f} us {tg:7.0f} GB/s | speedup {tms / ms:4.2f}x"
        print(line, flush=True)


def bench_decode(peak: float, torch: Any) -> None:
    from gene_jit.tensor_kernels import attention_cuda

    cu = cuda()
    g = np.random.default_rng(1)
    for h, hkv, ctx, d in ((32, 8, 4096, 128), (32, 8, 16384, 128), (32, 32, 8192, 128)):
        q = g.standard_normal((h, d)).astype(np.float32)
        kc = g.standard_normal((hkv, ctx, d)).astype(np.float16)
        vc = g.standard_normal((hkv, ctx, d)).astype(np.float16)
        dq, dk, dv = cu.to_device(q), cu.to_device(kc), cu.to_device(vc)
        out = cu.device_array((h, d), np.float32)
        scores = cu.device_array((h, ctx), np.float32)
        stats = cu.device_array((h, 2), np.float32)
        sc = 1 / math.sqrt(d)

        def run(dq=dq, dk=dk, dv=dv, out=out, scores=scores, stats=stats, ctx=ctx, sc=sc) -> None:
            attention_cuda.decode_attention(dq, dk, dv, ctx, sc, out, scores, stats)

        run()
        err = rel(out.copy_to_host(), ref.decode_attention(q, kc, vc, ctx, sc))
        ms = time_ms(run)
        nbytes = kc.nbytes + vc.nbytes
        gbs = nbytes / ms / 1e6
        line = (f"decode attn H{h}/{hkv} ctx {ctx} d{d} f16: numba {ms * 1e3:7.1f} us {gbs:6.0f} GB/s "
                f"({gbs / peak:4.0%} of copy) rel.err {err:.1e}")
        if torch is not None:
            import torch.nn.functional as F

            tq = torch.from_numpy(q).half().cuda().view(1, h, 1, d)
            tk = torch.from_numpy(kc).cuda().view(1, hkv, ctx, d)
            tv = torch.from_numpy(vc).cuda().view(1, hkv, ctx, d)
            tms = time_torch_ms(lambda tq=tq, tk=tk, tv=tv: F.scaled_dot_product_attention(
                tq, tk, tv, enable_gqa=True))
            line += f" | torch SDPA {tms * 1e3:7.1f} us {nbytes / tms / 1e6:6.0f} GB/s | speedup {tms / ms:4.2f}x"
        print(line, flush=True)


def main() -> None:
    try:
        import torch

        if not torch.cuda.is_available():
            torch = None
    except ImportError:
        torch = None
    cu = cuda()
    print(f"device: {cu.get_current_device().name}", flush=True)
    peak = copy_bandwidth()
    print(f"copy bandwidth (read+write): {peak:.0f} GB/s", flush=True)
    bench_gemv(peak, torch)
    bench_decode(peak, torch)


if __name__ == "__main__":
    main()
