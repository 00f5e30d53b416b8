"""Exceptions (GENE.md 3.9): `try` / `catch` / `finally` and `throw`.

`(try body... catch Cls body... catch * body... finally body...)`: the value is the
body's, or the value of the catch that handled the error. The finally block runs on
every way out (value, error, `return`, `break`) and its value is discarded. Control
cannot leave a finally block: a `return` in it, or a `break` / `continue` of a loop that
encloses the try, is a syntax error at that form (a loop or a function inside the
finally block is free to use them). The try's own outcome therefore always stands.

Inside a catch, `$ex` is the thrown value (`(throw v)`), or the error itself for an
error the runtime raised (it prints as `kind: message`; `$ex/message` and `$ex/kind`
read its parts). Faults of gene-jit itself are never caught (compiler_errors.translate).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager

from gene_jit.frontend import core
from gene_jit.frontend.compiler_core import (
    Compiler,
    Result,
    assign,
    const,
    hcall,
    helper,
    load,
    special,
    sym_name,
    syntax_error,
)
from gene_jit.frontend.forms import GeneF

# FnScope -> the number of loops of that function that enclose the finally block being
# compiled: a `break`/`continue` with no more loops than that would leave the block.
_FLOORS: dict[int, list[int]] = {}


@contextmanager
def _in_finally(c: Compiler) -> Iterator[None]:
    floors = _FLOORS.setdefault(id(c.fn), [])
    floors.append(len(c.fn.loops))
    try:
        yield
    finally:
        floors.pop()
        if not floors:
            del _FLOORS[id(c.fn)]


def check_exit(c: Compiler, form: GeneF, kind: str) -> None:
    """Refuse `return` (kind "return") or `break`/`continue` that would leave a finally
    block of the function being compiled."""
    floors = _FLOORS.get(id(c.fn))
    if not floors:
        return
    if kind == "return" or len(c.fn.loops) <= floors[-1]:
        raise syntax_error(
            form, f"{kind} inside finally is not allowed: the try's own outcome stands"
        )


@special("try")
def try_form(c: Compiler, form: GeneF, value: bool) -> Result:
    node = core.try_node(form)
    t = c.temp()
    with c.block():
        res = c.body(node.body)
    try_body = [*res.stmts, assign(t, res.expr)]
    handlers = [_handler(c, node.catches, t)] if node.catches else []
    fstmts: list[ast.stmt] = []
    if node.final is not None:
        with c.block(), _in_finally(c):
            fstmts = c.discard(c.body(node.final, False)) or [ast.Pass()]
    if not handlers and not fstmts:
        return Result(try_body, load(t))  # `(try x)`: just x (GENE.md decisions)
    tree = ast.Try(body=try_body, handlers=handlers, orelse=[], finalbody=fstmts)
    return Result([assign(t, const(None)), tree], load(t))


def _handler(c: Compiler, catches: tuple[core.Catch, ...], t: str) -> ast.ExceptHandler:
    """One Python handler testing the catch patterns in order; no match raises again."""
    err, ex = c.temp("e"), c.temp("ex")
    chain: list[ast.stmt] = [ast.Raise(exc=None, cause=None)]
    for clause in reversed(catches):
        c.fn.ex_names.append(ex)
        try:
            with c.block():
                cres = c.body(clause.body)
        finally:
            c.fn.ex_names.pop()
        then = [*cres.stmts, assign(t, cres.expr)]
        if sym_name(clause.pattern) == "*":
            chain = then
            continue
        pres = c.compile(clause.pattern)
        test = hcall("catch_matches", load(ex), pres.expr)
        chain = [*pres.stmts, ast.If(test=test, body=then, orelse=chain)]
    body = [assign(ex, hcall("translate_error", load(err))), *chain]
    return ast.ExceptHandler(type=helper("Exception"), name=err, body=body)


@special("throw")
def throw_form(c: Compiler, form: GeneF, value: bool) -> Result:
    if len(form.children) > 2:
        raise syntax_error(form, "throw expects (throw [value]) or (throw Class message)")
    stmts, exprs = c.seq([c.compile(f) for f in form.children])
    return Result([*stmts, ast.Raise(exc=hcall("make_throw", *exprs), cause=None)], const(None))
