"""Exact call counts and times of the library code a Gene program runs: the `tensor/*`
namespace and the tensor operators (`+ - * / @`, negation, on tensors), the LLM library
(`model/*`, `tokenizer/*` and top-level builtins such as `generate-text`), the gene
engine's forward passes, and tier-1 compiles.

While profiling, each such function is replaced by a counting wrapper where Gene finds
it: a namespace's members dict becomes a dict that hands out wrappers (so members that a
lazy namespace registers during the run are counted too), the top-level builtins are
wrapped in the builtin table, and the tensor operators, `Engine.run_forward` and
`FnState.compile` are wrapped on their classes (once their modules are loaded). All are
put back afterwards. Native code (tier 1) reaches the library functions only through
these names, so its calls are counted as well.

Times are exclusive: a timed call nested in another (a `tensor/linear` of the engine's
forward pass inside `generate-text`, a tier-1 compile inside a callback) is charged to
its own row and subtracted from the one around it, so every row carries its own time and
the rows never count a moment twice. An LLM call is charged to the gene engine when it
ran the engine's forward pass or was made on (or made) an engine model.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any

from gene_jit.profiler.areas import ENGINE, JIT, LLAMA, TENSOR
from gene_jit.profiler.generation import TokenMeter
from gene_jit.profiler.model import CallStats, LibraryStats
from gene_jit.runtime.registry import BUILTINS, Namespace, namespace

NAMESPACES = {"tensor": TENSOR, "model": LLAMA, "tokenizer": LLAMA}
# Tensor methods that the generic operators of tier 0 reach, and their rows.
OPERATORS = {
    "__add__": "tensor +", "__radd__": "tensor +", "__sub__": "tensor -", "__rsub__": "tensor -",
    "__mul__": "tensor *", "__rmul__": "tensor *", "__truediv__": "tensor /",
    "__rtruediv__": "tensor /", "__matmul__": "tensor @", "__neg__": "tensor negation",
}
COMPILES = "compiles"  # the one row of the tier-1 compile area
LOADING = "(loading the library)"  # importing a lazy namespace's module on first use
_LOADED_BY = (("gene_jit.llama", LLAMA), ("gene_jit.tensor", TENSOR), ("gene_jit.engine", TENSOR))


def _top_level_llama() -> list[str]:
    from gene_jit.runtime.libraries import LLAMA_BUILTINS

    return list(LLAMA_BUILTINS)


class Clock:
    """The timed calls open on the profiled thread: per call, the seconds of the timed
    calls nested in it (subtracted from its own time)."""

    def __init__(self) -> None:
        self.inner: list[float] = []
        self.tensor_depth = 0  # open tensor calls: operators inside them are their work
        self.engine_runs = 0  # forward passes of the gene engine so far


def _counted(fn: Callable[..., Any], meter: CallStats, clock: Clock) -> Callable[..., Any]:
    inner, now = clock.inner, time.perf_counter

    def counted(*args: Any, **kwargs: Any) -> Any:
        meter.calls += 1
        inner.append(0.0)
        t0 = now()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = now() - t0
            meter.ms += (elapsed - inner.pop()) * 1e3
            if inner:
                inner[-1] += elapsed

    # keep what the runtime reads off a builtin (`__gene_builtin__`, the name it prints)
    with_attrs: Callable[..., Any] = functools.update_wrapper(counted, fn)
    return with_attrs


def _counted_tensor(fn: Callable[..., Any], meter: CallStats, clock: Clock) -> Callable[..., Any]:
    inner, now = clock.inner, time.perf_counter

    def counted(*args: Any, **kwargs: Any) -> Any:
        meter.calls += 1
        inner.append(0.0)
        clock.tensor_depth += 1
        t0 = now()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = now() - t0
            clock.tensor_depth -= 1
            meter.ms += (elapsed - inner.pop()) * 1e3
            if inner:
                inner[-1] += elapsed

    with_attrs: Callable[..., Any] = functools.update_wrapper(counted, fn)
    return with_attrs


def _counted_operator(fn: Callable[..., Any], meter: CallStats, clock: Clock) -> Callable[..., Any]:
    inner, now = clock.inner, time.perf_counter

    def operator(*args: Any) -> Any:
        if clock.tensor_depth:  # the library's own arithmetic is part of the call doing it
            return fn(*args)
        meter.calls += 1
        inner.append(0.0)
        clock.tensor_depth = 1
        t0 = now()
        try:
            return fn(*args)
        finally:
            elapsed = now() - t0
            clock.tensor_depth = 0
            meter.ms += (elapsed - inner.pop()) * 1e3
            if inner:
                inner[-1] += elapsed

    with_attrs: Callable[..., Any] = functools.update_wrapper(operator, fn)
    return with_attrs


def _engine_model_type() -> type | None:
    mod = sys.modules.get("gene_jit.engine.model")
    return getattr(mod, "EngineModel", None) if mod is not None else None


def on_engine(value: Any) -> bool:
    """Whether `value` is an engine model, or a session, stream or tokenizer of one."""
    cls = _engine_model_type()
    if cls is None or value is None:
        return False
    if isinstance(value, cls):
        return True
    if not type(value).__module__.startswith("gene_jit."):
        return False
    try:
        return isinstance(getattr(value, "model", None), cls)
    except Exception:  # noqa: BLE001 - a Gene object's own member lookup may raise
        return False


class LibraryCalls:
    def __init__(self) -> None:
        self.clock = Clock()
        self.tokens = TokenMeter()
        self.meters: dict[str, dict[str, CallStats]] = {}  # area -> name -> stats
        self._namespaces: list[tuple[Namespace, dict[str, Any]]] = []
        self._builtins: dict[str, tuple[Any, Any]] = {}  # name -> (original, wrapper)
        self._methods: list[tuple[Any, str, Any]] = []  # (class or module, name, original)
        self._patched: set[str] = set()  # modules whose classes are wrapped

    def meter(self, area: str, name: str) -> CallStats:
        per_area = self.meters.setdefault(area, {})
        stats = per_area.get(name)
        if stats is None:
            stats = per_area[name] = CallStats(name)
        return stats

    def wrap(self, area: str, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A counting wrapper of the library function `fn`, shown as `name`."""
        self.watch()  # a library call may be the first use of a module wrapped on its class
        if area == TENSOR:
            return _counted_tensor(fn, self.meter(TENSOR, name), self.clock)
        if area == LLAMA:
            return self._counted_llm(fn, name)
        return _counted(fn, self.meter(area, name), self.clock)

    def _counted_llm(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        clock, inner, tokens = self.clock, self.clock.inner, self.tokens
        llama, engine = self.meter(LLAMA, name), self.meter(ENGINE, name)
        batch = name == "batch-generate"

        def counted(*args: Any, **kwargs: Any) -> Any:
            runs = clock.engine_runs
            made0 = tokens.batch_count() if batch else 0
            result = None
            inner.append(0.0)
            t0 = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
                return result
            finally:
                elapsed = time.perf_counter() - t0
                engine_work = (
                    clock.engine_runs != runs
                    or on_engine(args[0] if args else None)
                    or on_engine(result)
                )
                meter = engine if engine_work else llama
                meter.calls += 1
                meter.ms += (elapsed - inner.pop()) * 1e3
                if inner:
                    inner[-1] += elapsed
                if batch:
                    made = tokens.batch_count() - made0
                    tokens.add_batch(ENGINE if engine_work else LLAMA, made, elapsed)
                self.watch()

        with_attrs: Callable[..., Any] = functools.update_wrapper(counted, fn)
        return with_attrs

    def install(self) -> None:
        from gene_jit.runtime.libraries import register_all

        register_all()  # the lazy namespaces exist (their modules are not imported)
        self.tokens.install()
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
                wrapper = self.wrap(LLAMA, name, value)
                self._builtins[name] = (value, wrapper)
                BUILTINS[name] = wrapper
        self._patch_loading()
        self.watch()

    def _patch_loading(self) -> None:
        """Time the import of a library module that a lazy name loads on first use: it
        happens before any counted call of the library starts."""
        from gene_jit.runtime import registry

        original = registry.import_library
        loaders = {area: _counted(original, self.meter(area, LOADING), self.clock) for _, area in _LOADED_BY}

        def import_library(module: str, *args: Any) -> Any:
            for prefix, area in _LOADED_BY:
                if module.startswith(prefix):
                    return loaders[area](module, *args)
            return original(module, *args)

        self._patch(registry, "import_library", functools.update_wrapper(import_library, original))

    def watch(self) -> None:
        """Wrap the classes of the modules loaded since the last look (cheap when none)."""
        if len(self._patched) == 3:
            return
        for module, patch in (
            ("gene_jit.tensor.tensor", self._patch_operators),
            ("gene_jit.engine.model", self._patch_engine),
            ("gene_jit.codegen.hooks", self._patch_compile),
        ):
            if module not in self._patched and module in sys.modules:
                self._patched.add(module)
                patch(sys.modules[module])

    def _patch(self, owner: Any, name: str, wrapper: Callable[..., Any]) -> None:
        self._methods.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, wrapper)

    def _patch_operators(self, module: Any) -> None:
        cls = module.Tensor
        for method, row in OPERATORS.items():
            if method in cls.__dict__:
                meter = self.meter(TENSOR, row)
                self._patch(cls, method, _counted_operator(cls.__dict__[method], meter, self.clock))

    def _patch_engine(self, module: Any) -> None:
        cls, clock, inner = module.Engine, self.clock, self.clock.inner
        original = cls.__dict__["run_forward"]
        meters: dict[str, CallStats] = {}

        def run_forward(engine: Any, *args: Any) -> Any:
            arch = engine.config.arch
            meter = meters.get(arch)
            if meter is None:  # the Gene forward pass less its tensor ops (their own rows)
                meter = meters[arch] = self.meter(ENGINE, f"forward ({arch}.gene)")
            meter.calls += 1
            clock.engine_runs += 1
            inner.append(0.0)
            t0 = time.perf_counter()
            try:
                return original(engine, *args)
            finally:
                elapsed = time.perf_counter() - t0
                meter.ms += (elapsed - inner.pop()) * 1e3
                if inner:
                    inner[-1] += elapsed

        self._patch(cls, "run_forward", functools.update_wrapper(run_forward, original))

    def _patch_compile(self, module: Any) -> None:
        cls = module.FnState
        self._patch(cls, "compile", _counted(cls.__dict__["compile"], self.meter(JIT, COMPILES), self.clock))

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
        for owner, name, original in reversed(self._methods):
            setattr(owner, name, original)
        self._methods.clear()
        self.tokens.uninstall()

    def libraries(self, sampled_ms: dict[str, float]) -> list[LibraryStats]:
        """Per area: the counted functions (exact time), or the sampled time of an area
        whose code ran without going through a counted name; with the tokens generated."""
        out = []
        for area in sorted(set(sampled_ms) | set(self.meters) | set(self.tokens.areas)):
            functions = sorted(
                (c for c in self.meters.get(area, {}).values() if c.calls),
                key=lambda c: (-c.ms, -c.calls),
            )
            lib = LibraryStats(area, functions=functions)
            if functions:
                lib.ms = sum(c.ms for c in functions)
                lib.calls = sum(c.calls for c in functions)
            elif area in sampled_ms:
                lib.ms, lib.sampled = sampled_ms[area], True
            if area == JIT:
                lib.functions = []  # one row: compiles (type check, IR, LLVM)
            self.tokens.fill(lib)
            if lib.ms or lib.calls or lib.tokens or lib.prompt_tokens:
                out.append(lib)
        return out


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
            wrapper = self.calls.wrap(self.area, f"{self.prefix}/{key}", value)
            hit = self.wrapped[key] = (value, wrapper)
        return hit[1]
