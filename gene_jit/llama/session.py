"""Chat: prompts from the model's own chat template, and `ChatSession`, which keeps the
history and its own KV cache so that each turn decodes only the tokens that are new
since the last one (the shared prefix stays cached)."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

from gene_jit.llama.chat_template import (
    TRANSCRIPT_STOPS,
    model_template,
    render_chat,
    to_messages,
    uses_transcript,
)
from gene_jit.llama.chat_template import (
    chat_tokens as _chat_tokens,
)
from gene_jit.llama.errors import LlamaError
from gene_jit.llama.generate import Generation, Sampling, Stats
from gene_jit.llama.options import shown
from gene_jit.llama.speculate import speculate_option

if TYPE_CHECKING:
    from gene_jit.llama.context import Context
    from gene_jit.llama.model import Model


def chat_prompt(model: Model, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
    """The prompt text for `messages`, rendered with the model's template."""
    template, source = model_template(model)
    return render_chat(
        template,
        messages,
        bos_token=model.token_text(model.bos) if model.add_bos else "",
        eos_token=model.token_text(model.eos),
        add_generation_prompt=add_generation_prompt,
        source=source,
    )


def chat_tokens(model: Model, prompt: str, parse_special: bool = False) -> list[int]:
    """Tokens of a rendered chat prompt: the template wrote BOS itself, so none is added;
    special tokens only in the template's markup (gene_jit.llama.chat_template)."""
    return _chat_tokens(model, prompt, parse_special)


class ChatSession:
    """A conversation with a model (`chat-session`): history plus a private KV cache."""

    def __init__(self, model: Model, system: str | None = None, n_ctx: int | None = None) -> None:
        self.model = model
        self.messages: list[dict[str, str]] = []
        if system:
            self.messages.append({"role": "system", "content": str(system)})
        self.ctx: Context = model.new_context(n_ctx=n_ctx or model.n_ctx)
        self.last_stats: Stats | None = None
        self.dropped_turns = 0
        self.parse_special = False  # special tokens in message text (chat-send :parse-special)
        self.replying = False  # a turn is under way (its callbacks may not start another)
        self._turns = threading.RLock()  # other threads' turns wait for this one to end

    def send(self, message: str, n: int = 256, on_token: Any = None, **kw: Any) -> str:
        """Add a user message, generate the reply, add it to the history, return it."""
        if not isinstance(message, str):
            raise LlamaError(f"a chat message must be a string, got {shown(message)}")
        with self._turns:
            if self.replying:  # from this turn's own :on-token: the history would interleave
                raise LlamaError("chat-send: this session is still writing its reply; send the next "
                                 "message after chat-send returns (or use another session)")
            self.replying = True
            try:
                return self._send(message, n, on_token, kw)
            finally:
                self.replying = False

    def _send(self, message: str, n: int, on_token: Any, kw: dict[str, Any]) -> str:
        kw.setdefault("temperature", 0.7)
        stops = [str(s) for s in (kw.pop("stop", None) or [])]
        speculate = speculate_option(kw.pop("speculate", None))
        self.parse_special = bool(kw.pop("parse_special", False))
        if uses_transcript(self.model):
            stops += TRANSCRIPT_STOPS
        sampling = Sampling.from_kwargs(self.model, kw)
        before, dropped = list(self.messages), self.dropped_turns
        self.messages.append({"role": "user", "content": message})
        try:
            tokens = self._fitting_prompt(n)
            gen = Generation(
                self.model, self.ctx, tokens, n, sampling, stops, on_token=on_token, end_at_control=True,
                speculate=speculate,
            )
            reply = gen.run().strip()
        except BaseException:
            # a turn that failed (a callback's error, Ctrl-C) leaves no unanswered message
            # behind, or the next turn would follow two user messages in a row
            self.messages, self.dropped_turns = before, dropped
            raise
        self.last_stats = gen.stats
        self.messages.append({"role": "assistant", "content": reply})
        return reply

    def _fitting_prompt(self, n: int) -> list[int]:
        """The prompt tokens; when the conversation outgrows the context the oldest turns
        are dropped (keeping a system message), and the user is told so."""
        room = self.ctx.n_ctx_seq - min(n, self.ctx.n_ctx_seq // 2)
        while True:
            tokens = chat_tokens(self.model, chat_prompt(self.model, self.messages), self.parse_special)
            if len(tokens) <= room:
                return tokens
            first = 1 if self.messages and self.messages[0]["role"] == "system" else 0
            if len(self.messages) - first <= 1:
                raise LlamaError(
                    f"the message needs {len(tokens)} tokens but the chat context holds "
                    f"{self.ctx.n_ctx_seq}; shorten it or create the model with a larger :n-ctx"
                )
            del self.messages[first : first + 2]
            self.dropped_turns += 1
            print("note: the chat outgrew the context; the oldest turn was dropped", file=sys.stderr)

    def history(self) -> list[dict[str, str]]:
        return [dict(m) for m in self.messages]

    def reset(self) -> None:
        keep = [m for m in self.messages[:1] if m["role"] == "system"]
        self.messages = keep
        with self.ctx.lock:
            self.ctx.clear()

    def close(self) -> None:
        self.ctx.close()

    def __repr__(self) -> str:
        return f"<chat-session {len(self.messages)} messages>"


def format_chat_prompt(model: Model, history: Any, message: str | None = None) -> str:
    """`format-chat-prompt`: the model's chat prompt for a history plus a new message."""
    return chat_prompt(model, to_messages(history, message))
