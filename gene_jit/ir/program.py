"""Program: builds the IR functions of one compilation unit.

A unit is a root Gene function at one signature plus every Gene function it calls, each
at the signatures it is called with (callees are emitted into the same LLVM module so
LLVM can inline them). Names are resolved through a `Resolver` that the JIT provides:
a name is a Gene function (`FnSource`), a builtin tier 1 knows (its Gene name), or
unknown. Recursive calls get an assumed return type; a function whose real return type
differs is rebuilt with the corrected assumption.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gene_jit.frontend.forms import GeneF, Span
from gene_jit.ir import types as T
from gene_jit.ir.builder import FnBuilder, NotTypeable, fn_parts, sig_code
from gene_jit.ir.nodes import Function, Unit


@dataclass(frozen=True)
class FnSource:
    """A Gene function as the builder sees it: its key, name, form and parameters, and
    how tier 0 bound the names its body uses outside itself (`free`: Gene name ->
    (kind, Python name) with kind "global", "outer" for a captured variable of an
    enclosing function, "ns" for a namespace member, "mixed"; None where unknown, as
    for a file read on its own)."""

    key: Any
    name: str
    form: GeneF
    params: tuple[str, ...]
    body: tuple[Any, ...]
    free: Mapping[str, tuple[str, str]] | None = field(default=None, compare=False)

    @staticmethod
    def from_form(key: Any, form: GeneF, free: Mapping[str, tuple[str, str]] | None = None) -> FnSource:
        name, params, body = fn_parts(form)
        return FnSource(key, name, form, tuple(params), body, free)


class Resolver(Protocol):
    def resolve(self, name: str, key: Any) -> FnSource | str | None: ...


MAX_DEPTH = 32  # callee nesting; deeper programs stay in tier 0


class Program:
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.functions: dict[str, Function] = {}
        self._building: dict[tuple[Any, tuple[T.Type, ...]], T.Type | None] = {}
        self._guessed: dict[tuple[Any, tuple[T.Type, ...]], T.Type] = {}
        self._keys_by_name: dict[str, list[Any]] = {}

    def resolve(self, name: str, key: Any) -> FnSource | str | None:
        return self.resolver.resolve(name, key)

    def is_builtin(self, name: str, key: Any) -> bool:
        return self.resolver.resolve(name, key) == name

    def ir_name(self, src: FnSource, sig: tuple[T.Type, ...]) -> str:
        return self.ir_name_for(src.key, src.name, sig)

    def ir_name_for(self, key: Any, name: str, sig: tuple[T.Type, ...]) -> str:
        """Unique per (function, signature): two functions of one name (a redefinition
        calling the old one, or two namespaces) get `name`, `name.1`, ..."""
        keys = self._keys_by_name.setdefault(name, [])
        if key not in keys:
            keys.append(key)
        n = keys.index(key)
        return f"{name}{f'.{n}' if n else ''}__{sig_code(sig)}"

    def callee(self, src: FnSource, sig: tuple[T.Type, ...], span: Span) -> tuple[str, T.Type]:
        """The IR name and return type of `src` called with `sig`, building it if new."""
        if len(sig) != len(src.params):
            raise NotTypeable(f"{src.name} called with {len(sig)} arguments, takes {len(src.params)}", span)
        k = (src.key, sig)
        name = self.ir_name(src, sig)
        if k in self._building:
            guess = self._building[k] or T.I64
            self._guessed[k] = guess
            return name, guess
        fn = self.functions.get(name)
        if fn is None:
            if len(self._building) >= MAX_DEPTH:
                raise NotTypeable("calls nest too deeply", span)
            fn = self.build(src, sig)
        return fn.name, fn.ret

    def build(self, src: FnSource, sig: tuple[T.Type, ...]) -> Function:
        k = (src.key, sig)
        # a recursive call needs the return type before it is known: try the likely ones
        guesses: list[T.Type | None] = [None, T.F64, T.BOOL, T.NIL]
        error: NotTypeable | None = None
        for _ in range(6):
            if not guesses:
                break
            guess = guesses.pop(0)
            before = set(self.functions)
            self._building[k] = guess
            self._guessed.pop(k, None)
            try:
                fn = FnBuilder(self, src.key, src.name, src.form, list(src.params), sig, guess,
                               src.free).build(src.body)
            except NotTypeable as exc:
                if k not in self._guessed:
                    raise
                error = exc
                self._drop(before)
                continue
            finally:
                del self._building[k]
            used = self._guessed.pop(k, None)
            if used is None or used == fn.ret:
                self.functions[fn.name] = fn
                return fn
            self._drop(before)  # callees built on a wrong assumption
            guesses.insert(0, fn.ret)
        raise error or NotTypeable(f"the return type of {src.name} does not settle")

    def _drop(self, keep: set[str]) -> None:
        for stale in set(self.functions) - keep:
            del self.functions[stale]

    def unit(self, root: Function) -> Unit:
        """The unit of `root`: it and every function it reaches."""
        unit = Unit(root)
        todo = [root]
        while todo:
            fn = todo.pop()
            if fn.name in unit.functions:
                continue
            unit.functions[fn.name] = fn
            todo.extend(self.functions[c] for c in fn.callees if c in self.functions)
        return unit


def build_unit(src: FnSource, sig: tuple[T.Type, ...], resolver: Resolver) -> Unit:
    """Build, verify and return the unit for `src` at `sig` (raises NotTypeable)."""
    from gene_jit.ir.verifier import verify_unit

    if len(sig) != len(src.params):
        raise NotTypeable(f"{src.name} takes {len(src.params)} arguments, got {len(sig)}")
    program = Program(resolver)
    root = program.build(src, sig)
    return verify_unit(program.unit(root))
