"""GPU section of the engine bench: the native engine's decode on a CUDA device.

    python bench/engine_bench_gpu.py [--steps N] [--batches 1,8,64] [--no-7b]

Writes GGUF files with random weights of real models' shapes (no download): a
gemma3-270m-shaped one (Q8_0 matrices, tied 262144-token embedding) and a llama-7B-shaped
one (Q4_0; 32 layers, width 4096, FFN 11008). For each batch size: prompt tokens/s (one
eager forward call over every sequence's prompt), decode tokens/s with each step one
replay of a captured CUDA graph (greedy, the next tokens fed back on the device), the host
time per step (the graph launch) and per step with the logits copied to the host (what
sampling on the host costs). Peers on the same dequantised weights (f16): a PyTorch
implementation of the same model, eager and replayed with torch.cuda.CUDAGraph; and the
limit set by the weight bytes read per step over the measured copy bandwidth.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GEMMA = dict(arch="gemma3", n_layer=18, n_embd=640, n_head=4, n_head_kv=1, head_dim=256,
             n_ff=2048, n_vocab=262144, qtype="Q8_0")
LLAMA7B = dict(arch="llama", n_layer=32, n_embd=4096, n_head=32, n_head_kv=32, head_dim=128,
               n_ff=11008, n_vocab=32000, qtype="Q4_0")
BLOCK = {"Q8_0": (34, 32), "Q4_0": (18, 32)}


def _raw(rng: np.random.Generator, rows: int, cols: int, qtype: str) -> np.ndarray:
    """Random blocks of `qtype` with a fixed small scale (values about 0.01 * q)."""
    size, vals = BLOCK[qtype]
    raw = np.frombuffer(rng.bytes(rows * cols // vals * size), np.uint8).reshape(rows, cols // vals, size).copy()
    scale = np.frombuffer(np.float16(0.02 if qtype == "Q4_0" else 0.004).tobytes(), np.uint8)
    raw[:, :, 0], raw[:, :, 1] = scale[0], scale[1]
    return raw.reshape(rows, -1)


def write_model(path: Path, s: dict[str, Any]) -> Path:
    import gguf

    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), s["arch"])
    a = s["arch"] + "."
    w.add_context_length(8192)
    w.add_embedding_length(s["n_embd"])
    w.add_block_count(s["n_layer"])
    w.add_feed_forward_length(s["n_ff"])
    w.add_head_count(s["n_head"])
    w.add_head_count_kv(s["n_head_kv"])
    w.add_key_length(s["head_dim"])
    w.add_value_length(s["head_dim"])
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1e6 if s["arch"] == "gemma3" else 1e4)
    if s["arch"] == "gemma3":
        w.add_uint32(a + "attention.sliding_window", 512)
    qt = getattr(gguf.GGMLQuantizationType, s["qtype"])
    e, d, f = s["n_embd"], s["head_dim"], s["n_ff"]

    def mat(name: str, rows: int, cols: int, cache: dict[Any, np.ndarray] = {}) -> None:  # noqa: B006
        key = (rows, cols)
        if key not in cache:  # layers share random blocks: the bench measures speed only
            cache[key] = _raw(rng, rows, cols, s["qtype"])
        w.add_tensor(name, cache[key], raw_dtype=qt)

    def vec(name: str, n: int) -> None:
        w.add_tensor(name, (1 + 0.1 * rng.standard_normal(n)).astype(np.float32))

    mat("token_embd.weight", s["n_vocab"], e)
    vec("output_norm.weight", e)
    if s["arch"] == "llama":
        mat("output.weight", s["n_vocab"], e)
    for i in range(s["n_layer"]):
        p = f"blk.{i}."
        for n in ("attn_norm", "ffn_norm") + (("post_attention_norm", "post_ffw_norm")
                                             if s["arch"] == "gemma3" else ()):
            vec(p + n + ".weight", e)
        if s["arch"] == "gemma3":
            vec(p + "attn_q_norm.weight", d)
            vec(p + "attn_k_norm.weight", d)
        mat(p + "attn_q.weight", s["n_head"] * d, e)
        mat(p + "attn_k.weight", s["n_head_kv"] * d, e)
        mat(p + "attn_v.weight", s["n_head_kv"] * d, e)
        mat(p + "attn_output.weight", e, s["n_head"] * d)
        mat(p + "ffn_gate.weight", f, e)
        mat(p + "ffn_up.weight", f, e)
        mat(p + "ffn_down.weight", e, f)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def weight_bytes(engine: Any) -> int:
    """Bytes of weights one decode step reads (every matrix once; embeddings: the output)."""
    m = engine.model
    total = m["output"].nbytes
    for layer in m["layers"]:
        total += sum(v.nbytes for k, v in layer.items() if k.startswith("w"))
    return total


def copy_bandwidth() -> float:
    import torch

    a = torch.empty(1 << 28, dtype=torch.float32, device="cuda")
    b = torch.empty_like(a)
    b.copy_(a)
    torch.cuda.synchronize()
    best = 1e9
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(10):
            b.copy_(a)
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / 10)
    return 2 * a.numel() * 4 / best


def bench_engine(engine: Any, batch: int, prompt: int, steps: int) -> dict[str, float]:
    from gene_jit.engine.cuda_graph import GraphDecoder
    from gene_jit.engine.cuda_ops import Rows
    from gene_jit.tensor_kernels.cuda_support import cuda

    cu = cuda()
    cache = engine.new_cache(prompt + steps + 8, batch)
    rng = np.random.default_rng(batch)
    toks = rng.integers(0, engine.config.n_vocab, (batch, prompt)).tolist()
    flat = [t for row in toks for t in row]
    rows = Rows.from_host(np.tile(np.arange(prompt), batch), np.repeat(np.arange(batch), prompt))
    engine.run_forward(cache, flat, rows, 1)  # compiles the prompt's kernels
    cu.synchronize()
    t0 = time.perf_counter()
    engine.run_forward(cache, flat, rows, 1)
    cu.synchronize()
    prefill = batch * prompt / (time.perf_counter() - t0)
    dec = GraphDecoder(engine, cache, batch, greedy=True)
    dec.capture([r[-1] for r in toks], [prompt] * batch, list(range(batch)))
    dec.set_rows([r[-1] for r in toks], [prompt] * batch, list(range(batch)))
    for _ in range(3):
        dec.launch()
    cu.synchronize()
    dec.set_rows([r[-1] for r in toks], [prompt] * batch, list(range(batch)))
    dec.host_s.clear()
    t0 = time.perf_counter()
    for _ in range(steps):
        dec.launch()
    cu.synchronize()
    elapsed = time.perf_counter() - t0
    host_us = 1e6 * float(np.median(dec.host_s))
    # the same graph with the logits copied to the host each step (sampling on the host)
    dec.set_rows([r[-1] for r in toks], [prompt] * batch, list(range(batch)))
    t1 = time.perf_counter()
    n_host = min(steps, 32)
    for _ in range(n_host):
        dec.launch()
        dec.logits.copy_to_host()
    with_logits = (time.perf_counter() - t1) / n_host
    dec.close()
    return {"prefill": prefill, "decode": batch * steps / elapsed, "step_us": 1e6 * elapsed / steps,
            "host_us": host_us, "logits_step_us": 1e6 * with_logits}


def _kernel_name(name: str) -> str:
    """module.function of a Numba kernel's name, mangled (_ZN<len><part>...) or demangled
    (`void ns::fn[abi:...](args)`, as CUPTI may report it), else its first 60 characters."""
    drop = ("cudapy", "gene_jit", "engine", "_3clocals_3e", "<locals>")
    if name.startswith("_ZN"):
        parts, i = [], 3
        while i < len(name) and name[i].isdigit():
            j = i
            while name[j].isdigit():
                j += 1
            n = int(name[i:j])
            parts.append(name[j:j + n])
            i = j + n
    elif "::" in name:
        base = re.sub(r"\[abi:[^\]]*\]", "", name).split("(")[0].split()[-1]
        parts = base.split("::")
    else:
        return name[:60]
    return ".".join(p for p in parts if p not in drop)[-60:]


def profile_steps(engine: Any, batch: int, prompt: int, steps: int = 8) -> None:
    """GPU time of each kernel of a graph-replayed decode step (torch's profiler, CUPTI),
    summed by kernel name: the largest first."""
    import torch

    from gene_jit.engine.cuda_graph import GraphDecoder
    from gene_jit.tensor_kernels.cuda_support import cuda

    cache = engine.new_cache(prompt + steps + 16, batch)
    dec = GraphDecoder(engine, cache, batch, greedy=True)
    dec.capture([1] * batch, [prompt] * batch, list(range(batch)))
    dec.launch()
    cuda().synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            dec.launch()
        cuda().synchronize()
    totals: dict[str, list[float]] = {}
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            name = _kernel_name(ev.name)
            t = totals.setdefault(name, [0.0, 0])
            t[0] += ev.device_time_total
            t[1] += 1
    total = sum(v[0] for v in totals.values()) / steps
    print(f"  profile, batch {batch}: {sum(v[1] for v in totals.values()) / steps:.0f} kernels, "
          f"{total:.0f} us of kernel time a step", flush=True)
    for name, (us, n) in sorted(totals.items(), key=lambda kv: -kv[1][0])[:14]:
        print(f"    {us / steps:8.1f} us  {n / steps:5.0f}x  {name}", flush=True)
    dec.close()


# ---- the PyTorch peer: the same gemma3 model on the same weights, dequantised to f16 ----


def _dequantised(w: Any) -> Any:
    import torch

    from gene_jit.engine import cuda_kernels
    from gene_jit.tensor_kernels.cuda_support import cuda

    cu = cuda()
    out = cu.device_array((w.rows, w.cols), np.float32)
    ids = cu.to_device(np.arange(w.rows, dtype=np.int32))
    cuda_kernels.embed_rows(w.raw, w.kind, ids, 1.0, out)
    cu.synchronize()
    return torch.as_tensor(out, device="cuda").half()


class TorchGemma:
    """gemma3 decode of B rows (each at its own position) in PyTorch, f16 weights."""

    def __init__(self, engine: Any, batch: int, n_ctx: int) -> None:
        import torch

        c = engine.config
        self.c, self.batch, self.n_ctx = c, batch, n_ctx
        m = engine.model

        def vec(t: Any) -> Any:
            return torch.as_tensor(t.data, device="cuda").float()

        self.embed = _dequantised(m["embed"])
        self.out_norm = vec(m["output-norm"])
        self.layers = []
        for L in m["layers"]:
            self.layers.append({k: (_dequantised(v) if k.startswith("w") else vec(v)) for k, v in L.items()
                                if v is not None})
        kv = (batch, c.n_head_kv, n_ctx, c.head_dim)
        self.k = [torch.zeros(kv, dtype=torch.float16, device="cuda") for _ in m["layers"]]
        self.v = [torch.zeros(kv, dtype=torch.float16, device="cuda") for _ in m["layers"]]
        self.tokens = torch.zeros(batch, dtype=torch.long, device="cuda")
        self.pos = torch.zeros(batch, dtype=torch.long, device="cuda")
        self.arange = torch.arange(n_ctx, device="cuda")

    def _rms(self, x: Any, w: Any) -> Any:
        import torch

        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.c.eps) * w).half()

    def _rope(self, x: Any, base: float) -> Any:
        import torch

        d = x.shape[-1]
        inv = base ** (-torch.arange(0, d, 2, device="cuda", dtype=torch.float32) / d)
        ang = self.pos.float()[:, None] * inv[None, :]  # [B, D/2]
        cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
        x0, x1 = x[..., : d // 2].float(), x[..., d // 2:].float()
        return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).half()

    def step(self) -> None:
        import torch

        c, b = self.c, self.batch
        x = (self.embed[self.tokens].float() * c.embed_scale).half()
        rows = torch.arange(b, device="cuda")
        for i, L in enumerate(self.layers):
            local = c.swa_pattern and (i + 1) % c.swa_pattern != 0
            h = self._rms(x, L["attn-norm"])
            q = (h @ L["wq"].T).view(b, c.n_head, c.head_dim)
            k = (h @ L["wk"].T).view(b, c.n_head_kv, c.head_dim)
            v = (h @ L["wv"].T).view(b, c.n_head_kv, c.head_dim)
            base = c.rope_base_local if local else c.rope_base
            q = self._rope(self._rms(q, L["q-norm"]), base)
            k = self._rope(self._rms(k, L["k-norm"]), base)
            self.k[i][rows, :, self.pos] = k
            self.v[i][rows, :, self.pos] = v
            g = c.n_head // c.n_head_kv
            qg = q.view(b, c.n_head_kv, g, c.head_dim)
            s = torch.einsum("bhgd,bhtd->bhgt", qg.float(), self.k[i].float()) * c.attn_scale
            mask = self.arange[None, :] > self.pos[:, None]
            if local:
                mask = mask | (self.arange[None, :] <= self.pos[:, None] - c.window)
            s = s.masked_fill(mask[:, None, None, :], -1e30).softmax(-1)
            att = torch.einsum("bhgt,bhtd->bhgd", s, self.v[i].float()).reshape(b, -1).half()
            x = x + self._rms(att @ L["wo"].T, L["post-attn-norm"])
            h = self._rms(x, L["ffn-norm"])
            y = torch.nn.functional.gelu((h @ L["w-gate"].T).float(), approximate="tanh").half() * (h @ L["w-up"].T)
            x = x + self._rms(y @ L["w-down"].T, L["post-ffn-norm"])
        logits = self._rms(x, self.out_norm) @ self.embed.T
        self.tokens.copy_(logits.argmax(-1))
        self.pos.add_(1)


def bench_torch(engine: Any, batch: int, prompt: int, steps: int) -> dict[str, float]:
    import torch

    model = TorchGemma(engine, batch, prompt + steps + 40)
    with torch.no_grad():
        model.pos.fill_(prompt)
        for _ in range(3):
            model.step()
        torch.cuda.synchronize()
        model.pos.fill_(prompt)
        t0 = time.perf_counter()
        n_eager = min(steps, 32)
        for _ in range(n_eager):
            model.step()
        torch.cuda.synchronize()
        eager = batch * n_eager / (time.perf_counter() - t0)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                model.step()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model.step()
        model.pos.fill_(prompt)
        graph.replay()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            graph.replay()
        torch.cuda.synchronize()
        graphed = batch * steps / (time.perf_counter() - t0)
    del model, graph
    torch.cuda.empty_cache()
    return {"eager": eager, "graph": graphed}


def bench_file(path: Path, dev: Any, bw: float, args: Any) -> None:
    """A real model's decode (and prompt) speed at each batch, with its kernel profile."""
    from gene_jit.engine.model import Engine

    t0 = time.perf_counter()
    engine = Engine(path, dev)
    wb = weight_bytes(engine)
    print(f"{path.name} ({engine.config.arch}): placed in {time.perf_counter() - t0:.1f} s; "
          f"{wb / 1e6:.0f} MB of weights read per step, limit {bw / wb:.0f} steps/s", flush=True)
    for b in [int(x) for x in args.batches.split(",")]:
        r = bench_engine(engine, b, args.prompt, args.steps)
        print(f"  batch {b:2d}: engine decode {r['decode']:9.0f} tok/s ({r['step_us']:7.1f} us/step, "
              f"host {r['host_us']:5.1f} us/step; with logits to host {r['logits_step_us']:7.1f} us/step), "
              f"prompt {r['prefill']:8.0f} tok/s", flush=True)
    if args.profile:
        profile_steps(engine, 1, args.prompt)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--batches", default="1,8,64")
    ap.add_argument("--no-7b", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--profile", action="store_true", help="GPU time of each kernel of a decode step")
    ap.add_argument("--model", help="a GGUF file (the default model): its decode at --batches, then stop")
    ap.add_argument("--compare-dp4a", action="store_true",
                    help="batches of 16 tokens and more also with the dp4a products in place of the tensor cores")
    args = ap.parse_args()
    from gene_jit.engine import cuda_mma
    from gene_jit.engine.model import Engine
    from gene_jit.tensor.device import create_device
    from gene_jit.tensor_kernels.cuda_support import cuda

    dev = create_device("cuda")
    name = cuda().get_current_device().name
    name = name.decode() if isinstance(name, bytes) else name
    bw = copy_bandwidth()
    print(f"device: {name}; copy bandwidth {bw / 1e9:.0f} GB/s; decode at context {args.prompt}.."
          f"{args.prompt + args.steps}, greedy, each step one CUDA graph launch", flush=True)
    if args.model:
        bench_file(Path(args.model), dev, bw, args)
        return
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    engine = Engine(write_model(tmp / "gemma3-270m-shaped.gguf", GEMMA), dev)
    wb = weight_bytes(engine)
    print(f"gemma3-270m-shaped Q8_0 (random weights): written and placed in {time.perf_counter() - t0:.1f} s; "
          f"{wb / 1e6:.0f} MB of weights read per step, limit {bw / wb:.0f} steps/s", flush=True)
    for b in [int(x) for x in args.batches.split(",")]:
        r = bench_engine(engine, b, args.prompt, args.steps)
        line = (f"  batch {b:2d}: engine decode {r['decode']:9.0f} tok/s ({r['step_us']:7.1f} us/step, "
                f"host {r['host_us']:5.1f} us/step; with logits to host {r['logits_step_us']:7.1f} us/step), "
                f"prompt {r['prefill']:8.0f} tok/s; weight-read limit {b * bw / wb:9.0f} tok/s "
                f"({r['decode'] / (b * bw / wb):.2f}x)")
        if not args.no_torch:
            t = bench_torch(engine, b, args.prompt, args.steps)
            line += (f" | torch f16 eager {t['eager']:8.0f} tok/s, CUDA graph {t['graph']:8.0f} tok/s; "
                     f"engine/graph {r['decode'] / t['graph']:.2f}x")
        print(line, flush=True)
        if args.compare_dp4a and b >= cuda_mma.MMA_MIN_TOKENS:
            saved, cuda_mma.MMA_MIN_TOKENS = cuda_mma.MMA_MIN_TOKENS, 1 << 30
            try:
                d = bench_engine(engine, b, args.prompt, args.steps)
            finally:
                cuda_mma.MMA_MIN_TOKENS = saved
            print(f"           same with dp4a products: decode {d['decode']:9.0f} tok/s ({d['step_us']:7.1f} us/step); "
                  f"tensor cores {r['decode'] / d['decode']:.2f}x", flush=True)
    if args.profile:
        for b in (1, 64):
            try:
                profile_steps(engine, b, args.prompt)
            except Exception as exc:  # the profiler is a diagnosis: its failure ends nothing
                print(f"  profile, batch {b}: failed ({type(exc).__name__}: {exc})", flush=True)
    del engine
    if not args.no_7b:
        t0 = time.perf_counter()
        big = Engine(write_model(tmp / "llama-7b-shaped.gguf", LLAMA7B), dev)
        wb = weight_bytes(big)
        print(f"llama-7B-shaped Q4_0 (random weights): written and placed in {time.perf_counter() - t0:.1f} s; "
              f"{wb / 1e9:.2f} GB read per step, limit {bw / wb:.0f} tok/s", flush=True)
        r = bench_engine(big, 1, args.prompt, min(args.steps, 64))
        print(f"  batch  1: engine decode {r['decode']:7.1f} tok/s ({r['step_us']:.0f} us/step, host "
              f"{r['host_us']:.1f} us/step), prompt {r['prefill']:.0f} tok/s; "
              f"{r['decode'] / (bw / wb):.2f}x the weight-read limit", flush=True)
        if args.profile:
            profile_steps(big, 1, args.prompt)


if __name__ == "__main__":
    main()
