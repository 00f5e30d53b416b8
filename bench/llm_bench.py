"""LLM generation speed: gene-jit `generate-text` vs llama-cpp-python
`Llama.create_completion` vs a raw libllama loop (llama-cpp-python's ctypes bindings),
same model, threads, prompt and greedy token count, all three in one process.

The three peers are loaded once and then run in alternation, round after round, and each
keeps its best round: on a machine shared with other work, alternation spreads the
interference evenly and the best round is the least disturbed one. Every peer is timed
the same way: prompt tokens/s from the call to its first generated token, generation
tokens/s over the tokens after the first. Prints the resident memory each peer added on
loading, the peak RSS of the process, and the ratios.

With `--grammar`, measures constrained generation instead: `generate-json` with a small
schema, the grammar applied lazily (checking only the sampled token, as llama.cpp's common
sampler does) against the grammar filtering the whole vocabulary at every step, in
alternating rounds; prints generation tokens/s (best and median) and how many tokens the
grammar rejected.

Usage: python bench/llm_bench.py [--threads 2] [--tokens 64] [--rounds 5] [--model default]
       python bench/llm_bench.py --grammar [--rounds 5]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

PROMPT = (
    "The history of computing is a story of machines that grew smaller and faster. "
    "In the beginning, computers filled whole rooms. The future of AI is"
)
N_CTX = 1024

# A peer run: (prompt tokens, generated tokens, seconds to the first token, seconds after)
Run = tuple[int, int, float, float]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gene_peer(path: str, threads: int, n: int) -> Callable[[], Run]:
    from gene_jit.llama import gene_api as g
    from gene_jit.llama.model import Model

    m = Model(path, n_ctx=N_CTX, threads=threads, progress=False)
    g.generate_text(m, "warm up", 4, temperature=0)

    def run() -> Run:
        m.ctx.clear()  # no prefix reuse: every round decodes the whole prompt
        t0 = time.perf_counter()
        first = 0.0
        for _ in g.generate_text(m, PROMPT, n, temperature=0, stream=True):
            if not first:
                first = time.perf_counter()
        t1 = time.perf_counter()
        s = m.last_stats
        return s.prompt_tokens, s.generated, first - t0, t1 - first

    return run


def llama_cpp_peer(path: str, threads: int, n: int) -> Callable[[], Run]:
    from llama_cpp import Llama

    llm = Llama(path, n_ctx=N_CTX, n_threads=threads, n_threads_batch=threads, verbose=False)
    llm.create_completion("warm up", max_tokens=4, temperature=0)
    n_prompt = len(llm.tokenize(PROMPT.encode()))

    def run() -> Run:
        llm.reset()
        t0 = time.perf_counter()
        first = 0.0
        count = 0
        for _ in llm.create_completion(PROMPT, max_tokens=n, temperature=0, top_k=1, stream=True):
            if not first:
                first = time.perf_counter()
            count += 1
        t1 = time.perf_counter()
        return n_prompt, count, first - t0, t1 - first

    return run


def raw_peer(path: str, threads: int, n: int) -> Callable[[], Run]:
    import llama_cpp as L

    model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_threads, cp.n_threads_batch = N_CTX, threads, threads
    ctx = L.llama_init_from_model(model, cp)
    vocab = L.llama_model_get_vocab(model)
    mem = L.llama_get_memory(ctx)
    data = PROMPT.encode()
    buf = (L.llama_token * 512)()
    n_prompt = L.llama_tokenize(vocab, data, len(data), buf, 512, True, True)
    chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
    piece = ctypes.create_string_buffer(64)
    tok = (L.llama_token * 1)()

    def run() -> Run:
        L.llama_memory_clear(mem, True)
        t0 = time.perf_counter()
        L.llama_decode(ctx, L.llama_batch_get_one(buf, n_prompt))
        tok[0] = L.llama_sampler_sample(chain, ctx, -1)
        L.llama_token_to_piece(vocab, tok[0], piece, 64, 0, False)
        t1 = time.perf_counter()
        count = 1
        while count < n and not L.llama_vocab_is_eog(vocab, tok[0]):
            L.llama_decode(ctx, L.llama_batch_get_one(tok, 1))
            tok[0] = L.llama_sampler_sample(chain, ctx, -1)
            L.llama_token_to_piece(vocab, tok[0], piece, 64, 0, False)
            count += 1
        return n_prompt, count, t1 - t0, time.perf_counter() - t1

    return run


PEERS = (
    ("gene-jit generate-text", gene_peer),
    ("llama-cpp-python", llama_cpp_peer),
    ("raw libllama loop", raw_peer),
)


JSON_PROMPT = "Give the largest city of Japan as JSON:"
JSON_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


def grammar_bench(path: str, threads: int, rounds: int) -> None:
    """Eager against lazy grammar sampling for `generate-json` on the same model."""
    import statistics

    from gene_jit.llama import gene_api as g
    from gene_jit.llama import sampler as sampler_mod
    from gene_jit.llama.model import Model

    m = Model(path, n_ctx=N_CTX, threads=threads, progress=False)
    build = sampler_mod.Sampling.build
    built: list[Any] = []
    speeds: dict[bool, list[float]] = {False: [], True: []}
    outputs: dict[bool, Any] = {}
    for _ in range(rounds):
        for lazy in (False, True):
            def build_as(self: Any, model: Any, lazy: bool = lazy) -> Any:
                self.lazy_grammar = lazy
                built.append(build(self, model))
                return built[-1]

            sampler_mod.Sampling.build = build_as  # type: ignore[method-assign]
            try:
                m.ctx.clear()
                outputs[lazy] = g.generate_json(m, JSON_PROMPT, JSON_SCHEMA, 64)
            finally:
                sampler_mod.Sampling.build = build  # type: ignore[method-assign]
            st = m.last_stats
            speeds[lazy].append(st.generated / st.generate_seconds)
    for lazy in (False, True):
        name = "lazy grammar" if lazy else "eager grammar"
        print(f"{name:14s} gen best {max(speeds[lazy]):6.2f} tok/s  median "
              f"{statistics.median(speeds[lazy]):6.2f} tok/s  ({m.last_stats.generated} tokens)")
    last = built[-1]
    print(f"lazy: {last.resamples} of {last.checks} sampled tokens rejected by the grammar; "
          f"{last.full_passes} of those needed a pass over the whole {m.n_vocab}-token vocabulary "
          f"(the others were settled by the {last.shortlist}-token shortlist)")
    print(f"same output: {outputs[False] == outputs[True]}  {outputs[True]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grammar", action="store_true", help="eager against lazy grammar sampling")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    from gene_jit.llama.resolve import resolve_model

    path = str(resolve_model(args.model))
    if args.grammar:
        grammar_bench(path, args.threads, args.rounds)
        return
    print(f"model {path}, {args.threads} threads, {args.tokens} greedy tokens, "
          f"best of {args.rounds} alternating rounds")
    runs: dict[str, Callable[[], Run]] = {}
    added: dict[str, float] = {}
    for name, make in PEERS:
        before = rss_mb()
        runs[name] = make(path, args.threads, args.tokens)
        added[name] = rss_mb() - before
    best: dict[str, dict[str, float]] = {name: {"prompt": 0.0, "gen": 0.0, "tokens": 0} for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            n_prompt, count, t_first, t_rest = run()
            b = best[name]
            b["prompt"] = max(b["prompt"], n_prompt / t_first)
            if count > 1:
                b["gen"] = max(b["gen"], (count - 1) / t_rest)
            b["tokens"] = count
    for name, b in best.items():
        print(f"{name:24s} prompt {b['prompt']:8.1f} tok/s   gen {b['gen']:6.1f} tok/s   "
              f"({b['tokens']:.0f} tokens)   +{added[name]:.0f} MB resident on load")
    print(f"peak RSS of the process (all three loaded): {peak_rss_mb():.0f} MB")
    gene, cpp, raw = (best[name] for name, _ in PEERS)
    print(f"gene-jit / llama-cpp-python generation: {gene['gen'] / cpp['gen']:.2f}x   "
          f"prompt: {gene['prompt'] / cpp['prompt']:.2f}x")
    print(f"gene-jit / raw libllama loop generation: {gene['gen'] / raw['gen']:.2f}x   "
          f"prompt: {gene['prompt'] / raw['prompt']:.2f}x")


if __name__ == "__main__":
    main()
