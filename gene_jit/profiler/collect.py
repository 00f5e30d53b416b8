"""Collecting a profile: exact counts and times from CPython's C-level profiler
(`_lsprof`, the engine of cProfile: one C callback per call, no Python code per event),
loop trip counters in tier-0 code, a stack sampler for flame graphs, and the tier-1
statistics registry. `Profiler.stop()` turns all of it into a `ProfileData`.
"""

from __future__ import annotations

import _lsprof
import time
from types import CodeType
from typing import Any

from gene_jit.profiler import areas, tier1
from gene_jit.profiler.functions import TOP_LEVEL, FunctionNames, GeneFn
from gene_jit.profiler.loops import LoopCounters
from gene_jit.profiler.model import Frame, FunctionStats, LibraryStats, LoopStats, ProfileData
from gene_jit.profiler.sampler import Sampler
from gene_jit.runtime import tiering

Key = Any  # a code object, or a string naming a builtin (lsprof's keys)


def _gene_files() -> set[str]:
    from gene_jit.frontend.compiler_errors import GENE_FILES

    return GENE_FILES


class Profiler:
    """Profile whatever runs on this thread between `start()` and `stop()`."""

    def __init__(self, program: str = "<gene>", sample_interval: float = 0.001, sampling: bool = True) -> None:
        self.program = program
        self.sample_interval = sample_interval
        self.names = FunctionNames()
        self.loops = LoopCounters()
        self.sampler = Sampler(sample_interval, _gene_files()) if sampling else None
        self._lsprof: Any = None
        self._t0 = 0.0
        self._wall = 0.0
        self.data: ProfileData | None = None  # set by leaving a `with Profiler()` block

    def start(self) -> None:
        self.names.install()
        self.loops.install()
        self._lsprof = _lsprof.Profiler(subcalls=True, builtins=True)
        if self.sampler is not None:
            self.sampler.start()
        self._t0 = time.perf_counter()
        self._lsprof.enable()

    def stop(self) -> ProfileData:
        self._lsprof.disable()
        self._wall = time.perf_counter() - self._t0
        if self.sampler is not None:
            self.sampler.stop()
        self.loops.uninstall()
        self.names.uninstall()
        return self.build()

    def __enter__(self) -> Profiler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lsprof is not None:
            self.data = self.stop()

    # -- building the report ---------------------------------------------------------------

    def build(self) -> ProfileData:
        self.names.scan_live()
        data = ProfileData(self.program, self._wall * 1e3, jit_mode=tiering.mode(),
                           sample_interval_ms=self.sample_interval * 1e3)
        graph = _Graph(self._lsprof.getstats(), self._classify)
        data.functions = self._functions(graph)
        data.libraries = _libraries(graph)
        data.loops = self._loop_stats()
        if self.sampler is not None:
            self._stacks(data)
        return data

    def _classify(self, key: Key) -> GeneFn | str | None:
        """A Gene function, a library area name, or None (other code)."""
        if isinstance(key, CodeType):
            fn = self.names.lookup(key, _gene_files())
            if fn is not None:
                return fn
            return areas.area_of(key.co_filename)
        return tier1.native_entry(key)

    def _functions(self, graph: _Graph) -> list[FunctionStats]:
        by_fn: dict[GeneFn, FunctionStats] = {}
        for key, fn in graph.kinds.items():
            if not isinstance(fn, GeneFn):
                continue
            st = by_fn.get(fn)
            if st is None:
                st = by_fn[fn] = FunctionStats(fn.name, fn.file, fn.line)
            e = graph.entries[key]
            st.calls += e.callcount
            st.total_ms += graph.outer_time(key, fn) * 1e3
            st.self_ms += graph.self_time(key, fn) * 1e3
        for st in by_fn.values():
            if st.name != TOP_LEVEL:
                tier1.annotate(st)
        return sorted(by_fn.values(), key=lambda s: -s.total_ms)

    def _loop_stats(self) -> list[LoopStats]:
        owners = {(code.co_filename, code.co_name, code.co_firstlineno): fn
                  for code, fn in self.names.by_code.items()}
        out = []
        for site, trips in self.loops.counts():
            fn = owners.get((site.file, *site.owner)) if site.owner else None
            owner = fn.name if fn is not None else TOP_LEVEL
            out.append(LoopStats(site.kind, site.file, site.line, site.column, owner, trips))
        out.sort(key=lambda lp: -lp.trips)
        return out

    def _stacks(self, data: ProfileData) -> None:
        assert self.sampler is not None
        index: dict[Frame, int] = {}

        def frame_of(item: CodeType | str) -> int:
            if isinstance(item, str):
                frame = Frame(f"[{item}]", "", 0)
            else:
                fn = self.names.lookup(item, _gene_files())
                frame = Frame(fn.name, fn.file, fn.line) if fn else Frame(item.co_name, item.co_filename, item.co_firstlineno)
            if frame not in index:
                index[frame] = len(index)
                data.frames.append(frame)
            return index[frame]

        data.samples = self.sampler.samples
        for stack, seconds in self.sampler.stacks.items():
            data.stacks.append((tuple(frame_of(item) for item in stack), seconds * 1e3))


class _Graph:
    """lsprof's entries and caller->callee edges, with each key classified."""

    def __init__(self, stats: list[Any], classify: Any) -> None:
        self.entries: dict[Key, Any] = {}
        self.kinds: dict[Key, GeneFn | str | None] = {}
        self.edges: dict[Key, list[Any]] = {}
        for e in stats:
            self.entries[e.code] = e
            self.edges[e.code] = list(e.calls or [])
        for key in list(self.entries):
            self.kinds[key] = classify(key)
        self._free: dict[tuple[Key, bool], float] = {}

    def kind(self, key: Key) -> GeneFn | str | None:
        if key not in self.kinds:
            self.kinds[key] = None
        return self.kinds[key]

    def outer_time(self, key: Key, fn: GeneFn) -> float:
        """Time in `key` not already inside another code object of the same function
        (a Gene function may own several: a native entry and its tier-0 code)."""
        t = self.entries[key].totaltime
        for other, kind in self.kinds.items():
            if kind == fn and other != key:
                for sub in self.edges.get(other, ()):
                    if sub.code == key:
                        t -= sub.totaltime
        return max(t, 0.0)

    def self_time(self, key: Key, fn: GeneFn) -> float:
        """Time in the function's own code and in plain helpers it calls, not in other
        Gene functions nor in library areas."""
        t = self.entries[key].inlinetime
        for sub in self.edges.get(key, ()):
            if self.kind(sub.code) is None:
                t += sub.totaltime * self.free_share(sub.code, areas_too=True)
        return t

    def free_share(self, key: Key, areas_too: bool) -> float:
        """The share of `key`'s time not spent in Gene code (nor, with `areas_too`, in
        library areas), following helper-to-helper calls."""
        memo = (key, areas_too)
        if memo in self._free:
            return self._free[memo]
        self._free[memo] = 1.0  # a cycle through helpers counts as helper time
        e = self.entries.get(key)
        if e is None or e.totaltime <= 0:
            return 1.0
        own = e.inlinetime
        for sub in self.edges.get(key, ()):
            kind = self.kind(sub.code)
            if kind is None or (isinstance(kind, str) and not areas_too):
                own += sub.totaltime * self.free_share(sub.code, areas_too)
        share = min(max(own / e.totaltime, 0.0), 1.0)
        self._free[memo] = share
        return share


def _libraries(graph: _Graph) -> list[LibraryStats]:
    """Time in each library area, entered from Gene code (directly or through a helper
    that Gene code calls). Entries from elsewhere (the lazy import of a library, one
    library function calling another) are not counted, so nothing is counted twice."""
    gene_callers = {k for k, kind in graph.kinds.items() if isinstance(kind, GeneFn)}
    for caller in list(gene_callers):
        gene_callers.update(sub.code for sub in graph.edges.get(caller, ()) if graph.kind(sub.code) is None)
    libs: dict[str, LibraryStats] = {}
    for caller in gene_callers:
        for sub in graph.edges.get(caller, ()):
            area = graph.kind(sub.code)
            if isinstance(area, str):
                lib = libs.setdefault(area, LibraryStats(area))
                lib.calls += sub.callcount
                lib.ms += sub.totaltime * graph.free_share(sub.code, areas_too=False) * 1e3
    llama = libs.get(areas.LLAMA)
    if llama is not None:
        tokens, gen_s = 0, 0.0
        for key, e in graph.entries.items():
            if isinstance(key, CodeType):
                where = (key.co_filename, key.co_name)
                if where == (areas.TOKEN_FILE, areas.TOKEN_FUNCTION):
                    tokens += e.callcount
                elif where in areas.GENERATE_FUNCTIONS:
                    gen_s += e.totaltime
        llama.tokens, llama.generate_ms = tokens, gen_s * 1e3
    return sorted(libs.values(), key=lambda lib: lib.name)

