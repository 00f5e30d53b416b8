"""`gene_jit.jit`: Gene functions embedded in Python, compiled lazily per argument
types, like `numba.njit`.

    fib = gene_jit.jit("(fn fib [n] (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))")
    fib(30)

    @gene_jit.jit(cache=True)
    def dot():
        "(fn dot [a b] (var s 0.0) (for i in (range (len a)) (s += ((get a i) * (get b i)))) s)"

The source may define several functions (the last one is returned); it runs once through
tier 0. Ints, floats, bools and 1-D/2-D float64/int64 NumPy arrays are accepted natively;
anything else, or a function tier 1 cannot type, runs in tier 0. The returned object's
class `__call__` is the newest signature's builtin entry, so a call from Python goes
straight into the trampoline; a guard miss lands in `_dispatch`, which compiles the new
signature.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from gene_jit.frontend.forms import GeneF, Sym
from gene_jit.ir import types as T
from gene_jit.runtime.errors import GeneError


class JitFunction:
    """A Gene function compiled per argument types. Call it like the function."""

    __slots__ = ("name", "_pyfunc", "_state", "_cache", "_head", "__weakref__")

    def __init__(self, name: str, pyfunc: Callable[..., Any], state: Any, cache: bool) -> None:
        self.name = name
        self._pyfunc = pyfunc
        self._state = state
        self._cache = cache
        self._head: Any = self._dispatch

    def _dispatch(self, *args: Any) -> Any:
        state = self._state
        sig = T.signature_of(args)
        if state is None or sig is None or len(sig) != state.nparams or sig in state.failed:
            return self._pyfunc(*args)
        entry = state.native.get(sig)
        if entry is None:
            old = os.environ.get("GENE_JIT_CACHE")
            if not self._cache:
                os.environ["GENE_JIT_CACHE"] = "0"
            try:
                entry = state.compile(sig)
            finally:
                if not self._cache:
                    _restore("GENE_JIT_CACHE", old)
            if entry is None:
                return self._pyfunc(*args)
            # newest signature first; its guard miss tries the older ones, then here
            self._head = state.natives[-1].builtin(self._head)
            type(self).__call__ = self._head  # type: ignore[method-assign]
        return entry(*args)

    @property
    def signatures(self) -> list[str]:
        if self._state is None:
            return []
        return [f"({', '.join(map(str, n.sig))}) -> {n.ret}" for n in self._state.natives]

    def _natives(self) -> list[Any]:
        return list(self._state.natives) if self._state is not None else []

    def inspect_ir(self) -> dict[str, str]:
        """Typed IR per compiled signature."""
        return {s: n.ir_text for s, n in zip(self.signatures, self._natives(), strict=True)}

    def inspect_llvm(self) -> dict[str, str]:
        """Optimised LLVM IR per compiled signature."""
        return {s: n.llvm_ir for s, n in zip(self.signatures, self._natives(), strict=True)}

    def inspect_asm(self) -> dict[str, str]:
        """Host assembly per compiled signature."""
        return {s: n.assembly() for s, n in zip(self.signatures, self._natives(), strict=True)}

    @property
    def stats(self) -> Any:
        return self._state.stats if self._state is not None else None

    def __repr__(self) -> str:
        return f"<gene_jit.jit {self.name} {self.signatures}>"


def _restore(var: str, old: str | None) -> None:
    if old is None:
        os.environ.pop(var, None)
    else:
        os.environ[var] = old


def _compile_source(source: str, filename: str) -> tuple[str, Callable[..., Any], Any]:
    from gene_jit.codegen.hooks import install
    from gene_jit.frontend.compiler import new_env, run_source
    from gene_jit.frontend.compiler_core import pyid
    from gene_jit.frontend.reader import read

    forms = read(source, filename)
    names = [f.children[0].name for f in forms
             if isinstance(f, GeneF) and isinstance(f.head, Sym) and f.head.name == "fn"
             and f.children and isinstance(f.children[0], Sym)]
    if not names:
        raise GeneError("gene_jit.jit: the source defines no named fn")
    hooks = install()
    env = new_env(filename)
    run_source(source, filename, env)
    pyfunc = env[pyid(names[-1])]
    state = hooks.by_object.get(id(pyfunc)) if hooks is not None else None
    if state is not None:
        pyfunc = state.pyfunc
        state.on = False  # calls go through JitFunction's dispatch, not the prologue
    return names[-1], pyfunc, state


def jit(source: str | Callable[..., Any] | None = None, *, cache: bool = False) -> Any:
    """Compile Gene source (a string, or a function whose docstring holds it)."""
    if source is None:
        return lambda f: jit(f, cache=cache)
    if callable(source):
        text = source.__doc__ or ""
        filename = f"<jit {getattr(source, '__name__', 'fn')}>"
    else:
        text, filename = source, "<jit>"
    name, pyfunc, state = _compile_source(text, filename)
    cls = type(f"jit_{name}", (JitFunction,), {"__slots__": ()})
    obj = cls(name, pyfunc, state, cache)
    cls.__call__ = staticmethod(obj._dispatch)  # type: ignore[assignment]
    return obj
