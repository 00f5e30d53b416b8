"""The tier-1 hooks that tier 0 calls (installed in gene_jit.runtime.tiering).

Profiling: the prologue of every Gene function is one statement,
`if _gj_N.on and (r := _gj_N.enter(_gj_locals())) is not _gj_N: return r`, so a function
that tier 1 gave up on pays a global load and an attribute test. While `on`, `enter`
counts the call, records the argument types, and once the function is hot (at
`GENE_JIT_THRESHOLD` calls, default 2; at the first call with `GENE_JIT=eager`, or
when the body has a loop, since the prologue cannot count loop trips and the loop is
where the time goes) compiles it for those types and runs the native code.

Entry: after a compile, the function's global name is rebound to the signature's
builtin entry (see trampoline.py), whose guard falls back to the previous binding, so
calls from tier 0 reach native code without running Python. A function tier 1 cannot
type stays in tier 0 with the reason recorded in its stats.

A compile records every Gene function its unit was built from (callees are inlined or
called directly, by address). Defining a function under a name that one of those had
invalidates the compiled callers: their names go back to tier 0 and they compile again,
against the new definition, on their next call. While profiling, compiles produce
counting variants (see stats.py).
"""

from __future__ import annotations

import ast
import ctypes
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gene_jit.codegen import stats as stats_mod
from gene_jit.codegen.bindings import Binding, BindingTable, attach
from gene_jit.frontend.forms import Form, GeneF, Sym
from gene_jit.ir import types as T
from gene_jit.ir.builder import NotTypeable
from gene_jit.ir.program import FnSource, build_unit
from gene_jit.runtime import tiering
from gene_jit.runtime.registry import BUILTINS

if TYPE_CHECKING:
    from gene_jit.codegen.compile import NativeFunction

MAX_SIGNATURES = 8
COMPILE_HEADROOM = 5000
MAX_FAILED = 4
LOOP_HEADS = {"while", "for", "loop", "repeat"}


def threshold() -> int:
    try:
        return max(1, int(os.environ.get("GENE_JIT_THRESHOLD", "2")))
    except ValueError:
        return 2


def _has_loop(form: Form) -> bool:
    if isinstance(form, GeneF):
        if isinstance(form.head, Sym) and form.head.name in LOOP_HEADS:
            return True
        return any(_has_loop(k) for k in form.children)
    return False


COMPILE_LOCK = threading.RLock()


class FnState:
    """Tier-1 state of one Gene function."""

    def __init__(self, hooks: JitHooks, fn_id: int, pyfunc: Any, info: tiering.FnInfo) -> None:
        self.hooks = hooks
        self.fn_id = fn_id
        self.pyfunc = pyfunc
        self.info = info
        self.nparams = len(info.params)
        code = pyfunc.__code__
        # locals() in the prologue lists the positional parameters, the keyword-only
        # ones, then the rest tuple: every one after the positional ones must be empty
        self.nargs_total = code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 0x04) \
            + bool(code.co_flags & 0x08)
        self.stats = stats_mod.new(info.name or "fn", info.form.span.file)
        self.native: dict[tuple[T.Type, ...], Any] = {}  # sig -> builtin (fallback: pyfunc)
        self.natives: list[NativeFunction] = []
        self.failed: set[tuple[T.Type, ...]] = set()
        self.head: Any = pyfunc  # what the global name is bound to
        self.on = True
        self.via_prologue = True  # False when gene_jit.jit dispatches its calls
        # compiled functions whose units contain this one (built from its current
        # definition): a redefinition invalidates them
        self.dependents: set[FnState] = set()
        self.listeners: list[Callable[[], None]] = []  # told after an invalidation
        # the name tables of compiled code that calls this function by a global name
        self.callers: list[BindingTable] = []
        self.source: FnSource | None = None
        try:
            self.source = FnSource.from_form(fn_id, info.form, free_names(info, code))  # type: ignore[arg-type]
        except NotTypeable as exc:
            self.give_up(exc.reason)
        if info.has_varargs:
            self.give_up("rest parameters")
        elif code.co_argcount != self.nparams:
            self.give_up("a method (self parameter)")
        eager = tiering.mode() == "eager" or (self.source is not None and any(_has_loop(f) for f in self.source.body))
        self.hot_at = 1 if eager else threshold()

    def give_up(self, reason: str) -> None:
        self.on = False
        self.stats.reason = reason

    def enter(self, loc: dict[str, Any]) -> Any:
        """Called by the prologue: returns the result, or `self` to run tier 0."""
        st = self.stats
        st.calls += 1
        vals = list(loc.values())
        n = self.nparams
        if len(vals) < self.nargs_total or any(vals[n:self.nargs_total]):
            return self  # extra arguments or props: tier 0's calling convention
        args = vals[:n]
        if any(a is None for a in args):
            return self
        sig = T.signature_of(tuple(args))
        if sig is None:
            return self
        entry = self.native.get(sig)
        if entry is None:
            if self.native:
                st.guard_misses += 1
            if st.calls < self.hot_at or sig in self.failed:
                return self
            entry = self.compile(sig)
            if entry is None:
                return self
        st.forwarded += 1
        return tiering.call_forwarded(entry, args)

    def compile(self, sig: tuple[T.Type, ...]) -> Any:
        # threads whose first calls come at once compile a signature once (LLVM's work
        # is serial anyway): the others find it installed
        with COMPILE_LOCK:
            done = self.native.get(sig)
            if done is not None or sig in self.failed:
                return done
            return self._compile(sig)

    def _compile(self, sig: tuple[T.Type, ...]) -> Any:
        assert self.source is not None
        deps: set[FnState] = set()
        names: dict[tuple[int, str], Binding] = {}
        self.hooks.collecting.append(deps)
        self.hooks.names.append(names)
        # the compiler's own recursion must not meet the Gene depth limit of the calls
        # that made this function hot
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + COMPILE_HEADROOM)
        try:
            # llvmlite loads on the first compile, inside the headroom: its imports are deep
            from gene_jit.codegen.compile import compile_unit

            unit = build_unit(self.source, sig, self.hooks)
            unit.bindings = BindingTable(list(names.values()), self.info.form.span.file, unit.root.name,
                                         self.hooks.same_function, self.invalidate)
            for b in names.values():
                callee = self.hooks.by_object.get(id(b.expected))
                if callee is not None:
                    callee.callers.append(unit.bindings)
            native = compile_unit(unit, counters=self.hooks.counters() if stats_mod.profiling() else None)
        except NotTypeable as exc:
            self.failed.add(sig)
            self.stats.reason = exc.reason
            if len(self.failed) >= MAX_FAILED or not self.native:
                self.on = bool(self.native)
            return None
        finally:
            sys.setrecursionlimit(limit)
            self.hooks.collecting.pop()
            self.hooks.names.pop()
        for dep in deps - {self}:
            dep.dependents.add(self)
        self.install(sig, native, unit.bindings)
        return self.native[sig]

    def install(self, sig: tuple[T.Type, ...], native: NativeFunction, names: BindingTable | None = None) -> None:
        self.natives.append(native)
        self.native[sig] = native.builtin(self.pyfunc)
        attach(self.native[sig], names)
        self.stats.tier = 1
        self.stats.reason = ""
        self.stats.signatures.append(stats_mod.SigStats(
            ", ".join(map(str, sig)), str(native.ret), native.compile_ms, native.cache_hit))
        if len(self.native) >= MAX_SIGNATURES:
            self.on = False
        # rebind the global name to a chain entry: new signature first, then the old head
        new_head = native.builtin(self.head)
        attach(new_head, names)
        ns = self.info.namespace
        for key, value in list(ns.items()):
            if value is self.head and not key.startswith("_gj_"):
                ns[key] = new_head
        self.hooks.by_object[id(new_head)] = self
        self.hooks.keep.append(new_head)
        self.rebound(new_head)


    def rebound(self, head: Any) -> None:
        """This function's names now hold `head`: compiled callers expect it there."""
        for table in self.callers:
            table.moved(self.info.namespace, self.head, head)
        self.head = head

    def invalidate(self, reason: str) -> None:
        """Drop every compiled signature (a callee was redefined): the name goes back to
        tier 0, and the next call compiles again against the current definitions."""
        ns = self.info.namespace
        for key, value in list(ns.items()):
            if value is self.head and not key.startswith("_gj_"):
                ns[key] = self.pyfunc
        self.rebound(self.pyfunc)
        self.native.clear()
        self.natives.clear()
        self.failed.clear()
        self.stats.tier = 0
        self.stats.signatures.clear()
        self.stats.reason = reason
        self.on = self.via_prologue and self.source is not None
        self.hot_at = self.stats.calls + 1
        for listener in self.listeners:
            listener()

    def redefined(self) -> None:
        """This function's name now means another definition: recompile its callers."""
        for dep in list(self.dependents):
            dep.invalidate(f"{self.info.name} was redefined; recompiles when hot")
        self.dependents.clear()


class JitHooks:
    """Implements gene_jit.runtime.tiering.JitHooks, and resolves names for the IR
    builder (a Gene function, a builtin tier 1 knows, or unknown)."""

    def __init__(self) -> None:
        self.states: dict[int, FnState] = {}
        self.by_object: dict[int, FnState] = {}
        self.keep: list[Any] = []
        self.collecting: list[set[FnState]] = []  # Gene functions resolved per compile
        self.names: list[dict[tuple[int, str], Binding]] = []  # global names, likewise

    def same_function(self, a: Any, b: Any) -> bool:
        """Whether `a` and `b` are one Gene function (its tier-0 function or entries)."""
        state = self.by_object.get(id(a))
        return state is not None and state is self.by_object.get(id(b))

    def counters(self) -> Any:
        """The profiling counter cells for a compile (see gene_jit.codegen.stats)."""
        from gene_jit.codegen.compile import Counters

        def calls(key: Any) -> int | None:
            state = self.states.get(key)
            return ctypes.addressof(state.stats.native_cell) if state is not None else None

        return Counters(calls, stats_mod.loop_cell)

    def prologue(self, fn_id: int) -> list[ast.stmt]:
        var = f"_gj_{fn_id}"
        code = f"if {var}.on and ({var}_r := {var}.enter(_gj_locals())) is not {var}:\n    return {var}_r"
        return ast.parse(code).body

    def register(self, fn_id: int, pyfunc: Any, info: tiering.FnInfo) -> Any:
        if info.name:
            from gene_jit.frontend.compiler_core import pyid

            previous = self.by_object.get(id(info.namespace.get(pyid(info.name), _MISSING)))
            if previous is not None:
                previous.redefined()
        state = FnState(self, fn_id, pyfunc, info)
        self.states[fn_id] = state
        self.by_object[id(pyfunc)] = state
        self.keep.append(pyfunc)
        info.namespace[f"_gj_{fn_id}"] = state
        # Gene globals fall back to Gene builtins, not Python's: bring `locals` along
        info.namespace["_gj_locals"] = locals
        return pyfunc

    def resolve(self, name: str, key: Any) -> FnSource | str | None:
        state = self.states.get(key)
        if state is None:
            return None
        from gene_jit.frontend.compiler_core import pyid

        ns = state.info.namespace
        free = state.source.free if state.source is not None else None
        kind, key = (free or {}).get(name, ("global", pyid(name)))
        if kind != "global":
            return None  # the builder refuses names bound outside the function first
        value = ns.get(key, _MISSING)
        for names in self.names:  # the entry checks the name is still bound so
            names.setdefault((id(ns), key), Binding(ns, key, None if value is _MISSING else value))
        if value is _MISSING:
            value = BUILTINS.get(name, _MISSING)
        target = self.by_object.get(id(value)) if value is not _MISSING else None
        if target is not None:
            for deps in self.collecting:
                deps.add(target)
            return target.source
        from gene_jit.runtime import ops

        if value is ops.mod or value is ops.rem or value is ops.int_div:
            return {ops.mod: "mod", ops.rem: "rem", ops.int_div: "div"}[value]
        builtin_name = getattr(value, "__gene_builtin__", None)
        return builtin_name if isinstance(builtin_name, str) else None


def free_names(info: tiering.FnInfo, code: Any) -> dict[str, tuple[str, str]]:
    """How tier 0 bound the names the function uses outside itself (see FnSource). A
    top-level variable that a closure made in a top-level loop reads is that
    iteration's value, a captured variable in the Python function: what Python calls a
    free variable is captured whatever tier 0's scopes called it."""
    free = dict(info.extra.get("free", {}))
    cells = set(code.co_freevars)
    for name, (_kind, py) in free.items():
        if py in cells:
            free[name] = ("outer", py)
    return free


_MISSING = object()
_hooks: JitHooks | None = None


def install() -> JitHooks | None:
    """Install the tier-1 hooks (once); with GENE_JIT=0 the seam ignores them."""
    global _hooks
    if _hooks is None:
        _hooks = JitHooks()
        tiering.install(_hooks)
    return _hooks
