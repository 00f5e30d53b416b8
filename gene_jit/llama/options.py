"""The keyword options of the LLM entry points, checked in one place.

`OPTIONS` lists every option once, with its type and range; `ENTRY_POINTS` says which
options each Gene function takes. `check_options` is called first by every entry point
(generate-text, generate-json, batch-generate, chat-send, get-next-token, model/create,
...), so an unknown keyword (with a suggestion), a value of the wrong type or out of
range gives the same Gene error everywhere, naming the function, the option, what it
expects and what it got. Values are never adjusted: what passes is used as given.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from gene_jit.llama.errors import LlamaError
from gene_jit.runtime.values import Symbol


class OptionError(LlamaError):
    """A keyword option that an LLM function does not take, or a value it cannot use."""

    kind = "llm option error"


@dataclass(frozen=True)
class Option:
    kind: str  # int, float, bool, stops, grammar, schema, function, flag-or-nil, any
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself is out of range
    doc: str = ""


C_INT_MAX = 2**31 - 1  # options libllama takes as a C int: the bound is told when passed

OPTIONS: dict[str, Option] = {
    "temperature": Option("float", 0.0, None, doc="0 is greedy"),
    "top_k": Option("int", 0, C_INT_MAX, doc="0 keeps every token"),
    "top_p": Option("float", 0.0, 1.0),
    "min_p": Option("float", 0.0, 1.0),
    "repeat_penalty": Option("float", 0.0, None, lo_open=True, doc="1 is none"),
    "repeat_last_n": Option("int", -1, C_INT_MAX, doc="-1 is the whole context"),
    "seed": Option("int", 0, 2**32 - 1),
    "stop": Option("stops"),
    "grammar": Option("grammar"),
    "json_schema": Option("schema"),
    "on_token": Option("function"),
    "stream": Option("bool"),
    "truncate": Option("bool"),
    "speculate": Option("flag-or-nil"),
    "parse_special": Option("bool"),
    "add_bos": Option("bool", doc="tokenize: false leaves out the BOS token"),
    "add_special": Option("bool", doc="tokenize: the same as :add-bos"),
    "remove_special": Option("bool", doc="decode: leave out BOS/EOS and the like"),
    "unparse_special": Option("bool", doc="decode: write special tokens as their text"),
    "exact": Option("bool", doc="batch-generate: each prompt as generate-text gives it"),
    "n_ctx": Option("int", 1, 1 << 24),
    "threads": Option("int", 1, 1024),
    "gpu_layers": Option("int", -1, C_INT_MAX, doc="-1 offloads every layer"),
    "device": Option("any"),
    "engine": Option("engine", doc=":gene runs the model on gene-jit's own kernels"),
    "progress": Option("bool"),
    # model tools (perplexity, quantisation, adapters, fine-tuning)
    "window": Option("int", 4, 1 << 20, doc="tokens per perplexity window"),
    "type": Option("type", doc="a quantisation type such as \"Q8_0\""),
    "max_memory": Option("size", doc='"300MB", "2GiB" or a number of bytes'),
    "quantize": Option("quantize", doc=":auto or a quantisation type"),
    "calibration": Option("calibration", doc="false, true or a calibration text file"),
    "imatrix": Option("string", doc="an importance matrix file of llama-imatrix"),
    "scale": Option("float", 0.0, None),
    "scales": Option("numbers"),
    "epochs": Option("int", 1, 10_000),
    "lr": Option("float", 0.0, 1.0, lo_open=True),
    "out": Option("string"),
    "adapter": Option("string"),
}

TOKENIZE = ("add_bos", "add_special", "parse_special")
DECODE = ("remove_special", "unparse_special")
SAMPLING = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed")
_GENERATE = (*SAMPLING, "stop", "grammar", "json_schema", "on_token", "stream", "truncate", "speculate")
ENTRY_POINTS: dict[str, tuple[str, ...]] = {
    "generate-text": _GENERATE,
    "generate-stream": _GENERATE,
    "model/generate": _GENERATE,
    "generate-code": _GENERATE,
    "generate-with-grammar": (*SAMPLING, "stop", "on_token", "truncate", "speculate"),
    "generate-json": (*SAMPLING, "stop", "on_token", "truncate", "speculate"),
    "batch-generate": (*SAMPLING, "stop", "grammar", "json_schema", "exact", "truncate"),
    "chat-send": (*SAMPLING, "stop", "on_token", "speculate", "parse_special"),
    "get-next-token": (*SAMPLING, "grammar", "json_schema"),
    "model/create": ("n_ctx", "threads", "device", "gpu_layers", "seed", "progress", "engine",
                     "max_memory", "quantize"),
    "model/perplexity": ("window", "progress"),
    "model/quantize": ("type", "threads", "progress", "calibration", "imatrix"),
    "model/load-adapter": ("scale",),
    "model/set-adapters": ("scales",),
    "model/fine-tune": ("epochs", "lr", "out", "type", "window", "progress", "adapter"),
    "chat-session": ("n_ctx",),
    "tokenize": TOKENIZE,
    "tokenizer/encode": TOKENIZE,
    "decode": DECODE,
    "tokenizer/decode": DECODE,
}


def gene_name(name: str) -> str:
    return ":" + name.replace("_", "-")


def shown(value: Any, limit: int = 60) -> str:
    """A value in a message as Gene prints it (`nil`, `"x"`, `[1 2]`), shortened to
    about `limit` characters."""
    from gene_jit.runtime.printer import repr_

    if isinstance(value, str) and len(value) > limit - 20:
        value = value[: limit - 23] + "..."
    if isinstance(value, Symbol):
        return value.name
    text = repr_(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _range_text(opt: Option, kind: str, value: Any = None) -> str:
    lo, hi = opt.lo, opt.hi
    if hi == C_INT_MAX and not (isinstance(value, int | float) and not isinstance(value, bool) and value > hi):
        hi = None
    fmt: Callable[[float], str] = (lambda v: str(int(v))) if kind == "an integer" else (lambda v: f"{v:g}")
    if lo is not None and hi is not None:
        return f"{kind} from {fmt(lo)} to {fmt(hi)}"
    if lo is not None:
        return f"{kind} {'>' if opt.lo_open else '>='} {fmt(lo)}"
    return kind


def expected(opt: Option, value: Any = None) -> str:
    """What an option takes, in words (for `value`, when it was refused)."""
    if opt.kind == "int":
        return _range_text(opt, "an integer", value)
    if opt.kind == "float":
        return _range_text(opt, "a number", value)
    return {
        "bool": "true or false",
        "stops": "a string or an array of strings",
        "grammar": "GBNF text or a JSON schema map",
        "schema": "a JSON schema (a map or JSON text)",
        "function": "a function",
        "flag-or-nil": "true, false or nil",
        "any": "a value",
        "string": "a string",
        "type": "a quantisation type name such as \"Q8_0\"",
        "size": 'a memory size such as "300MB" or a number of bytes',
        "quantize": ':auto or a quantisation type name such as "Q4_K_M"',
        "numbers": "an array of numbers",
        "engine": ":gene or :llama",
        "calibration": "true, false or the path of a text file",
    }[opt.kind]


def _valid(opt: Option, value: Any) -> bool:
    kind = opt.kind
    if kind in ("int", "float"):
        number = isinstance(value, int) if kind == "int" else isinstance(value, int | float)
        if isinstance(value, bool) or not number or not math.isfinite(value):
            return False
        if opt.lo is not None and (value < opt.lo or opt.lo_open and value == opt.lo):
            return False
        return opt.hi is None or value <= opt.hi
    if kind in ("bool", "flag-or-nil"):
        return isinstance(value, bool)
    if kind == "stops":
        items = [value] if isinstance(value, str) else value
        return isinstance(items, list | tuple) and all(isinstance(s, str) and s for s in items)
    if kind == "grammar":
        return isinstance(value, str | Mapping) or callable(value)
    if kind == "schema":
        return isinstance(value, str | Mapping)
    if kind == "function":
        return callable(value)
    if kind == "string":
        return isinstance(value, str) and value != ""
    if kind == "calibration":
        return isinstance(value, bool) or isinstance(value, str) and value != ""
    if kind in ("type", "quantize"):
        return isinstance(value, str | Symbol) and value != ""
    if kind == "engine":
        name = value.name if isinstance(value, Symbol) else value
        return isinstance(name, str) and name in ("gene", "llama")
    if kind == "size":
        return isinstance(value, str) or isinstance(value, int) and not isinstance(value, bool) and value > 0
    if kind == "numbers":
        return isinstance(value, list | tuple) and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    return True


def check_options(entry: str, kw: Mapping[str, Any]) -> dict[str, Any]:
    """The options of a call to `entry`, each known to it and valid; nil means "the
    default" and is dropped. Raises OptionError otherwise."""
    allowed = ENTRY_POINTS[entry]
    out: dict[str, Any] = {}
    for name, value in kw.items():
        if name not in allowed:
            raise OptionError(_unknown(entry, name, allowed))
        if value is None:
            continue
        opt = OPTIONS[name]
        if not _valid(opt, value):
            if opt.kind == "stops" and _has_empty(value):
                raise OptionError(f"{entry}: {gene_name(name)} holds an empty stop string, which "
                                  "would match before any text; remove it")
            raise OptionError(f"{entry}: {gene_name(name)} expects {expected(opt, value)}, got {shown(value)}")
        out[name] = value
    if "grammar" in out and "json_schema" in out:
        # one constraint drives the sampler: taking one would silently drop the other
        raise OptionError(f"{entry}: give :grammar or :json-schema, not both")
    return out


def _has_empty(value: Any) -> bool:
    items = [value] if isinstance(value, str) else value
    return isinstance(items, list | tuple) and "" in items


def _unknown(entry: str, name: str, allowed: tuple[str, ...]) -> str:
    shown = gene_name(name)
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    if close:
        return f"{entry} does not take {shown}; did you mean {gene_name(close[0])}?"
    elsewhere = [e for e, names in ENTRY_POINTS.items() if name in names]
    if elsewhere:
        return f"{entry} does not take {shown} (an option of {elsewhere[0]})"
    if not allowed:
        return f"{entry} does not take {shown}; it takes no keyword options"
    return f"{entry} does not take {shown}; it takes " + ", ".join(gene_name(a) for a in allowed)


F = TypeVar("F", bound=Callable[..., Any])


def keywords_checked(entry: str) -> Callable[[F], F]:
    """For an entry point whose only keywords are its parameters (`:all true` of
    model/forward): a `:kw value` tail naming anything else is an llm option error.
    Without this, Gene would pass an unknown `:kw value` to a Python function without
    **kwargs as two more positionals, which fill its optional parameters silently."""

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn)
        names = [p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        optional = tuple(p.name for p in sig.parameters.values() if p.name in names and p.default is not p.empty)

        def checked(*args: Any, **kw: Any) -> Any:
            for name in kw:
                if name not in names:
                    message = _unknown(entry, name, optional)
                    if message.endswith(")") and optional:  # an option of another entry point
                        message += "; it takes " + ", ".join(gene_name(a) for a in optional)
                    raise OptionError(message)
            return fn(*args, **kw)

        fn.__qualname__ = entry  # Python's arity errors name the function so
        checked.__name__, checked.__qualname__ = fn.__name__, entry
        checked.__doc__, checked.__module__ = fn.__doc__, fn.__module__
        # **kw in the signature: Gene then passes every `:kw value` as a keyword
        kw_param = inspect.Parameter("kw", inspect.Parameter.VAR_KEYWORD)
        checked.__signature__ = sig.replace(parameters=[*sig.parameters.values(), kw_param])  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return decorate


def check_count(entry: str, value: Any, what: str = "the number of tokens") -> int:
    """A count argument (tokens to generate): an integer >= 0, never converted."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OptionError(f"{entry}: {what} expects an integer >= 0, got {shown(value)}")
    return value
