"""Q4_0 of the default model requantised with GPTQ: each weight's 4-bit values chosen
column by column so that the error of its products on calibration activations (not of the
weights themselves) is least, the error of each column folded into the columns not yet
quantised (Frantar et al., 2022), with Q4_0's blocks of 32 columns sharing one scale.

The file starts as libllama's Q4_0 with an importance matrix (bench/q4_0_imatrix.py), so
every tensor keeps the type llama.cpp's rules give it for that file type; the data of each
Q4_0 weight is then replaced by the GPTQ solution against the dequantised Q4_K_M weights.
Calibration: licences other than the GPL and Python's documentation, never a scored text.

    python bench/q4_0_gptq.py [--calibration-tokens 8192] [--gpl-tokens 2048]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from q4_0_imatrix import arguments, report, score_file, setup  # noqa: E402

from gene_jit.llama.quantize_gptq import pack_q4_0  # noqa: E402

QK = 32  # Q4_0 block


def collect(model_path: Path, tokens: list[int], window: int, bos: int) -> tuple[dict[str, Any], dict[str, int]]:
    """X^T X of every projection's inputs over `tokens` (shared by the weights that read
    the same input), and the token count."""
    import torch

    from gene_jit.llama.finetune_torch import Gemma3

    net = Gemma3(model_path)
    grams: dict[str, Any] = {}
    counts: dict[str, int] = {}
    shared = {"attn_q": "attn_in", "attn_k": "attn_in", "attn_v": "attn_in", "ffn_gate": "ffn_in", "ffn_up": "ffn_in"}
    plain = Gemma3._linear

    def linear(self: Gemma3, i: int, layer: dict[str, Any], name: str, x: Any) -> Any:
        key = f"blk.{i}.{shared.get(name, name)}"
        if name not in ("attn_k", "attn_v", "ffn_up"):  # the same input as attn_q / ffn_gate
            xd = x.detach().double()
            g = xd.T @ xd
            grams[key] = g if key not in grams else grams[key] + g
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
                for i, layer in enumerate(net.layers):
                    x = net._attention(i, layer, x, pos)
                    x = net._feed_forward(i, layer, x)
                print(f"  calibration: {min(start + window - 1, len(tokens))}/{len(tokens)} tokens", flush=True)
    finally:
        Gemma3._linear = plain  # type: ignore[method-assign]
    names = {"attn_q": "attn_in", "attn_k": "attn_in", "attn_v": "attn_in", "ffn_gate": "ffn_in",
             "ffn_up": "ffn_in", "attn_output": "attn_output", "ffn_down": "ffn_down"}
    out: dict[str, Any] = {}
    n: dict[str, int] = {}
    for i in range(len(net.layers)):
        for w, src in names.items():
            out[f"blk.{i}.{w}.weight"] = grams[f"blk.{i}.{src}"]
            n[f"blk.{i}.{w}.weight"] = counts[f"blk.{i}.{src}"]
    return out, n


def _scales(w: Any, weight: Any) -> Any:
    """Q4_0's scale per row of a [rows, 32] group, chosen as ggml's make_qx_quants chooses
    it with an importance matrix: of the scales that map the largest magnitude near -8,
    the one whose least-squares fit (weighted by `weight`) leaves the least error;
    rounded to the fp16 it is stored as."""
    import torch

    idx = w.abs().argmax(dim=1, keepdim=True)
    top = w.gather(1, idx)  # [rows, 1], the signed value of largest magnitude
    safe_top = torch.where(top == 0, torch.ones_like(top), top)
    best_gain = torch.full((w.shape[0],), -1.0, dtype=torch.float64)
    best = torch.zeros(w.shape[0], dtype=torch.float64)
    for k in range(-9, 10):
        iscale = -(8 + 0.1 * k) / safe_top
        q = torch.clamp(torch.round(iscale * w), -8, 7)
        sumlx = (weight * w * q).sum(1)
        suml2 = (weight * q * q).sum(1)
        ok = suml2 > 0
        scale = torch.where(ok, sumlx / torch.where(ok, suml2, torch.ones_like(suml2)), torch.zeros_like(sumlx))
        gain = scale * sumlx  # the error falls by this much
        better = ok & (gain > best_gain)
        best = torch.where(better, scale, best)
        best_gain = torch.where(better, gain, best_gain)
    best = torch.where(top.squeeze(1) == 0, torch.zeros_like(best), best)
    return best.to(torch.float16).to(torch.float64)


def gptq(weight: np.ndarray, gram: Any, damp: float = 0.01, block: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Q4_0 levels (-8..7, [rows, cols]) and fp16 scales ([rows, cols / 32]) for
    `weight`, least error on the activations whose X^T X is `gram`."""
    import torch

    W = torch.from_numpy(weight.astype(np.float64)).clone()
    H = gram.clone()
    imat = torch.diag(H).clone()
    sigma2 = (W * W).mean(1, keepdim=True)  # ggml's element weights: imatrix * sqrt(sigma2 + x^2)
    rows, cols = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=torch.float64)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    levels = torch.zeros(rows, cols, dtype=torch.int8)
    scales = torch.zeros(rows, cols // QK, dtype=torch.float64)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        d = None
        for i in range(i2 - i1):
            col = i1 + i
            if col % QK == 0:
                g = W1[:, i:i + QK]
                d = _scales(g, imat[col:col + QK][None, :] * torch.sqrt(sigma2 + g * g))
                scales[:, col // QK] = d
            assert d is not None
            safe = torch.where(d == 0, torch.ones_like(d), d)
            q = torch.clamp(torch.round(W1[:, i] / safe), -8, 7)
            q = torch.where(d == 0, torch.zeros_like(q), q)
            levels[:, col] = q.to(torch.int8)
            err = (W1[:, i] - q * d) / Hinv1[i, i]
            W1[:, i:] -= err[:, None] * Hinv1[i, i:][None, :]
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return levels.numpy(), scales.numpy()


def unpack_q4_0(raw: np.ndarray, cols: int) -> np.ndarray:
    rows = raw.shape[0]
    b = raw.reshape(rows, cols // QK, 18)
    d = b[:, :, :2].copy().view(np.float16).astype(np.float32)
    qs = b[:, :, 2:]
    lo, hi = (qs & 0xF).astype(np.float32) - 8, (qs >> 4).astype(np.float32) - 8
    return (np.concatenate([lo, hi], axis=2) * d).reshape(rows, cols)


def main() -> None:
    import gguf

    from gene_jit.engine.weights import GGUFFile
    from gene_jit.llama.finetune_torch import dense
    from gene_jit.llama.quantize import quantize

    args = arguments(__doc__ or "", lambda ap: ap.add_argument("--keep", help="also copy the GPTQ file here"))
    source, calib, bos, score, rows = setup(args)
    started = time.perf_counter()
    grams, counts = collect(source, calib, 512, bos)
    imatrix = {k: (np.diag(g.numpy()) / counts[k]).astype(np.float32) for k, g in grams.items()}
    print(f"  calibration took {time.perf_counter() - started:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        path = quantize(str(source), Path(folder) / "q.gguf", "Q4_0", args.threads, False, imatrix).path
        label = f"Q4_0 + imatrix ({len(calib)} tokens)"
        rows[label] = score_file(path, args, score)
        print(f"  imatrix: {rows[label]}", flush=True)
        src = GGUFFile(source)
        reader = gguf.GGUFReader(str(path), "r+")
        started = time.perf_counter()
        done = 0
        for t in reader.tensors:
            if t.tensor_type != gguf.GGMLQuantizationType.Q4_0 or t.name not in grams:
                continue
            w = dense(src, t.name)
            levels, scales = gptq(w, grams[t.name])
            t.data[...] = pack_q4_0(levels, scales).reshape(t.data.shape)
            done += 1
        reader.data.flush()
        del reader
        print(f"  GPTQ on {done} tensors took {time.perf_counter() - started:.0f} s", flush=True)
        if args.keep:
            shutil.copy(path, args.keep)
        rows[f"Q4_0 GPTQ ({len(calib)} tokens)"] = score_file(path, args, score)
    report("q4_0_gptq.py", rows)

if __name__ == "__main__":
    main()
