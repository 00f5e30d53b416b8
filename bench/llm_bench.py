"""LLM generation speed: gene-jit `generate-text` vs llama-cpp-python
`Llama.create_completion` vs a raw libllama loop (llama-cpp-python's ctypes bindings),
same model, threads, prompt and greedy token count, all in one process. gene-jit runs
with its default speculative steps and with them off; llama-cpp-python plain and with
its prompt-lookup decoding (`LlamaPromptLookupDecoding`, two guessed tokens as ours).
Every peer uses flash attention, so all compute the same logits and each line says
whether its text equals the raw loop's.

The peers are loaded once and then run in alternation, round after round (each round
led by the next peer), and each keeps its best round: on a machine shared with other
work, alternation spreads the interference evenly and the best round is the least
disturbed one. Every peer is timed the same way: prompt tokens/s from the call to its
first generated token, generation tokens/s over the tokens after the first. Prints the
resident memory each peer added on loading, the peak RSS of the process, and the ratios;
`--prompt all` runs five prompts and totals the generation time.

With `--grammar`, measures constrained generation instead: `generate-json` with a small
schema, the grammar applied lazily (checking only the sampled token, as llama.cpp's common
sampler does) against the grammar filtering the whole vocabulary at every step, in
alternating rounds; prints generation tokens/s (best and median) and how many tokens the
grammar rejected.

With `--gene-only`, only gene-jit runs, default against `:speculate false`: the check
that the adaptive default never costs more than it saves.

Usage: python bench/llm_bench.py [--threads 2] [--tokens 64] [--rounds 5] [--model default]
                                 [--prompt NAME|repeat|varied|all] [--gene-only]
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

PROMPTS = {
    "computing": (
        "The history of computing is a story of machines that grew smaller and faster. "
        "In the beginning, computers filled whole rooms. The future of AI is"
    ),
    "recipe": "Write a short recipe for pancakes.\n",
    "story": "Once upon a time, in a small village by the sea,",
    "code": 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "qa": "Question: Why is the sky blue?\nAnswer:",
    # answers that repeat themselves in part (guesses are kept now and then, missed often)
    "functions": "Write two Python functions: one that returns the area of a circle and one "
                 "that returns the area of a square.\n",
    "list": "List ten fruits, one per line:\n",
}
# prompts whose answers repeat (speculation should gain) and whose answers do not (it
# must not lose): --prompt repeat / --prompt varied
GROUPS = {"repeat": ["recipe", "qa", "functions", "list"], "varied": ["computing", "story", "code"]}
N_CTX = 1024

# A peer run: (prompt tokens, generated tokens, seconds to the first token, seconds
# after, the generated text, guessed tokens kept / decoded where the peer speculates)
Run = tuple[int, int, float, float, str, str]
Peer = Callable[[str], Run]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gene_peer(path: str, threads: int, n: int, speculate: bool | None = None) -> Peer:
    from gene_jit.llama import gene_api as g
    from gene_jit.llama.model import Model

    m = Model(path, n_ctx=N_CTX, threads=threads, progress=False)
    g.generate_text(m, "warm up", 4, temperature=0)

    def run(prompt: str) -> Run:
        m.ctx.clear()  # no prefix reuse: every round decodes the whole prompt
        t0 = time.perf_counter()
        first = 0.0
        parts = []
        for part in g.generate_text(m, prompt, n, temperature=0, stream=True, speculate=speculate):
            if not first:
                first = time.perf_counter()
            parts.append(part)
        t1 = time.perf_counter()
        s = m.last_stats
        kept = f"{s.draft_kept}/{s.drafted}" if speculate is not False else ""
        return s.prompt_tokens, s.generated, first - t0, t1 - first, "".join(parts), kept

    return run


def llama_cpp_peer(path: str, threads: int, n: int, lookup: bool = False) -> Peer:
    from llama_cpp import Llama
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    draft = LlamaPromptLookupDecoding(num_pred_tokens=2) if lookup else None
    # flash attention as in the other peers (its default is off): the same kernels, the
    # same logits, the same greedy text
    llm = Llama(path, n_ctx=N_CTX, n_threads=threads, n_threads_batch=threads, verbose=False,
                flash_attn=True, draft_model=draft)
    llm.create_completion("warm up", max_tokens=4, temperature=0)

    def run(prompt: str) -> Run:
        n_prompt = len(llm.tokenize(prompt.encode()))
        llm.reset()
        t0 = time.perf_counter()
        first = 0.0
        parts = []
        for chunk in llm.create_completion(prompt, max_tokens=n, temperature=0, top_k=1, stream=True):
            if not first:
                first = time.perf_counter()
            step: Any = chunk  # a completion chunk (llama_cpp types it as a union)
            parts.append(step["choices"][0]["text"])
        t1 = time.perf_counter()
        text = "".join(parts)
        return n_prompt, len(llm.tokenize(text.encode(), add_bos=False)), first - t0, t1 - first, text, ""

    return run


def raw_peer(path: str, threads: int, n: int) -> Peer:
    import llama_cpp as L

    model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_threads, cp.n_threads_batch = N_CTX, threads, threads
    ctx = L.llama_init_from_model(model, cp)
    vocab = L.llama_model_get_vocab(model)
    mem = L.llama_get_memory(ctx)
    buf = (L.llama_token * 512)()
    chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
    piece = ctypes.create_string_buffer(64)
    tok = (L.llama_token * 1)()

    def run(prompt: str) -> Run:
        data = prompt.encode()
        n_prompt = L.llama_tokenize(vocab, data, len(data), buf, 512, True, True)
        L.llama_memory_clear(mem, True)
        out = bytearray()
        t0 = time.perf_counter()
        L.llama_decode(ctx, L.llama_batch_get_one(buf, n_prompt))
        tok[0] = L.llama_sampler_sample(chain, ctx, -1)
        size = L.llama_token_to_piece(vocab, tok[0], piece, 64, 0, False)
        out += piece.raw[:size]
        t1 = time.perf_counter()
        count = 1
        while count < n and not L.llama_vocab_is_eog(vocab, tok[0]):
            L.llama_decode(ctx, L.llama_batch_get_one(tok, 1))
            tok[0] = L.llama_sampler_sample(chain, ctx, -1)
            size = L.llama_token_to_piece(vocab, tok[0], piece, 64, 0, False)
            out += piece.raw[:size]
            count += 1
        t2 = time.perf_counter()
        return n_prompt, count, t1 - t0, t2 - t1, out.decode(errors="replace"), ""

    return run


PEERS: tuple[tuple[str, Callable[[str, int, int], Peer]], ...] = (
    ("gene-jit generate-text", gene_peer),
    ("gene-jit, speculation off", lambda p, t, n: gene_peer(p, t, n, speculate=False)),
    ("llama-cpp-python", llama_cpp_peer),
    ("llama-cpp-python + lookup", lambda p, t, n: llama_cpp_peer(p, t, n, lookup=True)),
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
    ap.add_argument("--prompt", default="computing",
                    help=f"one of {', '.join(PROMPTS)}, or repeat, varied or all")
    ap.add_argument("--gene-only", action="store_true", help="gene-jit default against speculation off")
    args = ap.parse_args()
    from gene_jit.llama.resolve import resolve_model

    path = str(resolve_model(args.model))
    if args.grammar:
        grammar_bench(path, args.threads, args.rounds)
        return
    names = list(PROMPTS) if args.prompt == "all" else GROUPS.get(args.prompt, [args.prompt])
    if any(name not in PROMPTS for name in names):
        ap.error(f"--prompt must be one of {', '.join(PROMPTS)}, repeat, varied or all")
    peers = PEERS[:2] if args.gene_only else PEERS
    print(f"model {path}, {args.threads} threads, {args.tokens} greedy tokens, "
          f"best of {args.rounds} alternating rounds")
    runs: dict[str, Peer] = {}
    added: dict[str, float] = {}
    for name, make in peers:
        before = rss_mb()
        runs[name] = make(path, args.threads, args.tokens)
        added[name] = rss_mb() - before
    totals: dict[str, float] = dict.fromkeys(runs, 0.0)
    for prompt_name in names:
        best = bench_prompt(runs, PROMPTS[prompt_name], args.rounds)
        print(f"\nprompt {prompt_name!r}")
        ref_name = "gene-jit, speculation off" if args.gene_only else "raw libllama loop"
        ref = best[ref_name]["text"]
        for name, b in best.items():
            totals[name] += b["tokens"] / b["gen"]
            kept = f"   guesses kept {b['kept']}" if b["kept"] else ""
            print(f"{name:26s} prompt {b['prompt']:7.1f} tok/s   gen {b['gen']:6.1f} tok/s   "
                  f"({b['tokens']:.0f} tokens, same text as the {ref_name}: "
                  f"{'yes' if b['text'] == ref else 'NO'}){kept}")
        gene, off = (best[name]["gen"] for name, _ in PEERS[:2])
        if args.gene_only:
            print(f"gene-jit default / speculation off: {gene / off:.2f}x")
        else:
            cpp = best[PEERS[2][0]]["gen"]
            print(f"gene-jit / llama-cpp-python generation: {gene / cpp:.2f}x "
                  f"(speculation off: {off / cpp:.2f}x)")
    print()
    for name in runs:
        print(f"{name:26s} +{added[name]:.0f} MB resident on load")
    print(f"peak RSS of the process (all peers loaded): {peak_rss_mb():.0f} MB")
    if len(names) > 1 and args.gene_only:
        gene, off = (totals[name] for name, _ in PEERS[:2])
        print(f"all prompts, generation time: speculation off / gene-jit default {off / gene:.2f}x")
    elif len(names) > 1:
        gene, off, cpp, _, raw = (totals[name] for name, _ in PEERS)
        print(f"all prompts, generation time: llama-cpp-python / gene-jit {cpp / gene:.2f}x "
              f"(speculation off {cpp / off:.2f}x), raw loop / gene-jit {raw / gene:.2f}x")


def bench_prompt(runs: dict[str, Peer], prompt: str, rounds: int) -> dict[str, dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {
        name: {"prompt": 0.0, "gen": 0.0, "tokens": 0, "text": "", "kept": ""} for name in runs
    }
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # each peer leads a round
            run = runs[name]
            n_prompt, count, t_first, t_rest, text, kept = run(prompt)
            b = best[name]
            b["prompt"] = max(b["prompt"], n_prompt / t_first)
            if count > 1:
                b["gen"] = max(b["gen"], (count - 1) / t_rest)
            b["tokens"], b["text"], b["kept"] = count, text, kept
    return best

if __name__ == "__main__":
    main()
