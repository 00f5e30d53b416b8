"""`gene-jit quantize IN OUT TYPE`: write a quantised copy of a GGUF model (TYPE such as
Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0, F16), with progress, and print the sizes."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from gene_jit.llama.perplexity_cli import thread_count
    from gene_jit.llama.quantize import TYPES

    parser.add_argument("input", help='a model name ("default") or the path of a .gguf file')
    parser.add_argument("output", help="the .gguf file to write")
    parser.add_argument("type", help="one of " + ", ".join(TYPES))
    parser.add_argument("--threads", type=thread_count, default=None, help="CPU threads (default: all)")


def run(args: argparse.Namespace) -> int:
    from gene_jit.llama.quantize import quantize

    r = quantize(args.input, args.output, args.type, args.threads)
    print(f"{r.path}: {r.type}, {r.size_before / 1e6:.1f} MB -> {r.size_after / 1e6:.1f} MB "
          f"({r.size_after / r.size_before:.0%}) in {r.seconds:.1f} s")
    return 0
