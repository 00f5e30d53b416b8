"""The OpenAI request bodies the server takes, checked field by field, and turned into
scheduler jobs.

Every mistake in a body is an `ApiError`: an HTTP status and an OpenAI-style error object
that names the field (`param`) and says what it expects, never a 500."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gene_jit.llama.chat_template import TRANSCRIPT_STOPS, uses_transcript
from gene_jit.llama.errors import LlamaError
from gene_jit.llama.grammar import json_grammar, schema_to_gbnf
from gene_jit.llama.resolve import DEFAULT_NAMES
from gene_jit.llama.sampler import Sampling
from gene_jit.llama.schema import bounded
from gene_jit.llama.session import chat_prompt, chat_tokens

if TYPE_CHECKING:
    from gene_jit.llama.model import Model

MAX_STOPS = 4  # as the OpenAI API
SEED_MAX = 2**32 - 1  # libllama's seeds are 32-bit
COMPLETION_DEFAULT_TOKENS = 16  # /v1/completions without max_tokens, as the OpenAI API
# roles accepted in chat messages; "developer" is OpenAI's newer name for system
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# fields that change what a response means and that this server does not do
UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "logit_bias", "suffix", "audio",
               "top_logprobs", "web_search_options", "reasoning_effort", "verbosity")
# the fields of each endpoint, as the OpenAI API names them (plus llama.cpp's sampling
# extensions); any other is refused as OpenAI refuses it, so that a misspelt field is
# never silently ignored. Those that change nothing here (user, metadata, store, ...)
# are taken and ignored; those that would change the reply are refused by name.
_GENERATION = {"model", "user", "n", "max_tokens", "temperature", "top_p", "seed", "stop", "stream",
               "stream_options", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs",
               "response_format", "top_k", "min_p", "repeat_penalty"}
FIELDS = {
    "completions": _GENERATION | {"prompt", "echo", "suffix", "best_of"},
    "chat": _GENERATION | {"messages", "max_completion_tokens", "tools", "functions", "tool_choice",
                           "function_call", "parallel_tool_calls", "top_logprobs", "metadata", "store",
                           "service_tier", "modalities", "audio", "prediction", "reasoning_effort",
                           "web_search_options", "prompt_cache_key", "safety_identifier", "verbosity"},
    "embeddings": {"model", "input", "encoding_format", "dimensions", "user"},
}


class ApiError(Exception):
    """A request the server refuses: status and an OpenAI-style error object."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error", code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.kind, self.code, self.headers = kind, code, headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def parse_json(raw: bytes, endpoint: str) -> dict[str, Any]:
    """The body of a request to `endpoint` (a key of FIELDS) as a JSON object of its
    fields, with text that is all Unicode characters."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise ApiError(400, "the request body nests its arrays and objects too deeply to read",
                       code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(body).__name__}")
    for name in body:
        if name not in FIELDS[endpoint]:
            raise ApiError(400, f"Unrecognized request argument supplied: {name}", param=name,
                           code="unknown_parameter")
    for name, value in body.items():
        where = _lone_surrogate(value, name)
        if where is not None:
            raise ApiError(400, f"'{where}' holds a lone surrogate (a \\uD800-\\uDFFF escape without its "
                           "pair), which is not a Unicode character; send the text as valid UTF-16 "
                           "escapes or UTF-8", param=name)
    return body


def _lone_surrogate(value: Any, path: str) -> str | None:
    """Where in `value` a string holds a lone UTF-16 surrogate (JSON lets "\\ud800"
    through, and no tokenizer can take it), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate(key, f"{path} (a key)") or _lone_surrogate(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def required(body: Mapping[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise ApiError(400, f"the request is missing the required field '{name}'", param=name,
                       code="missing_required_parameter")
    return body[name]


def _number(body: Mapping[str, Any], name: str, lo: float, hi: float, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, f"'{name}' must be a number, got {json.dumps(value)}", param=name)
    if not lo <= value <= hi:
        raise ApiError(400, f"'{name}' must be from {lo:g} to {hi:g}, got {value}", param=name)
    return float(value)


def _integer(body: Mapping[str, Any], name: str, lo: int, hi: int, default: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"'{name}' must be an integer, got {json.dumps(value)}", param=name)
    if not lo <= value <= hi:
        raise ApiError(400, f"'{name}' must be from {lo} to {hi}, got {value}", param=name)
    return value


def check_model(body: Mapping[str, Any], model_id: str, model: Model) -> None:
    name = required(body, "model")
    if not isinstance(name, str):
        raise ApiError(400, f"'model' must be a string, got {json.dumps(name)}", param="model")
    if name not in (model_id, model.path.name, str(model.path)) and name.lower() not in DEFAULT_NAMES:
        raise ApiError(404, f"the model '{name}' does not exist; this server has '{model_id}'",
                       param="model", code="model_not_found")


@dataclass
class Plan:
    """A generation request, checked: prompts (token lists) and how to generate each."""

    prompts: list[list[int]]
    n: int
    max_tokens: int
    sampling: Sampling
    stops: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    chat: bool = False
    echo: list[str] | None = None  # the text in front of each prompt's choices (completions' echo)
    schema: dict[str, Any] | None = None  # response_format's: what the grammar cannot hold is checked after

    def breach(self, text: str) -> str | None:
        """What a reply breaks of `schema` (the keywords only a check settles: a fraction
        between 0.2 and 0.8, multipleOf, uniqueItems), as the library reports it; None
        when it holds (or no schema was asked for)."""
        if self.schema is None:
            return None
        from gene_jit.llama.schema_check import SchemaViolation, validate

        try:
            validate(json.loads(text, strict=False), self.schema)
        except SchemaViolation as exc:
            return exc.message
        except ValueError:
            return "the reply is not a whole JSON document (stopped by max_tokens or a stop string)"
        return None


def _stops(body: Mapping[str, Any]) -> list[str]:
    value = body.get("stop")
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
        raise ApiError(400, "'stop' must be a non-empty string or an array of them", param="stop")
    if len(items) > MAX_STOPS:
        raise ApiError(400, f"'stop' takes at most {MAX_STOPS} strings, got {len(items)}", param="stop")
    return list(items)


def _sampling(model: Model, body: Mapping[str, Any]) -> Sampling:
    for name in UNSUPPORTED:
        if body.get(name):
            raise ApiError(400, f"'{name}' is not supported by this server", param=name)
    if body.get("best_of") not in (None, 1):
        raise ApiError(400, "'best_of' is not supported by this server (pass 1)", param="best_of")
    if body.get("modalities") not in (None, ["text"]):
        raise ApiError(400, "'modalities' other than [\"text\"] are not supported by this server",
                       param="modalities")
    for name in ("presence_penalty", "frequency_penalty"):
        if _number(body, name, -2.0, 2.0, 0.0) != 0.0:
            raise ApiError(400, f"'{name}' is not supported by this server (pass 0)", param=name)
    if body.get("logprobs") not in (None, False, 0):
        raise ApiError(400, "'logprobs' is not supported by this server", param="logprobs")
    seed = _integer(body, "seed", 0, SEED_MAX, None)
    return Sampling(
        temperature=_number(body, "temperature", 0.0, 2.0, 1.0),
        top_p=_number(body, "top_p", 0.0, 1.0, 1.0),
        # llama.cpp's extensions of the API
        top_k=int(_integer(body, "top_k", 0, 1 << 20, 0) or 0),
        min_p=_number(body, "min_p", 0.0, 1.0, 0.0),
        repeat_penalty=_number(body, "repeat_penalty", 0.01, 10.0, 1.0),
        seed=model.seed if seed is None else seed,
    )


def _grammar(body: Mapping[str, Any]) -> str | None:
    """The GBNF grammar of `response_format` (json_schema or json_object), if any."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return json_grammar()
    if kind != "json_schema":
        raise ApiError(400, "'response_format' must be {\"type\": \"text\"}, {\"type\": \"json_object\"} "
                       "or {\"type\": \"json_schema\", \"json_schema\": {...}}", param="response_format")
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise ApiError(400, "'response_format.json_schema.schema' must be a JSON schema object",
                       param="response_format")
    try:
        return schema_to_gbnf(bounded(schema))
    except LlamaError as exc:
        raise ApiError(400, f"response_format: {exc.message}", param="response_format") from None


def plan(model: Model, body: Mapping[str, Any], prompts: list[list[int]], n_ctx: int, parallel: int,
         chat: bool) -> Plan:
    """Check the generation fields shared by completions and chat completions."""
    sampling = _sampling(model, body)
    sampling.grammar = _grammar(body)
    fmt = body.get("response_format")
    schema = fmt["json_schema"]["schema"] if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    n = int(_integer(body, "n", 1, parallel, 1) or 1)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"'stream' must be true or false, got {json.dumps(stream)}", param="stream")
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    longest = max(len(p) for p in prompts)
    if longest >= n_ctx:
        raise ApiError(400, f"the prompt has {longest} tokens but the context holds {n_ctx} "
                       "(with room for at least one generated token); shorten it, or start the "
                       "server with a larger --n-ctx", param="messages" if chat else "prompt",
                       code="context_length_exceeded")
    room = n_ctx - longest
    name = "max_completion_tokens" if chat and body.get("max_completion_tokens") is not None else "max_tokens"
    default = room if chat else min(COMPLETION_DEFAULT_TOKENS, room)
    max_tokens = _integer(body, name, 1, 1 << 31, default)
    assert max_tokens is not None
    if max_tokens > room:
        raise ApiError(400, f"'{name}' is {max_tokens}, but the prompt of {longest} tokens leaves room "
                       f"for {room} in the context of {n_ctx}", param=name, code="context_length_exceeded")
    stops = _stops(body)
    if chat and uses_transcript(model):
        stops += TRANSCRIPT_STOPS
    return Plan(prompts, n, max_tokens, sampling, stops, stream, include_usage, chat, schema=schema)


def completion_prompts(model: Model, body: Mapping[str, Any]) -> list[list[int]]:
    """`prompt`: a string, an array of strings, an array of token ids, or of such arrays."""
    value = required(body, "prompt")
    items = value if isinstance(value, list) and value and not _is_tokens(value) else [value]
    if isinstance(value, list) and not value:
        raise ApiError(400, "'prompt' is an empty array", param="prompt")
    out = []
    for item in items:
        if isinstance(item, str):
            tokens = model.prompt_tokens(item)
        elif isinstance(item, list) and _is_tokens(item):
            if not all(0 <= t < model.n_vocab for t in item):
                raise ApiError(400, f"'prompt' holds a token id outside 0..{model.n_vocab - 1}", param="prompt")
            tokens = list(item)
        else:
            raise ApiError(400, "'prompt' must be a string, an array of strings, or token ids", param="prompt")
        if not tokens:
            raise ApiError(400, "'prompt' is empty", param="prompt")
        out.append(tokens)
    return out


def completion_echo(model: Model, body: Mapping[str, Any]) -> list[str] | None:
    """With `echo`, each prompt's text, which goes in front of its choices' text (token
    id prompts as their text); None without it. Call after completion_prompts."""
    echo = body.get("echo", False)
    if not isinstance(echo, bool):
        raise ApiError(400, f"'echo' must be true or false, got {json.dumps(echo)}", param="echo")
    if not echo:
        return None
    value = body["prompt"]
    items = value if isinstance(value, list) and not _is_tokens(value) else [value]
    return [item if isinstance(item, str) else model.detokenize(list(item)) for item in items]


def check_dimensions(body: Mapping[str, Any], n_embd: int) -> None:
    """`dimensions`: this server gives the model's own size only."""
    value = body.get("dimensions")
    if value is not None and value != n_embd:
        raise ApiError(400, f"'dimensions' must be {n_embd} (the model's embedding size), got {json.dumps(value)}",
                       param="dimensions")


def _is_tokens(value: list[Any]) -> bool:
    return bool(value) and all(isinstance(t, int) and not isinstance(t, bool) for t in value)


def chat_prompt_tokens(model: Model, body: Mapping[str, Any]) -> list[int]:
    """`messages` rendered with the model's chat template, message text never parsed
    for special tokens (gene_jit.llama.chat_template)."""
    messages = required(body, "messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty array of {role, content}", param="messages")
    plain = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ApiError(400, f"messages[{i}] must be an object with role and content", param="messages")
        role = msg.get("role")
        if role not in ROLES:
            raise ApiError(400, f"messages[{i}].role must be one of {', '.join(ROLES)}, got {json.dumps(role)}",
                           param="messages")
        if msg.get("content") is None and ROLES[role] != "assistant":
            raise ApiError(400, f"messages[{i}] ({role}) has no 'content'", param="messages",
                           code="missing_required_parameter")
        plain.append({"role": ROLES[role], "content": _content(msg.get("content"), i)})
    try:
        return chat_tokens(model, chat_prompt(model, plain))
    except LlamaError as exc:
        raise ApiError(400, exc.message, param="messages") from None


def _content(content: Any, i: int) -> str:
    """Message content: a string, or an array of text parts."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"messages[{i}].content: only text parts are supported", param="messages")
            texts.append(part["text"])
        return "".join(texts)
    raise ApiError(400, f"messages[{i}].content must be a string or an array of text parts", param="messages")


def embedding_inputs(body: Mapping[str, Any]) -> list[str]:
    value = required(body, "input")
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(s, str) for s in items):
        raise ApiError(400, "'input' must be a string or a non-empty array of strings", param="input")
    if not all(items):
        raise ApiError(400, "'input' holds an empty string; there is nothing to embed", param="input")
    return list(items)


def encoding_format(body: Mapping[str, Any]) -> str:
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise ApiError(400, "'encoding_format' must be \"float\" or \"base64\"", param="encoding_format")
    return str(fmt)
