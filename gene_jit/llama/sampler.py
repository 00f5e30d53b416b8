"""Sampling: the settings a generation takes (`Sampling`) and the libllama samplers built
from them (`Sampler`), with grammars applied lazily as llama.cpp's own common sampler does.

A grammar sampler costs a pass over the whole vocabulary (262k tokens on the default
model) when it filters every candidate, which made each constrained token cost tenths of
a second. So the grammar stays out of the chain: the chain samples as if unconstrained,
the grammar checks only the chosen token, and only when it rejects that token is the
grammar applied to the candidates and the chain run again on what is left. Greedy output
is the same as with the grammar in front of the chain (the argmax of the allowed tokens
is the argmax when it is allowed, and is found by the second pass when it is not).

The second pass first tries a shortlist: the SHORTLIST tokens of highest logit. When the
chain keeps only the best `need` tokens anyway (greedy: 1; top-k: k) and the shortlist
holds at least `need` tokens the grammar allows, those are exactly the tokens a pass over
the whole vocabulary would have kept, so the result is the same for a fraction of the cost;
otherwise the whole vocabulary is filtered.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gene_jit.llama import bindings
from gene_jit.llama.bindings import SamplerHandle
from gene_jit.llama.errors import GrammarError, LlamaError
from gene_jit.llama.grammar import grammar_text, schema_to_gbnf
from gene_jit.llama.options import shown

if TYPE_CHECKING:
    from gene_jit.llama.model import Model


class TokenData(ctypes.Structure):
    """`llama_token_data` (llama.h)."""

    _fields_ = [("id", ctypes.c_int32), ("logit", ctypes.c_float), ("p", ctypes.c_float)]


class TokenDataArray(ctypes.Structure):
    """`llama_token_data_array` (llama.h): candidates that samplers filter in place."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("size", ctypes.c_size_t),
        ("selected", ctypes.c_int64),
        ("sorted", ctypes.c_bool),
    ]


# The NumPy view of an array of `llama_token_data` (12 bytes, no padding).
TOKEN_DATA_DTYPE = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
assert TOKEN_DATA_DTYPE.itemsize == ctypes.sizeof(TokenData)

SHORTLIST = 1024  # candidates the grammar filters first after rejecting a sampled token


@dataclass
class Sampling:
    """Sampling settings (`generate-text` keyword arguments); temperature 0 is greedy.

    `lazy_grammar` false puts the grammar in front of the chain (filtering every
    candidate at every step): the reference the lazy way is tested against."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    seed: int | None = None
    grammar: str | None = None
    lazy_grammar: bool = True

    @classmethod
    def from_kwargs(cls, model: Model, kw: dict[str, Any]) -> Sampling:
        s = cls(seed=model.seed)
        for name in ("temperature", "top_p", "min_p", "repeat_penalty"):
            if kw.get(name) is not None:
                setattr(s, name, _number(name, kw[name]))
        for name in ("top_k", "repeat_last_n", "seed"):
            if kw.get(name) is not None:
                setattr(s, name, int(_number(name, kw[name])))
        if kw.get("grammar") is not None:
            s.grammar = grammar_text(kw["grammar"])
        if kw.get("json_schema") is not None:
            s.grammar = schema_to_gbnf(kw["json_schema"])
        return s

    def build(self, model: Model) -> Sampler:
        """The libllama samplers for these settings."""
        raw = bindings.lib()
        grammar: SamplerHandle | None = None
        if self.grammar is not None:
            grammar = SamplerHandle(_init_grammar(model, self.grammar), "grammar sampler")
        chain = SamplerHandle(raw.llama_sampler_chain_init(raw.llama_sampler_chain_default_params()), "sampler")
        add = raw.llama_sampler_chain_add
        if grammar is not None and not self.lazy_grammar:
            add(chain.ptr, grammar.ptr)  # the chain owns it from here on
            grammar.ptr = 0
            grammar = None
        if self.repeat_penalty != 1.0:
            penalties = raw.llama_sampler_init_penalties(
                model.n_vocab, self.repeat_last_n, self.repeat_penalty, 0.0, 0.0
            )
            add(chain.ptr, penalties)
        if self.temperature <= 0.0:
            add(chain.ptr, raw.llama_sampler_init_greedy())
        else:
            if self.top_k > 0:
                add(chain.ptr, raw.llama_sampler_init_top_k(self.top_k))
            if self.top_p < 1.0:
                add(chain.ptr, raw.llama_sampler_init_top_p(self.top_p, 1))
            if self.min_p > 0.0:
                add(chain.ptr, raw.llama_sampler_init_min_p(self.min_p, 1))
            add(chain.ptr, raw.llama_sampler_init_temp(self.temperature))
            seed = bindings.DEFAULT_SEED if self.seed is None else self.seed & 0xFFFFFFFF
            add(chain.ptr, raw.llama_sampler_init_dist(seed))
        # only the penalties sampler remembers accepted tokens: with it, the chain must
        # not see a token that the grammar then rejects (and it reorders logits, so the
        # shortlist by raw logit would not be the chain's)
        stateful = self.repeat_penalty != 1.0
        need = 0 if stateful else 1 if self.temperature <= 0.0 else max(self.top_k, 0)
        sampler = Sampler(chain, grammar, model.n_vocab, stateful=stateful, need=need)
        sampler.source = str(getattr(model, "path", "the model"))
        return sampler


def _init_grammar(model: Model, text: str) -> int:
    """libllama's grammar sampler for GBNF `text`; a grammar it refuses is a Gene error
    that repeats the parser's reason (which libllama only prints)."""
    with bindings.capture_stderr() as said:
        ptr = bindings.lib().llama_sampler_init_grammar(model.vocab, text, "root")
    if ptr:
        bindings.replay(said)
        return int(ptr)
    raise GrammarError(f"the grammar does not parse as GBNF: {grammar_problem(''.join(said))}")


def grammar_problem(report: str) -> str:
    """The reason in what libllama reported about a grammar it could not parse."""
    for marker in ("error parsing grammar: ", "failed to parse grammar"):
        at = report.find(marker)
        if at >= 0:
            reason = report[at + len(marker) :].split("\n\n", 1)[0].strip()
            if marker.startswith("failed") or not reason:
                break
            return reason + " the end of the grammar" if reason.endswith(" at") else reason
    if "root" in report:
        return "it has no rule named root (the rule generation starts from)"
    lines = [ln.strip() for ln in report.splitlines() if ln.strip()]
    return lines[0] if lines else "libllama gave no reason"


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LlamaError(f":{name.replace('_', '-')} must be a number, got {shown(value)}")
    return float(value)


class Sampler:
    """A libllama sampler chain and, for constrained generation, the grammar sampler
    kept beside it (applied lazily; see the module docstring)."""

    def __init__(
        self, chain: SamplerHandle, grammar: SamplerHandle | None, n_vocab: int, stateful: bool, need: int = 0
    ) -> None:
        self.chain, self.grammar, self.n_vocab, self.stateful = chain, grammar, n_vocab, stateful
        # allowed tokens the shortlist must hold to stand for the whole vocabulary (0: never)
        self.shortlist = SHORTLIST
        self.need = need if 0 < need <= SHORTLIST // 4 and n_vocab > SHORTLIST else 0
        raw = bindings.lib()
        self._sample, self._apply, self._accept = raw.llama_sampler_sample, raw.llama_sampler_apply, raw.llama_sampler_accept
        self.source = "the model"  # its file, named when its logits are NaN
        self.checks = 0  # tokens the grammar checked alone
        self.resamples = 0  # tokens it rejected (each cost a second pass)
        self.full_passes = 0  # second passes over the whole vocabulary
        # the one-candidate array that checks a token against the grammar
        self._one = TokenData()
        self._one_arr = TokenDataArray(ctypes.addressof(self._one), 1, -1, False)
        self._all: np.ndarray | None = None  # every candidate, allocated on first need
        self._all_arr = TokenDataArray()
        self._row: Any = ctypes.c_float * n_vocab  # a row of logits, read in place
        self._short = np.zeros(self.shortlist, dtype=TOKEN_DATA_DTYPE) if self.need and grammar else None

    def sample(self, ctx_ptr: int, idx: int) -> int:
        """The next token from the logits at batch index `idx`, accepted into the
        samplers' state (the grammar's parse state, the penalties' history)."""
        if self.grammar is None:
            return self._finite(ctx_ptr, idx, self._sample_chain(ctx_ptr, idx))
        return self._sample_constrained(ctx_ptr, idx)

    def _finite(self, ctx_ptr: Any, idx: int, tok: int) -> int:
        """`tok`, unless its logit is NaN. Every sampler picks some token from NaN
        logits (greedy the first, others any), so a model whose weights are corrupt
        would otherwise generate empty or garbage text as if it were fine; one float
        read per token finds it, as a NaN anywhere in a forward pass reaches every
        logit, the chosen one included."""
        if not 0 <= tok < self.n_vocab:
            return tok
        if isinstance(ctx_ptr, int):
            ptr = bindings.lib().llama_get_logits_ith(ctx_ptr, idx)
            if not ptr:
                return tok
            value = ctypes.c_float.from_address(int(ptr) + tok * ctypes.sizeof(ctypes.c_float)).value
        else:
            value = float(np.asarray(ctx_ptr.logits_row(idx))[tok])
        if math.isnan(value):
            raise LlamaError(
                f"the model {self.source} computed NaN (not-a-number) logits, so no token can be "
                "chosen: its weights are probably corrupt (a damaged or badly converted file); "
                "download or convert it again")
        return tok

    def _sample_constrained(self, ctx_ptr: int, idx: int) -> int:
        if self.stateful:
            tok = self._choose(ctx_ptr, idx, grammar=False)
        else:
            tok = self._sample_chain(ctx_ptr, idx)
        if not self.checks:  # the first token only: later steps read logits only on rejections
            self._finite(ctx_ptr, idx, tok)
        self.checks += 1
        if not self._allowed(tok):
            self.resamples += 1
            tok = self._choose(ctx_ptr, idx, grammar=True)
        if self.stateful:
            self._accept(self.chain.ptr, tok)
        assert self.grammar is not None
        self._accept(self.grammar.ptr, tok)
        return tok

    def _sample_chain(self, ctx_ptr: Any, idx: int) -> int:
        """The chain's token, accepted: `llama_sampler_sample` on a libllama context; on
        a native engine's context (`ctx_ptr` the context object, gene_jit/engine) the
        same steps over the logits array it holds."""
        if isinstance(ctx_ptr, int):
            return int(self._sample(self.chain.ptr, ctx_ptr, idx))
        tok = self._choose(ctx_ptr, idx, grammar=False)
        self._accept(self.chain.ptr, tok)
        return tok

    def grammar_complete(self, end_token: int) -> bool:
        """Whether the output so far is a whole match of the grammar (it may end here);
        true without a grammar, or with one inside the chain that cannot be asked."""
        return self.grammar is None or self._allowed(end_token)

    def _allowed(self, tok: int) -> bool:
        """Whether the grammar accepts `tok` next (it sets a rejected logit to -inf)."""
        one, arr = self._one, self._one_arr
        one.id, one.logit, one.p = tok, 1.0, 0.0
        arr.size, arr.selected, arr.sorted = 1, -1, False
        assert self.grammar is not None
        self._apply(self.grammar.ptr, ctypes.addressof(arr))
        return not math.isinf(one.logit)

    def _choose(self, ctx_ptr: int, idx: int, grammar: bool) -> int:
        """Run the chain over the candidates (after the grammar when `grammar`), without
        accepting the result: what llama.cpp's common sampler does on a rejection."""
        logits = self._logits(ctx_ptr, idx)
        if grammar and self._short is not None:
            short = self._shortlist(logits)
            if int(np.isfinite(short["logit"]).sum()) >= self.need:
                return self._run_chain(short, grammar=False)
        self.full_passes += int(grammar)
        if self._all is None:
            self._all = np.zeros(self.n_vocab, dtype=TOKEN_DATA_DTYPE)
            self._ids = np.arange(self.n_vocab, dtype=np.int32)
        cur = self._all  # samplers reorder it in place, so every field is written afresh
        cur["id"] = self._ids
        cur["logit"] = logits
        cur["p"] = 0.0
        return self._run_chain(cur, grammar)

    def _shortlist(self, logits: np.ndarray) -> np.ndarray:
        """The `shortlist` best candidates, in id order, filtered by the grammar."""
        assert self._short is not None and self.grammar is not None
        n, k = self.n_vocab, self.shortlist
        top = np.argpartition(logits, n - k)[n - k :]
        top.sort()  # id order, so that ties break as in the whole vocabulary
        short = self._short
        short["id"] = top
        short["logit"] = logits[top]
        short["p"] = 0.0
        arr = self._all_arr
        arr.data, arr.size, arr.selected, arr.sorted = short.ctypes.data, k, -1, False
        self._apply(self.grammar.ptr, ctypes.addressof(arr))
        return short

    def _run_chain(self, cur: np.ndarray, grammar: bool) -> int:
        arr = self._all_arr
        arr.data, arr.size, arr.selected, arr.sorted = cur.ctypes.data, len(cur), -1, False
        if grammar:
            assert self.grammar is not None
            self._apply(self.grammar.ptr, ctypes.addressof(arr))
        self._apply(self.chain.ptr, ctypes.addressof(arr))
        if not 0 <= arr.selected < arr.size or not arr.data:
            raise LlamaError("the sampler chain selected no token")
        # read through the array's own pointer: a sampler may point it at its own buffer
        chosen = TokenData.from_address(arr.data + arr.selected * ctypes.sizeof(TokenData))
        if self.grammar is not None and math.isinf(chosen.logit):
            # accepting a token the grammar rejects would abort inside libllama
            raise GrammarError("the grammar allows no token at this point of the output")
        return int(chosen.id)

    def _logits(self, ctx_ptr: int, idx: int) -> np.ndarray:
        """The logits at batch index `idx`, viewed where libllama keeps them (no copy)."""
        if not isinstance(ctx_ptr, int):  # a native engine's context holds them itself
            return np.asarray(ctx_ptr.logits_row(idx))
        ptr = bindings.lib().llama_get_logits_ith(ctx_ptr, idx)
        if not ptr:
            raise LlamaError("no logits are available for that position")
        return np.ctypeslib.as_array(self._row.from_address(int(ptr)))

    def close(self) -> None:
        self.chain.close()
        if self.grammar is not None:
            self.grammar.close()
