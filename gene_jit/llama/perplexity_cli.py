"""`gene-jit perplexity MODEL FILE`: the model's perplexity on a text file, computed as
llama.cpp's perplexity tool computes it, printed as "PPL = x +/- e"."""

from __future__ import annotations

import argparse
from pathlib import Path

from gene_jit.llama.errors import LlamaError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help='a model name ("default") or the path of a .gguf file')
    parser.add_argument("file", help="the text file to score")
    parser.add_argument("--window", type=int, default=512, help="tokens per window (default 512)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: up to 8)")


def run(args: argparse.Namespace) -> int:
    from gene_jit.llama.model import Model
    from gene_jit.llama.perplexity import perplexity

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise LlamaError(f"cannot read {path}: {exc.strerror or exc}") from None
    model = Model(args.model, n_ctx=max(args.window, 256), threads=args.threads)
    result = perplexity(model, text, args.window)
    print(f"{model.path.name}: {result.tokens} tokens scored in {result.windows} windows of {result.window}")
    print(result)
    return 0
