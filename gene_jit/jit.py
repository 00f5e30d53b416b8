"""`gene_jit.jit`: Gene functions embedded in Python, compiled lazily per argument
types, like `numba.njit`.

    fib = gene_jit.jit("(fn fib [n] (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))")
    fib(30)

    @gene_jit.jit(cache=True)
    def dot():
        "(fn dot [a b] (var s 0.0) (for i in (range (len a)) (s += ((get a i) * (get b i)))) s)"

The source may define several functions (the last one is returned); it runs once through
tier 0. Ints, floats, bools and 1-D/2-D float64/int64 NumPy arrays are accepted natively;
strings, Gene collections, or a function tier 1 cannot type, run in tier 0 (`f.stats.reason`
says why). A call from Python enters the newest signature's native entry through the
object's vectorcall pointer; a guard miss lands in `_dispatch`, which checks the call
against the Gene signature (`jit_entry.py`: argument count, NumPy scalars as ints and floats,
arrays compiled code can read) and compiles the new signature. A call with an array whose
elements compiled code cannot read or write (float32 outside kernel calls, int32, 3-D)
runs in tier 0, so that it gives what it gives under GENE_JIT=0 (`f.stats.reason` says
why; the first such call warns, `GenePerformanceWarning`); `jit(..., fallback=False)`
makes every call that cannot run compiled (such an array, a string or a Gene collection,
a function tier 1 cannot type) a Gene type error saying why, `fallback=True` keeps quiet.

An element at a computed index is written with `($set a i v)` or `($set m (@ i j) v)`
(GENE.md 3.12; `a/i` is the member named "i"), natively in tier 1.
"""

from __future__ import annotations

import os
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

from gene_jit.frontend.forms import Form, GeneF, Sym
from gene_jit.ir import types as T
from gene_jit.jit_entry import EntrySpec
from gene_jit.runtime.errors import GeneError, GeneTypeError


class JitFunction:
    """A Gene function compiled per argument types. Call it like the function.

    The object is an instance of a native-callable heap type (trampoline.py): its
    vectorcall pointer is the newest signature's native entry, so a call from Python
    goes from the interpreter straight into the guard; a guard miss tries the older
    signatures, then `_dispatch`, which compiles the new signature."""

    name: str
    _pyfunc: Callable[..., Any]
    _state: Any
    _cache: bool
    _dispatch_fn: Callable[..., Any]

    _spec: EntrySpec
    _fallback: bool | None
    _warned: bool
    _typeable: bool  # tier 1 could take the function's shape (no rest or default params)

    def _dispatch(self, *args: Any, **kw: Any) -> Any:
        spec = self._spec
        args = spec.check(args, kw)
        state = self._state
        sig = T.signature_of(args)
        if (kw or state is None or not self._typeable or sig is None or len(sig) != state.nparams
                or sig in state.failed):
            if self._fallback is not True and self._typeable:
                self._check_arrays(args, state.stats.reason if state is not None else "")
            if self._fallback is False and state is not None:
                self._refuse(args, kw, sig)
            return spec.run_tier0(self._pyfunc, args, kw)
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
                if self._fallback is not True:
                    self._check_arrays(args, state.stats.reason)
                if self._fallback is False:
                    self._refuse(args, kw, sig)
                return spec.run_tier0(self._pyfunc, args, {})
            self._relink()
        return entry(*args)

    def _check_arrays(self, args: tuple[Any, ...], reason: str) -> None:
        """An array compiled code cannot read: an error with `fallback=False`; by default
        the call runs in tier 0 (as under GENE_JIT=0) and says so once per function, as
        Numba warns where it leaves nopython mode."""
        if self._fallback is False:
            self._spec.check_arrays(args, reason)
            return
        try:
            self._spec.check_arrays(args, reason)
        except GeneTypeError as exc:
            if not self._warned:
                self._warned = True
                text = exc.message.split(". Convert it")[0]
                warnings.warn(f"{text}: this call runs in tier 0 (gene_jit.jit(..., fallback=True) "
                              f"says nothing, fallback=False makes it an error)", GenePerformanceWarning,
                              stacklevel=3)

    def _refuse(self, args: tuple[Any, ...], kw: dict[str, Any], sig: Any) -> None:
        """With fallback=False, a call compiled code cannot take is a Gene type error
        saying why (as Numba's nopython mode refuses what it cannot type)."""
        from gene_jit.runtime.ops import kind_name

        spec = self._spec
        if kw:
            why = "it was called with named arguments"
        elif not self._typeable:
            why = "compiled code takes no rest or optional parameters"
        elif sig is None:
            i = next(i for i, a in enumerate(args) if T.type_of_value(a) is None)
            why = (f"argument {spec._param(i)} is {_a(kind_name(args[i]))}; compiled code takes ints, "
                   "floats, bools and 1-D/2-D float64 or int64 NumPy arrays")
        else:
            why = f"tier 1 cannot compile it for ({', '.join(map(str, sig))}): {self._state.stats.reason}"
        raise GeneTypeError(f"{self.name}: this call cannot run in compiled code: {why}. Leave out "
                            f"gene_jit.jit(..., fallback=False) to run such calls in tier 0: {spec.text}")

    def _relink(self) -> None:
        """Point calls at the natives: newest signature first, each miss falling to the
        next older one, the last to `_dispatch`. Also run after an invalidation."""
        from gene_jit.codegen.engine import engine
        from gene_jit.codegen.trampoline import set_vcall

        natives = list(self._state.natives) if self._state is not None else []
        fallback: Any = self._dispatch_fn
        if not natives:
            set_vcall(self, engine().forward_address, fallback)
            return
        for native in natives[:-1]:
            fallback = native.builtin(fallback)
        natives[-1].bind(self, fallback, self._dispatch_fn)

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
        if self._state is not None:
            return self._state.stats
        from gene_jit.codegen.stats import FnStats  # plain data: LLVM stays unloaded

        return FnStats(self.name, reason="tier 1 is off (GENE_JIT=0): every call runs in tier 0")

    def __repr__(self) -> str:
        return f"<gene_jit.jit {self.name} {self.signatures}>"


_jit_type: type | None = None


def _native_type() -> type:
    global _jit_type
    if _jit_type is None:
        from gene_jit.codegen.trampoline import native_callable_type

        methods = {k: v for k, v in JitFunction.__dict__.items()
                   if not k.startswith("__") or k in ("__repr__", "__doc__")}
        _jit_type = native_callable_type("gene_jit.JitFunction", methods)
    return _jit_type


def _restore(var: str, old: str | None) -> None:
    if old is None:
        os.environ.pop(var, None)
    else:
        os.environ[var] = old


def _compile_source(
    source: str, filename: str
) -> tuple[str, Callable[..., Any], Any, bool, EntrySpec]:
    from gene_jit.api import gene_boundary
    from gene_jit.codegen.hooks import install
    from gene_jit.frontend.compiler import new_env, run_source
    from gene_jit.frontend.compiler_core import pyid
    from gene_jit.frontend.reader import read

    if not isinstance(source, str):
        raise GeneError(f"gene_jit.jit: expected Gene source text, got {type(source).__name__}")
    with gene_boundary():
        forms = read(source, filename)
        defs = [f for f in forms if _named_fn(f)]
        if not defs:
            raise GeneError("gene_jit.jit: the source defines no named fn")
        if os.environ.get("GENE_PROFILE"):  # profile the process (gene_jit.profiler.auto)
            from gene_jit.profiler.auto import autostart

            autostart()
        hooks = install()
        env = new_env(filename)
        run_source(source, filename, env)
    last = defs[-1]
    assert isinstance(last, GeneF) and isinstance(last.children[0], Sym)
    name = last.children[0].name
    pyfunc = env[pyid(name)]
    state = hooks.by_object.get(id(pyfunc)) if hooks is not None else None
    typeable = False
    if state is not None:
        pyfunc = state.pyfunc
        typeable = state.on and state.source is not None  # before it is switched off here
        state.on = state.via_prologue = False  # calls go through _dispatch, not the prologue
    return name, pyfunc, state, typeable, EntrySpec.of(last)


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


class GenePerformanceWarning(UserWarning):
    """A call of a `gene_jit.jit` function that compiled code cannot take ran in tier 0."""


# Source text by name: an error shows the line of the source it happened in, so that
# each source needs a name of its own.
_NAMED: dict[str, str] = {}


def _source_name(label: str, text: str) -> str:
    """`<jit add>`, the name of the function the source defines; `<jit add #2>` for a
    second source defining a function of the same name."""
    filename, n = f"<jit {label}>" if label else "<jit>", 1
    while _NAMED.setdefault(filename, text) != text:
        n += 1
        filename = f"<jit {label} #{n}>"
    return filename


def _last_fn_name(source: Any) -> str:
    """The name of the last named fn of `source` ("" when it defines none or does not
    read: the compile then says so)."""
    from gene_jit.frontend.reader import read

    if not isinstance(source, str):
        return ""
    try:
        forms = read(source, "<jit>")
    except Exception:  # the compile reports the syntax error itself
        return ""
    names = [f.children[0].name for f in forms if _named_fn(f)]  # type: ignore[attr-defined]
    return names[-1] if names else ""


def _named_fn(f: Form) -> bool:
    return (isinstance(f, GeneF) and isinstance(f.head, Sym) and f.head.name == "fn"
            and len(f.children) >= 2 and isinstance(f.children[0], Sym))


def jit(
    source: str | Callable[..., Any] | None = None, *, cache: bool = False, fallback: bool | None = None
) -> Any:
    """Compile Gene source (a string, or a function whose docstring holds it).

    Calls whose arrays compiled code cannot read (float32, int32, 3-D, ...) run in tier
    0, as every call does under GENE_JIT=0, with a `GenePerformanceWarning` the first
    time; `fallback=True` runs them so without a word, `fallback=False` raises a type
    error for them instead (where tier 1 is on)."""
    if source is None:
        return lambda f: jit(f, cache=cache, fallback=fallback)
    if callable(source):
        text = source.__doc__ or ""
        label = str(getattr(source, "__name__", "fn"))
        if not text.strip():
            raise GeneError(f"gene_jit.jit: {label} has no docstring holding Gene source")
    else:
        text, label = source, _last_fn_name(source)
    filename = _source_name(label, text)
    name, pyfunc, state, typeable, spec = _compile_source(text, filename)
    obj = _native_type()()
    obj.name, obj._pyfunc, obj._state, obj._cache = name, pyfunc, state, cache
    obj._spec, obj._fallback, obj._typeable, obj._warned = spec, fallback, typeable, False
    obj._dispatch_fn = obj._dispatch
    if state is not None:
        state.listeners.append(obj._relink)  # redefinitions of its callees invalidate it
    obj._relink()
    return obj


class _CallableModule(types.ModuleType):
    """Importing `gene_jit.jit` (the module) makes the package attribute `gene_jit.jit`
    this module, in place of the function: a call of it is then the function's."""

    def __call__(self, *args: Any, **kw: Any) -> Any:
        return jit(*args, **kw)


sys.modules[__name__].__class__ = _CallableModule
