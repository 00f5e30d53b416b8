"""Counted loops: `for` and `repeat`.

`(for x in coll body...)` visits what `ops.iter_values` gives. When `coll` is written as
a range, `(a .. b)` or `(range a b [step])`, the loop checks once at entry that the
bounds are ints (and that `range` is still the builtin), then runs a Python `for` over a
Python `range`. In that copy of the body the loop variable is known to be an int (`nat`
when the start is known non-negative) with the bounds of the range, so operators on it
drop their class and overflow checks (compiler_types, compiler_ops). The other copy is
the generic loop. Only the fast copy duplicates nested range loops, so code grows with
the square of the nesting depth, not exponentially. When the bounds' kinds are known
ints at compile time (and the range is `..`), no guard and no generic copy are needed.

Each iteration is a scope (GENE.md 2.8): the loop variable is declared inside the loop,
so a closure made in the body keeps that iteration's value.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gene_jit.frontend import core
from gene_jit.frontend.compiler_core import (
    Bounds,
    Compiler,
    LoopCtx,
    Result,
    assign,
    const,
    hcall,
    helper,
    is_simple,
    load,
    special,
    store,
    sym_name,
    syntax_error,
)
from gene_jit.frontend.compiler_exprs import kw_tail_start, spread_item
from gene_jit.frontend.compiler_types import INTS, rebinds
from gene_jit.frontend.forms import Arr, Form, GeneF, Sym


@special("repeat")
def repeat_form(c: Compiler, form: GeneF, value: bool) -> Result:
    if not form.children:
        raise syntax_error(form, "repeat expects (repeat n body...)")
    n = c.compile(form.children[0])
    stmts, count = c.to_temp(n)
    props = dict(form.props)
    idx = c.temp("i")
    c.fn.loops.append(LoopCtx(None))
    try:
        with c.block():
            if "total" in props and isinstance(props["total"], Sym):
                stmts.extend(c.store_ref(c.declare(props["total"].name), count))
            pre: list[ast.stmt] = []
            if "index" in props and isinstance(props["index"], Sym):
                pre = c.store_ref(c.declare(props["index"].name), load(idx))
            body = pre + [s for f in form.children[1:] for s in c.stmts(f)]
    finally:
        c.fn.loops.pop()
    counted = count if n.kind in INTS else hcall("as_count", count)
    it = ast.Call(func=helper("range"), args=[counted], keywords=[])
    stmts.append(ast.For(target=store(idx), iter=it, body=body or [ast.Pass()], orelse=[]))
    return Result(stmts, const(None))


@special("for")
def for_form(c: Compiler, form: GeneF, value: bool) -> Result:
    ch = form.children
    if len(ch) < 3 or sym_name(ch[1]) != "in":
        raise syntax_error(
            form, "for expects (for x in coll body...) or (for [k v] in coll body...)"
        )
    pattern = ch[0]
    if isinstance(pattern, Sym):
        rng = range_of(c, ch[2])
        if rng is not None:
            return range_loop(c, pattern, rng, ch[3:])
        coll = c.compile(ch[2])
        target, body = iteration(c, [pattern.name], ch[3:])
        loop = ast.For(target=target, iter=hcall("iter_values", coll.expr), body=body, orelse=[])
        return Result([*coll.stmts, loop], const(None))
    if isinstance(pattern, Arr) and len(pattern.items) == 2:
        names = [sym_name(p) for p in pattern.items]
        if all(n is not None for n in names):
            coll = c.compile(ch[2])
            target, body = iteration(c, names, ch[3:])  # type: ignore[arg-type]
            it = hcall("iter_pairs", coll.expr)
            return Result(
                [*coll.stmts, ast.For(target=target, iter=it, body=body, orelse=[])], const(None)
            )
    raise syntax_error(pattern, "for expects a name or [k v] before in")


def iteration(
    c: Compiler,
    names: list[str],
    forms: tuple[Form, ...],
    kind: str | None = None,
    bounds: Bounds | None = None,
) -> tuple[ast.expr, list[ast.stmt]]:
    """The Python `for` target and body for one iteration binding `names`. With `kind`,
    the (single) loop variable is compiled as that kind, within `bounds`."""
    c.fn.loops.append(LoopCtx(None))
    try:
        with c.block():
            targets: list[ast.expr] = []
            stmts: list[ast.stmt] = []
            for name in names:
                ref = c.declare(name)
                if ref.kind == "local":
                    targets.append(store(ref.py))
                else:  # a global or namespace member: bind it from a temp
                    t = c.temp("x")
                    targets.append(store(t))
                    stmts.extend(c.store_ref(ref, load(t)))
            with _typed(c, names[0], kind, bounds):
                for f in forms:
                    stmts.extend(c.stmts(f))
    finally:
        c.fn.loops.pop()
    target = targets[0] if len(targets) == 1 else ast.Tuple(elts=targets, ctx=ast.Store())
    return target, stmts or [ast.Pass()]


@contextmanager
def _typed(c: Compiler, name: str, kind: str | None, bounds: Bounds | None) -> Iterator[None]:
    if kind is None:
        yield
        return
    saved = c.fn.kinds
    c.fn.kinds = {**saved, name: kind}
    try:
        with c.facts({name: bounds} if bounds is not None else {}):
            yield
    finally:
        c.fn.kinds = saved


# ---------------------------------------------------------------- range loops


@dataclass
class RangeSpec:
    """A `for` collection written as a range: the `range` callee (None for `a .. b`),
    the argument forms (start, end[, step]) and whether the end is included."""

    callee: Form | None
    args: list[Form]
    inclusive: bool


def range_of(c: Compiler, coll: Form) -> RangeSpec | None:
    if not isinstance(coll, GeneF) or coll.props or coll.head is None:
        return None
    node = core.resolve(coll)
    if isinstance(node, core.Range):
        return RangeSpec(None, [node.start, node.end], True)
    ch = coll.children
    if (
        isinstance(node, core.Named)
        and node.name == "range"
        and 1 <= len(ch) <= 3
        and c.resolve("range").kind == "global"
        and not any(spread_item(f) is not None for f in ch)
        and kw_tail_start(ch) == len(ch)
    ):
        return RangeSpec(coll.head, list(ch), False)
    return None


@dataclass
class _Bound:
    expr: ast.expr
    res: Result


def range_loop(c: Compiler, var: Sym, rng: RangeSpec, forms: tuple[Form, ...]) -> Result:
    """`(for i in (a .. b))` / `(for i in (range a b [step]))`: see the module docstring."""
    head = [c.compile(rng.callee)] if rng.callee is not None else []
    results = [c.compile(a) for a in rng.args]
    stmts, exprs = c.seq(head + results)
    vals: list[ast.expr] = []
    for e in exprs:
        if not is_simple(e):
            t = c.temp()
            stmts.append(assign(t, e))
            e = load(t)
        vals.append(e)
    callee = vals[0] if rng.callee is not None else None
    bounds = [_Bound(e, r) for e, r in zip(vals[len(head) :], results, strict=True)]
    if rng.callee is not None and len(bounds) == 1:
        bounds.insert(0, _Bound(const(0), Result([], const(0), kind="nat", bounds=(0, 0))))
    tests = _guards(callee, bounds)
    if not tests:
        return Result([*stmts, _fast_loop(c, var, bounds, rng.inclusive, forms)], const(None))
    guard = tests[0] if len(tests) == 1 else ast.BoolOp(op=ast.And(), values=tests)
    generic_range = (
        ast.Call(
            func=callee, args=[b.expr for b in bounds[len(bounds) - len(rng.args) :]], keywords=[]
        )
        if callee is not None
        else hcall("make_range", bounds[0].expr, bounds[1].expr)
    )
    with _generic(c):
        target, body = iteration(c, [var.name], forms)
    slow = ast.For(target=target, iter=hcall("iter_values", generic_range), body=body, orelse=[])
    if isinstance(guard, ast.Constant):  # a constant bound that is not an int
        return Result([*stmts, slow], const(None))
    fast = _fast_loop(c, var, bounds, rng.inclusive, forms)
    return Result([*stmts, ast.If(test=guard, body=[fast], orelse=[slow])], const(None))


@contextmanager
def _generic(c: Compiler) -> Iterator[None]:
    """While compiling a generic copy, nested range loops do not duplicate their body."""
    c.generic_depth += 1
    try:
        yield
    finally:
        c.generic_depth -= 1


def _guards(callee: ast.expr | None, bounds: list[_Bound]) -> list[ast.expr]:
    """What must hold at loop entry for the Python range: int bounds, a non-zero int step,
    and `range` still the builtin."""
    tests: list[ast.expr] = []
    if callee is not None:
        tests.append(ast.Compare(left=callee, ops=[ast.Is()], comparators=[helper("gene_range")]))
    for i, b in enumerate(bounds):
        e = b.expr
        if isinstance(e, ast.Constant):
            if type(e.value) is not int or (i == 2 and e.value == 0):
                return [const(False)]
            continue
        if b.res.kind not in INTS:
            cls = ast.Attribute(value=e, attr="__class__", ctx=ast.Load())
            tests.append(ast.Compare(left=cls, ops=[ast.Is()], comparators=[helper("int")]))
        if i == 2:
            tests.append(ast.Compare(left=e, ops=[ast.NotEq()], comparators=[const(0)]))
    return tests


def _fast_loop(
    c: Compiler, var: Sym, bounds: list[_Bound], inclusive: bool, forms: tuple[Form, ...]
) -> ast.stmt:
    """`for var in range(...)` with the loop variable typed, unless the body rebinds it or
    this is inside a generic copy (then it stays untyped, without a second copy)."""
    start, end = bounds[0], bounds[1]
    step = bounds[2].expr if len(bounds) == 3 else const(1)
    stop = ast.BinOp(left=end.expr, op=ast.Add(), right=const(1)) if inclusive else end.expr
    args = [start.expr, stop] if len(bounds) == 2 else [start.expr, stop, step]
    kind, span = None, None
    if c.generic_depth == 0 and not c.fn.is_module and not rebinds(forms, var.name, c.is_macro):
        kind, span = _var_facts(start.res, end.res, step, inclusive)
    target, body = iteration(c, [var.name], forms, kind, span)
    it = ast.Call(func=helper("range"), args=args, keywords=[])
    return ast.For(target=target, iter=it, body=body, orelse=[])


def _var_facts(
    start: Result, end: Result, step: ast.expr, inclusive: bool
) -> tuple[str, Bounds | None]:
    """The loop variable's kind and bounds: an int between the start and the end when
    the step is a positive constant; only an int otherwise."""
    if not (isinstance(step, ast.Constant) and type(step.value) is int and step.value > 0):
        return "int", None
    lo = start.bounds[0] if start.bounds is not None else None
    if lo is None and start.kind == "nat":
        lo = 0
    hi = end.bounds[1] if end.bounds is not None else None
    if hi is not None and not inclusive:
        hi -= 1
    kind = "nat" if lo is not None and lo >= 0 else "int"
    return kind, (lo, hi)
