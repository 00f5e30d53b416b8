"""Q4_0 of the default model with and without an importance matrix: the perplexity each
costs, on the text tests/test_quantize.py scores and on the README table's text.

The importance matrix is llama-imatrix's: for each weight, the mean square of each input
column over a calibration text, gathered here from the PyTorch forward pass of
gene_jit/llama/finetune_torch.py (which equals libllama's). The calibration text is other
licences than the GPL and Python's own documentation, never a scored text. "uniform" is a
matrix of ones: libllama then searches each block's scale for the least squared error
instead of taking it from the block's largest value.

    python bench/q4_0_imatrix.py [--calibration licences|self|FILE] [--calibration-tokens 8192] [--gpl-tokens 2048]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
LICENCES = ("Apache-2.0", "MPL-2.0", "GFDL-1.3", "Artistic", "CC0-1.0")
GPL = "/usr/share/common-licenses/GPL-3"


def calibration_text(kind: str = "licences", source: Path | None = None) -> str:
    """"licences" (other licences than the GPL and Python's pydoc topics), "self" (text
    the model writes itself, gene_jit/llama/quantize_calib.py) or a file's text."""
    if kind == "self":
        from gene_jit.llama.quantize_calib import self_text

        assert source is not None
        return self_text(source, threads=1)
    if kind != "licences":
        return Path(kind).read_text()
    from pydoc_data.topics import topics

    parts = [Path("/usr/share/common-licenses", name).read_text() for name in LICENCES]
    parts += [topics[k] for k in sorted(topics)]
    return "\n\n".join(parts)


def collect_imatrix(model_path: Path, tokens: list[int], window: int, bos: int) -> dict[str, np.ndarray]:
    """Mean squares of every projection's input columns over `tokens`, in windows."""
    import torch

    from gene_jit.llama.finetune_torch import Gemma3

    net = Gemma3(model_path)
    sums: dict[str, Any] = {}
    counts: dict[str, int] = {}
    plain = Gemma3._linear

    def linear(self: Gemma3, i: int, layer: dict[str, Any], name: str, x: Any) -> Any:
        key = f"blk.{i}.{name}.weight"
        sq = (x.detach() * x.detach()).sum(0)
        sums[key] = sq if key not in sums else sums[key] + sq
        counts[key] = counts.get(key, 0) + x.shape[0]
        return plain(self, i, layer, name, x)

    Gemma3._linear = linear  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            # each window starts with BOS, as every window perplexity scores and every
            # prompt does: Gemma's activations at BOS are far larger than elsewhere
            for start in range(0, len(tokens) - 1, window - 1):
                chunk = [bos, *tokens[start:start + window - 1]]
                c = net.cfg
                x = net.embed[torch.tensor(chunk, dtype=torch.long)] * c.embed_scale
                pos = torch.arange(len(chunk), dtype=torch.float32)
                for i, layer in enumerate(net.layers):  # the output projection is not needed
                    x = net._attention(i, layer, x, pos)
                    x = net._feed_forward(i, layer, x)
                print(f"  calibration: {min(start + window - 1, len(tokens))}/{len(tokens)} tokens", flush=True)
    finally:
        Gemma3._linear = plain  # type: ignore[method-assign]
    return {k: (sums[k] / counts[k]).numpy().astype(np.float32) for k in sums}


def arguments(doc: str, extra: Any = None) -> argparse.Namespace:
    """The options both Q4_0 benches take (`extra` adds its own to the parser)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--calibration-tokens", type=int, default=8192)
    ap.add_argument("--gpl-tokens", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-gpl", action="store_true")
    ap.add_argument("--calibration", default="licences", help='"licences", "self" or a text file')
    if extra is not None:
        extra(ap)
    return ap.parse_args()


def setup(args: argparse.Namespace) -> tuple[Path, list[int], int, Any, dict[str, Any]]:
    """The default model's path, the calibration tokens, BOS, a scorer (perplexity on the
    test's text with windows of 96, as tests/test_quantize.py, and on the GPL-3 text with
    windows of 512) and the table's first row, the default model itself."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_perplexity import TEXT

    from gene_jit.llama.model import Model
    from gene_jit.llama.perplexity import perplexity
    from gene_jit.llama.resolve import resolve_model

    source = resolve_model("default")
    base = Model(str(source), threads=args.threads, n_ctx=1024, progress=False)
    calib = base.tokenize(calibration_text(args.calibration, source))[1 : args.calibration_tokens + 1]
    bos = base.bos
    gpl = base.detokenize(base.tokenize(Path(GPL).read_text())[1 : args.gpl_tokens + 1])

    def score(m: Any) -> tuple[float, float | None]:
        test = perplexity(m, TEXT, 96, progress=False).perplexity
        readme = None if args.skip_gpl else perplexity(m, gpl, 512, progress=False).perplexity
        return test, readme

    rows = {"Q4_K_M (the default model)": score(base)}
    base.close()
    return source, calib, bos, score, rows


def score_file(path: Path, args: argparse.Namespace, score: Any) -> tuple[float, float | None]:
    from gene_jit.llama.model import Model

    m = Model(str(path), threads=args.threads, n_ctx=1024, progress=False)
    try:
        return score(m)
    finally:
        m.close()


def report(bench: str, rows: dict[str, tuple[float, float | None]]) -> None:
    test0, gpl0 = rows["Q4_K_M (the default model)"]
    print(f"\n# bench/{bench}, {time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()}")
    print("| file | PPL test text (w 96) | vs default | PPL GPL-3 2048 tok (w 512) | vs default |\n|---|---|---|---|---|")
    for label, (t, g) in rows.items():
        gtext = "-" if g is None or gpl0 is None else f"{g:.2f} | {100 * (g / gpl0 - 1):+.1f}%"
        print(f"| {label} | {t:.2f} | {100 * (t / test0 - 1):+.1f}% | {gtext} |")


def main() -> None:
    from gene_jit.llama.quantize import quantize

    args = arguments(__doc__ or "")
    source, calib, bos, score, rows = setup(args)
    started = time.perf_counter()
    learnt = collect_imatrix(source, calib, 512, bos)
    print(f"  calibration took {time.perf_counter() - started:.0f} s", flush=True)
    uniform = {k: np.ones_like(v) for k, v in learnt.items()}
    with tempfile.TemporaryDirectory() as folder:
        for label, imatrix in (("Q4_0", None), ("Q4_0 + uniform imatrix", uniform),
                               (f"Q4_0 + imatrix ({len(calib)} calibration tokens)", learnt)):
            path = quantize(str(source), Path(folder) / "q.gguf", "Q4_0", args.threads, False, imatrix).path
            rows[label] = score_file(path, args, score)
            print(f"  {label}: {rows[label]}", flush=True)
    report("q4_0_imatrix.py", rows)

if __name__ == "__main__":
    main()
