"""Are libllama's batched rows bit-identical to the same sequence decoded alone?

For each configuration (environment read by ggml, flash attention, weight repacking)
this decodes a set of prompts alone (a one-sequence context, the prompt in 128-token
chunks, then one token per call, as generate-text does), then the same prompts as the
server decodes them (a context with one KV stream per sequence, each prompt on the same
chunk schedule, then one batch per step holding one row per sequence), feeding both the
alone run's greedy tokens, and compares every row's logits bit for bit. It prints how
many rows differ at each batch size, the largest difference, and what a step costs.

    python bench/batch_rows_probe.py                 # every configuration, each in a subprocess
    python bench/batch_rows_probe.py --one tiled=1,fa=1,repack=0   # one, in this process
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import time

import numpy as np

CONFIGS = [
    "tiled=1,fa=1,repack=0",  # libllama's defaults, plain weight layout (the server before)
    "tiled=0,fa=1,repack=0",  # no tiled K-quant matrix products
    "tiled=0,fa=0,repack=0",  # and no flash attention
    "tiled=1,fa=0,repack=0",
    "tiled=force,fa=0,repack=0",  # the tiled K-quant products at every batch size
    "tiled=0,fa=0,repack=1",
]
BATCHES = (2, 4, 8, 16)
STEPS = 12
CHUNK = 128


def _env(config: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    if config["tiled"] == "0":
        env["GGML_CPU_TILED_MM"] = "0"
    elif config["tiled"] == "force":
        env["GGML_CPU_TILED_MM_FORCE"] = "1"
    return env


def _parse(text: str) -> dict[str, str]:
    return dict(part.split("=") for part in text.split(","))


class Ctx:
    """A bare libllama context: n_seq streams, flash attention on or off."""

    def __init__(self, model, n_seq: int, n_ctx_seq: int, fa: bool) -> None:
        from gene_jit.llama import bindings

        raw = self.raw = bindings.lib()
        params = raw.llama_context_default_params()
        p = bindings.struct_value(params)
        p.n_ctx = n_seq * n_ctx_seq
        p.n_batch = p.n_ubatch = 512
        p.n_seq_max = n_seq
        p.n_threads = p.n_threads_batch = model.threads
        p.flash_attn_type = 1 if fa else 0
        p.no_perf = True
        p.swa_full = True
        p.kv_unified = n_seq == 1
        self.handle = bindings.ContextHandle(raw.llama_init_from_model(model.handle.ptr, params), "context")
        self.ptr = self.handle.ptr
        self.batch = bindings.BatchHandle(512, n_seq)
        self.n_vocab = model.n_vocab
        self.held = [0] * n_seq

    def decode(self, rows: list[tuple[int, int, bool]]) -> list[int]:
        b = self.batch
        b.n_tokens = 0
        index = []
        for seq, tok, out in rows:
            i = b.add(tok, self.held[seq], seq, out)
            self.held[seq] += 1
            if out:
                index.append(i)
        rc = self.raw.llama_decode(self.ptr, b.value())
        assert rc == 0, rc
        return index

    def prompt(self, seq: int, tokens: list[int]) -> int:
        pos, last = 0, -1
        while pos < len(tokens):
            end = min((pos // CHUNK + 1) * CHUNK, len(tokens))
            idx = self.decode([(seq, t, j == end - 1) for j, t in zip(range(pos, end), tokens[pos:end], strict=True)])
            last = idx[-1]
            pos = end
        return last

    def logits(self, index: int) -> np.ndarray:
        ptr = self.raw.llama_get_logits_ith(self.ptr, index)
        return np.ctypeslib.as_array((ctypes.c_float * self.n_vocab).from_address(int(ptr))).copy()

    def close(self) -> None:
        self.batch.close()
        self.handle.close()


def _prompts(model, n: int) -> list[list[int]]:
    base = [
        "The history of the printing press",
        "Write a short poem about the sea.",
        "def fibonacci(n):",
        "Once upon a time, in a small village,",
        "List three uses of copper:",
        "Translate to French: good morning",
        "The capital of Australia is",
        "Explain recursion to a child.",
    ]
    out = []
    for i in range(n):
        text = base[i % len(base)]
        if i % 4 == 3:  # some long ones: more than 256 cells, so past 512 with partners
            text = (text + " ") * 60
        elif i % 4 == 2:
            text = (text + " ") * 12
        out.append(model.prompt_tokens(text + f" ({i})"))
    return out


def run_one(spec: str) -> None:
    from gene_jit.llama.model import Model

    config = _parse(spec)
    fa = config["fa"] == "1"
    model = Model("default", threads=int(config.get("threads", 2)), repack=config["repack"] == "1", progress=False)
    prompts = _prompts(model, max(BATCHES))
    n_ctx_seq = 1024
    # alone: each prompt in a fresh one-sequence context
    refs: list[list[np.ndarray]] = []
    feeds: list[list[int]] = []
    single_times = []
    for toks in prompts:
        ctx = Ctx(model, 1, n_ctx_seq, fa)
        idx = ctx.prompt(0, toks)
        steps, fed = [], []
        for _ in range(STEPS):
            row = ctx.logits(idx)
            steps.append(row)
            tok = int(np.argmax(row))
            fed.append(tok)
            t0 = time.perf_counter()
            idx = ctx.decode([(0, tok, True)])[0]
            single_times.append(time.perf_counter() - t0)
        refs.append(steps)
        feeds.append(fed)
        ctx.close()
    print(f"[{spec}] single step {1000 * np.median(single_times):.1f} ms", flush=True)
    for nb in BATCHES:
        # groups of nb sequences, each prompt in two different groups
        diffs, rows, worst, first = 0, 0, 0.0, []
        step_times = []
        groups = [list(range(g, g + nb)) for g in range(0, len(prompts), nb)]
        if nb < len(prompts):
            shifted = [[(i + nb // 2) % len(prompts) for i in g] for g in groups]
            groups += shifted
        for group in groups:
            ctx = Ctx(model, nb, n_ctx_seq, fa)
            firsts = {s: ctx.logits(ctx.prompt(s, prompts[p])) for s, p in enumerate(group)}
            index: dict[int, int] = {}
            for step in range(STEPS):
                for s, p in enumerate(group):
                    got = firsts[s] if step == 0 else ctx.logits(index[s])
                    ref = refs[p][step]
                    rows += 1
                    if not np.array_equal(got, ref):
                        diffs += 1
                        worst = max(worst, float(np.max(np.abs(got - ref))))
                        first.append(step)
                t0 = time.perf_counter()
                out = ctx.decode([(s, feeds[p][step], True) for s, p in enumerate(group)])
                step_times.append(time.perf_counter() - t0)
                index = dict(enumerate(out))
            ctx.close()
        print(f"[{spec}] batch {nb:2d}: {diffs}/{rows} rows differ from alone"
              f" (largest logit difference {worst:.4f}, first at steps {sorted(set(first))[:6]});"
              f" step {1000 * np.median(step_times):.1f} ms", flush=True)


def time_one(spec: str) -> None:
    """Least time of a decode step of 1, 4, 8 and 16 rows (short prompts), alternating."""
    from gene_jit.llama.model import Model

    config = _parse(spec)
    model = Model("default", threads=int(config.get("threads", 2)), repack=config["repack"] == "1", progress=False)
    prompts = [p[:16] for p in _prompts(model, 16)]
    ctx = Ctx(model, 16, 512, config["fa"] == "1")
    for s, toks in enumerate(prompts):
        ctx.prompt(s, toks)
    sizes = (1, 4, 8, 16)
    best = dict.fromkeys(sizes, float("inf"))
    for _ in range(12):
        for n in sizes:
            t0 = time.perf_counter()
            ctx.decode([(s, 1000 + s, True) for s in range(n)])
            best[n] = min(best[n], time.perf_counter() - t0)
    line = ", ".join(f"{n} rows {1000 * best[n]:.1f} ms ({best[n] / best[1]:.2f}x)" for n in sizes)
    print(f"[{spec}] least step time: {line}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", help="one configuration, in this process")
    ap.add_argument("--configs", default=";".join(CONFIGS))
    ap.add_argument("--time", action="store_true", help="step times only")
    args = ap.parse_args()
    if args.one:
        (time_one if args.time else run_one)(args.one)
        return
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for spec in args.configs.split(";"):
        extra = ["--time"] if args.time else []
        subprocess.run([sys.executable, __file__, "--one", spec, *extra], env=_env(_parse(spec)), check=False)
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
