"""`gene-jit quantize IN OUT TYPE`: write a quantised copy of a GGUF model (TYPE such as
Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0, F16), with progress, and print the sizes. Types of 4
bits and fewer made from an already quantised model are calibrated on text the model
writes itself unless `--calibration FILE`, `--imatrix FILE` or `--no-calibration` says
otherwise."""

from __future__ import annotations

import argparse
import os


def configure(parser: argparse.ArgumentParser) -> None:
    from gene_jit.llama.perplexity_cli import thread_count
    from gene_jit.llama.quantize import TYPES

    parser.add_argument("input", help='a model name ("default") or the path of a .gguf file')
    parser.add_argument("output", help="the .gguf file to write")
    parser.add_argument("type", help="one of " + ", ".join(TYPES))
    parser.add_argument("--threads", type=thread_count, default=None, help="CPU threads (default: all)")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--calibration", metavar="FILE", help="calibrate on this text (default for types of 4 bits "
                     "and fewer from a quantised model: text the model writes itself)")
    how.add_argument("--imatrix", metavar="FILE", help="use this importance matrix (llama-imatrix's GGUF or .dat)")
    how.add_argument("--no-calibration", action="store_true", help="quantise without an importance matrix")


def check_output_name(out: str, entry: str, kind: str = "Q8_0") -> None:
    """Refuse an output that is not a .gguf file name: one such as `default` would be
    written as a file in the current folder while the same word, read as the input
    elsewhere, still means the built-in model."""
    from gene_jit.llama.quantize import QuantizeError
    from gene_jit.llama.resolve import DEFAULT_NAMES

    if out.lower().endswith(".gguf") or os.path.isdir(out):  # a folder: check_output says so
        return
    builtin = " (it names the built-in model)" if out.strip().lower() in DEFAULT_NAMES else ""
    stem = os.path.splitext(out.rstrip("/"))[0] or "model"
    raise QuantizeError(f'{entry}: the output "{out}"{builtin} is not a .gguf file name; '
                        f"give the file to write, such as {stem}-{kind.lower()}.gguf")


def run(args: argparse.Namespace) -> int:
    from gene_jit.llama.quantize import quantize

    check_output_name(args.output, "gene-jit quantize", str(args.type))
    calibration = False if args.no_calibration else args.calibration
    r = quantize(args.input, args.output, args.type, args.threads, None, args.imatrix, calibration)
    print(f"{r.path}: {r.type}, {r.size_before / 1e6:.1f} MB -> {r.size_after / 1e6:.1f} MB "
          f"({r.size_after / r.size_before:.0%}) in {r.seconds:.1f} s")
    if r.calibration:
        print(f"calibrated: {r.calibration}")
    return 0
