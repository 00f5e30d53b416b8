"""CPU kernel bench: Numba kernels against NumPy and PyTorch CPU (when installed), in
the same run, on the same inputs and the same number of threads (PyTorch is set to
Numba's thread count). Every kernel is validated against its float64 reference before
it is timed; contenders are timed in turns (best of the rounds) so that load from other
processes hits them alike. Ratios > 1 mean the Numba kernel is faster.

    python bench/kernels_bench.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gene_jit.tensor_kernels import attention_cpu, ffn_cpu, matmul_cpu, norms_cpu  # noqa: E402
from gene_jit.tensor_kernels import reference as ref  # noqa: E402


def best_ms(fn: Any, reps: int = 20) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def race(fns: dict[str, Any], rounds: int = 15) -> dict[str, float]:
    """Best time in ms of each function, timed in turns (one call each per round)."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return {name: b * 1e3 for name, b in best.items()}


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())


def report(name: str, err: float, numba_ms: float, peers: dict[str, float]) -> None:
    assert err < 1e-5, f"{name}: relative error {err:.1e}"
    parts = [f"{name:34s} numba {numba_ms:8.3f} ms (rel.err {err:.0e})"]
    for peer, ms in peers.items():
        parts.append(f"{peer} {ms:8.3f} ms ({ms / numba_ms:4.2f}x)")
    print(" | ".join(parts), flush=True)


def main() -> None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        torch = None
    import numba

    g = np.random.default_rng(0)
    threads = numba.get_num_threads()
    print(f"numba {numba.__version__}, {threads} threads; BLAS per-thread limit: "
          f"{matmul_cpu.BLAS_LOCAL_THREADS}", flush=True)
    if torch is not None:
        torch.set_num_threads(threads)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    # prefill attention, causal, GQA: H=8/2, T=512, D=64
    h, hkv, t, d = 8, 2, 512, 64
    q = g.standard_normal((h, t, d)).astype(np.float32)
    k = g.standard_normal((hkv, t, d)).astype(np.float32)
    v = g.standard_normal((hkv, t, d)).astype(np.float32)
    out = np.empty_like(q)
    sc = 1 / np.sqrt(d)

    def nb_attn() -> None:
        attention_cpu.attention_f32(q, k, v, True, sc, 0, out)

    nb_attn()
    err = rel(out, ref.attention(q, k, v, causal=True, scale=sc))
    out_v1 = np.empty_like(q)
    attention_cpu.attention_f32_v1(q, k, v, True, sc, 0, out_v1)
    err_v1 = rel(out_v1, ref.attention(q, k, v, causal=True, scale=sc))
    kk, vv = np.repeat(k, h // hkv, 0), np.repeat(v, h // hkv, 0)
    iu = np.triu_indices(t, 1)

    def np_attn() -> None:
        s = np.matmul(q, kk.transpose(0, 2, 1)) * sc
        s[:, iu[0], iu[1]] = -np.inf
        e = np.exp(s - s.max(-1, keepdims=True))
        np.matmul(e / e.sum(-1, keepdims=True), vv)

    fns = {"numba": nb_attn, "v1": lambda: attention_cpu.attention_f32_v1(q, k, v, True, sc, 0, out_v1),
           "numpy": np_attn}
    if torch is not None:
        tq, tk, tv = (torch.from_numpy(x)[None] for x in (q, k, v))
        fns["torch SDPA"] = lambda: F.scaled_dot_product_attention(tq, tk, tv, is_causal=True, enable_gqa=True)
    ms = race(fns, 10)
    report(f"attention prefill H{h}/{hkv} T{t} D{d}", err, ms.pop("numba"),
           {k: v for k, v in ms.items() if k != "v1"})
    report("  (v1, plain loops)", err_v1, ms["v1"], {k: v for k, v in ms.items() if k != "v1"})

    # decode attention over a KV cache: H=32/8, ctx 4096, D=128
    h, hkv, ctx, d = 32, 8, 4096, 128
    q1 = g.standard_normal((h, d)).astype(np.float32)
    kc = g.standard_normal((hkv, ctx, d)).astype(np.float32)
    vc = g.standard_normal((hkv, ctx, d)).astype(np.float32)
    o1 = np.empty_like(q1)
    sc = 1 / np.sqrt(d)

    def nb_dec() -> None:
        attention_cpu.decode_attention_f32(q1, kc, vc, ctx, sc, o1)

    nb_dec()
    err = rel(o1, ref.decode_attention(q1, kc, vc, ctx, sc))
    fns = {"numba": nb_dec}
    if torch is not None:
        tq, tk, tv = torch.from_numpy(q1).view(1, h, 1, d), torch.from_numpy(kc)[None], torch.from_numpy(vc)[None]
        fns["torch SDPA"] = lambda: F.scaled_dot_product_attention(tq, tk, tv, enable_gqa=True)
    ms = race(fns)
    report(f"attention decode H{h}/{hkv} ctx{ctx} D{d}", err, ms.pop("numba"), ms)

    # gated feed-forward, E=1024, F=4096; one token and 64 tokens
    e, f = 1024, 4096
    wg = (g.standard_normal((f, e)) * 0.03).astype(np.float32)
    wu = (g.standard_normal((f, e)) * 0.03).astype(np.float32)
    wd = (g.standard_normal((e, f)) * 0.03).astype(np.float32)
    for tokens in (1, 8, 64):
        x = g.standard_normal((tokens, e)).astype(np.float32)
        o = np.empty_like(x)

        def nb_ffn(x: np.ndarray = x, o: np.ndarray = o) -> None:
            ffn_cpu.feed_forward_f32(x, wg, wu, wd, ffn_cpu.ACT_SILU, o)

        nb_ffn()
        err = rel(o, ref.feed_forward(x, wg, wu, wd))

        def np_ffn(x: np.ndarray = x) -> None:
            gg = x @ wg.T
            (gg / (1 + np.exp(-gg)) * (x @ wu.T)) @ wd.T

        fns = {"numba": nb_ffn, "numpy": np_ffn}
        if torch is not None:
            tx, tg, tu, td = (torch.from_numpy(a) for a in (x, wg, wu, wd))
            fns["torch"] = lambda tx=tx, tg=tg, tu=tu, td=td: F.linear(F.silu(F.linear(tx, tg)) * F.linear(tx, tu), td)
        ms = race(fns, 10)
        report(f"feed-forward E{e} F{f} T{tokens}", err, ms.pop("numba"), ms)

    # GEMV and row ops
    w = g.standard_normal((4096, 4096)).astype(np.float32)
    xv = g.standard_normal(4096).astype(np.float32)
    ov = np.empty(4096, np.float32)
    matmul_cpu.gemv_f32(w, xv, ov)
    peers = {"numpy": best_ms(lambda: w @ xv)}
    if torch is not None:
        tw, tx = torch.from_numpy(w), torch.from_numpy(xv)
        peers["torch"] = best_ms(lambda: torch.mv(tw, tx))
    report("gemv f32 4096x4096", rel(ov, ref.gemv(w, xv)), best_ms(lambda: matmul_cpu.gemv_f32(w, xv, ov)), peers)

    xr = g.standard_normal((64, 4096)).astype(np.float32)
    wr = g.standard_normal(4096).astype(np.float32)
    orr = np.empty_like(xr)
    norms_cpu.rmsnorm_f32(xr, wr, 1e-6, orr)
    peers = {"numpy": best_ms(lambda: xr / np.sqrt((xr * xr).mean(-1, keepdims=True) + 1e-6) * wr)}
    if torch is not None:
        tx, tw = torch.from_numpy(xr), torch.from_numpy(wr)
        peers["torch"] = best_ms(lambda: F.rms_norm(tx, (4096,), tw, 1e-6))
    report("rmsnorm 64x4096", rel(orr, ref.rmsnorm(xr, wr)), best_ms(lambda: norms_cpu.rmsnorm_f32(xr, wr, 1e-6, orr)), peers)

    norms_cpu.softmax_f32(xr, orr)
    peers = {}
    if torch is not None:
        peers["torch"] = best_ms(lambda: torch.softmax(torch.from_numpy(xr), -1))
    report("softmax 64x4096", rel(orr, ref.softmax(xr)), best_ms(lambda: norms_cpu.softmax_f32(xr, orr)), peers)


if __name__ == "__main__":
    main()
