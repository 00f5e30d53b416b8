"""Exact call and loop-trip counters for tier-0 code, added while profiling.

A hook in the tier-0 compiler (`compiler.AST_HOOKS`) lets this module rewrite each
compiled module before CPython compiles it: the first statement of every function body
becomes ` prof_calls[k] += 1`, and the first of every `while`/`for` body
` loop_trips[k] += 1`, both lists in the module's globals. That costs one list update per
call or iteration (CPython's own profiling hooks would cost far more: in 3.11 they turn
off the specialised bytecode), and only for code compiled while profiling. Tier 1 builds
its IR from the Gene forms, not from this AST, so native code is unchanged (calls and
iterations inside native code are not counted here).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from gene_jit.runtime.errors import source_line

COUNTERS = " loop_trips"
CALLS = " prof_calls"
_HEAD = re.compile(r"\(\s*([^\s()\[\]{}\"]+)")


@dataclass(frozen=True)
class LoopSite:
    file: str
    line: int
    column: int  # 1-based, of the loop form's `(`
    kind: str
    owner: tuple[str, int] | None  # (Python def name, line) of the enclosing function


class Counters:
    def __init__(self) -> None:
        self.sites: list[LoopSite] = []
        self.trips: list[int] = []
        self._site_ids: dict[LoopSite, int] = {}
        # Function entry counters: (file, Python def name, line) of each def.
        self.defs: list[tuple[str, str, int]] = []
        self.calls: list[int] = []

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
        env[CALLS] = self.calls
        _Instrument(self, filename).visit(mod)
        ast.fix_missing_locations(mod)

    def add_site(self, site: LoopSite) -> int:
        # A Gene range loop compiles to two Python loops (a typed copy and a generic one,
        # frontend/special_loops.py): both count into its one site.
        if site in self._site_ids:
            return self._site_ids[site]
        self.sites.append(site)
        self.trips.append(0)
        self._site_ids[site] = len(self.sites) - 1
        return len(self.sites) - 1

    def add_def(self, file: str, name: str, line: int) -> int:
        self.defs.append((file, name, line))
        self.calls.append(0)
        return len(self.defs) - 1

    def loop_counts(self) -> list[tuple[LoopSite, int]]:
        return list(zip(self.sites, self.trips, strict=True))

    def call_counts(self) -> list[tuple[tuple[str, str, int], int]]:
        return list(zip(self.defs, self.calls, strict=True))


class _Instrument(ast.NodeVisitor):
    def __init__(self, counters: Counters, filename: str) -> None:
        self.counters = counters
        self.filename = filename
        self.owners: list[tuple[str, int] | None] = []

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        top = node.name == " top"
        self.owners.append(None if top else (node.name, node.lineno))
        self.generic_visit(node)
        self.owners.pop()
        _prepend(node, CALLS, self.counters.add_def(self.filename, node.name, node.lineno))

    def visit_body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in body:
            self.visit(stmt)
            out.extend(self._counted(stmt) if isinstance(stmt, (ast.While, ast.For)) else [stmt])
        return out

    def generic_visit(self, node: ast.AST) -> None:
        # Loops are statements: rewrite every statement list so a loop can be wrapped.
        for name, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                setattr(node, name, self.visit_body(value))
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def _counted(self, node: ast.While | ast.For) -> list[ast.stmt]:
        """`t = 0; try: <loop with t += 1 first> finally: loop_trips[k] += t`: a local
        count per iteration (cheapest), added to the shared list however the loop ends."""
        line, col = node.lineno, node.col_offset + 1
        site = LoopSite(
            self.filename,
            line,
            col,
            _loop_kind(self.filename, line, col),
            self.owners[-1] if self.owners else None,
        )
        k = self.counters.add_site(site)
        local = f" trips{k}"
        node.body.insert(
            0,
            ast.AugAssign(
                target=ast.Name(id=local, ctx=ast.Store()), op=ast.Add(), value=ast.Constant(1)
            ),
        )
        init = ast.Assign(targets=[ast.Name(id=local, ctx=ast.Store())], value=ast.Constant(0))
        target = ast.Subscript(
            value=ast.Name(id=COUNTERS, ctx=ast.Load()), slice=ast.Constant(k), ctx=ast.Store()
        )
        flush = ast.AugAssign(target=target, op=ast.Add(), value=ast.Name(id=local, ctx=ast.Load()))
        wrapped = ast.Try(body=[node], handlers=[], orelse=[], finalbody=[flush])
        for new in (init, wrapped, flush, node.body[0]):
            ast.copy_location(new, node)
        return [init, wrapped]


def _prepend(node: ast.FunctionDef | ast.While | ast.For, counters: str, k: int) -> None:
    """Put `counters[k] += 1` first in `node`'s body (after `global`/`nonlocal`)."""
    target = ast.Subscript(
        value=ast.Name(id=counters, ctx=ast.Load()), slice=ast.Constant(k), ctx=ast.Store()
    )
    bump = ast.AugAssign(target=target, op=ast.Add(), value=ast.Constant(1))
    ast.copy_location(bump, node.body[0] if node.body else node)
    i = 0
    while i < len(node.body) and isinstance(node.body[i], (ast.Global, ast.Nonlocal)):
        i += 1
    node.body.insert(i, bump)


def _loop_kind(filename: str, line: int, col: int) -> str:
    text = source_line(filename, line)
    if text is None:
        return "loop"
    m = _HEAD.match(text, max(col - 1, 0))
    return m.group(1) if m else "loop"
