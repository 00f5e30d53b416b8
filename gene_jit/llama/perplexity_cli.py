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
    parser.add_argument("--threads", type=thread_count, default=None, help="CPU threads (default: up to 8)")


def thread_count(text: str) -> int:
    """argparse type of --threads: 1 to 1024 as :threads takes (0 or -2 would silently
    mean the default, 100000 would start that many threads)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 1024:
        raise argparse.ArgumentTypeError(f"expected a number of threads from 1 to 1024, got {text!r}")
    return n


def read_text(path: Path) -> str:
    """The file as UTF-8 text; a binary file would only be scored as noise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LlamaError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LlamaError(f"{path} is not a UTF-8 text file (byte {exc.start} is not UTF-8); "
                         "perplexity scores text") from None
    if "\0" in text:
        raise LlamaError(f"{path} is not a text file (byte {data.index(0)} is a NUL); perplexity scores text")
    return text


def run(args: argparse.Namespace) -> int:
    from gene_jit.llama.model import Model
    from gene_jit.llama.perplexity import perplexity

    text = read_text(Path(args.file))
    if not text.strip():
        raise LlamaError(f"{args.file} is empty; perplexity needs some text to score")
    model = Model(args.model, n_ctx=max(args.window, 256), threads=args.threads)
    result = perplexity(model, text, args.window)
    windows = "1 window" if result.windows == 1 else f"{result.windows} windows"
    print(f"{model.path.name}: {result.tokens} tokens scored in {windows} of {result.window}")
    print(result)
    return 0
