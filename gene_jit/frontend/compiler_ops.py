"""Operators: the tier-0 lowering of core's operator nodes (core.py reads infix chains
and prefix operator heads into `Binary`, `Compare`, `Logic` and `Unary`), and the inline
code for each operator.

Arithmetic is emitted as a Python operator whose result is checked against the int64
range in the same expression (`arith`); the slow path (`gene_jit.runtime.ops.check_int`)
raises the Gene overflow error, or gives back a float beyond the range. Python's
operator and the comparisons refuse the wrong kinds, except booleans, which Python takes
as 0 and 1 and Gene does not (GENE.md: booleans are not numbers): an operand that may be
a boolean is guarded (`x.__class__ is not bool`, else the slow path raises the type
error); literals, inferred kinds, proven bounds and arithmetic results need no guard.
Comparisons are inline when one side is a number literal or the left operand is an int,
equality is inline for ints and literals.
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
    Ref,
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
    guards = (may_be_bool(lhs, a), may_be_bool(r, b))
    if op in _CMP:
        stmts, a, b = _pinned(c, stmts, a, b, guards)
    if op in _ARITH:
        kind = arith_kind(op, lhs.kind, r.kind)
        bounds = interval(op, lhs.bounds, r.bounds)
        proofs = (proof(lhs, a), proof(r, b))
        if _direct_call(b, proofs[1]) and proofs[0] in (True, proofs[1]):
            a, b = _checked_right(c, op, a, b)
            proofs = (True, True)
        expr = arith(c, op, a, b, (lhs.kind, r.kind), bounds, proofs)
        return Result(stmts, expr, False, kind, bounds, nonbool=True)
    if op == "/":
        return Result(stmts, divide(c, a, b, guards), False, "float")
    if op == "**":
        return Result(stmts, hcall("power", a, b), nonbool=True)
    return Result(stmts, compare(c, op, a, b, lhs.kind, r.kind, guards), True)


def _direct_call(e: ast.expr, flag: bool | str) -> bool:
    """`e` is `(fi(...) if flag else f(...))`, a proven function's call through its
    second entry (compiler_exprs._proven_call)."""
    return (
        isinstance(flag, str)
        and isinstance(e, ast.IfExp)
        and isinstance(e.test, ast.Name)
        and e.test.id == flag
    )


def _checked_right(c: Compiler, op: str, a: ast.expr, b: ast.expr) -> tuple[ast.expr, ast.expr]:
    """`a op (fi(...) if flag else f(...))`, where `a` is no boolean while the flag
    holds: if the flag holds when `b`'s call is made it held for all of `a` (it only
    goes from true to false), and both calls went to the proven function; else both
    values are checked (`check_pair`) before the operator runs."""
    assert isinstance(b, ast.IfExp)
    a1, a2 = _operand(c, a)
    checked = hcall("check_pair", const(op), a2, b.orelse)
    return a1, ast.IfExp(test=b.test, body=b.body, orelse=checked)


def may_be_bool(res: Result, e: ast.expr) -> bool:
    """Whether the operand `e` (the value of `res`) may be a boolean at run time."""
    return proof(res, e) is not True


def proof(res: Result, e: ast.expr) -> bool | str:
    """True if `e` (the value of `res`) is never a boolean: a literal other than
    true/false, an inferred kind, proven bounds (a comparison proved it a number), an
    arithmetic result; a flag global's name if that holds while the flag is true (the
    result of a call of a proven function, frontend/proofs.py); else False."""
    if isinstance(e, ast.Constant):
        return not isinstance(e.value, bool)
    if isinstance(e, (ast.List, ast.Dict, ast.JoinedStr)):
        return True
    if isinstance(e, ast.BinOp) and isinstance(e.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        return True  # Python's arithmetic on booleans gives ints
    if res.kind is not None or res.bounds is not None:
        return True
    return res.nonbool


def both_nonbool(a: Result, b: Result) -> bool | str:
    """The proof for a value that is either `a`'s or `b`'s."""
    pa, pb = proof(a, a.expr), proof(b, b.expr)
    if pa is True:
        return pb
    if pb is True or pa == pb:
        return pa
    return False


def is_bool(e: ast.expr) -> ast.expr:
    cls = ast.Attribute(value=e, attr="__class__", ctx=ast.Load())
    return ast.Compare(left=cls, ops=[ast.Is()], comparators=[helper("bool")])


def not_bool(e: ast.expr) -> ast.expr:
    """`e.__class__ is not bool`: cheaper in CPython than two `is` tests."""
    cls = ast.Attribute(value=e, attr="__class__", ctx=ast.Load())
    return ast.Compare(left=cls, ops=[ast.IsNot()], comparators=[helper("bool")])


def _guard(guards: tuple[bool, bool], a: ast.expr, b: ast.expr) -> ast.expr | None:
    tests = [not_bool(e) for e, g in zip((a, b), guards, strict=True) if g]
    if not tests:
        return None
    return tests[0] if len(tests) == 1 else ast.BoolOp(op=ast.And(), values=tests)


def _pinned(
    c: Compiler, stmts: list[ast.stmt], a: ast.expr, b: ast.expr, guards: tuple[bool, bool]
) -> tuple[list[ast.stmt], ast.expr, ast.expr]:
    """Where an operand is guarded, the operands are read twice (the guard, the
    operator, the slow path): complex ones are computed into temps first, in order
    (both operands are evaluated before the operator raises, as in the slow path)."""
    if not any(guards) or (is_simple(a) and is_simple(b)):
        return stmts, a, b
    out = list(stmts)
    pinned = []
    for e in (a, b):
        if is_simple(e):
            pinned.append(e)
        else:
            t = c.temp()
            out.append(assign(t, e))
            pinned.append(load(t))
    return out, pinned[0], pinned[1]


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
    proofs: tuple[bool | str, bool | str] = (True, True),
) -> ast.expr:
    """`a op b` checked against the int64 range, with no temps for the operands (the
    slow path `check_int(r, op)` needs only the result: an int outside the range is
    all it looks for; a non-number result is refused by the comparisons themselves).
    A check of both bounds tries the one-digit range first, `(r if (r := a + b) <=
    2**30-1 and r >= -(2**30-1) or INT_MIN <= r and r <= INT_MAX else check_int(r,
    "+"))`: two specialised comparisons for the usual small result, two more for a
    large one. Each comparison is followed by its jump (a chained comparison costs more
    in CPython). A check of one bound is a single comparison with it.

    An operand that may be a boolean (its proof, `proofs`, is not true) is checked after
    the range, when both operands have been evaluated (Python takes a boolean as 0 or 1,
    so the operation itself cannot fail on one): `(r if (r := (t := f()) + n) <= ...
    and t.__class__ is not bool and ... else (check_int(r, "+") if <the same guards>
    else add(t, n)))`, where `add` raises the type error. An operand proven under a
    flag (a call of a proven function) costs only the flag in the fast path. An operand
    with a guard always has an unknown kind, so the result always has a range check to
    join."""
    pyop, _ = _ARITH[op]
    need_lo, need_hi = _checks(op, b, kinds, bounds)
    guards = (proofs[0] is not True, proofs[1] is not True)
    # the slow path (a guard failed) takes both operands again: as temps, never the
    # expressions themselves, which would run twice (and a chain of n sums would be 2^n)
    operands = [_operand(c, e) if any(guards) else (e, e) for e in (a, b)]
    (a, a2), (b, b2) = operands
    flags = sorted({p for p in proofs if isinstance(p, str)})
    fast = [not_bool(e) for e, p in zip((a2, b2), proofs, strict=True) if p is False]
    fast += [c.load_ref(Ref("global", f)) for f in flags]
    guard = None if not fast else fast[0] if len(fast) == 1 else ast.BoolOp(op=ast.And(), values=fast)
    value = ast.BinOp(left=a, op=pyop, right=b)
    if not need_lo and not need_hi:
        if guard is None:
            return value
        need_hi = True  # not reached today (see above), kept correct
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
    slow: ast.expr = hcall("check_int", load(r), const(op))
    if guard is not None:
        cond = ast.BoolOp(op=ast.And(), values=[cond, guard])
        again = _guard(guards, a2, b2)
        assert again is not None
        slow = ast.IfExp(test=again, body=slow, orelse=hcall(_ARITH[op][1], a2, b2))
    return ast.IfExp(test=cond, body=load(r), orelse=slow)


def _cmp(left: ast.expr, op: ast.cmpop, right: ast.expr) -> ast.Compare:
    return ast.Compare(left=left, ops=[op], comparators=[right])


def divide(
    c: Compiler, a: ast.expr, b: ast.expr, guards: tuple[bool, bool] = (False, False)
) -> ast.expr:
    if not is_simple(a):
        return hcall("div", a, b)
    if isinstance(b, ast.Constant) and type(b.value) in (int, float) and b.value != 0:
        inline = ast.BinOp(left=a, op=ast.Div(), right=b)
        if not guards[0]:
            return inline
        return ast.IfExp(test=not_bool(a), body=inline, orelse=hcall("div", a, b))
    b1, b2 = _operand(c, b)
    # A zero (or nil) divisor takes the slow path: inf, -inf, nan or a type error; so
    # does a boolean operand.
    guard = _guard(guards, a, b2)
    test = b1 if guard is None else ast.BoolOp(op=ast.And(), values=[b1, guard])
    return ast.IfExp(
        test=test, body=ast.BinOp(left=a, op=ast.Div(), right=b2), orelse=hcall("div", a, b2)
    )


def _num_const(e: ast.expr) -> bool:
    return isinstance(e, ast.Constant) and type(e.value) in (int, float)


def _class_is(e: ast.expr, ty: str) -> ast.expr:
    cls = ast.Attribute(value=e, attr="__class__", ctx=ast.Load())
    return ast.Compare(left=cls, ops=[ast.Is()], comparators=[helper(ty)])


def compare(
    c: Compiler,
    op: str,
    a: ast.expr,
    b: ast.expr,
    ka: str | None = None,
    kb: str | None = None,
    guards: tuple[bool, bool] = (False, False),
) -> ast.expr:
    """`a op b`; `guards` tells which operands may be booleans (see `may_be_bool`)."""
    if op in ("==", "!="):
        return equality(c, op == "!=", a, b, ka, kb)
    return gene_bool(_ordering(c, op, a, b, ka, kb, guards))


def gene_bool(test: ast.expr) -> ast.expr:
    """`True if test else False`: a NumPy scalar operand makes Python's comparison give a
    NumPy bool, which Gene would take as truthy even when false. A test position reads
    `test` itself (Compiler.truth), so only a comparison used as a value pays."""
    return ast.IfExp(test=test, body=const(True), orelse=const(False))


def _ordering(
    c: Compiler, op: str, a: ast.expr, b: ast.expr, ka: str | None, kb: str | None,
    guards: tuple[bool, bool],
) -> ast.expr:
    pyop, slow = _CMP[op]
    if _num_const(a) or _num_const(b) or ka in _NUMERIC or kb in _NUMERIC:
        # Python raises for a number against a non-number, as Gene does; a boolean is
        # the one it takes (as 0 or 1).
        if guards[0] != guards[1]:
            return _guarded_compare(c, op, a, b, guards[1])
        return ast.Compare(left=a, ops=[pyop], comparators=[b])
    a1, a2 = _operand(c, a)
    test: ast.expr = _class_is(a1, "int")  # an int, not a bool
    if guards[1]:
        b1, b = _operand(c, b)
        test = ast.BoolOp(op=ast.And(), values=[test, not_bool(b1)])
    inline = ast.Compare(left=a2, ops=[pyop], comparators=[b])
    return ast.IfExp(test=test, body=inline, orelse=hcall(slow, a2, b))


def _guarded_compare(c: Compiler, op: str, a: ast.expr, b: ast.expr, right: bool) -> ast.expr:
    """`a op b` where one side (the right one if `right`) may be a boolean and the other
    is a number. Against a number literal a boolean (0 or 1 to Python) may give the
    same answer either way: then only that answer is guarded, so a test such as fib's
    `(n < 2)` pays for the guard in one branch."""
    pyop, slow = _CMP[op]
    x1, x2 = _operand(c, b if right else a)
    other = a if right else b
    first = ast.Compare(left=a if right else x1, ops=[pyop], comparators=[x1 if right else b])
    later = (a, x2) if right else (x2, b)
    raise_ = hcall(slow, *later)
    outcomes = set()
    if _num_const(other):
        k = other.value  # type: ignore[attr-defined]
        outcomes = {_PY_CMP[op](*((k, v) if right else (v, k))) for v in (0, 1)}
    if outcomes == {True}:  # a boolean passes the test: guard the true answer
        return ast.BoolOp(op=ast.And(), values=[first, ast.BoolOp(op=ast.Or(), values=[not_bool(x2), raise_])])
    if outcomes == {False}:  # a boolean fails it: guard the false answer
        return ast.BoolOp(op=ast.Or(), values=[first, ast.BoolOp(op=ast.And(), values=[is_bool(x2), raise_])])
    inline = ast.Compare(left=later[0], ops=[pyop], comparators=[later[1]])
    return ast.IfExp(test=not_bool(x1), body=inline, orelse=raise_)


CMP_SLOW = {op: slow for op, (_, slow) in _CMP.items()}
_PY_CMP: dict[str, Callable[[float, float], bool]] = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
}


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
    guards = (may_be_bool(left, a), may_be_bool(right, b))
    guarded = ops[0] in _CMP and any(guards)
    if guarded:
        stmts, a, b = _pinned(c, stmts, a, b, guards)
    if len(ops) == 1:
        return Result(stmts, compare(c, ops[0], a, b, left.kind, right.kind, guards), True)
    # `b` is compared again with the next operand. A name may be read twice unless the
    # next operand's statements, which run in between, could assign it. A guarded
    # comparison reads its operands more than once: `b` goes to a temp first.
    first: ast.expr = b
    again: ast.expr = b
    if guarded and not isinstance(b, ast.Constant) and rest[1].stmts:
        t = c.temp()
        stmts = [*stmts, assign(t, b)]
        first = again = load(t)
    elif not (isinstance(b, ast.Constant) or (isinstance(b, ast.Name) and not rest[1].stmts)):
        t = c.temp()
        first, again = ast.NamedExpr(target=store(t), value=b), load(t)
    test = Result(stmts, compare(c, ops[0], a, first, left.kind, right.kind, guards), True)
    # Past an ordering comparison `b` is a number (a guard raised for anything else).
    proven = right.nonbool or (guards[1] and ops[0] in _CMP)
    kept = Result([], again, False, right.kind, right.bounds, nonbool=proven)
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
