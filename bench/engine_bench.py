"""Native engine bench: prompt and decode tokens/s at batch 1 on the CPU, gene-jit's engine
(`:engine :gene`) against llama-cpp-python on the same GGUF file with the same number of
threads, in the same run, with ratios.

    python bench/engine_bench.py [--threads 2] [--prompt 64] [--decode 32] [--repeats 3]
                                 [--model default]

Runs at `--threads` and, for context, at 1 thread: on a machine whose cores are busy
with other work, libllama's OpenMP threads wait for each other at every graph node.

Each figure is the best of `--repeats` runs (a shared machine's noise only slows runs
down). Decode steps feed one token each and read its logits, as generation does; the
engine's prompt is one forward pass, llama-cpp-python's `eval` of the whole prompt.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

TEXT = ("The town of Millbrook sits where two rivers meet, and for most of its history the "
        "people who lived there measured the year by the water. In spring the rivers rose "
        "with melted snow from the hills, and the lower streets near the old mill would "
        "flood for a week or two. Shopkeepers moved their goods to the upper shelves, and "
        "children sailed paper boats along the pavement. ") * 4


def best(fn: Callable[[], float], repeats: int) -> float:
    return min(fn() for _ in range(repeats))


def engine_runs(path: str, threads: int, prompt: list[int], decode: int,
                repeats: int) -> tuple[float, float]:
    from gene_jit.engine.model import EngineModel

    m = EngineModel(path, threads=threads, n_ctx=1024)
    ctx = m.ctx

    def run_prompt() -> float:
        ctx.clear()
        t0 = time.perf_counter()
        ctx.feed(0, prompt)
        return time.perf_counter() - t0

    def run_decode() -> float:
        ctx.clear()
        ctx.feed(0, prompt[:8])
        t0 = time.perf_counter()
        for i in range(decode):
            ctx.feed_one(0, prompt[8 + i])
            ctx.logits_row(0)
        return time.perf_counter() - t0

    run_prompt()  # compiles what the kernels need for these shapes
    run_decode()
    return best(run_prompt, repeats), best(run_decode, repeats)


def llama_cpp_runs(path: str, threads: int, prompt: list[int], decode: int,
                   repeats: int) -> tuple[float, float]:
    import llama_cpp

    llm = llama_cpp.Llama(path, n_threads=threads, n_threads_batch=threads, n_ctx=1024,
                          n_batch=512, verbose=False)

    def run_prompt() -> float:
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        return time.perf_counter() - t0

    def run_decode() -> float:
        llm.reset()
        llm.eval(prompt[:8])
        t0 = time.perf_counter()
        for i in range(decode):
            llm.eval([prompt[8 + i]])
        return time.perf_counter() - t0

    run_prompt()
    run_decode()
    return best(run_prompt, repeats), best(run_decode, repeats)


def run_peers(path: str, threads: int, prompt: list[int], args: argparse.Namespace) -> None:
    results = {
        "gene engine": engine_runs(path, threads, prompt, args.decode, args.repeats),
        "llama-cpp-python": llama_cpp_runs(path, threads, prompt, args.decode, args.repeats),
    }
    print(f"{threads} thread(s)\n{'peer':18s} {'prompt tok/s':>13s} {'decode tok/s':>13s}   "
          f"(prompt {args.prompt} tokens, decode {args.decode} tokens, batch 1)")
    rates = {}
    for name, (p_s, d_s) in results.items():
        rates[name] = (args.prompt / p_s, args.decode / d_s)
        print(f"{name:18s} {rates[name][0]:13.1f} {rates[name][1]:13.1f}")
    ours, theirs = rates["gene engine"], rates["llama-cpp-python"]
    print(f"ratio gene engine / llama-cpp-python: prompt {ours[0] / theirs[0]:.2f}x, "
          f"decode {ours[1] / theirs[1]:.2f}x (target at 2 threads: decode >= 0.5x)\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    from gene_jit.llama.model import Model
    from gene_jit.llama.resolve import resolve_model

    path = str(resolve_model(args.model))
    vocab = Model(path, n_ctx=256)
    tokens = vocab.tokenize(TEXT)
    need = max(args.prompt, 8 + args.decode)
    if len(tokens) < need:
        raise SystemExit(f"the bench text has {len(tokens)} tokens, {need} are needed")
    prompt = tokens[: args.prompt]
    load = os.getloadavg()
    print(f"model {os.path.basename(path)}; CPU {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {args.threads} threads; load average before "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("machine shared with other work: figures are noisy (best of "
          f"{args.repeats} runs each)\n")
    for threads in dict.fromkeys([args.threads, 1]):
        run_peers(path, threads, prompt, args)
    load = os.getloadavg()
    print(f"load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
