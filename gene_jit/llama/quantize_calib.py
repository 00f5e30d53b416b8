"""Calibration for quantising to 4 bits and below: text the model writes itself, and the
importance matrix libllama's quantiser weighs each weight's rounding error by.

A 4-bit file made from an already 4-bit source (the default model ships only as Q4_K_M)
rounds every weight a second time; without knowing which input columns matter, libllama
spends its few levels evenly and the perplexity rises by 40-50%. llama.cpp's answer is
an importance matrix: for every weight, the mean square of each of its input columns over
some calibration text (what `llama-imatrix` computes). Where no text is given, the model
writes its own, as in data-free calibration (LLM-QAT, Liu et al., 2023): a few thousand
tokens sampled from varied openers (stories, dialogue, explanations, code, lists) at a
fixed seed, so the same model file always gets the same text. The text is cached beside
the model (it costs about a minute on two cores); the matrix is collected from libllama's
own forward pass, through its evaluation callback, as `llama-imatrix` collects it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gene_jit.llama.progress import Bar

if TYPE_CHECKING:
    import numpy as np

    from gene_jit.llama.model import Model
    from gene_jit.llama.quantize_imatrix import Collector

SELF_TOKENS = 4096  # tokens the model writes for its own calibration
SELF_SEED = 17
SELF_TEMPERATURE = 0.9
WINDOW = 512  # calibration windows, each starting with BOS as every prompt does

# Varied beginnings, so the calibration covers the kinds of text a model is asked for.
OPENERS = (
    "Once upon a time, in a village at the edge of a great forest,",
    "The old carpenter put down his tools and looked out of the workshop window.",
    '"Where have you been all night?" she asked, closing the door behind him.',
    "Chapter 1\n\nThe train was already late when Maria reached the station.",
    "Q: Why do leaves change colour in autumn?\nA:",
    "Photosynthesis is the process by which plants",
    "The history of the printing press begins",
    "Here is a simple recipe for vegetable soup.\n\nIngredients:\n-",
    "def merge_sorted(a, b):\n    \"\"\"Merge two sorted lists into one sorted list.\"\"\"\n",
    "Dear Mr. Thompson,\n\nThank you for your letter of",
    "Top ten tips for a good night's sleep:\n1.",
    "In economics, inflation means",
    "The museum guide stopped in front of the painting and said,",
    "Meeting notes, Tuesday\n\nAttendees:",
    "It was the hottest summer anyone in the city could remember.",
    "How to change a bicycle tyre, step by step:\n\nStep 1:",
)


def self_text_path(source: Path, tokens: int = SELF_TOKENS) -> Path:
    """Where the calibration text the model at `source` wrote is kept: beside it, or in
    the model cache when its folder is not writable."""
    from gene_jit.llama.resolve import cache_dir

    folder = source.parent if os.access(source.parent, os.W_OK) else cache_dir()
    return folder / f"{source.stem}.calibration-{tokens}.txt"


def self_text(source: Path, threads: int | None = None, show: bool = False, tokens: int = SELF_TOKENS) -> str:
    """The calibration text the model at `source` writes itself (cached; a cache older
    than the model was written by a file since replaced)."""
    path = self_text_path(source, tokens)
    if path.is_file() and path.stat().st_mtime_ns >= source.stat().st_mtime_ns:
        with open(path, encoding="utf-8", newline="") as f:  # a "\r" the model wrote stays one
            return f.read()
    from gene_jit.llama.model import Model

    model = Model(str(source), threads=threads, n_ctx=512, progress=False)
    try:
        text = write_own_text(model, tokens, show)
    finally:
        model.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs the next run the same minute
    finally:
        tmp.unlink(missing_ok=True)
    return text


def write_own_text(model: Model, tokens: int, show: bool) -> str:
    """About `tokens` tokens sampled from the model, one sequence per opener, all decoded
    together; the samples separated by blank lines."""
    from gene_jit.llama.batch import _context_for
    from gene_jit.llama.finetune import StopRequest
    from gene_jit.llama.sampler import Sampling

    prompts = [model.prompt_tokens(o) for o in OPENERS]
    # a little more than an even share each, as some samples end early
    per_seq = tokens * 5 // (4 * len(prompts)) + 1
    ctx = _context_for(model, len(prompts), max(map(len, prompts)) + per_seq + 1)
    samplers = [Sampling(temperature=SELF_TEMPERATURE, seed=SELF_SEED + s).build(model) for s in range(len(prompts))]
    out: list[list[int]] = [[] for _ in prompts]
    made = 0
    try:
        # Ctrl-C sets a flag: a KeyboardInterrupt raised in libllama's log callback is lost
        with ctx.lock, StopRequest() as stop, Bar("writing calibration text", tokens, show) as bar:
            ctx.clear()
            ctx.owner = None
            ctx.feed_prompts({s: p[:-1] for s, p in enumerate(prompts)})
            live = dict(enumerate(ctx.feed_rows([(s, p[-1]) for s, p in enumerate(prompts)])))
            while live and made < tokens:
                if stop.asked:
                    raise KeyboardInterrupt
                rows = []
                for s, idx in live.items():
                    tok = samplers[s].sample(ctx.ptr, idx)
                    if model.is_eog(tok) or len(out[s]) >= per_seq:
                        continue
                    out[s].append(tok)
                    rows.append((s, tok))
                made += len(rows)
                bar.update(min(made, tokens))
                live = dict(zip((s for s, _ in rows), ctx.feed_rows(rows), strict=True)) if rows else {}
    finally:
        for sampler in samplers:
            sampler.close()
        ctx.clear()
    return "\n\n".join(o + model.detokenize(t) for o, t in zip(OPENERS, out, strict=True))


def windows(model: Model, text: str, window: int = WINDOW) -> list[list[int]]:
    """The text's tokens in windows of `window`, each starting with BOS."""
    tokens = model.tokenize(text, add_special=False)
    step = window - 1
    return [[model.bos, *tokens[s:s + step]] for s in range(0, len(tokens), step) if tokens[s:s + step]]


# ---------------------------------------------------------------------------
# What a quantisation is calibrated with.

# Types of 4 bits and fewer: made from an already quantised model they lose the most
# (a second rounding), and an importance matrix is what llama.cpp quantises them with.
CALIBRATED = ("Q4_K_M", "Q4_K_S", "Q4_1", "IQ4_NL", "IQ4_XS", "Q4_0", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K")
GPTQ_TYPES = ("Q4_0",)
FLOAT_TYPES = (None, "F32", "F16", "BF16")
NO_IMATRIX = ("Q8_0", "F32", "F16", "BF16")  # types libllama quantises without an importance matrix


@dataclass
class Calibration:
    imatrix: dict[str, np.ndarray]
    collector: Collector | None  # the inputs' X^T X, for GPTQ
    note: str  # what it was made from, for the result


def calibrate(src: Path, kind: str, calibration: Any, imatrix: Any, threads: int | None,
              show: bool) -> Calibration | None:
    """The importance matrix (and X^T X) a quantisation of `src` to `kind` uses:
    `imatrix` a dict or a llama-imatrix file; `calibration` None (automatic: the model's
    own text for a type of 4 bits or fewer made from a quantised model), False (none),
    True (the model's own text) or the path of a text file."""
    from gene_jit.llama.quantize import QuantizeError, source_type

    if imatrix is not None and calibration not in (None, False):
        raise QuantizeError("give a calibration text or an importance matrix, not both")
    if kind in NO_IMATRIX and (imatrix is not None or calibration not in (None, False)):
        # libllama quantises these without one: computing it would cost minutes for nothing
        print(f"note: {kind} takes no importance matrix; the calibration is not used", file=sys.stderr)
        return None
    if isinstance(imatrix, dict):
        return Calibration(imatrix, None, "importance matrix given") if imatrix else None
    if imatrix is not None:
        from gene_jit.llama.quantize_imatrix import read_imatrix

        return Calibration(read_imatrix(str(imatrix)), None, f"importance matrix {imatrix}")
    if calibration is False or (calibration is None and (kind not in CALIBRATED or source_type(src) in FLOAT_TYPES)):
        return None
    if calibration in (None, True):
        text, what = self_text(src, threads, show), "the model's own text"
    else:
        text, what = _text_file(Path(str(calibration)).expanduser()), f"{calibration}"
    return _collect(src, text, what, kind in GPTQ_TYPES and _grams_fit(src), threads, show)


def _grams_fit(src: Path) -> bool:
    """Whether the X^T X sums GPTQ needs (float64, one per distinct input of each layer)
    fit in a quarter of the memory available; a larger model gets its importance matrix
    only."""
    from gene_jit.llama.gguf_check import check_model_file
    from gene_jit.llama.quantize import available_memory

    shared = {"attn_k": "attn_q", "attn_v": "attn_q", "ffn_up": "ffn_gate"}
    inputs: dict[tuple[str, str], int] = {}
    for t in check_model_file(src).tensors.values():
        parts = t.name.split(".")
        if len(parts) == 4 and parts[0] == "blk" and len(t.shape) == 2:
            inputs[(parts[1], shared.get(parts[2], parts[2]))] = int(t.shape[0])
    return sum(8 * n * n for n in inputs.values()) < available_memory() // 4


def _text_file(path: Path) -> str:
    from gene_jit.llama.quantize import QuantizeError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise QuantizeError(f"cannot read the calibration text {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not text.strip():
        raise QuantizeError(f"the calibration text {path} is empty")
    return text


def _collect(src: Path, text: str, what: str, grams: bool, threads: int | None, show: bool) -> Calibration:
    from gene_jit.llama.model import Model
    from gene_jit.llama.quantize_imatrix import collect

    model = Model(str(src), threads=threads, n_ctx=WINDOW, progress=False)
    try:
        chunks = windows(model, text)
        col = collect(model, chunks, grams=grams, show=show)
    finally:
        model.close()
    n = sum(map(len, chunks))
    how = "importance matrix and GPTQ" if grams else "importance matrix"
    return Calibration(col.imatrix(), col if grams else None, f"{how} from {what} ({n} tokens)")
