"""Expression and special-form handlers of the IR builder (a table of small handlers).

Each handler takes the `FnBuilder`, the form and returns the value of the form (a nil
value for statements). Operators follow gene_jit.runtime.ops; infix forms chain with
tier 0's precedence (`||` < `&&` < comparisons < `+ -` < `* /`), left-associative.
"""

from __future__ import annotations

from collections.abc import Callable

from gene_jit.frontend.forms import Arr, Form, GeneF, Lit, Quote, Span, Sym
from gene_jit.ir import types as T
from gene_jit.ir.builder import FnBuilder, Loop, NotTypeable
from gene_jit.ir.nodes import Op, Value

INFIX_PREC = {"||": 1, "&&": 2, "<": 3, "<=": 3, ">": 3, ">=": 3, "==": 4, "!=": 4,
              "+": 5, "-": 5, "*": 6, "/": 6, "**": 7}
ASSIGN_OPS = {"=", "+=", "-=", "*=", "/="}
NOT_INFIX_HEADS = {"var", "if", "fn", "fnx", "fnxx", "macro", "do", "loop", "while", "for",
                   "ns", "class", "try", "throw", "$", ".", "not", "!", "return", "break"}
CMP_OPS = {"<": Op.LT, "<=": Op.LE, ">": Op.GT, ">=": Op.GE, "==": Op.EQ, "!=": Op.NE}
ARITH_OPS = {"+": Op.ADD, "-": Op.SUB, "*": Op.MUL}

Handler = Callable[[FnBuilder, GeneF], Value]


# -- entry points ------------------------------------------------------------------------


def body_value(b: FnBuilder, forms: tuple[Form, ...] | list[Form]) -> Value:
    """Evaluate `forms` in a new scope; the value of the last one (nil if none)."""
    b.scopes.append({})
    try:
        value = b.nil()
        for form in forms:
            value = expr(b, form)
        return value
    finally:
        b.scopes.pop()


def expr(b: FnBuilder, form: Form) -> Value:
    if isinstance(form, Lit):
        return literal(b, form.value, form.span)
    if isinstance(form, Sym):
        return symbol(b, form)
    if isinstance(form, GeneF):
        return gene_form(b, form)
    if isinstance(form, Quote):
        raise NotTypeable("quoted data", form.span)
    raise NotTypeable(f"{type(form).__name__} literals are not compiled", form.span)


def literal(b: FnBuilder, value: object, span: Span) -> Value:
    if value is None:
        return b.nil()
    if isinstance(value, bool):
        return b.const(value, T.BOOL)
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise NotTypeable("integer literal out of range", span)
        return b.const(value, T.I64)
    if isinstance(value, float):
        return b.const(value, T.F64)
    raise NotTypeable(f"{type(value).__name__} values are not compiled", span)


def symbol(b: FnBuilder, sym: Sym) -> Value:
    if sym.name in ("true", "false", "nil"):
        return literal(b, {"true": True, "false": False, "nil": None}[sym.name], sym.span)
    slot = b.lookup(sym.name)
    if slot is not None:
        return b.emit(Op.GET, ty=b.fn.locals[slot], attr=slot, span=sym.span)
    if sym.is_complex:
        parts = sym.parts
        base = b.lookup(parts[0])
        if base is not None and all(p.lstrip("-").isdigit() for p in parts[1:]):
            arr = b.emit(Op.GET, ty=b.fn.locals[base], attr=base, span=sym.span)
            idx = [b.const(int(p), T.I64) for p in parts[1:]]
            return load(b, arr, idx, sym.span)
        if base is not None and b.fn.locals[base].kind is T.Kind.STRUCT:
            from gene_jit.ir.ffi_calls import field_read

            return field_read(b, base, parts[1:], sym.span)
    raise NotTypeable(f"reads global or unknown name {sym.name}", sym.span)


def gene_form(b: FnBuilder, form: GeneF) -> Value:
    head = form.head
    kids = form.children
    if form.props:
        raise NotTypeable("properties in a call", form.span)
    head_name = head.name if isinstance(head, Sym) else None
    if kids and isinstance(kids[0], Sym) and head_name not in NOT_INFIX_HEADS:
        op = kids[0].name
        if op in ASSIGN_OPS:
            return assign(b, form)
        if op in INFIX_PREC:
            return infix(b, form)
        if op == "..":
            raise NotTypeable("a range used as a value", form.span)
    if head_name is None:
        raise NotTypeable("call of a computed function", form.span)
    handler = SPECIAL.get(head_name)
    if handler is not None and b.lookup(head_name) is None:
        return handler(b, form)
    if head_name in PREFIX and b.lookup(head_name) is None:
        return prefix(b, head_name, form)
    from gene_jit.ir.build_calls import call

    return call(b, head_name, form)


# -- operators ---------------------------------------------------------------------------


def to_f64(b: FnBuilder, v: Value, span: Span) -> Value:
    if v.type == T.F64:
        return v
    if v.type == T.I64:
        return b.emit(Op.I2F, (v,), T.F64, span=span)
    raise NotTypeable(f"arithmetic on {v.type}", span)


def numeric(b: FnBuilder, op: str, x: Value, y: Value, span: Span) -> tuple[Value, Value]:
    b.typed(x, span)
    b.typed(y, span)
    if not (x.type.is_numeric and y.type.is_numeric):
        raise NotTypeable(f"{op} on {x.type} and {y.type}", span)
    if x.type == y.type:
        return x, y
    return to_f64(b, x, span), to_f64(b, y, span)


def binop(b: FnBuilder, op: str, x: Value, y: Value, span: Span) -> Value:
    if op in ARITH_OPS:
        x, y = numeric(b, op, x, y, span)
        return b.emit(ARITH_OPS[op], (x, y), x.type, span=span)
    if op == "/":
        x, y = numeric(b, op, x, y, span)
        return b.emit(Op.DIV, (to_f64(b, x, span), to_f64(b, y, span)), T.F64, span=span)
    if op in ("==", "!="):
        return equality(b, op, x, y, span)
    if op in CMP_OPS:
        x, y = numeric(b, op, x, y, span)
        return b.emit(CMP_OPS[op], (x, y), T.BOOL, span=span)
    raise NotTypeable(f"operator {op} is left to tier 0", span)


def equality(b: FnBuilder, op: str, x: Value, y: Value, span: Span) -> Value:
    if x.type == T.NIL or y.type == T.NIL:
        if x.type == y.type and x.id == 0 and y.id == 0:
            return b.const(op == "==", T.BOOL)
        b.typed(x if x.type == T.NIL else y, span)
    if x.type != y.type:
        if x.type.is_scalar and y.type.is_scalar:
            return b.const(op == "!=", T.BOOL)  # kinds differ: never equal (`1 == 1.0`)
        raise NotTypeable(f"{op} on {x.type} and {y.type}", span)
    if not x.type.is_scalar:
        raise NotTypeable(f"{op} on {x.type}", span)
    return b.emit(CMP_OPS[op], (x, y), T.BOOL, span=span)


def truth(b: FnBuilder, v: Value, span: Span) -> Value:
    """Gene truthiness as a bool: only nil and false are falsy."""
    if v.type == T.BOOL:
        return v
    if v.type == T.NIL:
        if v.id in b.nil_reasons:
            b.typed(v, span)
        return b.const(False, T.BOOL)
    return b.const(True, T.BOOL)


def infix(b: FnBuilder, form: GeneF) -> Value:
    items: list[Form] = [form.head, *form.children]  # type: ignore[list-item]
    if len(items) % 2 == 0:
        raise NotTypeable("malformed infix expression", form.span)
    operands = items[0::2]
    ops: list[str] = []
    for f in items[1::2]:
        if not isinstance(f, Sym) or f.name not in INFIX_PREC:
            raise NotTypeable("malformed infix expression", f.span)
        ops.append(f.name)
    return _chain(b, operands, ops, form.span)


def _chain(b: FnBuilder, operands: list[Form], ops: list[str], span: Span) -> Value:
    """Split at the last lowest-precedence operator (left associativity)."""
    if not ops:
        return expr(b, operands[0])
    low = min(INFIX_PREC[o] for o in ops)
    if low == 3 and sum(1 for o in ops if INFIX_PREC[o] == 3) > 1:
        return _cmp_chain(b, operands, ops, span)
    at = max(i for i, o in enumerate(ops) if INFIX_PREC[o] == low)
    op = ops[at]
    if op in ("&&", "||"):
        return logic(b, op, lambda: _chain(b, operands[: at + 1], ops[:at], span),
                     lambda: _chain(b, operands[at + 1:], ops[at + 1:], span), span)
    x = _chain(b, operands[: at + 1], ops[:at], span)
    y = _chain(b, operands[at + 1:], ops[at + 1:], span)
    return binop(b, op, x, y, span)


def _cmp_chain(b: FnBuilder, operands: list[Form], ops: list[str], span: Span) -> Value:
    """`(a < b < c)`: a short-circuit conjunction; each operand is evaluated once."""
    groups: list[tuple[list[Form], list[str]]] = [([], [])]
    cmps: list[str] = []
    for i, o in enumerate(ops):
        groups[-1][0].append(operands[i])
        if INFIX_PREC[o] == 3:
            cmps.append(o)
            groups.append(([], []))
        else:
            groups[-1][1].append(o)
    groups[-1][0].append(operands[-1])
    first = _chain(b, groups[0][0], groups[0][1], span)
    return _cmp_rest(b, first, groups[1:], cmps, span)


def _cmp_rest(b: FnBuilder, prev: Value, groups: list[tuple[list[Form], list[str]]],
              cmps: list[str], span: Span) -> Value:
    nxt = _chain(b, groups[0][0], groups[0][1], span)
    result = binop(b, cmps[0], prev, nxt, span)
    if len(cmps) == 1:
        return result
    slot = b.temp_slot(nxt, span)
    return logic(b, "&&", lambda: result, lambda: _cmp_rest(
        b, b.emit(Op.GET, ty=nxt.type, attr=slot, span=span), groups[1:], cmps[1:], span), span)


def logic(b: FnBuilder, op: str, left: Callable[[], Value], right: Callable[[], Value], span: Span) -> Value:
    """`(a && b)` / `(a || b)`: short-circuit, returning an operand."""
    x = left()
    slot = b.temp_slot(x, span) if x.type != T.NIL else None
    t = truth(b, x, span)
    take_right = b.new_block("rhs")
    keep_left = b.new_block("lhs")
    targets = (take_right.name, keep_left.name) if op == "&&" else (keep_left.name, take_right.name)
    b.emit(Op.CBR, (t,), targets=targets, span=span)
    b.start(take_right)
    right_value = right()
    ends = [(b.cur, right_value)]
    b.start(keep_left)
    kept = b.emit(Op.GET, ty=x.type, attr=slot, span=span) if slot is not None else x
    ends.append((b.cur, kept))
    return b.merge(ends, "logic", span)


def prefix(b: FnBuilder, op: str, form: GeneF) -> Value:
    """`(+ a b c)`, `(- a)`, `(/ a)`, `(< a b)`, `(= a b)` (seed equality)."""
    args = [expr(b, k) for k in form.children]
    span = form.span
    if op == "=":
        op = "=="
    if op in CMP_OPS:
        if len(args) != 2:
            raise NotTypeable(f"{op} takes 2 arguments", span)
        return binop(b, op, args[0], args[1], span)
    if not args:
        if op in ("+", "*"):
            return b.const(0 if op == "+" else 1, T.I64)
        raise NotTypeable(f"({op}) without arguments", span)
    if len(args) == 1:
        if op == "-":
            x = b.typed(args[0], span)
            if not x.type.is_numeric:
                raise NotTypeable(f"- on {x.type}", span)
            return b.emit(Op.NEG, (x,), x.type, span=span)
        if op == "/":
            return binop(b, "/", b.const(1.0, T.F64), args[0], span)
        x = b.typed(args[0], span)
        if not x.type.is_numeric:
            raise NotTypeable(f"{op} on {x.type}", span)
        return x
    acc = args[0]
    for y in args[1:]:
        acc = binop(b, op, acc, y, span)
    return acc


PREFIX = {"+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=", "="}


def assign(b: FnBuilder, form: GeneF) -> Value:
    target = form.head
    op = form.children[0].name  # type: ignore[attr-defined]
    if len(form.children) != 2:
        raise NotTypeable("malformed assignment", form.span)
    rhs_form = form.children[1]
    span = form.span
    if isinstance(target, Sym) and not target.is_complex:
        slot = b.lookup(target.name)
        if slot is None:
            raise NotTypeable(f"assigns global {target.name}", span)
        value = expr(b, rhs_form)
        if op != "=":
            cur = b.emit(Op.GET, ty=b.fn.locals[slot], attr=slot, span=span)
            value = binop(b, op[0], cur, value, span)
        b.typed(value, span)
        b.set_slot(slot, value, span)
        return value
    if isinstance(target, Sym) and target.is_complex:
        parts = target.parts
        base = b.lookup(parts[0])
        if base is not None and all(p.lstrip("-").isdigit() for p in parts[1:]):
            arr = b.emit(Op.GET, ty=b.fn.locals[base], attr=base, span=span)
            idx = [b.const(int(p), T.I64) for p in parts[1:]]
            value = expr(b, rhs_form)
            if op != "=":
                value = binop(b, op[0], load(b, arr, idx, span), value, span)
            return store(b, arr, idx, value, span)
    raise NotTypeable("assignment to this target is left to tier 0", span)


def load(b: FnBuilder, arr: Value, idx: list[Value], span: Span) -> Value:
    if arr.type.kind is not T.Kind.ARRAY:
        raise NotTypeable(f"indexing a {arr.type}", span)
    if len(idx) != arr.type.ndim or any(i.type != T.I64 for i in idx):
        raise NotTypeable(f"{len(idx)} int indexes into a {arr.type.ndim}-D array", span)
    assert arr.type.elem is not None
    if arr.type.elem in T.BUFFER_ONLY_ELEMS:
        raise NotTypeable(f"reads an element of a {arr.type} (tier 1 passes these to kernels)", span)
    return b.emit(Op.LOAD, (arr, *idx), arr.type.elem, span=span)


def store(b: FnBuilder, arr: Value, idx: list[Value], value: Value, span: Span) -> Value:
    if arr.type.kind is not T.Kind.ARRAY:
        raise NotTypeable(f"indexing a {arr.type}", span)
    if len(idx) != arr.type.ndim or any(i.type != T.I64 for i in idx):
        raise NotTypeable(f"{len(idx)} int indexes into a {arr.type.ndim}-D array", span)
    b.typed(value, span)
    if arr.type.elem in T.BUFFER_ONLY_ELEMS:
        raise NotTypeable(f"writes an element of a {arr.type} (tier 1 passes these to kernels)", span)
    if value.type != arr.type.elem:
        # NumPy converts on store; an int stored into a float array reads back as float
        if not (value.type == T.I64 and arr.type.elem == T.F64):
            raise NotTypeable(f"storing {value.type} into {arr.type}", span)
        value = to_f64(b, value, span)
    b.emit(Op.STORE, (arr, *idx, value), span=span)
    return value


# -- special forms -----------------------------------------------------------------------


def sf_var(b: FnBuilder, form: GeneF) -> Value:
    kids = form.children
    if not kids or not isinstance(kids[0], Sym) or kids[0].is_complex or len(kids) > 2:
        raise NotTypeable("var form not compiled", form.span)
    value = expr(b, kids[1]) if len(kids) == 2 else b.nil()
    if value.id in b.nil_reasons:
        b.typed(value, form.span)
    slot = b.declare(kids[0].name, value.type)
    if value.type != T.NIL:
        b.emit(Op.SET, (value,), attr=slot, span=form.span)
    return value


def _if_clauses(form: GeneF) -> tuple[list[tuple[Form | None, bool, list[Form]]], list[Form] | None]:
    """Split `(if c ...)` into [(cond, negate, body)] and the else body."""
    kids = list(form.children)
    clauses: list[tuple[Form | None, bool, list[Form]]] = []
    else_body: list[Form] | None = None
    keywords = {"then", "elif", "else"}
    has_kw = any(isinstance(k, Sym) and k.name in keywords for k in kids[1:])

    def take_cond() -> tuple[Form, bool]:
        neg = False
        if kids and isinstance(kids[0], Sym) and kids[0].name == "not" and len(kids) > 1:
            kids.pop(0)
            neg = True
        if not kids:
            raise NotTypeable("if without a condition", form.span)
        return kids.pop(0), neg

    cond: Form | None
    cond, neg = take_cond()
    if not has_kw:
        if len(kids) == 2:
            return [(cond, neg, [kids[0]])], [kids[1]]
        return [(cond, neg, kids)], None
    body: list[Form] = []
    while kids:
        k = kids.pop(0)
        if isinstance(k, Sym) and k.name == "then":
            continue
        if isinstance(k, Sym) and k.name == "elif":
            clauses.append((cond, neg, body))
            cond, neg = take_cond()
            body = []
        elif isinstance(k, Sym) and k.name == "else":
            clauses.append((cond, neg, body))
            else_body, body = list(kids), []
            kids.clear()
            cond = None
        else:
            body.append(k)
    if cond is not None:
        clauses.append((cond, neg, body))
    return clauses, else_body


def sf_if(b: FnBuilder, form: GeneF) -> Value:
    clauses, else_body = _if_clauses(form)
    ends = []
    for cond_form, neg, body in clauses:
        assert cond_form is not None
        c = truth(b, expr(b, cond_form), form.span)
        if neg:
            c = b.emit(Op.NOT, (c,), T.BOOL, span=form.span)
        then_b, next_b = b.new_block("then"), b.new_block("else")
        b.emit(Op.CBR, (c,), targets=(then_b.name, next_b.name), span=form.span)
        b.start(then_b)
        then_value = body_value(b, body)
        ends.append((b.cur, then_value))
        b.start(next_b)
    value = body_value(b, else_body) if else_body is not None else b.nil()
    ends.append((b.cur, value))
    return b.merge(ends, "endif", form.span)


def sf_do(b: FnBuilder, form: GeneF) -> Value:
    return body_value(b, form.children)


def sf_void(b: FnBuilder, form: GeneF) -> Value:
    body_value(b, form.children)
    return b.nil()


def sf_not(b: FnBuilder, form: GeneF) -> Value:
    if len(form.children) != 1:
        raise NotTypeable("not takes one argument", form.span)
    return b.emit(Op.NOT, (truth(b, expr(b, form.children[0]), form.span),), T.BOOL, span=form.span)


def sf_return(b: FnBuilder, form: GeneF) -> Value:
    value = expr(b, form.children[0]) if form.children else None
    if value is not None and value.id in b.nil_reasons:
        b.typed(value, form.span)
    # the block stays open: the builder adds its `ret` once the return type is known
    b.returns.append((b.cur, value if value is None or value.type != T.NIL else None))
    b.dead_block()
    return b.nil()


def _loop_body(b: FnBuilder, loop: Loop, body: list[Form] | tuple[Form, ...],
               site: tuple[str, Span] | None = None) -> None:
    if site is not None:  # the block each iteration enters once: profiling counts trips here
        b.fn.loops[b.cur.name] = site
    b.loops.append(loop)
    try:
        body_value(b, body)
    finally:
        b.loops.pop()
    b.jump(loop.cont)


def sf_while(b: FnBuilder, form: GeneF) -> Value:
    if not form.children:
        raise NotTypeable("while without a condition", form.span)
    head, body, exit_b = b.new_block("while"), b.new_block("body"), b.new_block("endwhile")
    b.jump(head.name)
    b.start(head)
    c = truth(b, expr(b, form.children[0]), form.span)
    if _is_true(b, c):
        b.emit(Op.BR, targets=(body.name,))  # `(while true ...)`: only break leaves
    else:
        b.emit(Op.CBR, (c,), targets=(body.name, exit_b.name), span=form.span)
    b.start(body)
    _loop_body(b, Loop(head.name, exit_b.name), form.children[1:], ("while", form.span))
    b.start(exit_b)
    return b.nil()


def _is_true(b: FnBuilder, c: Value) -> bool:
    return any(i.result is not None and i.result.id == c.id and i.op is Op.CONST and i.attr is True
               for i in b.cur.instrs)


def sf_loop(b: FnBuilder, form: GeneF) -> Value:
    kids = list(form.children)
    bindings: list[Form] = []
    if kids and isinstance(kids[0], Arr) and len(kids[0].items) % 2 == 0 and all(
        isinstance(s, Sym) for s in kids[0].items[0::2]
    ):
        bindings = list(kids.pop(0).items)  # type: ignore[attr-defined]  # seed form: fresh bindings every iteration
    body = b.new_block("loop")
    exit_b = b.new_block("endloop")
    b.jump(body.name)
    b.start(body)
    loop = Loop(body.name, exit_b.name)
    b.scopes.append({})
    for name, init in zip(bindings[0::2], bindings[1::2], strict=True):
        value = b.typed(expr(b, init), init.span)
        b.set_slot(b.declare(name.name, value.type), value, init.span)  # type: ignore[attr-defined]
    _loop_body(b, loop, kids, ("loop", form.span))
    b.scopes.pop()
    exit_ends = [(blk, v) for blk, v in loop.breaks]
    b.start(exit_b)
    if not exit_ends:
        return b.nil()
    # break values meet at the exit block; each break jumped there already
    types = {v.type if v is not None else T.NIL for _, v in exit_ends}
    if len(types) == 1 and T.NIL not in types:
        slot = f"$break.{len(b.fn.locals)}"
        ty = types.pop()
        b.fn.locals[slot] = ty
        from gene_jit.ir.nodes import Instr

        for blk, v in exit_ends:
            blk.instrs.insert(len(blk.instrs) - 1, Instr(Op.SET, None, (v,), slot))  # type: ignore[arg-type]
        return b.emit(Op.GET, ty=ty, attr=slot, span=form.span)
    if len(types) > 1:
        return b.nil("break values of different types")
    return b.nil()


def sf_break(b: FnBuilder, form: GeneF) -> Value:
    if not b.loops:
        raise NotTypeable("break outside a loop", form.span)
    value = expr(b, form.children[0]) if form.children else None
    if value is not None and value.type == T.NIL:
        b.typed(value, form.span) if value.id in b.nil_reasons else None
        value = None
    loop = b.loops[-1]
    loop.breaks.append((b.cur, value))
    b.emit(Op.BR, targets=(loop.exit,), span=form.span)
    b.dead_block()
    return b.nil()


def sf_continue(b: FnBuilder, form: GeneF) -> Value:
    if not b.loops:
        raise NotTypeable("continue outside a loop", form.span)
    b.emit(Op.BR, targets=(b.loops[-1].cont,), span=form.span)
    b.dead_block()
    return b.nil()


def _counted(b: FnBuilder, var: str | None, start: Value, stop: Value, step: int,
             inclusive: bool, body: list[Form] | tuple[Form, ...], span: Span,
             each: Callable[[Value], Value] | None = None) -> Value:
    """A loop of an int counter from start to stop by a constant step; `each` maps the
    counter to the loop variable's value (array elements)."""
    counter = b.temp_slot(start, span)
    limit = b.temp_slot(stop, span)
    head, body_b, latch, exit_b = (b.new_block(n) for n in ("for", "forbody", "fornext", "endfor"))
    b.jump(head.name)
    b.start(head)
    i = b.emit(Op.GET, ty=T.I64, attr=counter, span=span)
    end = b.emit(Op.GET, ty=T.I64, attr=limit, span=span)
    cmp = (Op.LE if inclusive else Op.LT) if step > 0 else (Op.GE if inclusive else Op.GT)
    c = b.emit(cmp, (i, end), T.BOOL, span=span)
    b.emit(Op.CBR, (c,), targets=(body_b.name, exit_b.name), span=span)
    b.start(body_b)
    b.scopes.append({})
    if var is not None:
        value = each(i) if each is not None else i
        b.set_slot(b.declare(var, value.type), value, span)
    _loop_body(b, Loop(latch.name, exit_b.name), body, ("for", span))
    b.scopes.pop()
    b.start(latch)
    i2 = b.emit(Op.GET, ty=T.I64, attr=counter, span=span)
    b.emit(Op.SET, (b.emit(Op.ADD, (i2, b.const(step, T.I64)), T.I64, span=span),), attr=counter)
    b.emit(Op.BR, targets=(head.name,))
    b.start(exit_b)
    return b.nil()


def sf_for(b: FnBuilder, form: GeneF) -> Value:
    kids = form.children
    if len(kids) < 3 or not isinstance(kids[0], Sym) or not (isinstance(kids[1], Sym) and kids[1].name == "in"):
        raise NotTypeable("only (for x in coll ...) is compiled", form.span)
    var, coll, body, span = kids[0].name, kids[2], kids[3:], form.span
    if isinstance(coll, GeneF) and len(coll.children) == 2 and isinstance(coll.children[0], Sym) \
            and coll.children[0].name == "..":
        lo, hi = expr(b, coll.head), expr(b, coll.children[1])  # type: ignore[arg-type]
        _ints(b, lo, hi, span)
        return _counted(b, var, lo, hi, 1, True, body, span)
    if isinstance(coll, GeneF) and isinstance(coll.head, Sym) and coll.head.name == "range" \
            and b.lookup("range") is None and b.program.is_builtin("range", b.key) and 1 <= len(coll.children) <= 3:
        args = coll.children
        step = 1
        if len(args) == 3:
            if not isinstance(args[2], Lit) or type(args[2].value) is not int or args[2].value == 0:
                raise NotTypeable("range with a non-constant step", coll.span)
            step = args[2].value
        if len(args) == 1:
            lo, hi = b.const(0, T.I64), expr(b, args[0])
        else:
            lo, hi = expr(b, args[0]), expr(b, args[1])
        _ints(b, lo, hi, span)
        return _counted(b, var, lo, hi, step, False, body, span)
    arr = b.typed(expr(b, coll), span)
    if arr.type.kind is T.Kind.ARRAY and arr.type.ndim == 1:
        n = b.emit(Op.LEN, (arr,), T.I64, attr=0, span=span)
        slot = b.temp_slot(arr, span)

        def element(i: Value) -> Value:
            a = b.emit(Op.GET, ty=arr.type, attr=slot, span=span)
            return load(b, a, [i], span)

        return _counted(b, var, b.const(0, T.I64), n, 1, False, body, span, element)
    raise NotTypeable(f"for over a {arr.type}", span)


def _ints(b: FnBuilder, lo: Value, hi: Value, span: Span) -> None:
    if b.typed(lo, span).type != T.I64 or b.typed(hi, span).type != T.I64:
        raise NotTypeable("a range over non-ints", span)


def sf_repeat(b: FnBuilder, form: GeneF) -> Value:
    if not form.children:
        raise NotTypeable("repeat without a count", form.span)
    n = b.typed(expr(b, form.children[0]), form.span)
    if n.type != T.I64:
        raise NotTypeable("repeat count is not an int", form.span)
    return _counted(b, None, b.const(0, T.I64), n, 1, False, form.children[1:], form.span)


SPECIAL: dict[str, Handler] = {
    "var": sf_var, "if": sf_if, "do": sf_do, "void": sf_void, "not": sf_not, "!": sf_not,
    "return": sf_return, "while": sf_while, "loop": sf_loop, "break": sf_break,
    "continue": sf_continue, "for": sf_for, "repeat": sf_repeat,
}
