"""Teacher-forced top-1 agreement of the GPU engine, one token per decode call, over more
than 1,000 tokens of tests/data/engine_text.txt:

1. the test suite's tiny quantised llama (Q8_0, Q4_0, F16 and F32 weights, with a
   vocabulary): the GPU engine against libllama (llama-cpp-python) and against the CPU
   engine, in windows of WINDOW tokens (the model's trained context);
2. the bench's gemma3-270m-shaped Q8_0 model (random weights, bench/engine_bench_gpu.py):
   the GPU engine against the CPU engine (which computes libllama's logits to the bit,
   tests/test_engine_model.py) over random tokens.

3. with --model PATH (the default model, Gemma 3 270M Q4_K_M, or any GGUF libllama reads):
   the GPU engine against libllama on one thread (its rounding from 512 cache cells on
   depends on its thread count; tests/test_engine_model.py) over the whole text, one token
   per decode call on both sides, with the largest logit difference and the positions that
   differ.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 500


def _row(m: Any) -> np.ndarray:
    return np.ctypeslib.as_array((ctypes.c_float * m.n_vocab).from_address(m.ctx.logits_ptr(0))).copy()


def tiny_llama(tmp: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_engine_llama import write_quantised_llama

    from gene_jit.engine.model import EngineModel
    from gene_jit.llama.model import Model
    from gene_jit.tensor.device import create_device

    path = write_quantised_llama(tmp / "tiny-q.gguf")
    gpu = EngineModel(str(path), n_ctx=WINDOW + 8, device=create_device("cuda"))
    cpu = EngineModel(str(path), n_ctx=WINDOW + 8, threads=4)
    lib = Model(str(path), n_ctx=WINDOW + 8, threads=1)
    tokens = lib.tokenize((ROOT / "tests" / "data" / "engine_text.txt").read_text())
    tokens = tokens[: 3 * WINDOW]
    models = (gpu, cpu, lib)
    tops: list[list[int]] = [[], [], []]
    worst = [0.0, 0.0]
    for start in range(0, len(tokens), WINDOW):
        for m in models:
            m.ctx.clear()
        for tok in tokens[start:start + WINDOW]:
            rows = []
            for i, m in enumerate(models):
                m.ctx.feed_one(0, tok)
                rows.append(_row(m))
                tops[i].append(int(rows[-1].argmax()))
            worst[0] = max(worst[0], float(np.abs(rows[0] - rows[2]).max()))
            worst[1] = max(worst[1], float(np.abs(rows[0] - rows[1]).max()))
    g, c, ll = (np.array(t) for t in tops)
    print(f"tiny llama (Q8_0/Q4_0/F16/F32), {len(tokens)} tokens in windows of {WINDOW}: top-1 GPU engine vs "
          f"libllama {(g == ll).mean():.2%} (largest logit difference {worst[0]:.3g}); GPU vs CPU engine "
          f"{(g == c).mean():.2%} ({worst[1]:.3g}); CPU engine vs libllama {(c == ll).mean():.2%}", flush=True)


def gemma_shaped(tmp: Path, n_tokens: int) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from engine_bench_gpu import GEMMA, write_model

    from gene_jit.engine.model import Engine
    from gene_jit.tensor.device import CPU, create_device

    path = write_model(tmp / "gemma3-270m-shaped.gguf", GEMMA)
    gpu, cpu = Engine(path, create_device("cuda")), Engine(path, CPU)
    gc, cc = gpu.new_cache(n_tokens + 8), cpu.new_cache(n_tokens + 8)
    toks = np.random.default_rng(7).integers(0, gpu.config.n_vocab, n_tokens).tolist()
    agree, worst, rel = 0, 0.0, 0.0
    t0 = time.perf_counter()
    for p, tok in enumerate(toks):
        a, b = cpu.forward(cc, [tok], p, 1), gpu.forward(gc, [tok], p, 1)
        assert a is not None and b is not None
        agree += int(a[0].argmax() == b[0].argmax())
        worst = max(worst, float(np.abs(a - b).max()))
        rel = max(rel, float(np.linalg.norm(a - b) / np.linalg.norm(a)))
    print(f"gemma3-270m-shaped Q8_0 (random weights), {n_tokens} random tokens: top-1 GPU vs CPU engine "
          f"{agree / n_tokens:.2%}, largest logit difference {worst:.3g}, largest relative error of a "
          f"logits row {rel:.2e} ({time.perf_counter() - t0:.0f} s)", flush=True)


def real_model(path: str) -> None:
    from gene_jit.engine.model import EngineModel
    from gene_jit.llama.model import Model
    from gene_jit.tensor.device import create_device

    t0 = time.perf_counter()
    gpu = EngineModel(path, n_ctx=2048, device=create_device("cuda"))
    lib = Model(path, n_ctx=2048, threads=1)
    text = (ROOT / "tests" / "data" / "engine_text.txt").read_text()
    tokens = lib.tokenize(text)
    assert tokens == gpu.tokenize(text)
    tops: list[list[int]] = [[], []]
    worst = 0.0
    for m in (gpu, lib):
        m.ctx.clear()
    for tok in tokens:
        rows = []
        for i, m in enumerate((gpu, lib)):
            m.ctx.feed_one(0, tok)
            rows.append(_row(m))
            tops[i].append(int(rows[-1].argmax()))
        worst = max(worst, float(np.abs(rows[0] - rows[1]).max()))
    g, ll = np.array(tops[0]), np.array(tops[1])
    print(f"{Path(path).name}, {len(tokens)} tokens of tests/data/engine_text.txt, one per decode call: "
          f"top-1 GPU engine vs libllama {(g == ll).mean():.2%} (largest logit difference {worst:.3g}; "
          f"positions that differ: {np.nonzero(g != ll)[0].tolist()}) ({time.perf_counter() - t0:.0f} s)",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gemma-tokens", type=int, default=256)
    ap.add_argument("--model", help="a GGUF file (the default model) to compare with libllama")
    ap.add_argument("--only-model", action="store_true", help="skip the tiny llama and gemma-shaped parts")
    args = ap.parse_args()
    if args.model:
        real_model(args.model)
        if args.only_model:
            return
    tmp = Path(tempfile.mkdtemp())
    try:
        tiny_llama(tmp)
    except ImportError as exc:
        print(f"tiny llama: skipped ({exc})", flush=True)
    if args.gemma_tokens:
        gemma_shaped(tmp, args.gemma_tokens)


if __name__ == "__main__":
    main()
