"""The jinja2 environment chat templates run in: an immutable sandbox (no Python
internals, no mutation) with limits on time and size, since a template inside a
downloaded GGUF file is untrusted code.

Per render: at most `RENDER_SECONDS` of wall time and `LOOP_BUDGET` loop iterations in
all; `range()` of at most `MAX_RANGE` numbers; no string or list longer than the text
limit (a million characters beyond four times the messages' own size), whether made by
`*`, `+`, `~`, `%`, `.format`, a filter or a method, and no rendered output beyond it. A
template that reaches a limit is a Gene error that says which.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import wraps
from typing import Any

from gene_jit.llama.errors import LlamaError

RENDER_SECONDS = 2.0
LOOP_BUDGET = 1_000_000
MAX_RANGE = 100_000
BASE_TEXT = 1_000_000
MAX_EXPONENT = 256


class TemplateLimitError(LlamaError):
    """A chat template that ran past a limit on time or size."""

    kind = "chat template limit"


@dataclass
class Budget:
    deadline: float
    max_text: int
    loops: int = LOOP_BUDGET

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"it took longer than {RENDER_SECONDS:g} s")

    def size(self, value: Any, what: str) -> Any:
        if isinstance(value, str | list | tuple | bytes) and len(value) > self.max_text:
            raise TemplateLimitError(f"{what} made {len(value)} items, more than the limit of {self.max_text}")
        return value


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("template_budget", default=None)


def _current() -> Budget:
    budget = _budget.get()
    if budget is None:  # a render outside `limits` (none in this library): fresh limits
        budget = Budget(time.monotonic() + RENDER_SECONDS, BASE_TEXT)
    return budget


class limits:
    """`with limits(input_size):` around one render."""

    def __init__(self, input_size: int) -> None:
        self.budget = Budget(time.monotonic() + RENDER_SECONDS, BASE_TEXT + 4 * input_size)

    def __enter__(self) -> Budget:
        self.token = _budget.set(self.budget)
        return self.budget

    def __exit__(self, *exc: Any) -> None:
        _budget.reset(self.token)


def _guarded_iter(iterable: Any) -> Iterator[Any]:
    """Every template loop iterates through this: each step counts and checks the time."""
    budget = _current()
    for item in iterable:
        budget.loops -= 1
        if budget.loops < 0:
            raise TemplateLimitError(f"it looped more than {LOOP_BUDGET} times")
        budget.tick()
        yield item


def _safe_range(*args: Any) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise TemplateLimitError(f"it asked for range() of {len(rng)} numbers (the limit is {MAX_RANGE})")
    return rng


_WIDE_FORMAT = re.compile(r"(%|\{[^}]*:)[^%}a-zA-Z]*?\d{7,}")


def _check_args(args: tuple[Any, ...], budget: Budget, what: str) -> None:
    """Arguments that would make a huge result in one step (widths, counts, formats)."""
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > budget.max_text:
            raise TemplateLimitError(f"{what} was given {arg}, beyond the size limit of {budget.max_text}")
        if isinstance(arg, str) and _WIDE_FORMAT.search(arg):
            raise TemplateLimitError(f"{what} was given a format with a width beyond the size limit")


def _limited_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        budget = _current()
        budget.tick()
        _check_args(args + tuple(kwargs.values()), budget, f"the filter {name}")
        return budget.size(fn(*args, **kwargs), f"the filter {name}")

    return run


def environment() -> Any:
    """A new limited sandbox with Hugging Face's settings (the ones chat templates are
    written for)."""
    from jinja2 import nodes
    from jinja2.compiler import CodeGenerator
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generator(CodeGenerator):
        def visit_Concat(self, node: Any, frame: Any) -> None:  # `~`: its result is sized
            self.write("environment.sized_concat(")
            super().visit_Concat(node, frame)
            self.write(")")

    class LimitedSandbox(ImmutableSandboxedEnvironment):
        code_generator_class = Generator
        intercepted_binops = frozenset(["*", "+", "%", "**", "//"])

        def _parse(self, source: str, name: str | None, filename: str | None) -> Any:
            tree = super()._parse(source, name, filename)
            for loop in tree.find_all(nodes.For):
                loop.iter = nodes.Call(nodes.Name("__loop_guard", "load"), [loop.iter], [], None, None)
            return tree

        def sized_concat(self, value: Any) -> Any:
            return _current().size(value, "the ~ operator")

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            budget = _current()
            budget.tick()
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > budget.max_text:
                        raise TemplateLimitError(
                            f"it repeats a text of {len(seq)} items {n} times, beyond the size limit of "
                            f"{budget.max_text}")
            elif operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise TemplateLimitError(f"it raises a number to the power {right} (the limit is {MAX_EXPONENT})")
            elif operator == "%" and isinstance(left, str):
                _check_args((left,), budget, "the % operator")
            return budget.size(super().call_binop(context, operator, left, right), f"the {operator} operator")

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            budget = _current()
            budget.tick()
            if __obj is not _safe_range:  # which says why itself
                _check_args(args + tuple(kwargs.values()), budget, "a call")
            bound = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
            if isinstance(bound, str) and getattr(__obj, "__name__", "") in ("format", "format_map"):
                _check_args((bound,), budget, "str.format")
            if getattr(__obj, "__name__", "") == "replace" and len(args) >= 2 and isinstance(args[1], str):
                target = getattr(__obj, "__self__", "")
                if isinstance(target, str) and isinstance(args[0], str):
                    grows = (target.count(args[0]) if args[0] else len(target) + 1) * len(args[1])
                    if grows > budget.max_text:
                        raise TemplateLimitError(f"a replace() would make {grows} characters, "
                                                 f"beyond the size limit of {budget.max_text}")
            return budget.size(super().call(__context, __obj, *args, **kwargs), "a call")

        def getattr(self, obj: Any, attribute: str) -> Any:
            _current().tick()
            return super().getattr(obj, attribute)

        def getitem(self, obj: Any, argument: Any) -> Any:
            _current().tick()
            return super().getitem(obj, argument)

    env = LimitedSandbox(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["range"] = _safe_range
    env.globals["__loop_guard"] = _guarded_iter
    for name, fn in list(env.filters.items()):
        env.filters[name] = _limited_filter(name, fn)
    return env


def render_limited(tmpl: Any, input_size: int, **variables: Any) -> str:
    """Render with the limits, streaming the output so that its size is checked as it
    grows."""
    with limits(input_size) as budget:
        parts: list[str] = []
        total = 0
        for chunk in tmpl.generate(**variables):
            total += len(chunk)
            if total > budget.max_text:
                raise TemplateLimitError(f"it wrote more than {budget.max_text} characters")
            budget.tick()
            parts.append(chunk)
        return "".join(parts)
