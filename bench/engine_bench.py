"""Native engine bench on the CPU: prompt and decode tokens/s, gene-jit's engine
(`:engine :gene`) against libllama on the same GGUF file with the same number of
threads, in the same run, with ratios.

    python bench/engine_bench.py [--threads 2] [--prompt 64] [--decode 32] [--batch 8]
                                 [--rounds 3] [--model default]

Rows, at `--threads` and at 1 thread (on a machine whose cores are busy with other
work, libllama's OpenMP threads wait for each other at every graph node, so the
one-thread rows are the steadier comparison):

- prompt: one prompt of `--prompt` tokens (the engine's one forward pass against
  llama-cpp-python's `eval`);
- decode, batch 1: `--decode` steps of one token, each reading its logits, as
  generation does (the engine against llama-cpp-python);
- decode, batch B: steps of one token for each of B sequences in one decode call (the
  engine's context against a libllama context through gene-jit's bindings, since
  llama-cpp-python's `Llama` decodes one sequence).

Each figure is the best of `--rounds` rounds, the peers alternating within a round (a
shared machine's noise only slows runs down); the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

TEXT = ("The town of Millbrook sits where two rivers meet, and for most of its history the "
        "people who lived there measured the year by the water. In spring the rivers rose "
        "with melted snow from the hills, and the lower streets near the old mill would "
        "flood for a week or two. Shopkeepers moved their goods to the upper shelves, and "
        "children sailed paper boats along the pavement. ") * 4

Runs = dict[str, Callable[[], float]]  # name of a row -> one timed run (seconds)


def context_runs(ctx: Any, tokens: list[int], args: argparse.Namespace) -> Runs:
    """Runs over a gene-jit context (the engine's, or libllama's through the bindings)."""

    def run_prompt() -> float:
        ctx.clear()
        t0 = time.perf_counter()
        ctx.feed(0, tokens[: args.prompt])
        return time.perf_counter() - t0

    def run_decode() -> float:
        ctx.clear()
        ctx.feed(0, tokens[:8])
        t0 = time.perf_counter()
        for i in range(args.decode):
            ctx.feed_one(0, tokens[8 + i])
            ctx.logits_row(0)
        return time.perf_counter() - t0

    return {"prompt": run_prompt, "decode": run_decode}


def batch_run(ctx: Any, tokens: list[int], steps: int) -> Callable[[], float]:
    """`steps` decode calls of one token for each of the context's sequences."""
    n_seq = ctx.n_seq

    def run() -> float:
        ctx.clear()
        ctx.feed_prompts({s: tokens[s : s + 8] for s in range(n_seq)})
        t0 = time.perf_counter()
        for i in range(steps):
            ctx.feed_rows([(s, tokens[8 + s + i]) for s in range(n_seq)])
        return time.perf_counter() - t0

    return run


def engine_runs(path: str, threads: int, tokens: list[int], args: argparse.Namespace) -> Runs:
    from gene_jit.engine.model import EngineModel

    m = EngineModel(path, threads=threads, n_ctx=1024)
    runs = context_runs(m.ctx, tokens, args)
    if args.batch > 1:
        runs["batch"] = batch_run(m.new_context(1024 * args.batch, args.batch), tokens,
                                  args.decode)
    return runs


def llama_runs(path: str, threads: int, tokens: list[int], args: argparse.Namespace) -> Runs:
    import llama_cpp

    llm = llama_cpp.Llama(path, n_threads=threads, n_threads_batch=threads, n_ctx=1024,
                          n_batch=512, verbose=False)

    def run_prompt() -> float:
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(tokens[: args.prompt])
        return time.perf_counter() - t0

    def run_decode() -> float:
        llm.reset()
        llm.eval(tokens[:8])
        t0 = time.perf_counter()
        for i in range(args.decode):
            llm.eval([tokens[8 + i]])
        return time.perf_counter() - t0

    runs: Runs = {"prompt": run_prompt, "decode": run_decode}
    if args.batch > 1:
        from gene_jit.llama.model import Model

        m = Model(path, threads=threads, n_ctx=1024)
        runs["batch"] = batch_run(m.new_context(1024 * args.batch, args.batch), tokens,
                                  args.decode)
    return runs


def measure(peers: dict[str, Runs], rounds: int) -> dict[str, dict[str, float]]:
    """The best time of each run over `rounds` rounds; peers alternate within a round.
    Each run goes once untimed first (compilation, caches)."""
    for runs in peers.values():
        for fn in runs.values():
            fn()
    best: dict[str, dict[str, float]] = {p: {} for p in peers}
    for _ in range(rounds):
        for row in next(iter(peers.values())):
            for peer, runs in peers.items():
                t = runs[row]()
                best[peer][row] = min(best[peer].get(row, t), t)
    return best


def report(threads: int, best: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    work = {"prompt": args.prompt, "decode": args.decode, "batch": args.decode * args.batch}
    rows = [r for r in ("prompt", "decode", "batch") if r in next(iter(best.values()))]
    heads = {"prompt": "prompt tok/s", "decode": "decode b=1", "batch": f"decode b={args.batch}"}
    print(f"{threads} thread(s)\n{'peer':18s}" + "".join(f"{heads[r]:>15s}" for r in rows))
    rates = {p: {r: work[r] / t[r] for r in rows} for p, t in best.items()}
    for peer, rate in rates.items():
        print(f"{peer:18s}" + "".join(f"{rate[r]:15.1f}" for r in rows))
    ours, theirs = rates["gene engine"], rates["libllama"]
    print("ratio engine/libllama" + "".join(f"{ours[r] / theirs[r]:14.2f}x" for r in rows)
          + "   (target: decode b=1 >= 0.5x at 2 threads)\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    from gene_jit.llama.model import Model
    from gene_jit.llama.resolve import resolve_model

    path = str(resolve_model(args.model))
    tokens = Model(path, n_ctx=256).tokenize(TEXT)
    need = max(args.prompt, 8 + args.batch + args.decode)
    if len(tokens) < need:
        raise SystemExit(f"the bench text has {len(tokens)} tokens, {need} are needed")
    load = os.getloadavg()
    print(f"model {os.path.basename(path)}; CPU {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; load average before {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}\nprompt {args.prompt} tokens, decode {args.decode} steps; best of "
          f"{args.rounds} alternating rounds; libllama: llama-cpp-python (prompt, b=1), "
          "gene-jit's bindings (b>1)\n")
    for threads in dict.fromkeys([args.threads, 1]):
        peers = {"gene engine": engine_runs(path, threads, tokens, args),
                 "libllama": llama_runs(path, threads, tokens, args)}
        report(threads, measure(peers, args.rounds), args)
    load = os.getloadavg()
    print(f"load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
