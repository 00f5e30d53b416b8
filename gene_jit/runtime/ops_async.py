"""Futures for `(async e)` and `(await f)`: they complete synchronously, as the reference
VM's do (GENE.md 3.11). `(async e)` evaluates e at once; a Gene error raised by it makes a
failed future, which `await` raises again. Gene sees `.state` (`success` or `failure`),
`.value`, `.on_success cb` and `.on_failure cb` (cb runs at once when the state matches;
both return the future, so they chain).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gene_jit.runtime.errors import GeneError, GeneTypeError
from gene_jit.runtime.values import Symbol


class Future:
    __slots__ = ("value", "error")

    def __init__(self, value: Any = None, error: GeneError | None = None) -> None:
        self.value = value
        self.error = error

    @property
    def state(self) -> Symbol:
        return Symbol("failure" if self.error is not None else "success")

    def __gene_get__(self, key: str) -> Any:
        if key == "state":
            return self.state
        if key == "value":
            return self.value if self.error is None else _error_value(self.error)
        raise GeneTypeError(f"a future has no member {key}")

    def __repr__(self) -> str:
        return f"<Future {self.state.name}>"


def _error_value(err: GeneError) -> Any:
    from gene_jit.runtime.ops import ex_value

    return ex_value(err)


def run_async(thunk: Callable[[], Any]) -> Future:
    """`(async e)`: e's value as a completed future (a failed one if e raised)."""
    try:
        value = thunk()
    except GeneError as err:
        return Future(error=err)
    if isinstance(value, Future):
        return value
    return Future(value)


def await_values(*futures: Any) -> Any:
    """`(await f)` is f's value; `(await f1 f2)` is an array; a failed future raises."""
    out = []
    for f in futures:
        if not isinstance(f, Future):
            out.append(f)  # awaiting a plain value gives it back
            continue
        if f.error is not None:
            raise f.error
        out.append(f.value)
    return out[0] if len(out) == 1 else out


def async_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`(fn ^^async f ...)`: calls return futures."""

    def call(*args: Any, **kwargs: Any) -> Future:
        return run_async(lambda: fn(*args, **kwargs))

    call.__name__ = call.__qualname__ = getattr(fn, "__name__", "fn")
    call.__gene_kwonly__ = getattr(fn, "__gene_kwonly__", None)  # type: ignore[attr-defined]
    return call


def _on(fut: Future, success: bool, cb: Any) -> Future:
    if (fut.error is None) == success:
        cb(fut.value if success else _error_value(fut.error))  # type: ignore[arg-type]
    return fut


def register() -> None:
    from gene_jit.runtime.ops import method

    method(Future, "state")(lambda f: f.state)
    method(Future, "value")(lambda f: f.__gene_get__("value"))
    method(Future, "on_success", "on-success")(lambda f, cb: _on(f, True, cb))
    method(Future, "on_failure", "on-failure")(lambda f, cb: _on(f, False, cb))
