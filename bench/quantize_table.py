"""The README's quantisation table: for each type, the default model's file size, its
perplexity on a text and its generation speed.

Each type is made from the default model (Gemma 3 270M Q4_K_M, so every type is a
requantisation of it and none is better than it), perplexity is computed as llama.cpp's
tool computes it (windows of 512, second halves scored) on the first tokens of a plain
English text, and tokens/s is the greedy decoding rate per CPU-second on one thread
(speculation off, so every type decodes one token per step), the best of rounds that
alternate the types.

    python bench/quantize_table.py [--text FILE] [--tokens 2048] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

TYPES = ("Q4_K_M", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_0", "Q3_K_M", "Q2_K")
DEFAULT_TEXT = "/usr/share/common-licenses/GPL-3"
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", default=DEFAULT_TEXT)
    ap.add_argument("--tokens", type=int, default=2048, help="tokens of the text to score")
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--speed-only", action="store_true", help="skip perplexity (tokens/s only)")
    args = ap.parse_args()

    from gene_jit.llama.model import Model
    from gene_jit.llama.perplexity import perplexity
    from gene_jit.llama.quantize import quantize
    from gene_jit.llama.resolve import resolve_model

    source = resolve_model("default")
    with tempfile.TemporaryDirectory() as folder:
        probe = Model(str(source), threads=args.threads, progress=False)
        text = probe.detokenize(probe.tokenize(Path(args.text).read_text())[1 : args.tokens + 1])
        probe.close()
        paths = {kind: source if kind == "Q4_K_M" else
                 quantize(str(source), Path(folder) / f"{kind}.gguf", kind, progress=False,
                          calibration=False).path for kind in TYPES}
        ppl = {}
        for kind, path in paths.items():
            if args.speed_only:
                continue
            m = Model(str(path), threads=args.threads, n_ctx=1024, progress=False)
            ppl[kind] = perplexity(m, text, args.window, progress=False)
            m.close()
            print(f"{kind:7s} {path.stat().st_size / 1e6:7.1f} MB  PPL {ppl[kind]}", flush=True)
        speed = _speeds(paths, args.rounds, args.threads)
        print(f"\nload average: {os.getloadavg()}, threads {args.threads}, {time.strftime('%Y-%m-%d %H:%M')}")
        print("| type | size | perplexity | tokens/s |\n|---|---|---|---|")
        for kind, path in paths.items():
            note = " (the default model)" if kind == "Q4_K_M" else ""
            p = f"{ppl[kind].perplexity:.2f} ± {ppl[kind].error:.2f}" if kind in ppl else "-"
            print(f"| {kind}{note} | {path.stat().st_size / 1e6:.0f} MB | {p} | {speed[kind]:.0f} |")


def _speeds(paths: dict[str, Path], rounds: int, threads: int) -> dict[str, float]:
    """Greedy decoding rate of each type in tokens per CPU-second, one thread: the CPU time
    of generating 65 tokens less that of generating 1 (the same prompt decoded in both),
    over 64. CPU time, unlike wall time, holds still while other work shares the machine;
    the best of rounds that alternate the types is kept."""
    from gene_jit.llama import gene_api as g
    from gene_jit.llama.model import Model

    models = {kind: Model(str(path), threads=threads, n_ctx=1024, progress=False) for kind, path in paths.items()}
    best = dict.fromkeys(paths, 0.0)

    def cpu(m: Model, n: int) -> float:
        start = time.process_time()
        g.generate_text(m, PROMPT, n, temperature=0, speculate=False)
        assert m.last_stats.as_map()["generated"] == n
        return time.process_time() - start

    for r in range(rounds):
        order = list(models) if r % 2 == 0 else list(reversed(models))
        for kind in order:
            per_token = (cpu(models[kind], 65) - cpu(models[kind], 1)) / 64
            best[kind] = max(best[kind], 1.0 / per_token)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.0f}" for k, v in best.items()), flush=True)
    for m in models.values():
        m.close()
    return best


if __name__ == "__main__":
    main()
