"""The seam between tier 0 and tier 1.

The frontend never imports codegen. Instead, tier 0 asks this module for the prologue
statements to put at the top of every Gene function body (call counting, argument type
recording) and tells it about every function it defines. Tier 1 installs itself here
(`install(jit)`) when the JIT is enabled; with `GENE_JIT=0` nothing is installed and the
prologue is empty, so tier 0 pays nothing.

Contract for the tier-0 compiler:

* `mode()` gives "off", "lazy" or "eager" (from `GENE_JIT`; default "lazy").
* Before compiling a `fn` form, call `prologue(fn_id)` to get a list of `ast.stmt` to insert
  at the top of the Python function body (may be empty). `fn_id` is an int from
  `new_fn_id()`.
* After the Python function object exists, call `register(fn_id, pyfunc, info)` where
  `info` is a `FnInfo`. The return value is the callable to bind under the function's name
  (tier 1 may wrap it).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from gene_jit.frontend.forms import Form


@dataclass
class FnInfo:
    name: str
    form: Form  # the whole `(fn name args body...)` form
    params: list[str]  # positional parameter names, in order
    namespace: dict[str, Any]  # the globals the function runs in
    has_varargs: bool = False
    has_props: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class JitHooks(Protocol):
    def prologue(self, fn_id: int) -> list[ast.stmt]: ...

    def register(self, fn_id: int, pyfunc: Any, info: FnInfo) -> Any: ...


_hooks: JitHooks | None = None
_next_id = 0


def mode() -> str:
    value = os.environ.get("GENE_JIT", "1").strip().lower()
    if value in ("0", "off", "false", "no"):
        return "off"
    if value == "eager":
        return "eager"
    return "lazy"


def install(hooks: JitHooks | None) -> None:
    global _hooks
    _hooks = hooks


def active() -> JitHooks | None:
    return _hooks if mode() != "off" else None


def new_fn_id() -> int:
    global _next_id
    _next_id += 1
    return _next_id


def prologue(fn_id: int) -> list[ast.stmt]:
    hooks = active()
    return hooks.prologue(fn_id) if hooks is not None else []


def register(fn_id: int, pyfunc: Any, info: FnInfo) -> Any:
    hooks = active()
    return hooks.register(fn_id, pyfunc, info) if hooks is not None else pyfunc
