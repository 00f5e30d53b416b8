"""Expression and special-form handlers of the IR builder (a table of small handlers).

Each handler takes the `FnBuilder`, the form and returns the value of the form (a nil
value for statements). What a form means (infix precedence, comparison chains,
assignment operators, second-position keywords, special-form heads) comes from
gene_jit.frontend.core, the nodes tier 0 lowers too; operators follow
gene_jit.runtime.ops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gene_jit.frontend import core
from gene_jit.frontend.forms import Arr, Form, GeneF, Lit, Quote, Span, Sym
from gene_jit.ir import types as T
from gene_jit.ir.builder import FnBuilder, Loop, NotTypeable
from gene_jit.ir.nodes import Op, Value
from gene_jit.runtime.errors import GeneSyntaxError

# The IR instruction of each operator (which operators exist is core's business).
CMP_IR = {"<": Op.LT, "<=": Op.LE, ">": Op.GT, ">=": Op.GE, "==": Op.EQ, "!=": Op.NE}
ARITH_IR = {"+": Op.ADD, "-": Op.SUB, "*": Op.MUL}

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
    what = _LITERALS.get(type(form).__name__, "such forms")
    raise NotTypeable(f"{what} are not compiled (tier 1 takes numbers, bools and NumPy arrays)", form.span)


# the reader's forms a user writes, by the names the reason tells them by
_LITERALS = {"Arr": "array literals", "MapF": "map literals", "SetF": "set literals",
             "Interp": "interpolated strings", "Unquote": "unquotes (%x)"}


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
    if form.props:
        raise NotTypeable("properties in a call", form.span)
    node = syntax(form)
    lower = LOWER.get(type(node))
    if lower is None:
        raise NotTypeable(_LEFT_TO_TIER0[type(node)], form.span)
    return lower(b, node)


def syntax(form: GeneF, read: Callable[[GeneF], core.Expr] = core.resolve) -> core.Expr:
    """The core node of `form`; a malformed form stays in tier 0, which reports it."""
    try:
        return read(form)
    except GeneSyntaxError as err:
        raise NotTypeable(f"malformed form: {err.message}", form.span) from None


def named(b: FnBuilder, node: core.Named) -> Value:
    """`(name args...)`: a special form, an operator or a call; a variable of that name,
    local or captured, makes it a call (as in tier 0)."""
    name, form = node.name, node.form
    if b.outer_kind(name) == "mixed":
        raise NotTypeable(f"calls {b.outer(name)}", form.span)
    if b.lookup(name) is None and b.outer_kind(name) != "outer":
        if node.role is core.Role.SPECIAL:
            handler = SPECIAL.get(name)
            if handler is None:
                raise NotTypeable(f"{name} forms are left to tier 0", form.span)
            return handler(b, form)
        if node.role is core.Role.OPERATOR:
            return operator(b, syntax(form, core.prefix))
        if node.role is core.Role.METHOD:
            raise NotTypeable(f"calls method {name[1:]} of self", form.span)
    from gene_jit.ir.build_calls import call

    return call(b, name, form)


def literal_head(b: FnBuilder, node: core.LiteralHead) -> Value:
    """`(-1)`, `(2.5)`: the number (a head with children is data or concatenation)."""
    if node.form.children or isinstance(node.head.value, str):
        raise NotTypeable("gene data or string concatenation", node.span)
    return literal(b, node.head.value, node.span)


_LEFT_TO_TIER0: dict[type, str] = {
    core.Range: "a range used as a value",
    core.Select: "a selector",
    core.Lambda: "a block value",
    core.MethodCall: "a method call",
    core.GeneData: "gene data",
    core.Call: "call of a computed function",
}


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
    if op in ARITH_IR:
        x, y = numeric(b, op, x, y, span)
        return b.emit(ARITH_IR[op], (x, y), x.type, span=span)
    if op == "/":
        x, y = numeric(b, op, x, y, span)
        return b.emit(Op.DIV, (to_f64(b, x, span), to_f64(b, y, span)), T.F64, span=span)
    if op in ("==", "!="):
        return equality(b, op, x, y, span)
    if op in CMP_IR:
        numeric(b, op, x, y, span)  # an int meets a float unconverted: compared exactly
        return b.emit(CMP_IR[op], (x, y), T.BOOL, span=span)
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
    return b.emit(CMP_IR[op], (x, y), T.BOOL, span=span)


def truth(b: FnBuilder, v: Value, span: Span) -> Value:
    """Gene truthiness as a bool: only nil and false are falsy."""
    if v.type == T.BOOL:
        return v
    if v.type == T.NIL:
        if v.id in b.nil_reasons:
            b.typed(v, span)
        return b.const(False, T.BOOL)
    return b.const(True, T.BOOL)


def operator(b: FnBuilder, node: core.Expr) -> Value:
    """Lower an operator node (core.py); operands that are forms are expressions."""
    if isinstance(node, core.Binary):
        x = operator(b, node.left)
        return binop(b, node.op, x, operator(b, node.right), node.span)
    if isinstance(node, core.Compare):
        return _compare_from(b, operator(b, node.operands[0]), node.ops, node.operands[1:], node.span)
    if isinstance(node, core.Logic):
        left, right = node.left, node.right
        return logic(b, node.op, lambda: operator(b, left), lambda: operator(b, right), node.span)
    if isinstance(node, core.Unary):
        return unary(b, node)
    assert isinstance(node, Form), node
    return expr(b, node)


def _compare_from(b: FnBuilder, prev: Value, ops: tuple[str, ...], rest: tuple[core.Expr, ...],
                  span: Span) -> Value:
    """`(a < b < c)`: a short-circuit conjunction; each operand is evaluated once."""
    nxt = operator(b, rest[0])
    result = binop(b, ops[0], prev, nxt, span)
    if len(ops) == 1:
        return result
    slot = b.temp_slot(nxt, span)
    return logic(b, "&&", lambda: result, lambda: _compare_from(
        b, b.emit(Op.GET, ty=nxt.type, attr=slot, span=span), ops[1:], rest[1:], span), span)


def unary(b: FnBuilder, node: core.Unary) -> Value:
    span = node.span
    if node.op == "not":
        return b.emit(Op.NOT, (truth(b, operator(b, node.operand), span),), T.BOOL, span=span)
    x = b.typed(operator(b, node.operand), span)
    if not x.type.is_numeric:
        raise NotTypeable(f"{node.op} on {x.type}", span)
    return b.emit(Op.NEG, (x,), x.type, span=span) if node.op == "-" else x


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


def assign(b: FnBuilder, node: core.Assign) -> Value:
    target, span = node.target, node.span
    if not target.is_complex:
        slot = b.lookup(target.name)
        if slot is None:
            raise NotTypeable(f"assigns global {target.name}", span)
        value = _assigned(b, node, lambda: b.emit(Op.GET, ty=b.fn.locals[slot], attr=slot, span=span))
        b.typed(value, span)
        b.set_slot(slot, value, span)
        return value
    parts = target.parts
    base = b.lookup(parts[0])
    if base is not None and all(p.lstrip("-").isdigit() for p in parts[1:]):
        arr = b.emit(Op.GET, ty=b.fn.locals[base], attr=base, span=span)
        idx = [b.const(int(p), T.I64) for p in parts[1:]]
        return store(b, arr, idx, _assigned(b, node, lambda: load(b, arr, idx, span)), span)
    raise NotTypeable("assignment to this target is left to tier 0", span)


def _assigned(b: FnBuilder, node: core.Assign, old: Callable[[], Value]) -> Value:
    """The value `(target op value)` stores: the old value is read before the new one is
    computed, as tier 0 does."""
    if node.base is None:
        return expr(b, node.value)
    if node.base in core.LOGIC_OPS:
        return logic(b, node.base, old, lambda: expr(b, node.value), node.span)
    cur = old()
    return binop(b, node.base, cur, expr(b, node.value), node.span)


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


def sf_if(b: FnBuilder, form: GeneF) -> Value:
    node = syntax(form, core.if_node)
    assert isinstance(node, core.If)
    ends = []
    for clause in node.clauses:
        c = truth(b, expr(b, clause.cond), form.span)
        if clause.negate:
            c = b.emit(Op.NOT, (c,), T.BOOL, span=form.span)
        then_b, next_b = b.new_block("then"), b.new_block("else")
        b.emit(Op.CBR, (c,), targets=(then_b.name, next_b.name), span=form.span)
        b.start(then_b)
        then_value = body_value(b, clause.body)
        ends.append((b.cur, then_value))
        b.start(next_b)
    value = body_value(b, node.else_body) if node.else_body is not None else b.nil()
    ends.append((b.cur, value))
    return b.merge(ends, "endif", form.span)


def sf_do(b: FnBuilder, form: GeneF) -> Value:
    return body_value(b, form.children)


def sf_void(b: FnBuilder, form: GeneF) -> Value:
    body_value(b, form.children)
    return b.nil()


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
    if inclusive or abs(step) != 1:
        # the step past the end may leave int64: test for a next element before stepping
        more = b.emit(Op.NEXT, (i2, b.emit(Op.GET, ty=T.I64, attr=limit, span=span)), T.BOOL,
                      attr=(step, inclusive), span=span)
        bump = b.new_block("forstep")
        b.emit(Op.CBR, (more,), targets=(bump.name, exit_b.name), span=span)
        b.start(bump)
        i2 = b.emit(Op.GET, ty=T.I64, attr=counter, span=span)
    # in range after the test above (or, for a step of 1 toward an excluded end, i < end)
    b.emit(Op.SET, (b.emit(Op.ADD, (i2, b.const(step, T.I64)), T.I64, attr="nowrap", span=span),),
           attr=counter)
    b.emit(Op.BR, targets=(head.name,))
    b.start(exit_b)
    return b.nil()


def sf_for(b: FnBuilder, form: GeneF) -> Value:
    kids = form.children
    if len(kids) < 3 or not isinstance(kids[0], Sym) or not (isinstance(kids[1], Sym) and kids[1].name == "in"):
        raise NotTypeable("only (for x in coll ...) is compiled", form.span)
    var, coll, body, span = kids[0].name, kids[2], kids[3:], form.span
    node = syntax(coll) if isinstance(coll, GeneF) and not coll.props else None
    if isinstance(node, core.Range):
        lo, hi = expr(b, node.start), expr(b, node.end)
        _ints(b, lo, hi, span)
        return _counted(b, var, lo, hi, 1, True, body, span)
    if isinstance(node, core.Named) and isinstance(coll, GeneF) and node.name == "range" \
            and b.lookup("range") is None and b.outer("range") is None \
            and b.program.is_builtin("range", b.key) and 1 <= len(coll.children) <= 3:
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


def sf_set(b: FnBuilder, form: GeneF) -> Value:
    from gene_jit.ir.build_calls import set_index

    return set_index(b, form)


SPECIAL: dict[str, Handler] = {
    "var": sf_var, "if": sf_if, "do": sf_do, "void": sf_void,
    "return": sf_return, "while": sf_while, "loop": sf_loop, "break": sf_break,
    "continue": sf_continue, "for": sf_for, "repeat": sf_repeat, "$set": sf_set,
}

LOWER: dict[type, Callable[[FnBuilder, Any], Value]] = {
    core.Assign: assign,
    core.Binary: operator,
    core.Compare: operator,
    core.Logic: operator,
    core.Unary: operator,
    core.Named: named,
    core.LiteralHead: literal_head,
}
