"""Exact call counts and times of the library functions a Gene program calls: the
`tensor/*` namespace (Numba kernels) and the LLM library (`model/*`, `tokenizer/*` and
the top-level builtins such as `generate-text`, all over libllama).

While profiling, each such function is replaced by a counting wrapper where Gene finds
it: a namespace's members dict becomes a dict that hands out wrappers (so members that a
lazy namespace registers during the run are counted too), and the top-level builtins are
wrapped in the builtin table. Both are put back afterwards. Only the outermost library
call is timed, so a Gene callback that calls a library function from inside another one
does not count that time twice. Native code (tier 1) reaches the same Python functions
only through these names, so its calls are counted as well.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from gene_jit.profiler.areas import LLAMA, TENSOR
from gene_jit.profiler.model import CallStats, LibraryStats
from gene_jit.runtime.registry import BUILTINS, Namespace, namespace

NAMESPACES = {"tensor": TENSOR, "model": LLAMA, "tokenizer": LLAMA}


def _top_level_llama() -> list[str]:
    from gene_jit.runtime.libraries import LLAMA_BUILTINS

    return list(LLAMA_BUILTINS)


class _Clock:
    """Nesting depth of library calls (only the outermost is timed)."""

    depth = 0


def _counted(fn: Callable[..., Any], meter: CallStats, clock: _Clock) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        meter.calls += 1
        if clock.depth:
            return fn(*args, **kwargs)
        clock.depth += 1
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            meter.ms += (time.perf_counter() - t0) * 1e3
            clock.depth -= 1

    # keep what the runtime reads off a builtin (`__gene_builtin__`, the name it prints)
    with_attrs: Callable[..., Any] = functools.update_wrapper(counted, fn)
    return with_attrs


class _CountingMembers(dict[str, Any]):
    """A namespace's members that hand out counting wrappers of callables."""

    def __init__(self, members: dict[str, Any], calls: LibraryCalls, area: str, prefix: str):
        super().__init__(members)
        self.calls = calls
        self.area = area
        self.prefix = prefix
        self.wrapped: dict[str, tuple[Any, Callable[..., Any]]] = {}

    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        if not callable(value) or isinstance(value, (type, Namespace)):
            return value
        hit = self.wrapped.get(key)
        if hit is None or hit[0] is not value:
            meter = self.calls.meter(self.area, f"{self.prefix}/{key}")
            hit = self.wrapped[key] = (value, _counted(value, meter, self.calls.clock))
        return hit[1]


class LibraryCalls:
    def __init__(self) -> None:
        self.clock = _Clock()
        self.meters: dict[str, dict[str, CallStats]] = {}  # area -> name -> stats
        self._namespaces: list[tuple[Namespace, dict[str, Any]]] = []
        self._builtins: dict[str, tuple[Any, Any]] = {}  # name -> (original, wrapper)

    def meter(self, area: str, name: str) -> CallStats:
        per_area = self.meters.setdefault(area, {})
        stats = per_area.get(name)
        if stats is None:
            stats = per_area[name] = CallStats(name)
        return stats

    def install(self) -> None:
        from gene_jit.runtime.libraries import register_all

        register_all()  # the lazy namespaces exist (their modules are not imported)
        for path, area in NAMESPACES.items():
            ns = namespace(path)
            if isinstance(ns.members, _CountingMembers):
                continue
            original = ns.members
            ns.members = _CountingMembers(original, self, area, path)
            self._namespaces.append((ns, original))
        for name in _top_level_llama():
            value = BUILTINS.get(name)
            if callable(value) and name not in self._builtins:
                wrapper = _counted(value, self.meter(LLAMA, name), self.clock)
                self._builtins[name] = (value, wrapper)
                BUILTINS[name] = wrapper

    def uninstall(self) -> None:
        for ns, original in self._namespaces:
            members = ns.members
            # members registered during the run are kept, unwrapped
            original.update({k: dict.__getitem__(members, k) for k in dict.keys(members)})
            ns.members = original
        self._namespaces.clear()
        for name, (original, wrapper) in self._builtins.items():
            if BUILTINS.get(name) is wrapper:
                BUILTINS[name] = original
        self._builtins.clear()

    def libraries(self, sampled_ms: dict[str, float]) -> list[LibraryStats]:
        """Per area: the counted functions (exact time), or the sampled time of an area
        whose code ran without going through a counted name."""
        out = []
        for area in sorted(set(sampled_ms) | set(self.meters)):
            functions = sorted(
                (c for c in self.meters.get(area, {}).values() if c.calls),
                key=lambda c: (-c.ms, -c.calls),
            )
            lib = LibraryStats(area, functions=functions)
            if functions:
                lib.ms = sum(c.ms for c in functions)
                lib.calls = sum(c.calls for c in functions)
            else:
                lib.ms = sampled_ms.get(area, 0.0)
            if lib.ms or lib.calls:
                out.append(lib)
        return out
