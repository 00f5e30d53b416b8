"""Operators: the tier-0 lowering of core's operator nodes (core.py reads infix chains
and prefix operator heads into `Binary`, `Compare`, `Logic` and `Unary`), and the inline
code for each operator.

Arithmetic is emitted as a Python operator whose result is checked against the int64
range in the same expression (`arith`); the slow path (`gene_jit.runtime.ops.check_int`)
raises the Gene overflow error, or gives back a float beyond the range. Python's
operator and the comparisons refuse the wrong kinds. Comparisons are inline when one side is a number
literal or the left operand is an int, equality is inline for ints and literals.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from gene_jit.frontend import core
from gene_jit.frontend.compiler_core import (
    INT_MAX,
    INT_MIN,
    Bounds,
    Compiler,
    Result,
    assign,
    const,
    hcall,
    helper,
    is_simple,
    load,
    store,
)
from gene_jit.frontend.compiler_errors import Operand, note_operator
from gene_jit.frontend.compiler_types import INTS as _INTS
from gene_jit.frontend.compiler_types import NUMERIC as _NUMERIC
from gene_jit.frontend.compiler_types import arith_kind
from gene_jit.frontend.forms import Form, GeneF, Span

_ARITH = {"+": (ast.Add(), "add"), "-": (ast.Sub(), "sub"), "*": (ast.Mult(), "mul")}
_CMP = {
    "<": (ast.Lt(), "lt"),
    "<=": (ast.LtE(), "le"),
    ">": (ast.Gt(), "gt"),
    ">=": (ast.GtE(), "ge"),
}


# ---------------------------------------------------------------- core operator nodes


def infix(c: Compiler, form: GeneF) -> Result:
    return emit(c, core.infix(form))


def prefix(c: Compiler, form: GeneF) -> Result:
    """`(+ a b c)`, `(- a)`, `(< a b)`, `(= a b)` (equality), `(not x)`."""
    return emit(c, core.prefix(form))


def emit(c: Compiler, node: core.Expr) -> Result:
    """Lower an operator node (core.py); operands that are forms compile as usual."""
    if isinstance(node, core.Binary):
        return binary(c, node.op, emit(c, node.left), emit(c, node.right), node.span)
    if isinstance(node, core.Compare):
        for op in node.ops:
            note_operator(node.span, op)
        return chain(c, node)
    if isinstance(node, core.Logic):
        right = node.right
        return logic(c, emit(c, node.left), lambda: emit(c, right), node.op == "&&")
    if isinstance(node, core.Unary):
        res = emit(c, node.operand)
        if node.op == "not":
            return negation(c, res)
        if node.op == "-":
            return Result(res.stmts, hcall("neg", res.expr))
        return res
    assert isinstance(node, Form), node
    return c.compile(node)


# ---------------------------------------------------------------- operators


def _operand(c: Compiler, e: ast.expr) -> tuple[ast.expr, ast.expr]:
    """(first use, later uses) of a value used twice: a walrus temp unless simple."""
    if is_simple(e):
        return e, e
    t = c.temp()
    return ast.NamedExpr(target=store(t), value=e), load(t)


def binary(c: Compiler, op: str, lhs: Result, r: Result, span: Span | None = None) -> Result:
    stmts, (a, b) = c.seq([lhs, r])
    if span is not None:  # for the error an inline operator's non-number result gives
        note_operator(span, op, (_described(a), _described(b)) if op in _ARITH else (None, None))
    if op in _ARITH:
        kind = arith_kind(op, lhs.kind, r.kind)
        bounds = interval(op, lhs.bounds, r.bounds)
        expr = arith(c, op, a, b, (lhs.kind, r.kind), bounds)
        return Result(stmts, expr, False, kind, bounds)
    if op == "/":
        return Result(stmts, divide(c, a, b), False, "float")
    if op == "**":
        return Result(stmts, hcall("power", a, b))
    return Result(stmts, compare(c, op, a, b, lhs.kind, r.kind), True)


def _described(e: ast.expr) -> Operand | None:
    if isinstance(e, ast.Name):
        return ("name", e.id)
    if isinstance(e, ast.Constant):
        return ("const", e.value)
    if isinstance(e, (ast.List, ast.Dict, ast.JoinedStr)):  # only its kind is read
        return ("const", [] if isinstance(e, ast.List) else {} if isinstance(e, ast.Dict) else "")
    return None


def interval(op: str, a: Bounds | None, b: Bounds | None) -> Bounds | None:
    """Bounds of `a op b` for + and - from the operands' (None when not known)."""
    if a is None or b is None or op == "*":
        return None
    (alo, ahi), (blo, bhi) = a, b
    if op == "+":
        lo = alo + blo if alo is not None and blo is not None else None
        hi = ahi + bhi if ahi is not None and bhi is not None else None
    else:
        lo = alo - bhi if alo is not None and bhi is not None else None
        hi = ahi - blo if ahi is not None and blo is not None else None
    return lo, hi


def _checks(
    op: str, b: ast.expr, kinds: tuple[str | None, str | None], bounds: Bounds | None
) -> tuple[bool, bool]:
    """Whether `a op b` needs its lower and its upper int64 bound checked."""
    ka, kb = kinds
    if set(kinds) <= {"nat", "int", "float", "num"} and "float" in kinds:
        return False, False  # a float result never overflows
    # A non-negative int operand bounds the result on one side by the other operand,
    # which is in range if it is an int (and a float result needs no check).
    nat_b = kb == "nat" or (isinstance(b, ast.Constant) and type(b.value) is int and 0 <= b.value <= INT_MAX)
    nats = ka == "nat" and nat_b
    need_lo = not ((op == "+" and (ka == "nat" or nat_b)) or (op in ("*", "-") and nats))
    need_hi = not (op == "-" and nat_b)
    if bounds is not None:
        need_lo = need_lo and (bounds[0] is None or bounds[0] < INT_MIN)
        need_hi = need_hi and (bounds[1] is None or bounds[1] > INT_MAX)
    return need_lo, need_hi


# The largest magnitude CPython keeps in one 30-bit digit: its `<=` and `>=` between
# such ints are specialised (a compare fused with its jump), while a comparison with an
# int64 bound is the generic one. tensor.py answers for these bounds too.
COMPACT = 2**30 - 1


def arith(
    c: Compiler,
    op: str,
    a: ast.expr,
    b: ast.expr,
    kinds: tuple[str | None, str | None] = (None, None),
    bounds: Bounds | None = None,
) -> ast.expr:
    """`a op b` checked against the int64 range, with no temps for the operands (the
    slow path `check_int(r, op)` needs only the result: an int outside the range is
    all it looks for; a non-number result is refused by the comparisons themselves).
    A check of both bounds tries the one-digit range first, `(r if (r := a + b) <=
    2**30-1 and r >= -(2**30-1) or INT_MIN <= r and r <= INT_MAX else check_int(r,
    "+"))`: two specialised comparisons for the usual small result, two more for a
    large one. Each comparison is followed by its jump (a chained comparison costs more
    in CPython). A check of one bound is a single comparison with it."""
    pyop, _ = _ARITH[op]
    need_lo, need_hi = _checks(op, b, kinds, bounds)
    value = ast.BinOp(left=a, op=pyop, right=b)
    if not need_lo and not need_hi:
        return value
    r = c.temp("r")
    named = ast.NamedExpr(target=store(r), value=value)
    if not need_hi:
        cond: ast.expr = _cmp(const(INT_MIN), ast.LtE(), named)
    elif not need_lo:
        cond = _cmp(named, ast.LtE(), const(INT_MAX))
    else:
        small = ast.BoolOp(
            op=ast.And(), values=[_cmp(named, ast.LtE(), const(COMPACT)), _cmp(load(r), ast.GtE(), const(-COMPACT))]
        )
        wide = ast.BoolOp(
            op=ast.And(), values=[_cmp(const(INT_MIN), ast.LtE(), load(r)), _cmp(load(r), ast.LtE(), const(INT_MAX))]
        )
        cond = ast.BoolOp(op=ast.Or(), values=[small, wide])
    return ast.IfExp(test=cond, body=load(r), orelse=hcall("check_int", load(r), const(op)))


def _cmp(left: ast.expr, op: ast.cmpop, right: ast.expr) -> ast.Compare:
    return ast.Compare(left=left, ops=[op], comparators=[right])


def divide(c: Compiler, a: ast.expr, b: ast.expr) -> ast.expr:
    if not is_simple(a):
        return hcall("div", a, b)
    if isinstance(b, ast.Constant) and type(b.value) in (int, float) and b.value != 0:
        return ast.BinOp(left=a, op=ast.Div(), right=b)
    b1, b2 = _operand(c, b)
    # A zero (or nil) divisor takes the slow path: inf, -inf, nan or a type error.
    return ast.IfExp(
        test=b1, body=ast.BinOp(left=a, op=ast.Div(), right=b2), orelse=hcall("div", a, b2)
    )


def _num_const(e: ast.expr) -> bool:
    return isinstance(e, ast.Constant) and type(e.value) in (int, float)


def _class_is(e: ast.expr, ty: str) -> ast.expr:
    cls = ast.Attribute(value=e, attr="__class__", ctx=ast.Load())
    return ast.Compare(left=cls, ops=[ast.Is()], comparators=[helper(ty)])


def compare(
    c: Compiler, op: str, a: ast.expr, b: ast.expr, ka: str | None = None, kb: str | None = None
) -> ast.expr:
    if op in ("==", "!="):
        return equality(c, op == "!=", a, b, ka, kb)
    pyop, slow = _CMP[op]
    if _num_const(a) or _num_const(b) or ka in _NUMERIC or kb in _NUMERIC:
        # Python raises for a number against a non-number, as Gene does.
        return ast.Compare(left=a, ops=[pyop], comparators=[b])
    a1, a2 = _operand(c, a)
    inline = ast.Compare(left=a2, ops=[pyop], comparators=[b])
    return ast.IfExp(test=_class_is(a1, "int"), body=inline, orelse=hcall(slow, a2, b))


def equality(
    c: Compiler, negate: bool, a: ast.expr, b: ast.expr, ka: str | None = None, kb: str | None = None
) -> ast.expr:
    if (ka in _INTS and kb in _INTS) or (ka == "str" and kb == "str"):
        # Two ints or two strings: Python's == agrees with Gene's.
        return ast.Compare(left=a, ops=[ast.NotEq() if negate else ast.Eq()], comparators=[b])
    if isinstance(a, ast.Constant) and isinstance(b, ast.Constant):
        from gene_jit.runtime.ops import eq

        return const(eq(a.value, b.value) != negate)
    if isinstance(a, ast.Constant) and not isinstance(b, ast.Constant):
        a, b = b, a
    if isinstance(b, ast.Constant):
        v = b.value
        if v is None or v is True or v is False:
            return ast.Compare(left=a, ops=[ast.IsNot() if negate else ast.Is()], comparators=[b])
        if type(v) is str:
            return ast.Compare(left=a, ops=[ast.NotEq() if negate else ast.Eq()], comparators=[b])
        if type(v) in (int, float):
            a1, a2 = _operand(c, a)
            test = ast.BoolOp(
                op=ast.And(),
                values=[
                    ast.Compare(left=a1, ops=[ast.Eq()], comparators=[b]),
                    # another class equal to the literal: a NumPy scalar is a number too
                    ast.BoolOp(op=ast.Or(), values=[_class_is(a2, type(v).__name__),
                                                    hcall("eq", a2, b)]),
                ],
            )
            return ast.UnaryOp(op=ast.Not(), operand=test) if negate else test
    a1, a2 = _operand(c, a)
    b1, b2 = _operand(c, b)
    cls_a = ast.Attribute(value=a1, attr="__class__", ctx=ast.Load())
    cls_b = ast.Attribute(value=b1, attr="__class__", ctx=ast.Load())
    both_int = ast.Compare(left=cls_a, ops=[ast.Is(), ast.Is()], comparators=[cls_b, helper("int")])
    inline = ast.Compare(left=a2, ops=[ast.NotEq() if negate else ast.Eq()], comparators=[b2])
    return ast.IfExp(test=both_int, body=inline, orelse=hcall("ne" if negate else "eq", a2, b2))


def chain(c: Compiler, node: core.Compare) -> Result:
    """`a < b <= c` is `a < b && b <= c`: each operand evaluated once, and only when the
    comparisons before it held (`&&` short-circuits)."""
    results = [emit(c, o) for o in node.operands]
    return _chain_from(c, results[0], node.ops, results[1:])


def _chain_from(c: Compiler, left: Result, ops: tuple[str, ...], rest: list[Result]) -> Result:
    right = rest[0]
    stmts, (a, b) = c.seq([left, right])
    if len(ops) == 1:
        return Result(stmts, compare(c, ops[0], a, b, left.kind, right.kind), True)
    # `b` is compared again with the next operand. A name may be read twice unless the
    # next operand's statements, which run in between, could assign it.
    first: ast.expr = b
    again: ast.expr = b
    if not (isinstance(b, ast.Constant) or (isinstance(b, ast.Name) and not rest[1].stmts)):
        t = c.temp()
        first, again = ast.NamedExpr(target=store(t), value=b), load(t)
    test = Result(stmts, compare(c, ops[0], a, first, left.kind, right.kind), True)
    kept = Result([], again, False, right.kind, right.bounds)
    return logic(c, test, lambda: _chain_from(c, kept, ops[1:], rest[1:]), is_and=True)


def logic(c: Compiler, lhs: Result, right: Callable[[], Result], is_and: bool) -> Result:
    """`&&` / `||`: short-circuit, the value is an operand (`right` compiles the right
    operand, inside the branch that evaluates it)."""
    r = right()
    if not r.stmts:
        if lhs.is_bool:
            return Result(
                lhs.stmts,
                ast.BoolOp(op=ast.And() if is_and else ast.Or(), values=[lhs.expr, r.expr]),
                r.is_bool,
            )
        t = c.temp()
        test = c.truth(Result([], ast.NamedExpr(target=store(t), value=lhs.expr)))
        if is_and:
            return Result(lhs.stmts, ast.IfExp(test=test, body=r.expr, orelse=load(t)), False)
        return Result(lhs.stmts, ast.IfExp(test=test, body=load(t), orelse=r.expr), False)
    t = c.temp()
    stmts = [*lhs.stmts, assign(t, lhs.expr)]
    test = c.truth(Result([], load(t), lhs.is_bool))
    if not is_and:
        test = ast.UnaryOp(op=ast.Not(), operand=test)
    stmts.append(ast.If(test=test, body=[*r.stmts, assign(t, r.expr)], orelse=[]))
    return Result(stmts, load(t), lhs.is_bool and r.is_bool)


def negation(c: Compiler, res: Result) -> Result:
    if isinstance(res.expr, ast.Constant):
        v = res.expr.value
        return Result(res.stmts, const(v is None or v is False), True)
    if res.is_bool:
        return Result(res.stmts, ast.UnaryOp(op=ast.Not(), operand=res.expr), True)
    e1, e2 = _operand(c, res.expr)
    test = ast.BoolOp(
        op=ast.Or(),
        values=[
            ast.Compare(left=e1, ops=[ast.Is()], comparators=[const(None)]),
            ast.Compare(left=e2, ops=[ast.Is()], comparators=[const(False)]),
        ],
    )
    return Result(res.stmts, test, True)
