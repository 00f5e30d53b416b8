"""Callbacks: Gene functions that C calls through a function pointer.

`callback(fn, returns, params)` makes a `Callback` with a C-callable address. Lifetime
rules, so that C never calls freed code:

* a `Callback` lives while Gene references it, and until `ffi/free` (which then makes it
  refuse further calls instead of crashing);
* passed to a foreign function, it is also held by that function's parameter slot until
  the next call through the same slot replaces it (what "set the log callback" APIs need);
* stored in a struct field, it is held by the struct memory (see structs.py).

An error raised inside a callback cannot unwind through C frames: it is recorded, the
callback returns zero to C, and the error is raised in Gene as soon as the foreign call
that led to the callback returns (`raise_pending`).
"""

from __future__ import annotations

import ctypes
from typing import Any

from gene_jit.ffi.crash import CURRENT
from gene_jit.ffi.types import POINTER_KINDS, FfiType, ctype_of, describe, from_c, to_c
from gene_jit.runtime.builtins import raised_in_gene_code
from gene_jit.runtime.errors import GeneError, GeneTypeError

# Errors raised inside callbacks, waiting for the foreign call to return.
PENDING: list[BaseException] = []


class CallbackError(GeneError):
    kind = "callback error"


class CallbackType:
    """The signature of a C function pointer: `[:callback :int [:pointer :pointer]]`."""

    def __init__(self, returns: Any = "void", params: Any = ()) -> None:
        self.returns = ctype_of(returns)
        if not isinstance(params, (list, tuple)):
            raise GeneTypeError(
                f"callback params must be an array of types, got {describe(params)}"
            )
        self.params = tuple(ctype_of(p) for p in params)
        if self.returns.kind in ("string", "struct", "array", "buffer"):
            raise GeneTypeError(
                f"a callback cannot return :{self.returns.name} (return a :pointer instead)"
            )
        for p in self.params:
            if p.kind in ("struct", "array"):
                raise GeneTypeError(f"a callback cannot take :{p.name} by value")
        self.cfunctype = ctypes.CFUNCTYPE(self.returns.ctype, *(p.ctype for p in self.params))
        sig = " ".join(p.name for p in self.params)
        self._type = FfiType(
            f"callback({sig})->{self.returns.name}",
            "callback",
            ctypes.c_void_p,
            ctypes.sizeof(ctypes.c_void_p),
            False,
            target=self,
            field_ctype=ctypes.c_void_p,
        )

    def ffi_type(self) -> FfiType:
        return self._type

    def same(self, other: CallbackType) -> bool:
        return self.returns is other.returns and self.params == other.params

    def __repr__(self) -> str:
        return f"<ffi {self._type.name}>"


class Callback:
    """A Gene function callable from C. Calling it from Gene calls the function."""

    __slots__ = ("fn", "type", "_cfunc", "address", "name", "__weakref__")

    def __init__(self, fn: Any, ctype: CallbackType) -> None:
        if not callable(fn):
            raise GeneTypeError(f"ffi/callback needs a function, got {describe(fn)}")
        self.fn = fn
        self.type = ctype
        self.name = getattr(fn, "__gene_name__", None) or getattr(fn, "__name__", "callback")
        self._cfunc = ctype.cfunctype(self._trampoline())
        self.address: int = ctypes.cast(self._cfunc, ctypes.c_void_p).value or 0

    def _trampoline(self) -> Any:
        params = self.type.params
        ret = self.type.returns
        plain = all(p.kind in ("int", "float", "bool") for p in params)
        default = None if ret.kind == "void" else (0.0 if ret.kind == "float" else 0)
        fn_ref = self  # the trampoline reads self.fn so that ffi/free can disable it
        # held by the closure: C may call back while the interpreter shuts down (a library's
        # log at exit), after module globals are cleared
        current, pending, conv_in, conv_out = CURRENT, PENDING, from_c, to_c

        def trampoline(*cargs: Any) -> Any:
            outer = current[0]  # the foreign call C made this call from (crash reports)
            try:
                fn = fn_ref.fn
                if fn is None:
                    raise CallbackError(f"callback {fn_ref.name} called after ffi/free")
                args = (
                    cargs if plain else [conv_in(t, a) for t, a in zip(params, cargs, strict=True)]
                )
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - nothing may unwind into C
                pending.append(exc)
                return default
            finally:
                current[0] = outer
            if ret.kind == "void" or (result is None and ret.kind in POINTER_KINDS):
                return None
            try:
                return conv_out(ret, result)
            except (TypeError, GeneError) as exc:
                pending.append(CallbackError(
                    f"callback {fn_ref.name} must return :{ret.name}, got {describe(result)} "
                    f"({exc})"))
                return default

        return trampoline

    def __call__(self, *args: Any) -> Any:
        if self.fn is None:
            raise CallbackError(f"callback {self.name} called after ffi/free")
        return self.fn(*args)

    def free(self) -> None:
        """Stop calling the Gene function; the C entry point stays valid (it returns
        zero) while anything still holds this object."""
        self.fn = None

    def __repr__(self) -> str:
        return f"<ffi callback {self.name} {self.type.ffi_type().name}>"

    __gene_type__ = "ffi-callback"

    def __gene_repr__(self) -> str:
        return repr(self)


def callback(fn: Any, returns: Any = "void", params: Any = ()) -> Callback:
    """`ffi/callback`: wrap `fn` so C can call it with the given signature."""
    ctype = returns if isinstance(returns, CallbackType) else CallbackType(returns, params)
    return Callback(fn, ctype)


def callback_type(returns: Any = "void", params: Any = ()) -> CallbackType:
    return CallbackType(returns, params)


def as_callback(ctype: CallbackType | None, value: Any) -> Callback:
    """The `Callback` to pass where C expects a `ctype` function pointer (TypeError if not
    possible)."""
    if isinstance(value, Callback):
        if ctype is not None and not ctype.same(value.type):
            raise TypeError(
                f"callback has signature {value.type.ffi_type().name}, "
                f"expected {ctype.ffi_type().name}"
            )
        return value
    if ctype is None:
        raise TypeError("this parameter has no signature: make the callback with ffi/callback")
    if callable(value):
        return Callback(value, ctype)
    raise TypeError("not a function")


def raise_pending() -> None:
    """Raise the first error recorded inside a callback (called after foreign calls)."""
    exc = PENDING[0]
    PENDING.clear()
    if isinstance(exc, GeneError):
        raise exc
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        raise exc
    if too_deep(exc):
        raise stack_overflow() from None
    if raised_in_gene_code(exc):
        raise exc  # the Gene function's own mistake: converted at its line, in Gene's words
    raise CallbackError(f"error inside a callback: {type(exc).__name__}: {exc}") from exc


def too_deep(exc: BaseException) -> bool:
    """Whether `exc` is Python's recursion limit, met in Gene code or while ctypes
    converted an argument (which wraps it in an ArgumentError)."""
    return isinstance(exc, RecursionError) or (
        isinstance(exc, ctypes.ArgumentError) and "RecursionError" in str(exc))


def stack_overflow() -> GeneError:
    """The Gene error for calls nested past the depth limit (as outside callbacks)."""
    return GeneError("stack overflow (recursion too deep)")
