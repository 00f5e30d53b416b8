"""Chat prompts: the model's own chat template (GGUF `tokenizer.chat_template`) rendered in
a jinja2 immutable sandbox, because templates inside downloaded GGUF files are untrusted
input, or a plain transcript for models without one; plus the Gene-level helpers `format-chat-prompt` and `format-qa-prompt`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gene_jit.llama.errors import LlamaError

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
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        # the same environment settings as Hugging Face's renderer, which these
        # templates are written for
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            tmpl = env.from_string(template)
        except jinja2.TemplateError as exc:
            raise LlamaError(f"{source} does not parse: {exc}") from exc
        _compiled[template] = tmpl
    return tmpl


def render_chat(
    template: str | None,
    messages: Sequence[Mapping[str, Any]],
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    source: str = "the model's chat template",
) -> str:
    """The prompt text for `messages` ([{role, content}]) under `template`; `source`
    names the template in errors (e.g. the GGUF file it came from)."""
    from jinja2.exceptions import SecurityError, TemplateError

    tmpl = _compile(template or TRANSCRIPT_TEMPLATE, source)
    try:
        return str(
            tmpl.render(
                messages=[dict(m) for m in messages],
                bos_token=bos_token,
                eos_token=eos_token,
                add_generation_prompt=add_generation_prompt,
            )
        )
    except TemplateRefusal:
        raise
    except SecurityError as exc:
        # a template that reaches for Python internals (CVE-2024-34359): the sandbox
        # stopped it before anything ran
        raise LlamaError(f"{source} tried an unsafe operation and was stopped: {exc}") from exc
    except TemplateError as exc:
        raise LlamaError(f"{source} failed: {exc}") from exc
    except Exception as exc:  # a template's own bug (e.g. adding a number to a string)
        raise LlamaError(f"{source} failed: {type(exc).__name__}: {exc}") from exc


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
            out.append({"role": role, "content": str(item.get("content", ""))})
        elif isinstance(item, str):
            out.append({"role": "user" if i % 2 == 0 else "assistant", "content": item})
        else:
            raise LlamaError(
                f"chat history items must be strings or maps with role and content, got {item!r}"
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
