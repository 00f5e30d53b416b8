"""Which code objects are Gene functions, and their Gene names.

Tier 0 compiles each Gene `fn` to a Python function whose code object carries the Gene
file name and line but a generated Python name. While profiling, `tiering.register` (which
`gene_def` calls for every Gene function) is wrapped so that each function's code object is
recorded with its Gene name; functions defined before profiling started are found by a
scan of live function objects when the report is built.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from types import CodeType
from typing import Any

from gene_jit.runtime import tiering

TOP_LEVEL = "(top level)"


@dataclass(frozen=True)
class GeneFn:
    name: str
    file: str
    line: int


class FunctionNames:
    """Code object -> Gene function, filled while profiling."""

    def __init__(self) -> None:
        self.by_code: dict[CodeType, GeneFn] = {}
        self._original: Any = None

    def install(self) -> None:
        if self._original is not None:
            return
        original = tiering.register
        self._original = original

        def register(fn_id: int, pyfunc: Any, info: tiering.FnInfo) -> Any:
            self.note(pyfunc)
            return original(fn_id, pyfunc, info)

        tiering.register = register

    def uninstall(self) -> None:
        if self._original is not None:
            tiering.register = self._original
            self._original = None

    def note(self, pyfunc: Any) -> None:
        code = getattr(pyfunc, "__code__", None)
        if isinstance(code, CodeType) and code not in self.by_code:
            self.by_code[code] = _gene_fn(code, getattr(pyfunc, "__gene_name__", None))

    def scan_live(self) -> None:
        """Record Gene functions that exist now (defined before profiling began)."""
        for obj in gc.get_objects():
            if callable(obj) and hasattr(obj, "__gene_name__"):
                self.note(obj)

    def lookup(self, code: CodeType, gene_files: set[str]) -> GeneFn | None:
        """The Gene function `code` belongs to; top-level code of a Gene file is one
        `(top level)` entry per file; None for code that is not Gene."""
        fn = self.by_code.get(code)
        if fn is not None:
            return fn
        if code.co_filename not in gene_files:
            return None
        if code.co_name in (" top", "<module>"):  # the module code that runs " top"
            fn = GeneFn(TOP_LEVEL, code.co_filename, 0)
        elif code.co_name.startswith(" fn"):
            fn = _gene_fn(code, None)
        else:  # compiler-made helper code (comprehensions): part of its caller
            return None
        self.by_code[code] = fn
        return fn


def _gene_fn(code: CodeType, name: str | None) -> GeneFn:
    if not name:  # anonymous `(fn [x] ...)`: named by where it is written
        name = f"fn@{code.co_firstlineno}"
    return GeneFn(name, code.co_filename, code.co_firstlineno)
