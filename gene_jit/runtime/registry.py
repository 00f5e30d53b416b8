"""The global Gene environment that libraries plug into.

`BUILTINS` maps Gene names to values; every module's globals fall back to it (it is the
`__builtins__` of the Python globals that tier 0 runs in). Libraries register with
`builtin` (a function under a Gene name, optionally inside a namespace such as `tensor`)
and heavy ones register lazily, so that `import numba` or loading libllama happens on
first use only.

Calling convention for Python functions called from Gene: positional children become
positional arguments; props `^top-k 40` and seed-style `:top-k 40` tails become keyword
arguments with `-` turned into `_` (`top_k=40`).
"""

from __future__ import annotations

from collections.abc import Callable
from types import FunctionType
from typing import Any

from gene_jit.runtime.requirements import import_library

BUILTINS: dict[str, Any] = {}


def py_name(gene_name: str) -> str:
    """The Python keyword-argument name for a Gene prop name (`top-k` -> `top_k`)."""
    return gene_name.replace("-", "_")


class Namespace:
    """A Gene namespace: `(ns n ...)`, `gene`, `tensor`, `model`, ... Members by name."""

    __slots__ = ("name", "members", "parent", "_loaders")

    def __init__(
        self, name: str, members: dict[str, Any] | None = None, parent: Namespace | None = None
    ):
        self.name = name
        self.members: dict[str, Any] = members if members is not None else {}
        self.parent = parent
        self._loaders: list[str] = []

    def add_loader(self, module: str) -> None:
        """Import `module` the first time a member is missing (it registers the members)."""
        self._loaders.append(module)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self.members[key]
        except KeyError:
            pass
        while self._loaders:
            # a failed import keeps its loader, so the next use reports the same error
            import_library(self._loaders[0], f"{self.full_name()}/{key}")
            self._loaders.pop(0)
            if key in self.members:
                return self.members[key]
        return default

    def has(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def full_name(self) -> str:
        if self.parent is None or self.parent.name in ("", "global"):
            return self.name
        return f"{self.parent.full_name()}/{self.name}"

    def __repr__(self) -> str:
        return f"Namespace({self.full_name()!r})"


_MISSING = object()


def namespace(path: str) -> Namespace:
    """The builtin namespace at `path` (`tensor`, `gene/time`), created when missing."""
    parts = path.split("/")
    ns = BUILTINS.get(parts[0])
    if not isinstance(ns, Namespace):
        ns = Namespace(parts[0])
        BUILTINS[parts[0]] = ns
    for part in parts[1:]:
        child = ns.members.get(part)
        if not isinstance(child, Namespace):
            child = Namespace(part, parent=ns)
            ns.members[part] = child
        ns = child
    return ns


def builtin(name: str, ns: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a Python function as a Gene builtin: `@builtin("generate-text")`,
    `@builtin("matmul", ns="tensor")`."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if ns is None:
            BUILTINS[name] = fn
        else:
            namespace(ns).members[name] = fn
        gene_named(fn, name if ns is None else f"{ns}/{name}")
        return fn

    return register


def gene_named(fn: Any, gene_name: str) -> None:
    """Give a Python function registered as a builtin its Gene name (the first one, for
    a function registered under several): Python's own arity errors name a function by
    its `__qualname__`, so `(ffi/load)` reports `ffi/load`, not the Python function."""
    while isinstance(fn, FunctionType) and not hasattr(fn, "__gene_builtin__"):
        fn.__gene_builtin__ = gene_name  # type: ignore[attr-defined]
        fn.__qualname__ = gene_name
        fn = getattr(fn, "__wrapped__", None)  # decorated: the function Python calls


class LazyBuiltin:
    """A builtin function whose module is imported on first call."""

    __slots__ = ("gene_name", "module", "attr", "_fn")

    def __init__(self, gene_name: str, module: str, attr: str) -> None:
        self.gene_name = gene_name
        self.module = module
        self.attr = attr
        self._fn: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        if self._fn is None:
            self._fn = getattr(import_library(self.module, self.gene_name), self.attr)
            gene_named(self._fn, self.gene_name)
        return self._fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)


def lazy_builtin(gene_name: str, module: str, attr: str, ns: str | None = None) -> None:
    lazy = LazyBuiltin(gene_name, module, attr)
    if ns is None:
        BUILTINS[gene_name] = lazy
    else:
        namespace(ns).members[gene_name] = lazy


def lazy_namespace(path: str, module: str) -> Namespace:
    """Register namespace `path`, whose members `module` registers when first needed."""
    ns = namespace(path)
    ns.add_loader(module)
    return ns
