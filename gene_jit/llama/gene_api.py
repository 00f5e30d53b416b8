"""The Gene names of the LLM library: the `model/*` and `tokenizer/*` namespaces, and the
top-level builtins listed in `gene_jit.runtime.libraries.LLAMA_BUILTINS` (generate-text,
tokenize, decode, generate-with-grammar, generate-json, batch-generate, chat-session, ...).

Each function takes Gene values (lists, str-keyed dicts, Symbols) and keyword arguments
with underscores (`:top-k 40` arrives as `top_k=40`), and raises `GeneError`s for misuse.
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

from gene_jit.llama import model as _model
from gene_jit.llama import schema as _schema
from gene_jit.llama.batch import batch_generate as _batch_generate
from gene_jit.llama.batch import forward_batch as _forward_batch
from gene_jit.llama.chat_template import RenderedChat, chat_tokens, format_qa, recall, remember
from gene_jit.llama.embed import embed as _embed
from gene_jit.llama.embed import find_similar as _find_similar
from gene_jit.llama.embed import hidden_states, pool
from gene_jit.llama.errors import ContextFullError, GrammarError, LlamaError
from gene_jit.llama.generate import Generation, Sampling, fit_prompt
from gene_jit.llama.grammar import check_against_schema, json_grammar, schema_to_gbnf
from gene_jit.llama.model import Model, current_model
from gene_jit.llama.options import OptionError, check_count, check_options, keywords_checked, shown
from gene_jit.llama.session import ChatSession, format_chat_prompt
from gene_jit.llama.speculate import speculate_option
from gene_jit.llama.tools_api import quantized_source  # also registers model/perplexity, ...
from gene_jit.onnx import create as create_onnx
from gene_jit.onnx import onnx_path, wants_onnx
from gene_jit.onnx.embed import find_similar as onnx_find_similar
from gene_jit.onnx.embed import origin as onnx_origin
from gene_jit.onnx.model import OnnxModel
from gene_jit.runtime.errors import GeneArityError, GeneTypeError
from gene_jit.runtime.printer import display
from gene_jit.runtime.registry import BUILTINS, builtin
from gene_jit.runtime.values import Symbol

# `EOS` in Gene: what `get-next-token` returns at the end of generation.
EOS = Symbol("EOS")
BUILTINS["EOS"] = EOS  # a value, not a lazily imported function

_tokenizer: Tokenizer | None = None  # the most recently created tokenizer


class Tokenizer:
    """A model's vocabulary (`tokenizer/create`)."""

    def __init__(self, model: Model) -> None:
        self.model = model

    @property
    def vocab_size(self) -> int:
        return self.model.n_vocab

    def encode(self, text: Any, add_special: bool = True, parse_special: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise LlamaError(f"tokenize needs a string, got {shown(text)}")
        return self.model.tokenize(text, add_special=bool(add_special), parse_special=bool(parse_special))

    def decode(self, tokens: Any, remove_special: bool = False, unparse_special: bool = False) -> str:
        if tokens is EOS:
            return ""
        return self.model.detokenize(tokens, bool(remove_special), bool(unparse_special))

    def __repr__(self) -> str:
        return f"<tokenizer {self.model.path.name} ({self.model.n_vocab} tokens)>"


def _as_model(value: Any, closed_ok: bool = False) -> Model:
    found = value if isinstance(value, Model) else value.model if isinstance(value, Tokenizer | ChatSession) else None
    if found is None:
        raise LlamaError(f"expected a model (from model/create), got {shown(value)}")
    if not closed_ok and not found.handle.ptr:  # libllama would read freed memory
        raise LlamaError(f"the model {found.path.name} was closed (model/close); create it again")
    return found


def _current_tokenizer() -> Tokenizer:
    return _tokenizer if _tokenizer is not None else Tokenizer(current_model())


def _to_tensor(arr: np.ndarray) -> Any:
    try:
        from gene_jit.tensor import Tensor
    except ImportError:
        return arr
    return Tensor.from_numpy(arr)


# ---------------------------------------------------------------- model/*


@builtin("create", ns="model")
def model_create(name_or_path: Any = None, fmt: Any = None, **kw: Any) -> Any:
    if isinstance(name_or_path, Symbol):  # `:default`, as the format may be `:gguf`
        name_or_path = name_or_path.name
    if not (name_or_path is None or isinstance(name_or_path, str | os.PathLike)):
        raise LlamaError(f"model/create: the model must be a name or a path (a string), got {shown(name_or_path)}")
    if isinstance(name_or_path, str) and not name_or_path.strip():
        raise LlamaError('model/create: the model name is empty; give a name ("default") or a path to a .gguf file')
    if wants_onnx(name_or_path, fmt):  # ONNX Runtime, with options of its own
        return create_onnx(name_or_path, **kw)
    if fmt is not None and str(getattr(fmt, "name", fmt)).lower() != "gguf":
        raise LlamaError(f"model/create: unsupported model format {shown(fmt)}: the formats are "
                         '"gguf" (libllama) and "onnx" (ONNX Runtime)')
    if fmt is not None and onnx_path(name_or_path):
        raise LlamaError(f"model/create: {os.fspath(name_or_path or '')} is an ONNX model (by its name) but "
                         f"the format given is {shown(fmt)}; pass \"onnx\" or leave the format out")
    fmt = "gguf" if fmt is None else fmt
    opts = check_options("model/create", kw)
    name_or_path = quantized_source(name_or_path, opts)  # :max-memory, :quantize
    engine = opts.pop("engine", None)
    if engine is None:
        m = Model(name_or_path, fmt, **opts)
    else:  # gene_jit/engine: the model on gene-jit's own kernels (or libllama for :llama)
        from gene_jit.engine import create_model

        m = create_model(engine, name_or_path, fmt, **opts)
    n_ctx = opts.get("n_ctx")
    if n_ctx is not None:
        if m.n_ctx_train > 0 and n_ctx > m.n_ctx_train:
            m.close()
            raise OptionError(
                f"model/create: :n-ctx {n_ctx} is larger than the {m.n_ctx_train} tokens "
                f"{m.path.name} was trained on; pass at most {m.n_ctx_train}")
        # libllama rounds a context up (to a multiple of 256): report what it holds
        m.n_ctx = m.ctx.n_ctx_seq
    return m


@builtin("info", ns="model")
@keywords_checked("model/info")
def model_info(model: Any = None) -> dict[str, Any]:
    if isinstance(model, OnnxModel):
        return model.info()
    return _as_model(model or current_model()).info()


@builtin("forward", ns="model")
@keywords_checked("model/forward")
def model_forward(model: Any, tokens: Any, all: bool = False) -> Any:
    """Logits after `tokens`: of the last position (n_vocab,) or of all (n_tokens, n_vocab)."""
    if isinstance(model, OnnxModel):  # a map of named inputs gives a map of outputs
        return model.forward(tokens)
    m = _as_model(model)
    if not isinstance(all, bool):
        raise OptionError(f"model/forward: :all expects true or false, got {shown(all)}")
    rows = _token_rows(tokens)
    if rows is not None:  # the seed's batch: one sequence per row, decoded together
        return _to_tensor(_forward_batch(m, [m.check_tokens(r) for r in rows]))
    toks = m.check_tokens(tokens)
    if not toks:
        raise LlamaError("model/forward needs at least one token")
    ctx = m.ctx
    with ctx.lock:
        if all:
            ctx.clear()
            rows = []
            for start in range(0, len(toks), ctx.n_batch):
                chunk = toks[start : start + ctx.n_batch]
                ctx.feed(0, chunk, logits_all=True)
                rows.extend(_logits(m, ctx, i) for i in range(len(chunk)))
                idx = len(chunk) - 1
            out = np.stack(rows)
        else:
            idx = ctx.prefill(0, toks)
            out = _logits(m, ctx, idx)
        ctx.owner = None
    m.last_stream = _Stepper(m, toks, idx)
    return _to_tensor(out)


def _token_rows(tokens: Any) -> list[Any] | None:
    """The rows of a batch of token sequences (a 2-D tensor or an array of arrays), else None."""
    if hasattr(tokens, "numpy"):
        tokens = tokens.numpy()
    if isinstance(tokens, np.ndarray):
        return list(tokens) if tokens.ndim == 2 else None
    if isinstance(tokens, list | tuple) and tokens and all(isinstance(r, list | tuple) for r in tokens):
        return list(tokens)
    return None


def _logits(m: Model, ctx: Any, index: int) -> np.ndarray:
    import ctypes

    row = (ctypes.c_float * m.n_vocab).from_address(ctx.logits_ptr(index))
    return np.ctypeslib.as_array(row).copy()


# id(tensor) -> the text whose hidden states it holds, while the tensor lives: the seed's
# doc-qa passes only embeddings to find-similar and expects the relevant document back
_sources: dict[int, str] = {}


def _remember_source(value: Any, text: str) -> Any:
    try:
        weakref.finalize(value, _sources.pop, id(value), None)
    except TypeError:  # not weakly referenceable (a plain numpy array): nothing to track
        return value
    _sources[id(value)] = text
    return value


@builtin("get-hidden-states", ns="model")
@keywords_checked("model/get-hidden-states")
def model_hidden_states(model: Any, tokens: Any, pool_mean: bool = False, normalize: bool = False) -> Any:
    m = _as_model(model)
    if isinstance(tokens, str):
        tokens = m.tokenize(tokens)
    toks = m.check_tokens(tokens)
    states = hidden_states(m, toks)
    out = _to_tensor(pool(states, normalize) if pool_mean else states)
    return _remember_source(out, m.detokenize(toks, remove_special=True))


@builtin("embed", ns="model")
@keywords_checked("model/embed")
def model_embed(model: Any, text: Any, normalize: bool = True) -> Any:
    if isinstance(model, OnnxModel):
        return model.embed(text, normalize)
    if not isinstance(text, str):
        raise LlamaError(f"model/embed needs a string, got {shown(text)}")
    return _to_tensor(_embed(_as_model(model), text, bool(normalize)))


@builtin("generate", ns="model")
def model_generate(model: Any, prompt: Any, n: Any = 128, **kw: Any) -> Any:
    return _generate("model/generate", model, prompt, n, kw)


@builtin("stats", ns="model")
@keywords_checked("model/stats")
def model_stats(model: Any = None) -> dict[str, Any] | None:
    stats = _as_model(model or current_model()).last_stats
    return None if stats is None else stats.as_map()


@builtin("close", ns="model")
@keywords_checked("model/close")
def model_close(model: Any) -> None:
    if isinstance(model, OnnxModel):
        return model.close()
    _as_model(model, closed_ok=True).close()


# ---------------------------------------------------------------- tokenizer/*


@builtin("create", ns="tokenizer")
@keywords_checked("tokenizer/create")
def tokenizer_create(source: Any = None) -> Tokenizer:
    """A tokenizer for a model, or for the loaded model given its vocabulary size."""
    global _tokenizer
    if source is None or isinstance(source, int) and not isinstance(source, bool):
        if _model._current is None:
            raise LlamaError(
                "no model is loaded: create one first, e.g. (var model (model/create \"default\")), "
                "then (tokenizer/create model)"
            )
        m = _model._current
        if source is not None and source != m.n_vocab:
            raise LlamaError(
                f"(tokenizer/create {source}): the loaded model {m.path.name} has a vocabulary "
                f"of {m.n_vocab} tokens, not {source}; use (tokenizer/create model)"
            )
    else:
        m = _as_model(source)
    _tokenizer = Tokenizer(m)
    return _tokenizer


@builtin("encode", ns="tokenizer")
def tokenizer_encode(tok: Any, text: Any, *flags: Any, **kw: Any) -> list[int]:
    add, parse = _flags("tokenizer/encode", flags, kw, ("add_special", "parse_special"), (True, False))
    return Tokenizer(_as_model(tok)).encode(text, add, parse)


@builtin("decode", ns="tokenizer")
def tokenizer_decode(tok: Any, tokens: Any, *flags: Any, **kw: Any) -> str:
    remove, unparse = _flags("tokenizer/decode", flags, kw, ("remove_special", "unparse_special"), (False, False))
    return Tokenizer(_as_model(tok)).decode(tokens, remove, unparse)


def _flags(entry: str, flags: tuple[Any, ...], kw: dict[str, Any], names: tuple[str, str],
           defaults: tuple[bool, bool]) -> tuple[bool, bool]:
    """The two flags of tokenize or decode, given positionally (as in Python) or as
    options (`:add-bos false`, `:parse-special true`); options are checked first."""
    opts = check_options(entry, kw)
    if "add_bos" in opts:
        opts.setdefault("add_special", opts.pop("add_bos"))
    if len(flags) > len(names):
        raise GeneArityError(f"{entry}: takes at most {len(names)} flags after its arguments, got {len(flags)}")
    values = list(defaults)
    for i, flag in enumerate(flags):
        if not isinstance(flag, bool):
            raise OptionError(f"{entry}: the flag {names[i].replace('_', '-')} expects true or false, "
                              f"got {shown(flag)}")
        values[i] = flag
    for i, name in enumerate(names):
        values[i] = opts.get(name, values[i])
    return values[0], values[1]


@builtin("vocab-size", ns="tokenizer")
@keywords_checked("tokenizer/vocab-size")
def tokenizer_vocab_size(tok: Any = None) -> int:
    return (_current_tokenizer() if tok is None else Tokenizer(_as_model(tok))).vocab_size


@builtin("bos", ns="tokenizer")
@keywords_checked("tokenizer/bos")
def tokenizer_bos(tok: Any = None) -> int:
    return (_current_tokenizer().model if tok is None else _as_model(tok)).bos


@builtin("eos", ns="tokenizer")
@keywords_checked("tokenizer/eos")
def tokenizer_eos(tok: Any = None) -> int:
    return (_current_tokenizer().model if tok is None else _as_model(tok)).eos


@builtin("eog?", ns="tokenizer")
@keywords_checked("tokenizer/eog?")
def tokenizer_is_eog(tok: Any, token: Any = None) -> bool:
    if token is None:
        return _current_tokenizer().model.is_eog(int(tok))
    return _as_model(tok).is_eog(int(token))


# ---------------------------------------------------------------- top level


_ABSENT: Any = object()  # an argument not given (nil given is a mistake to report)


def tokenize(a: Any, b: Any = _ABSENT, *flags: Any, **kw: Any) -> list[int]:
    """`(tokenize text)` with the current tokenizer, or `(tokenize model text)`;
    `:add-bos false` leaves out the BOS token, `:parse-special true` reads special
    tokens written in the text (`<start_of_turn>`) as those tokens."""
    add, parse = _flags("tokenize", flags, kw, ("add_special", "parse_special"), (True, False))
    tok = _current_tokenizer() if b is _ABSENT else Tokenizer(_as_model(a))
    return tok.encode(a if b is _ABSENT else b, add, parse)


def decode(a: Any, b: Any = _ABSENT, *flags: Any, **kw: Any) -> str:
    """`(decode tokens)` (a list or a single token) or `(decode model tokens)`;
    `:remove-special true` leaves out special tokens, `:unparse-special true` writes
    them as their text."""
    remove, unparse = _flags("decode", flags, kw, ("remove_special", "unparse_special"), (False, False))
    if b is _ABSENT:
        return _current_tokenizer().decode(a, remove, unparse)
    return Tokenizer(_as_model(a)).decode(b, remove, unparse)


def _split_model(entry: str, model: Any, prompt: Any, n: Any) -> tuple[Model, str, int]:
    if isinstance(model, str):  # (generate-text "prompt" 50) uses the current model
        if isinstance(prompt, str):
            raise LlamaError(f"{entry}: got two strings, {shown(model)} and {shown(prompt)}: the model comes "
                             f"first, as a model (var m (model/create {shown(model)})), or the prompt "
                             "alone for the current model")
        model, prompt, n = current_model(), model, prompt if prompt is not None else n
    m = _as_model(model)
    if not isinstance(prompt, str):
        raise LlamaError(f"{entry}: the prompt must be a string, got {shown(prompt)}")
    return m, prompt, check_count(entry, n)


def _stops(value: Any) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _generation(m: Model, prompt: str, n: int, kw: dict[str, Any]) -> Generation:
    """A generation from options already checked by `check_options`."""
    on_token = kw.pop("on_token", None)
    stops = _stops(kw.pop("stop", None))
    truncate = bool(kw.pop("truncate", False))
    speculate = speculate_option(kw.pop("speculate", None))
    sampling = Sampling.from_kwargs(m, kw)
    ctx = m.ctx
    tokens = fit_prompt(m, _prompt_tokens(m, prompt), n, ctx.n_ctx_seq, truncate)
    return Generation(m, ctx, tokens, n, sampling, stops, on_token=on_token, speculate=speculate)


def _prompt_tokens(m: Model, prompt: str) -> list[int]:
    """Special tokens written in a prompt are parsed, except in the message text of a
    prompt made by format-chat-prompt (so that user text cannot forge a turn)."""
    chat = recall(prompt)
    if chat is None:
        return m.prompt_tokens(prompt)
    tokens = chat_tokens(m, chat)
    if m.add_bos and tokens[:1] != [m.bos]:  # as prompt_tokens: a BOS unless written
        tokens.insert(0, m.bos)
    return tokens


def _generate(entry: str, model: Any, prompt: Any, n: Any, kw: dict[str, Any]) -> Any:
    opts = check_options(entry, kw)
    stream = opts.pop("stream", False)
    m, text, count = _split_model(entry, model, prompt, n)
    gen = _generation(m, text, count, opts)
    return gen if stream else gen.run()


def generate_text(model: Any, prompt: Any = None, n: Any = 128, **kw: Any) -> Any:
    """Generate up to `n` tokens; with `:stream true` a lazy sequence of text chunks."""
    return _generate("generate-text", model, prompt, n, kw)


def generate_stream(model: Any, prompt: Any = None, n: Any = 128, **kw: Any) -> Generation:
    return _generate("generate-stream", model, prompt, n, {**kw, "stream": True})


def generate_with_grammar(model: Any, prompt: Any, grammar: Any, n: Any = 256, **kw: Any) -> str:
    if callable(grammar):  # `json-grammar` passed without calling it, as the seed does
        grammar = grammar()
    kw = check_options("generate-with-grammar", kw)
    kw["grammar"] = grammar
    m, text, count = _split_model("generate-with-grammar", model, prompt, n)
    gen = _generation(m, text, count, kw)
    out = gen.run()
    if not gen.stats.grammar_complete:
        raise GrammarError(
            f"the output did not complete the grammar within {count} tokens (raise n): {shown(out, 220)}"
        )
    return out


# Limits generate-json puts on strings and arrays whose schema sets none: a model (a
# small one especially) can otherwise stay inside a string or array until the token
# budget runs out.
JSON_MAX_STRING = _schema.MAX_STRING
JSON_MAX_ITEMS = _schema.MAX_ITEMS
_bounded = _schema.bounded


def generate_json(model: Any, prompt: Any, schema: Any = None, n: Any = 512, **kw: Any) -> Any:
    """Generate JSON that satisfies `schema` (a Gene map) and return it parsed."""
    from gene_jit.llama.grammar import _plain

    plain = _plain(schema) if schema is not None else {"type": "object"}
    if isinstance(plain, str):
        try:
            plain = json.loads(plain)
        except json.JSONDecodeError as exc:
            raise GrammarError(f"generate-json: the JSON schema is not valid JSON: {exc}") from exc
    if not isinstance(plain, Mapping):
        raise GrammarError("generate-json needs the schema as a map")
    kw = check_options("generate-json", kw)
    kw.setdefault("temperature", 0.0)
    kw["grammar"] = schema_to_gbnf(_bounded(plain))
    m, text, count = _split_model("generate-json", model, prompt, n)
    gen = _generation(m, text, count, kw)
    out = gen.run()
    if gen.stats.context_full:
        raise ContextFullError(f"the model did not finish the JSON before the context of {m.n_ctx} "
                               "tokens was full; create the model with a larger :n-ctx")
    if gen.stats.finish_reason == "length":
        raise LlamaError(f"the model did not finish the JSON within {count} tokens (raise n)")
    try:
        value = json.loads(out, strict=False)  # raw control characters inside strings
    except json.JSONDecodeError as exc:
        raise LlamaError(f"the model's output is not JSON ({exc}): {shown(out, 220)}") from exc
    check_against_schema(value, plain)
    return value


def batch_generate(model: Any, prompts: Any, n: Any = 128, **kw: Any) -> list[str]:
    """Generate up to `n` tokens for each prompt. Exact by default: each prompt gets what
    `generate-text` gives it alone. `:exact false` decodes the prompts together, faster
    for several prompts, but libllama's batched arithmetic differs slightly, so a greedy
    choice between nearly tied tokens may then differ from one-by-one generation."""
    opts = check_options("batch-generate", kw)
    m = _as_model(model)
    count = check_count("batch-generate", n)
    if "stop" in opts:
        opts["stop"] = _stops(opts["stop"])
    return _batch_generate(m, prompts, count, opts)


@keywords_checked("format-chat-prompt")
def format_chat_prompt_fn(history: Any, message: Any = _ABSENT, model: Any = None) -> str:
    """`(format-chat-prompt history message)`; without a message, the history alone."""
    if isinstance(history, Model | Tokenizer | ChatSession | OnnxModel):
        raise LlamaError("format-chat-prompt takes the model last: (format-chat-prompt history message model), "
                         "or (format-chat-prompt history message) for the current model; the model came first")
    if message is None:
        raise LlamaError("format-chat-prompt: the message is nil (did read-line reach the end of input?)")
    if message is not _ABSENT and not isinstance(message, str):
        raise LlamaError(f"format-chat-prompt: the message must be a string, got {shown(message)}")
    if history is not None and not isinstance(history, list | tuple | str | dict):
        raise LlamaError(f"format-chat-prompt: the history must be an array of messages (strings, or maps "
                         f"with ^role and ^content), got {shown(history)}")
    m = current_model() if model is None else _as_model(model)
    rendered = format_chat_prompt(m, history, None if message is _ABSENT else str(message))
    if isinstance(rendered, RenderedChat):
        remember(rendered)
    return str(rendered)  # plain text for Gene; generate-text recalls its segments


def generate_code(description: Any, language: Any = None, n: Any = 200, model: Any = None, **kw: Any) -> str:
    """`(generate-code description [language])`: code in `language` that does what the
    description asks, from a code-fence prompt (which base models continue as code)."""
    if not isinstance(description, str):
        raise LlamaError(f"generate-code needs a description string, got {shown(description)}")
    lang = "" if language is None else getattr(language, "name", language)
    if not isinstance(lang, str):
        raise LlamaError(f'generate-code: the language must be a string or symbol such as "python", got '
                         f"{shown(language)}")
    head = f"Write {lang} code to" if lang else "Write code to"
    prompt = f"{head} {description.strip()}\n```{lang}\n"
    kw = check_options("generate-code", kw)
    kw.setdefault("temperature", 0.2)
    kw.setdefault("repeat_penalty", 1.2)
    kw["stop"] = _stops(kw.get("stop")) + ["```"]
    return str(_generate("generate-code", current_model() if model is None else model, prompt, n, kw)).strip()


@keywords_checked("format-qa-prompt")
def format_qa_prompt(question: Any, context: Any = None) -> str:
    if not isinstance(question, str):
        raise LlamaError(f"format-qa-prompt: the question must be a string, got {shown(question)}"
                         + (" (did read-line reach the end of input?)" if question is None else ""))
    if context is not None and not isinstance(context, str | list | tuple):
        raise LlamaError(f"format-qa-prompt: the context must be a string or an array of strings, got "
                         f"{shown(context)}")
    return format_qa(question, [display(c) for c in context] if isinstance(context, list | tuple) else context)


@keywords_checked("find-similar")
def find_similar(items: Any, query: Any, k: Any = 1, documents: Any = None, model: Any = None) -> list[Any]:
    _check_k(k)
    if items is None or isinstance(items, str | int | float | dict):
        raise LlamaError(f"find-similar: the embeddings must be an array (of model/embed results, or "
                         f"texts), got {shown(items)}")
    if isinstance(model, OnnxModel):
        return onnx_find_similar(model, items, query, k, documents)
    items = list(items)
    texts = isinstance(query, str) or any(isinstance(i, str) for i in items)
    made_by = onnx_origin(items) if texts and model is None else None
    if made_by is not None:
        raise LlamaError(f"find-similar: the embeddings come from the ONNX model {made_by}, so a "
                         "text must be embedded by it too: pass it, as in (find-similar es "
                         '"text" :model m)')
    m = _model._current if model is None else _as_model(model)
    if m is None and texts:
        m = current_model()
    if documents is None and items and all(id(i) in _sources for i in items):
        documents = [_sources[id(i)] for i in items]
    return _find_similar(m, items, query, k, documents)


def _check_k(k: Any) -> None:
    """`find-similar`'s count: a positive int (a symbol here is an option name that
    matched no parameter, as in `:top-k 3`)."""
    if isinstance(k, Symbol):
        raise GeneArityError(f"find-similar: has no parameter :{k.name}; its parameters are "
                             "items, query, ^k (how many), ^documents and ^model")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise GeneTypeError(f"find-similar: k (how many to return) must be a positive int, "
                            f"got {shown(k)}")


@keywords_checked("chat-session")
def chat_session(model: Any = None, system: Any = None, n_ctx: Any = None) -> ChatSession:
    n_ctx = check_options("chat-session", {"n_ctx": n_ctx}).get("n_ctx")
    m = current_model() if model is None else _as_model(model)
    if system is not None and not isinstance(system, str):
        raise OptionError(f"chat-session: the system message expects a string, got {shown(system)}")
    return ChatSession(m, system, n_ctx)


def chat_send(session: Any, message: Any, n: Any = 256, **kw: Any) -> str:
    if not isinstance(session, ChatSession):
        raise LlamaError(f"chat-send needs a chat session (from chat-session), got {shown(session)}")
    opts = check_options("chat-send", kw)
    if "stop" in opts:
        opts["stop"] = _stops(opts["stop"])
    return session.send(message, check_count("chat-send", n), **opts)


@keywords_checked("chat-history")
def chat_history(session: Any) -> list[dict[str, str]]:
    if not isinstance(session, ChatSession):
        raise LlamaError(f"chat-history needs a chat session, got {shown(session)}")
    return session.history()


class _Stepper:
    """State of `get-next-token`: a sequence that grows one sampled token per call."""

    def __init__(self, model: Model, tokens: list[int], idx: int, sampling: Sampling | None = None) -> None:
        self.model, self.history, self.idx = model, list(tokens), idx
        self.prompt_len = len(tokens)  # the rest is rebuilt one token per call, as decoded
        self.sampler = (sampling or Sampling(temperature=0.0)).build(model)
        self.ended = False

    def next(self) -> Any:
        if self.ended:
            return EOS
        ctx = self.model.ctx
        with ctx.lock:
            if ctx.owner is not self:
                self.idx = ctx.prefill(0, self.history, self.prompt_len)
                ctx.owner = self
            tok = self.sampler.sample(ctx.ptr, self.idx)
            if self.model.is_eog(tok) or len(self.history) + 1 >= ctx.n_ctx_seq:
                self.ended = True
                return EOS
            self.history.append(tok)
            self.idx = ctx.feed(0, [tok])
        return tok


def get_next_token(model: Any = None, prompt: Any = None, **kw: Any) -> Any:
    """The next token of the model's current sequence (set by `model/forward`, or by
    passing a prompt here); `EOS` when the model ends it."""
    opts = check_options("get-next-token", kw)
    m = current_model() if model is None else _as_model(model)
    if opts and prompt is None:
        raise OptionError("get-next-token: sampling options are set with the prompt, "
                          "(get-next-token model \"text\" :temperature 0.7)")
    if prompt is not None:
        tokens = m.prompt_tokens(str(prompt)) if isinstance(prompt, str) else m.check_tokens(prompt)
        with m.ctx.lock:
            idx = m.ctx.prefill(0, tokens)
        m.last_stream = _Stepper(m, tokens, idx, Sampling.from_kwargs(m, opts) if opts else None)
        m.ctx.owner = m.last_stream
    if m.last_stream is None:
        raise LlamaError("get-next-token needs a prompt: (get-next-token model \"text\") or run model/forward first")
    return m.last_stream.next()


json_grammar_value = keywords_checked("json-grammar")(json_grammar)
