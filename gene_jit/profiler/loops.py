"""Loop trip counters for tier 0, added while profiling.

A hook in the tier-0 compiler (`compiler.AST_HOOKS`) lets this module rewrite each
compiled module before CPython compiles it: the first statement of every `while`/`for`
body becomes ` loop_trips[k] += 1`, where ` loop_trips` is a list in the module's globals.
That costs one list update per iteration, and only for code compiled while profiling.
Tier 1 builds its IR from the Gene forms, not from this AST, so native code is unchanged
(its iterations are not counted).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from gene_jit.runtime.errors import source_line

COUNTERS = " loop_trips"
_HEAD = re.compile(r"\(\s*([^\s()\[\]{}\"]+)")


@dataclass(frozen=True)
class LoopSite:
    file: str
    line: int
    column: int  # 1-based, of the loop form's `(`
    kind: str
    owner: tuple[str, int] | None  # (Python def name, line) of the enclosing function


class LoopCounters:
    def __init__(self) -> None:
        self.sites: list[LoopSite] = []
        self.trips: list[int] = []

    def install(self) -> None:
        from gene_jit.frontend import compiler

        if self.hook not in compiler.AST_HOOKS:
            compiler.AST_HOOKS.append(self.hook)

    def uninstall(self) -> None:
        from gene_jit.frontend import compiler

        if self.hook in compiler.AST_HOOKS:
            compiler.AST_HOOKS.remove(self.hook)

    def hook(self, mod: ast.Module, filename: str, env: dict[str, Any]) -> None:
        # The list stays in the globals after profiling stops: code compiled with the
        # counters may still run then.
        env[COUNTERS] = self.trips
        _Instrument(self, filename).visit(mod)
        ast.fix_missing_locations(mod)

    def add_site(self, site: LoopSite) -> int:
        self.sites.append(site)
        self.trips.append(0)
        return len(self.sites) - 1

    def counts(self) -> list[tuple[LoopSite, int]]:
        return list(zip(self.sites, self.trips))


class _Instrument(ast.NodeVisitor):
    def __init__(self, counters: LoopCounters, filename: str) -> None:
        self.counters = counters
        self.filename = filename
        self.owners: list[tuple[str, int] | None] = []

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.owners.append(None if node.name == " top" else (node.name, node.lineno))
        self.generic_visit(node)
        self.owners.pop()

    def visit_While(self, node: ast.While) -> None:
        self._count(node)

    def visit_For(self, node: ast.For) -> None:
        self._count(node)

    def _count(self, node: ast.While | ast.For) -> None:
        self.generic_visit(node)  # inner loops first; their bodies are separate lists
        line, col = node.lineno, node.col_offset + 1
        site = LoopSite(self.filename, line, col, _loop_kind(self.filename, line, col),
                        self.owners[-1] if self.owners else None)
        k = self.counters.add_site(site)
        target = ast.Subscript(value=ast.Name(id=COUNTERS, ctx=ast.Load()),
                               slice=ast.Constant(k), ctx=ast.Store())
        bump = ast.AugAssign(target=target, op=ast.Add(), value=ast.Constant(1))
        ast.copy_location(bump, node)
        node.body.insert(0, bump)


def _loop_kind(filename: str, line: int, col: int) -> str:
    text = source_line(filename, line)
    if text is None:
        return "loop"
    m = _HEAD.match(text, max(col - 1, 0))
    return m.group(1) if m else "loop"
