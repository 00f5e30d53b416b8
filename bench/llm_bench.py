"""LLM generation speed: gene-jit `generate-text` vs llama-cpp-python
`Llama.create_completion` vs a raw libllama loop (llama-cpp-python's ctypes bindings),
same model, threads, prompt and greedy token count, in one run.

Prints prompt and generation tokens/s, the peak RSS after each, and the ratios.
Usage: python bench/llm_bench.py [--threads 2] [--tokens 64] [--model default]
"""

from __future__ import annotations

import argparse
import ctypes
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

PROMPT = (
    "The history of computing is a story of machines that grew smaller and faster. "
    "In the beginning, computers filled whole rooms. The future of AI is"
)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_gene(path: str, threads: int, n: int) -> dict[str, Any]:
    from gene_jit.llama import gene_api as g
    from gene_jit.llama.model import Model

    m = Model(path, n_ctx=1024, threads=threads, progress=False)
    g.generate_text(m, "warm up", 4, temperature=0)
    m.ctx.clear()
    g.generate_text(m, PROMPT, n, temperature=0)
    s = m.last_stats
    m.close()
    return {"prompt": s.prompt_tokens / s.prompt_seconds, "gen": (s.generated - 1) / s.generate_seconds
            if s.generated > 1 else 0.0, "tokens": s.generated}


def bench_llama_cpp(path: str, threads: int, n: int) -> dict[str, Any]:
    from llama_cpp import Llama

    llm = Llama(path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    llm.create_completion("warm up", max_tokens=4, temperature=0)
    llm.reset()
    t0 = time.perf_counter()
    first: list[float] = []
    count = 0
    for _ in llm.create_completion(PROMPT, max_tokens=n, temperature=0, top_k=1, stream=True):
        if not first:
            first.append(time.perf_counter())
        count += 1
    t1 = time.perf_counter()
    n_prompt = len(llm.tokenize(PROMPT.encode()))
    return {"prompt": n_prompt / (first[0] - t0), "gen": (count - 1) / (t1 - first[0]), "tokens": count}


def bench_raw(path: str, threads: int, n: int) -> dict[str, Any]:
    import llama_cpp as L

    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(path.encode(), mp)
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_threads, cp.n_threads_batch = 1024, threads, threads
    ctx = L.llama_init_from_model(model, cp)
    vocab = L.llama_model_get_vocab(model)
    data = PROMPT.encode()
    buf = (L.llama_token * 512)()
    n_prompt = L.llama_tokenize(vocab, data, len(data), buf, 512, True, True)
    chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
    piece = ctypes.create_string_buffer(64)
    t0 = time.perf_counter()
    L.llama_decode(ctx, L.llama_batch_get_one(buf, n_prompt))
    tok = (L.llama_token * 1)()
    tok[0] = L.llama_sampler_sample(chain, ctx, -1)
    t1 = time.perf_counter()
    count = 1
    while count < n and not L.llama_vocab_is_eog(vocab, tok[0]):
        L.llama_token_to_piece(vocab, tok[0], piece, 64, 0, False)
        L.llama_decode(ctx, L.llama_batch_get_one(tok, 1))
        tok[0] = L.llama_sampler_sample(chain, ctx, -1)
        count += 1
    t2 = time.perf_counter()
    L.llama_sampler_free(chain)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return {"prompt": n_prompt / (t1 - t0), "gen": (count - 1) / (t2 - t1), "tokens": count}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    from gene_jit.llama.resolve import resolve_model

    path = str(resolve_model(args.model))
    print(f"model {path}, {args.threads} threads, {args.tokens} greedy tokens")
    rows = []
    for name, fn in (("gene-jit generate-text", bench_gene), ("llama-cpp-python", bench_llama_cpp),
                     ("raw libllama loop", bench_raw)):
        r = fn(path, args.threads, args.tokens)
        r["rss"] = peak_rss_mb()
        rows.append((name, r))
        print(f"{name:24s} prompt {r['prompt']:8.1f} tok/s   gen {r['gen']:6.1f} tok/s   "
              f"({r['tokens']} tokens)   peak RSS {r['rss']:.0f} MB")
    gene, cpp, raw = (r for _, r in rows)
    print(f"gene-jit / llama-cpp-python generation: {gene['gen'] / cpp['gen']:.2f}x")
    print(f"gene-jit / raw libllama loop generation: {gene['gen'] / raw['gen']:.2f}x")


if __name__ == "__main__":
    main()
