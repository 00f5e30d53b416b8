"""Chat prompts: the model's own chat template (GGUF `tokenizer.chat_template`) rendered in
a jinja2 immutable sandbox with limits on time and size (gene_jit.llama.template_sandbox),
because templates inside downloaded GGUF files are untrusted input, or a plain transcript
for models without one; plus the Gene-level helpers `format-chat-prompt` and
`format-qa-prompt`.

A rendered chat knows which of its text is the template's own markup and which came from
message content (`RenderedChat.segments`), so that only the markup is tokenized with
special tokens parsed: a user who types `<end_of_turn>` gets those characters, never the
control token, and cannot forge a turn.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from gene_jit.llama.errors import LlamaError
from gene_jit.llama.options import shown
from gene_jit.llama.template_sandbox import environment, render_limited

# A model whose GGUF carries no chat template is taken as a base (pretrained) model, which
# knows no turn markers: it gets a plain transcript, which base models continue sensibly,
# and the reply ends where the model starts the user's next line (TRANSCRIPT_STOPS).
TRANSCRIPT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] | trim }}\n\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] | trim }}\n"
    "{% else %}Assistant: {{ message['content'] | trim }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)
TRANSCRIPT_STOPS = ("\nUser:", "\n\n\n")

# The chat format of architectures whose GGUF files are often published without
# tokenizer.chat_template (the default model's is one): the turn markers the model was
# trained on, written as llama.cpp's built-in templates write them. Gemma has no system
# role; system text goes in front of the next user message, and where none follows
# before the model's turn (instructions alone), in a user turn of its own.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.system = ns.system + (message['content'] | trim) + '\n\n' %}"
    "{% elif message['role'] == 'user' %}{{ '<start_of_turn>user\n' + ns.system }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{% set ns.system = '' %}"
    "{% else %}{% if ns.system %}{{ '<start_of_turn>user\n' + (ns.system | trim) + '<end_of_turn>\n' }}"
    "{% set ns.system = '' %}{% endif %}"
    "{{ '<start_of_turn>model\n' }}{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{% endif %}"
    "{% endfor %}{% if ns.system %}{{ '<start_of_turn>user\n' + (ns.system | trim) + '<end_of_turn>\n' }}{% endif %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
ARCH_TEMPLATES = {"gemma": GEMMA_TEMPLATE, "gemma2": GEMMA_TEMPLATE, "gemma3": GEMMA_TEMPLATE}


class _Described(Protocol):
    path: Any

    def chat_template(self) -> str | None: ...

    def meta(self, key: str) -> str | None: ...


def model_template(model: _Described) -> tuple[str, str]:
    """The chat template for `model`, and its name for errors: the GGUF's own
    (tokenizer.chat_template); else the known one of its architecture (ARCH_TEMPLATES);
    else the plain transcript. Every chat prompt of the library and the server comes
    from here."""
    own = model.chat_template()
    if own:
        return own, f"the chat template (tokenizer.chat_template) of {model.path.name}"
    arch = model.meta("general.architecture") or ""
    if arch in ARCH_TEMPLATES:
        return ARCH_TEMPLATES[arch], f"the {arch} chat template (built in; {model.path.name} carries none)"
    return TRANSCRIPT_TEMPLATE, "the plain transcript template"


def uses_transcript(model: _Described) -> bool:
    """Whether chats with `model` are plain transcripts (their replies end at TRANSCRIPT_STOPS)."""
    return model_template(model)[0] is TRANSCRIPT_TEMPLATE

ROLES = ("system", "user", "assistant")


class TemplateRefusal(LlamaError):
    """`raise_exception` called by a chat template (it refuses the messages)."""


def _raise_exception(message: str) -> None:
    raise TemplateRefusal(f"the model's chat template refused the messages: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


_compiled: dict[str, Any] = {}


def _compile(template: str, source: str) -> Any:
    tmpl = _compiled.get(template)
    if tmpl is None:
        import jinja2

        env = environment()
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            tmpl = env.from_string(template)
        except jinja2.TemplateError as exc:
            raise LlamaError(f"{source} does not parse: {exc}") from exc
        _compiled[template] = tmpl
    return tmpl


class RenderedChat(str):
    """A rendered chat prompt; `segments` are its pieces in order, each with whether it
    is the template's markup (True) or text from a message (False), or None where the
    template changed message text in a way that cannot be followed (then `contents`,
    the messages' text, is checked for special-token text instead)."""

    segments: list[tuple[str, bool]] | None
    contents: list[str]


# marks where message content goes in a second render (private-use characters, which
# templates pass through unchanged)
_MARK = "\ue000{}\ue001"
_MARK_RE = re.compile("\ue000(\\d+)\ue001")


def render_chat(
    template: str | None,
    messages: Sequence[Mapping[str, Any]],
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    source: str = "the model's chat template",
) -> RenderedChat:
    """The prompt text for `messages` ([{role, content}]) under `template`; `source`
    names the template in errors (e.g. the GGUF file it came from)."""
    msgs = [dict(m) for m in messages]
    tmpl = _compile(template or TRANSCRIPT_TEMPLATE, source)
    extra = {"bos_token": bos_token, "eos_token": eos_token, "add_generation_prompt": add_generation_prompt}
    size = sum(len(str(m.get("content", ""))) for m in msgs)
    text = _render(tmpl, source, size, messages=msgs, **extra)
    marked = [{**m, "content": _MARK.format(i)} for i, m in enumerate(msgs)]
    layout = _render(tmpl, source, size, messages=marked, **extra)
    out = RenderedChat(text)
    out.contents = [str(m.get("content", "")) for m in msgs]
    out.segments = _segments(text, layout, out.contents)
    return out


def _segments(text: str, layout: str, contents: list[str]) -> list[tuple[str, bool]] | None:
    """The markup and content pieces of `text`, from the render with marks (`layout`),
    following content the template trimmed; None when it changed content otherwise."""
    pieces: list[tuple[str, int | None]] = []
    pos = 0
    for m in _MARK_RE.finditer(layout):
        pieces += [(layout[pos : m.start()], None), ("", int(m.group(1)))]
        pos = m.end()
    pieces.append((layout[pos:], None))
    aligned = _align(text, pieces, contents)
    return None if aligned is None else [(t, markup) for t, markup in aligned if t]


def _align(text: str, pieces: list[tuple[str, int | None]], contents: list[str]) -> list[tuple[str, bool]] | None:
    out: list[tuple[str, bool]] = []
    pos = 0
    for k, (markup, index) in enumerate(pieces):
        if index is None:
            if not text.startswith(markup, pos):
                return None
            out.append((markup, True))
            pos += len(markup)
            continue
        after = pieces[k + 1][0] if k + 1 < len(pieces) else ""
        c = contents[index]
        for shaped in (c, c.strip(), c.lstrip(), c.rstrip()):
            if text.startswith(shaped, pos) and text.startswith(after, pos + len(shaped)):
                out.append((shaped, False))
                pos += len(shaped)
                break
        else:
            return None
    return out if pos == len(text) else None


def _render(tmpl: Any, source: str, size: int, **variables: Any) -> str:
    from jinja2.exceptions import SecurityError, TemplateError

    try:
        return render_limited(tmpl, size, **variables)
    except LlamaError as exc:
        if isinstance(exc, TemplateRefusal):
            raise
        raise type(exc)(f"{source} ran past a limit and was stopped: {exc.message}") from None
    except SecurityError as exc:
        # a template that reaches for Python internals (CVE-2024-34359): the sandbox
        # stopped it before anything ran
        raise LlamaError(f"{source} tried an unsafe operation and was stopped: {exc}") from exc
    except TemplateError as exc:
        raise LlamaError(f"{source} failed: {exc}") from exc
    except RecursionError as exc:
        raise LlamaError(f"{source} recursed too deeply and was stopped") from exc
    except Exception as exc:  # a template's own bug (e.g. adding a number to a string)
        raise LlamaError(f"{source} failed: {type(exc).__name__}: {exc}") from exc


class _Vocab(Protocol):
    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]: ...


# Chats rendered for format-chat-prompt, by their text: generate-text given one of them
# verbatim tokenizes it as chat-send does (message text without special tokens). Text
# that differs in any way is the caller's own, and tokenized as such.
_recent: OrderedDict[str, RenderedChat] = OrderedDict()
RECENT = 32


def remember(prompt: RenderedChat) -> None:
    _recent[str(prompt)] = prompt
    _recent.move_to_end(str(prompt))
    while len(_recent) > RECENT:
        _recent.popitem(last=False)


def recall(text: str) -> RenderedChat | None:
    """The rendered chat whose text is exactly `text`, if one was remembered."""
    return _recent.get(text)


def chat_tokens(model: _Vocab, prompt: str, parse_special: bool = False) -> list[int]:
    """Tokens of a rendered chat prompt (no BOS added: the template writes its own).
    Special tokens are parsed in the template's markup only, unless `parse_special`
    asks for them in message content too (text that is not a RenderedChat is all
    parsed, as the caller's own markup)."""
    if not isinstance(prompt, RenderedChat) or parse_special:
        return model.tokenize(str(prompt), add_special=False, parse_special=True)
    segments = prompt.segments
    if segments is None:  # content the template reshaped: parse only if it forges nothing
        for text in prompt.contents:
            if model.tokenize(text, False, True) != model.tokenize(text, False, False):
                raise LlamaError(
                    "a chat message holds special-token text, and the chat template changes "
                    "message text in a way that cannot keep it plain; remove it, or pass "
                    ":parse-special true to let it through")
        return model.tokenize(str(prompt), add_special=False, parse_special=True)
    out: list[int] = []
    for text, markup in segments:
        out.extend(model.tokenize(text, add_special=False, parse_special=markup))
    return out


def to_messages(history: Any, message: str | None = None) -> list[dict[str, str]]:
    """Chat messages from what Gene programs hold as history.

    Accepted: a list of maps with `role` and `content`; a flat list of strings alternating
    user and assistant turns (the seed's `(append history user-input response)`); or a
    list of [user assistant] pairs. `message` is appended as the next user turn.
    """
    out: list[dict[str, str]] = []
    for i, item in enumerate(_flatten(history or [])):
        if isinstance(item, Mapping):
            role = str(item.get("role", "user"))
            if role not in ROLES:
                raise LlamaError(f"chat message role must be one of {', '.join(ROLES)}, got '{role}'")
            content = item.get("content")
            if not isinstance(content, str):
                raise LlamaError(f"chat message {i} ({role}) needs ^content, a string, got {shown(content)}")
            out.append({"role": role, "content": content})
        elif isinstance(item, str):
            out.append({"role": "user" if i % 2 == 0 else "assistant", "content": item})
        else:
            raise LlamaError(
                f"chat history items must be strings or maps with role and content, got {shown(item)}"
            )
    if message is not None:
        out.append({"role": "user", "content": str(message)})
    return out


def _flatten(history: Any) -> list[Any]:
    if isinstance(history, Mapping) or isinstance(history, str):
        return [history]
    items: list[Any] = []
    for item in history:
        if isinstance(item, list | tuple):
            items.extend(item)
        else:
            items.append(item)
    return items


def format_qa(question: str, context: Any) -> str:
    """A question-answering prompt that puts the context before the question."""
    if isinstance(context, list | tuple):
        context = "\n\n".join(str(c) for c in context)
    ctx = str(context or "").strip()
    head = f"Answer the question using the context.\n\nContext:\n{ctx}\n\n" if ctx else ""
    return f"{head}Question: {question}\nAnswer:"
