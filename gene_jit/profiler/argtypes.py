"""The argument types tier 0 ran each Gene function with, while profiling with the JIT on.

Tier 1's prologue (`gene_jit.codegen.hooks.FnState.enter`) sees every call of a function
it has not given up on, and returns the function's state itself when the call is to run
in tier 0. While profiling, `enter` is wrapped (on the class, restored afterwards) to
note the arguments of the first such call per function, and of the first that was
hot (at or past the threshold) yet ran in tier 0, as descriptions (no values are kept
alive). At report time `tier1.explain` asks the tier-1 type checker why the function
would not compile for those types. With `GENE_JIT=0` nothing is wrapped and LLVM is not
loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gene_jit.runtime import tiering

# Python classes of Gene values, by the name a Gene user knows them (GENE.md's values)
_GENE_KINDS = {
    "str": "a string",
    "list": "an array",
    "dict": "a map",
    "NoneType": "nil",
    "Symbol": "a symbol",
    "Gene": "a gene",
    "GeneSet": "a set",
    "Range": "a range",
    "Tensor": "a tensor",
    "function": "a function",
    "int": "an integer beyond 64 bits",
}


@dataclass(frozen=True)
class Observed:
    """One call's arguments: per positional parameter, its IR type (None when tier 1
    cannot take the value) and what the value was; `extra` when the call passed more
    arguments or props than tier 1's calling convention takes."""

    params: tuple[str, ...]
    types: tuple[Any, ...]  # gene_jit.ir.types.Type | None per parameter
    kinds: tuple[str, ...]
    extra: bool


def describe(value: Any) -> str:
    """How a value reads in a reason: `a string`, `array<f32,3>`, ..."""
    cls = type(value)
    if cls.__name__ == "ndarray":
        return f"a {value.ndim}-D {value.dtype.name} NumPy array"
    return _GENE_KINDS.get(cls.__name__, f"a {cls.__name__}")


class ArgTypes:
    """Per tier-1 function state: the first tier-0 call's argument types."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[Any, Observed]] = {}  # id(state) -> (state, observed)
        # the first call that was hot (tier 1 would compile at it) yet ran in tier 0:
        # its arguments, not the first call's, say why the function stayed in tier 0
        self.hot: dict[int, tuple[Any, Observed]] = {}
        self._cls: Any = None
        self._original: Any = None

    def install(self) -> None:
        if tiering.mode() == "off" or self._cls is not None:
            return
        from gene_jit.codegen.hooks import FnState

        original = FnState.enter
        seen, hot = self.seen, self.hot

        def enter(state: Any, loc: dict[str, Any]) -> Any:
            result = original(state, loc)
            if result is state:
                if id(state) not in seen:
                    seen[id(state)] = (state, _observe(state, loc))
                if id(state) not in hot and state.stats.calls >= state.hot_at:
                    hot[id(state)] = (state, _observe(state, loc))
            return result

        enter.__wrapped__ = original  # type: ignore[attr-defined]
        self._cls, self._original = FnState, original
        FnState.enter = enter  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        if self._cls is not None:
            self._cls.enter = self._original
            self._cls = self._original = None

    def of(self, state: Any) -> Observed | None:
        entry = self.seen.get(id(state))
        return entry[1] if entry is not None and entry[0] is state else None

    def hot_of(self, state: Any) -> Observed | None:
        """The arguments of the first call at which `state` was hot but ran in tier 0."""
        entry = self.hot.get(id(state))
        return entry[1] if entry is not None and entry[0] is state else None


def _observe(state: Any, loc: dict[str, Any]) -> Observed:
    from gene_jit.ir.types import type_of_value

    values = list(loc.values())
    n = state.nparams
    names = list(state.info.params) if len(state.info.params) == n else list(loc)[:n]
    extra = len(values) < state.nargs_total or any(values[n : state.nargs_total])
    args = values[:n]
    return Observed(
        tuple(names[:n]),
        tuple(type_of_value(a) for a in args),
        tuple(describe(a) for a in args),
        bool(extra),
    )
