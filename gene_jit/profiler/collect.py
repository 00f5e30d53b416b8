"""Collecting a profile: exact call and loop-trip counts from counters compiled into
tier-0 code (and, with the JIT on, into native code), times from a stack sampler (total,
self, library areas), exact library call counts and times (with the tokens of the LLM library),
and what tier 1 did from its statistics registry. `Profiler.stop()` turns all of it into
a `ProfileData`.

CPython's own profiling hooks (`sys.setprofile`, cProfile) are not used: in 3.11 any
profile function makes the interpreter run unspecialised bytecode, which alone makes a
call-heavy program several times slower.
"""

from __future__ import annotations

import time
from types import CodeType

from gene_jit.profiler import areas
from gene_jit.profiler.counters import Counters
from gene_jit.profiler.functions import TOP_LEVEL, FunctionNames, GeneFn
from gene_jit.profiler.libcalls import LibraryCalls
from gene_jit.profiler.model import Frame, FunctionStats, LoopStats, ProfileData
from gene_jit.profiler.sampler import Sampler
from gene_jit.profiler.tier1 import Tier1View
from gene_jit.runtime import tiering

AREA_NAMES = (areas.TENSOR, areas.ENGINE, areas.LLAMA, areas.JIT)


def _gene_files() -> set[str]:
    from gene_jit.frontend.compiler_errors import GENE_FILES

    return GENE_FILES


class Profiler:
    """Profile whatever runs on this thread between `start()` and `stop()`."""

    def __init__(self, program: str = "<gene>", sample_interval: float = 0.001) -> None:
        self.program = program
        self.sample_interval = sample_interval
        self.names = FunctionNames()
        self.counters = Counters()
        self.library = LibraryCalls()
        self.tier1 = Tier1View()
        self.sampler = Sampler(sample_interval, _gene_files())
        self.sampler.open_calls = self.library.clock.inner
        self.data: ProfileData | None = None  # set by leaving a `with Profiler()` block
        self._t0 = 0.0
        self._wall = 0.0
        self._running = False

    def start(self) -> None:
        self.names.install()
        self.counters.install()
        self.library.install()
        self.tier1.start()
        self.sampler.start()
        self._running = True
        self._t0 = time.perf_counter()

    def stop(self) -> ProfileData:
        self._wall = time.perf_counter() - self._t0
        self._running = False
        self.sampler.stop()
        self.tier1.stop()
        self.library.uninstall()
        self.counters.uninstall()
        self.names.uninstall()
        self.data = self.build()
        return self.data

    def __enter__(self) -> Profiler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._running:
            self.stop()

    # -- building the report ---------------------------------------------------------------

    def build(self) -> ProfileData:
        if any(
            not isinstance(item, str)
            and item not in self.names.by_code
            and item.co_name != " top"
            for stack in self.sampler.stacks
            for item in stack
        ):  # code of Gene functions defined before the profile started: name them
            self.names.scan_live()
        data = ProfileData(
            self.program,
            self._wall * 1e3,
            jit_mode=tiering.mode(),
            sample_interval_ms=self.sample_interval * 1e3,
            samples=self.sampler.samples,
        )
        by_fn: dict[GeneFn, FunctionStats] = {}
        index = self._def_index()
        for (file, name, line), calls in self.counters.call_counts():
            fn = index.get((file, name, line))
            if fn is not None and calls:
                self._stats(by_fn, fn).calls += calls
        self._sampled_times(by_fn)
        self._tier1(by_fn)
        data.functions = sorted(by_fn.values(), key=lambda s: (-s.total_ms, -s.calls))
        # sampled library time only where no timed call covered it (see libcalls)
        loose = {a: s * 1e3 for a, s in self.sampler.loose.items() if a in AREA_NAMES}
        data.libraries = self.library.libraries(loose)
        data.loops = self._loop_stats(index)
        self._stacks(data)
        return data

    def _tier1(self, by_fn: dict[GeneFn, FunctionStats]) -> None:
        """Tier-1 fields of every function, and the functions that only native code ran
        (`gene_jit.jit` functions called from Python, natives called from natives)."""
        states = {}
        for state in self.tier1.states():
            span = state.info.form.span
            states[(span.file, span.line, state.info.name or f"fn@{span.line}")] = state
        for fn, st in by_fn.items():
            if fn.name != TOP_LEVEL:
                self.tier1.annotate(st, states.pop((fn.file, fn.line, fn.name), None))
        for (file, line, name), state in states.items():
            if self.tier1.calls(state.stats)[0] > 0:
                st = self._stats(by_fn, GeneFn(name, file, line))
                self.tier1.annotate(st, state)

    @staticmethod
    def _stats(by_fn: dict[GeneFn, FunctionStats], fn: GeneFn) -> FunctionStats:
        st = by_fn.get(fn)
        if st is None:
            st = by_fn[fn] = FunctionStats(fn.name, fn.file, fn.line)
        return st

    def _def_index(self) -> dict[tuple[str, str, int], GeneFn]:
        """(file, Python def name, line) of each counted def -> its Gene function."""
        files = _gene_files()
        index = {
            (c.co_filename, c.co_name, c.co_firstlineno): fn for c, fn in self.names.by_code.items()
        }
        for key in self.counters.defs:
            if key not in index:
                file, name, line = key
                if name == " top":
                    index[key] = GeneFn(TOP_LEVEL, file, 0)
                elif (
                    name.startswith(" fn") and file in files
                ):  # anonymous, created before profiling
                    index[key] = GeneFn(f"fn@{line}", file, line)
        return index

    def _sampled_times(self, by_fn: dict[GeneFn, FunctionStats]) -> None:
        """Add sampled total and self time to the functions."""
        files = _gene_files()
        for stack, seconds in self.sampler.stacks.items():
            ms = seconds * 1e3
            seen: set[GeneFn] = set()
            leaf: GeneFn | None = None
            for item in stack:
                if isinstance(item, str):
                    leaf = None
                    continue
                fn = self.names.lookup(item, files)
                if fn is None:
                    continue
                if fn not in seen:  # recursion: a function's total counts each sample once
                    seen.add(fn)
                    self._stats(by_fn, fn).total_ms += ms
                leaf = fn
            if leaf is not None:
                by_fn[leaf].self_ms += ms

    def _loop_stats(self, index: dict[tuple[str, str, int], GeneFn]) -> list[LoopStats]:
        out = []
        for site, trips in self.counters.loop_counts():
            fn = index.get((site.file, *site.owner)) if site.owner else None
            owner = fn.name if fn is not None else TOP_LEVEL
            out.append(LoopStats(site.kind, site.file, site.line, site.column, owner, trips))
        self.tier1.add_native_loops(out)  # iterations run in native code
        out.sort(key=lambda lp: -lp.trips)
        return out

    def _stacks(self, data: ProfileData) -> None:
        index: dict[Frame, int] = {}
        files = _gene_files()

        def frame_of(item: CodeType | str) -> int:
            if isinstance(item, str):
                frame = Frame(f"[{item}]", "", 0)
            else:
                fn = self.names.lookup(item, files)
                frame = (
                    Frame(fn.name, fn.file, fn.line)
                    if fn
                    else Frame(item.co_name, item.co_filename, item.co_firstlineno)
                )
            if frame not in index:
                index[frame] = len(index)
                data.frames.append(frame)
            return index[frame]

        for stack, seconds in self.sampler.stacks.items():
            data.stacks.append((tuple(frame_of(item) for item in stack), seconds * 1e3))
