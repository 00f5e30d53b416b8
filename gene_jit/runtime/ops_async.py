"""Futures: `(async e)`, `(await f...)`, `(fn ^^async f ...)`, `gene/Future`, and the
values of the `*_async` builtins (GENE.md 3.11).

Futures complete synchronously, as the reference VM's do: `(async e)` evaluates e at once
and `(gene/io/read_async path)` reads the file before it returns, so a program prints
the same thing on every run and in every tier. A Gene error raised by the work makes a
failed future, which `await` raises again (a `catch` then sees the original error).

`(new gene/Future)` is a pending future that the program completes with `.complete v` or
`.fail v`; `.on_success cb` / `.on_failure cb` run cb with the value (or the error) as
soon as the state matches, at once if it already does. All four return the future, so
they chain. `.state` is `pending`, `success` or `failure`; `.value` the value (the error
of a failed future, nil while pending). Awaiting a pending future is an error: nothing
else runs meanwhile that could complete it. Futures print as the VM's do:
`<Future FsPending>`, `<Future FsSuccess>`, `<Future FsFailure>`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gene_jit.runtime.errors import GeneError, GeneTypeError
from gene_jit.runtime.values import Symbol

_PENDING = object()


class Future:
    __slots__ = ("_value", "error", "_callbacks")

    def __init__(self, value: Any = _PENDING, error: GeneError | None = None) -> None:
        self._value = value
        self.error = error
        self._callbacks: list[tuple[bool, Callable[[Any], Any]]] = []

    @property
    def pending(self) -> bool:
        return self._value is _PENDING and self.error is None

    @property
    def state(self) -> Symbol:
        if self.error is not None:
            return Symbol("failure")
        return Symbol("pending" if self._value is _PENDING else "success")

    @property
    def value(self) -> Any:
        """The value of a completed future, the error value of a failed one, else nil."""
        if self.error is not None:
            return _error_value(self.error)
        return None if self._value is _PENDING else self._value

    def settle(self, value: Any = None, error: GeneError | None = None) -> Future:
        if not self.pending:
            raise GeneError(f"the future is already complete ({self.state.name})")
        if error is not None:
            self.error = error
        else:
            self._value = value
        callbacks, self._callbacks = self._callbacks, []
        for success, cb in callbacks:
            self._notify(success, cb)
        return self

    def on(self, success: bool, cb: Any) -> Future:
        if not callable(cb):
            which = "on_success" if success else "on_failure"
            raise GeneTypeError(f".{which} expects a function, got {_kind(cb)}")
        if self.pending:
            self._callbacks.append((success, cb))
        else:
            self._notify(success, cb)
        return self

    def _notify(self, success: bool, cb: Callable[[Any], Any]) -> None:
        if (self.error is None) == success:
            cb(self.value)

    def __gene_get__(self, key: str) -> Any:
        if key == "state":
            return self.state
        if key == "value":
            return self.value
        raise GeneTypeError(f"a future has no member {key}")

    def __gene_repr__(self) -> str:
        return f"<Future Fs{self.state.name.capitalize()}>"

    __repr__ = __gene_repr__


def _kind(v: Any) -> str:
    from gene_jit.runtime.ops import kind_name

    return kind_name(v)


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


def completed(work: Callable[[], Any]) -> Future:
    """The future of a builtin's work done now: its value, or the Gene error it raised."""
    try:
        return Future(work())
    except GeneError as err:
        return Future(error=err)


def await_values(*futures: Any) -> Any:
    """`(await f)` is f's value; `(await f1 f2)` is an array; a failed future raises."""
    out = []
    for f in futures:
        if not isinstance(f, Future):
            out.append(f)  # awaiting a plain value gives it back
            continue
        if f.error is not None:
            raise f.error
        if f.pending:
            raise GeneError(
                "await on a pending future: futures complete synchronously, so nothing "
                "can complete it while await waits (call .complete first)"
            )
        out.append(f.value)
    return out[0] if len(out) == 1 else out


def async_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`(fn ^^async f ...)`: calls return futures."""

    def call(*args: Any, **kwargs: Any) -> Future:
        return run_async(lambda: fn(*args, **kwargs))

    call.__name__ = call.__qualname__ = getattr(fn, "__name__", "fn")
    call.__gene_kwonly__ = getattr(fn, "__gene_kwonly__", None)  # type: ignore[attr-defined]
    return call


def _fail(fut: Future, value: Any = None) -> Future:
    from gene_jit.runtime.ops import make_throw

    err = make_throw(value)
    assert isinstance(err, GeneError)  # make_throw gives the error itself or a GeneThrow
    return fut.settle(error=err)


def register() -> None:
    from gene_jit.runtime.builtins import gene_builtin
    from gene_jit.runtime.ops import method

    method(Future, "state")(lambda f: f.state)
    method(Future, "value")(lambda f: f.value)
    method(Future, "on_success", "on-success")(lambda f, cb: f.on(True, cb))
    method(Future, "on_failure", "on-failure")(lambda f, cb: f.on(False, cb))
    method(Future, "complete")(lambda f, value=None: f.settle(value))
    method(Future, "fail")(_fail)
    new_future.__gene_constructor__ = True  # type: ignore[attr-defined]  # (new gene/Future)
    gene_builtin("Future", ns="gene")(new_future)


def new_future() -> Future:
    """`(new gene/Future)` / `(gene/Future)`: a pending future."""
    return Future()
