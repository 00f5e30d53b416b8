"""GPTQ for Q4_0 files (Frantar et al., 2022): each weight's 4-bit levels chosen column by
column so that the error of its products on calibration inputs, not of the weights
themselves, is least; the rounding error of each column is folded into the columns not
yet quantised, through the inverse of the inputs' X^T X.

The file is libllama's Q4_0 (made with an importance matrix), so every tensor keeps the
type llama.cpp's rules give it for that file type and the file stays an ordinary Q4_0
model; only the data of its Q4_0 weights is replaced, in place, by the GPTQ solution
against the source's own (dequantised) weights. Each block of 32 columns shares one fp16
scale, searched as ggml's `make_qx_quants` searches it with an importance matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

QK = 32  # columns in a Q4_0 block
# Share of X^T X's mean diagonal added to it. The GPTQ paper's 0.01 fits the few thousand
# calibration tokens too closely: 0.1 costs less perplexity on other text
# (bench/results/quantize_table.txt).
DAMP = 0.1
BLOCK = 128  # columns whose updates are applied together


def block_scales(w: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Q4_0's scale for each row of a [rows, 32] block: of the scales that map the
    largest magnitude near -8, the one whose least-squares fit weighted by `weight`
    leaves the least error; rounded to the fp16 it is stored as."""
    idx = np.abs(w).argmax(axis=1)
    top = w[np.arange(w.shape[0]), idx][:, None]
    safe_top = np.where(top == 0, 1.0, top)
    best_gain = np.full(w.shape[0], -1.0)
    best = np.zeros(w.shape[0])
    for k in range(-9, 10):
        q = np.clip(np.rint(-(8 + 0.1 * k) / safe_top * w), -8, 7)
        sumlx = (weight * w * q).sum(1)
        suml2 = (weight * q * q).sum(1)
        ok = suml2 > 0
        scale = np.where(ok, sumlx / np.where(ok, suml2, 1.0), 0.0)
        gain = scale * sumlx  # the squared error falls by this much
        better = ok & (gain > best_gain)
        best = np.where(better, scale, best)
        best_gain = np.where(better, gain, best_gain)
    best = np.where(top[:, 0] == 0, 0.0, best)
    return best.astype(np.float16).astype(np.float64)


def inverse_factor(gram: np.ndarray, damp: float = DAMP,
                   act_order: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What GPTQ needs of the inputs' X^T X (shared by the weights that read one input):
    the column order (largest input first in `act_order`), the upper triangular U with
    U^T U = (H + damping)^-1 in that order, and which columns saw no input."""
    perm = np.argsort(-np.diag(gram), kind="stable") if act_order else np.arange(len(gram))
    H = gram[np.ix_(perm, perm)].astype(np.float64)
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    H[np.diag_indices_from(H)] += damp * np.mean(np.diag(H))
    # H reversed is L L^T, so H = (J L J)(J L J)^T with J L J upper triangular, and the
    # inverse of that factor is U: one Cholesky and one triangular inverse
    flipped = H[::-1, ::-1]
    for _ in range(4):  # a Hessian short of positive definite gets more damping
        try:
            L = np.linalg.cholesky(flipped)
            break
        except np.linalg.LinAlgError:
            flipped = flipped + damp * np.mean(np.diag(H)) * np.eye(len(H))
    else:
        raise np.linalg.LinAlgError("the calibration inputs' X^T X is not positive definite")
    U = np.linalg.inv(L)[::-1, ::-1]
    return perm, np.triu(U), dead


def gptq(weight: np.ndarray, gram: np.ndarray, imatrix: np.ndarray, damp: float = DAMP,
         act_order: bool = True,
         factor: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Q4_0 levels (-8..7, [rows, cols]) and scales ([rows, cols / 32]) for `weight`
    ([rows, cols]) with least error on inputs whose X^T X is `gram` (`factor`: its
    `inverse_factor`, when already made). In `act_order` the columns go largest input
    first (their error then spreads over the most columns), each block's scale fixed
    beforehand from the weights as they are."""
    W = weight.astype(np.float64, copy=True)
    rows, cols = W.shape
    sigma2 = (W * W).mean(1, keepdims=True)  # ggml's element weights: imatrix * sqrt(sigma2 + x^2)
    scales = np.zeros((rows, cols // QK))
    if act_order:
        for b in range(cols // QK):
            g = W[:, b * QK:(b + 1) * QK]
            scales[:, b] = block_scales(g, imatrix[b * QK:(b + 1) * QK][None, :] * np.sqrt(sigma2 + g * g))
    perm, Hinv, dead = factor if factor is not None else inverse_factor(gram, damp, act_order)
    W = W[:, perm]
    W[:, dead] = 0.0
    levels = np.zeros((rows, cols), np.int8)
    for i1 in range(0, cols, BLOCK):
        i2 = min(i1 + BLOCK, cols)
        W1 = W[:, i1:i2].copy()
        Err1 = np.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        d = np.zeros(rows)
        for i in range(i2 - i1):
            col = int(perm[i1 + i])
            if act_order:
                d = scales[:, col // QK]
            elif col % QK == 0:
                g = W1[:, i:i + QK]
                d = block_scales(g, imatrix[col:col + QK][None, :] * np.sqrt(sigma2 + g * g))
                scales[:, col // QK] = d
            safe = np.where(d == 0, 1.0, d)
            q = np.where(d == 0, 0.0, np.clip(np.rint(W1[:, i] / safe), -8, 7))
            levels[:, col] = q
            err = (W1[:, i] - q * d) / Hinv1[i, i]
            W1[:, i:] -= np.outer(err, Hinv1[i, i:])
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return levels, scales


def pack_q4_0(levels: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Rows of Q4_0 blocks (fp16 scale, 16 bytes of two 4-bit values each) as GGUF
    stores them."""
    rows, cols = levels.shape
    nb = cols // QK
    L = (levels.astype(np.int16) + 8).astype(np.uint8).reshape(rows, nb, QK)
    qs = L[:, :, :16] | (L[:, :, 16:] << 4)
    d = scales.astype(np.float16).view(np.uint8).reshape(rows, nb, 2)
    return np.concatenate([d, qs], axis=2).reshape(rows, nb * 18)


def requantise(path: Path, source: Path, grams: Callable[[str], np.ndarray | None],
               imatrix: dict[str, np.ndarray], step: Callable[[int, int], None], damp: float = DAMP,
               act_order: bool = True) -> int:
    """Replace, in the Q4_0 file at `path`, the data of every Q4_0 weight whose inputs
    were seen (`grams(name)` not None) by its GPTQ solution against the weights of
    `source`; returns how many were replaced. `step(done, total)` reports progress."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    from gene_jit.llama.gguf_check import check_model_file

    src, out = check_model_file(source), check_model_file(path)
    todo = [t for t in out.tensors.values() if t.type == GGMLQuantizationType.Q4_0 and len(t.shape) == 2
            and t.name in imatrix and t.name in src.tensors and grams(t.name) is not None]
    src_map = np.memmap(source, np.uint8, "r")
    out_map = np.memmap(path, np.uint8, "r+")
    factors: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # q, k, v (gate, up) share one
    try:
        for done, t in enumerate(todo, 1):
            w = src.tensors[t.name]
            at = src.data_offset + w.offset
            dense = dequantize(np.asarray(src_map[at:at + w.nbytes]), GGMLQuantizationType(w.type))
            gram = grams(t.name)
            assert gram is not None
            if id(gram) not in factors:
                factors.clear()
                factors[id(gram)] = inverse_factor(gram, damp, act_order)
            levels, scales = gptq(dense.reshape(-1, w.shape[0]), gram, imatrix[t.name].astype(np.float64),
                                  damp, act_order, factors[id(gram)])
            at = out.data_offset + t.offset
            out_map[at:at + t.nbytes] = pack_q4_0(levels, scales).reshape(-1)
            step(done, len(todo))
        out_map.flush()
    finally:
        del out_map, src_map
    return len(todo)
