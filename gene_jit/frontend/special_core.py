"""Special forms for variables and control flow: var, assignment, if, do, void, loop,
while, break, continue, return, case, match, eval, `$set`, `$with` (`for` and `repeat`
live in special_loops)."""

from __future__ import annotations

import ast

from gene_jit.frontend import compiler_ops as ops_c
from gene_jit.frontend import core, proofs
from gene_jit.frontend.compiler_core import (
    NIL,
    Compiler,
    LoopCtx,
    Result,
    assign,
    const,
    hcall,
    helper,
    load,
    pure,
    special,
    stamp,
    sym_name,
    syntax_error,
)
from gene_jit.frontend.compiler_exprs import complex_symbol, member_step, module_key
from gene_jit.frontend.core import segment_key
from gene_jit.frontend.forms import Arr, Form, GeneF, Lit, Quote, Sym
from gene_jit.frontend.special_try import check_exit

# ---------------------------------------------------------------- variables


@special("var")
def var_form(c: Compiler, form: GeneF, value: bool) -> Result:
    ch = form.children
    if not ch or len(ch) > 2 or not isinstance(ch[0], Sym):
        raise syntax_error(form, "var expects (var name [value])")
    res = c.compile(ch[1]) if len(ch) == 2 else pure(const(None))
    target = ch[0]
    if target.is_complex:
        return set_path(c, target, res)
    ref = c.declare(target.name)
    stmts = [*res.stmts, *c.store_ref(ref, res.expr)]
    return Result(stmts, c.load_ref(ref) if value else const(None))


def set_path(c: Compiler, target: Sym, res: Result) -> Result:
    """`a/b/c = v`: evaluate `a/b`, then set member `c`."""
    parts = target.parts
    obj = (
        complex_symbol(c, Sym(target.span, "/".join(parts[:-1]))).expr
        if len(parts) > 2 or parts[0]
        else c.self_expr()
    )
    if len(parts) == 2 and parts[0] == "$ns":
        obj = c.ns_expr()
        if c.ns_stack:  # `(var $ns/x 1)` in an (ns ...) body: its code then finds x by name
            c.ns_stack[-1].members.add(parts[1])
    key = const(segment_key(parts[-1]))
    if len(parts) == 2 and parts[0] == "$ns" and not c.ns_stack:
        key = const(module_key(c, parts[1]))
    stmts, (o, v) = c.seq([pure(obj), res])
    return Result(stmts, hcall("set_member", o, key, v))


def assignment(c: Compiler, node: core.Assign) -> Result:
    """`(x = v)`, `(x += v)` ..., with targets x, a/0, m/key, /p, ns/x, $ns/x."""
    op, target, rhs = node.op, node.target, node.value
    if target.is_complex:
        if op == "=":
            return set_path(c, target, c.compile(rhs))
        parts = target.parts
        base = Sym(target.span, "/".join(parts[:-1])) if len(parts) > 2 or parts[0] else None
        obj = c.compile(base).expr if base is not None else c.self_expr()
        t = c.temp()
        new = _combine(c, node, pure(member_step(load(t), parts[-1], target)))
        stmts = [assign(t, obj), *new.stmts]
        return Result(stmts, hcall("set_member", load(t), const(segment_key(parts[-1])), new.expr))
    ref = c.resolve(target.name)
    kind = c.kind_of(target.name, ref)
    old = Result([], c.load_ref(ref), False, kind, c.bounds_of(target.name, ref))
    res = c.compile(rhs) if op == "=" else _combine(c, node, old)
    stmts = [*res.stmts, *c.store_ref(ref, res.expr)]
    return Result(stmts, c.load_ref(ref), False, kind)


def _combine(c: Compiler, node: core.Assign, old: Result) -> Result:
    base, rhs = node.base, node.value
    if base in core.LOGIC_OPS:
        return ops_c.logic(c, old, lambda: c.compile(rhs), base == "&&")
    assert base in core.ARITH_OPS, node
    return ops_c.binary(c, base, old, c.compile(rhs), node.span)


# ---------------------------------------------------------------- if


@special("if")
def if_form(c: Compiler, form: GeneF, value: bool) -> Result:
    node = core.if_node(form)
    clauses = [(cl.negate, cl.cond, list(cl.body)) for cl in node.clauses]
    return _if_chain(c, clauses, list(node.else_body or ()), value)


def _test(c: Compiler, neg: bool, cond: Form) -> tuple[list[ast.stmt], ast.expr]:
    res = c.compile(cond)
    if neg:
        res = ops_c.negation(c, res)
    return res.stmts, c.truth(res)


def _if_chain(
    c: Compiler, clauses: list[tuple[bool, Form, list[Form]]], else_body: list[Form], value: bool
) -> Result:
    neg, cond, body = clauses[0]
    tstmts, test = _test(c, neg, cond)
    then_facts, else_facts = narrowing(c, neg, cond)
    with c.block(), c.facts(then_facts):
        then = c.body(body, value)
    with c.block(), c.facts(else_facts):
        other = (
            _if_chain(c, clauses[1:], else_body, value)
            if len(clauses) > 1
            else c.body(else_body, value)
        )
    nonbool = ops_c.both_nonbool(then, other)
    if value and not then.stmts and not other.stmts:
        return Result(
            tstmts,
            ast.IfExp(test=test, body=then.expr, orelse=other.expr),
            then.is_bool and other.is_bool,
            nonbool=nonbool,
        )
    if not value:
        node = ast.If(test=test, body=c.discard(then) or [ast.Pass()], orelse=c.discard(other))
        return Result([*tstmts, node], const(None))
    t = c.temp()
    node = ast.If(
        test=test,
        body=[*then.stmts, assign(t, then.expr)],
        orelse=[*other.stmts, assign(t, other.expr)],
    )
    return Result([*tstmts, node], load(t), then.is_bool and other.is_bool, nonbool=nonbool)


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
Facts = dict[str, tuple[int | None, int | None]]


def narrowing(c: Compiler, neg: bool, cond: Form) -> tuple[Facts, Facts]:
    """What `(x < 10)` (any of < <= > >= against an int literal, x a parameter never
    assigned) proves about x in the then and in the else branch: a number within bounds
    (the comparison raises for anything else). Used to drop overflow checks, and the
    boolean guards of operators: `(x < y)` proves both parameters numbers."""
    node = core.resolve(cond) if isinstance(cond, GeneF) and not cond.props else None
    if not (isinstance(node, core.Compare) and len(node.ops) == 1 and node.ops[0] in _FLIP):
        return {}, {}
    (left, right), op = node.operands, node.ops[0]
    numbers = {n: c.fn.bounds.get(n, (None, None)) for n in _stable_names(c, (left, right))}
    if isinstance(left, Lit) and isinstance(right, Sym):
        left, right, op = right, left, _FLIP[op]
    if not (isinstance(left, Sym) and isinstance(right, Lit) and type(right.value) is int):
        return numbers, dict(numbers)
    name, k = left.name, right.value
    if name not in numbers:
        return numbers, dict(numbers)
    # x < k: x <= k-1 when true, x >= k when false (for ints; a float result of
    # arithmetic never overflows, so int bounds are all that matter)
    upper = {"<": k - 1, "<=": k}.get(op)
    lower = {">": k + 1, ">=": k}.get(op)
    if upper is not None:
        yes: tuple[int | None, int | None] = (None, upper)
        no: tuple[int | None, int | None] = (upper + 1, None)
    else:
        assert lower is not None
        yes, no = (lower, None), (None, lower - 1)
    if neg:
        yes, no = no, yes
    old = numbers[name]
    return {**numbers, name: _meet(old, yes)}, {**numbers, name: _meet(old, no)}


def _stable_names(c: Compiler, operands: tuple[object, ...]) -> list[str]:
    """The operands that are parameters never assigned (what a test proves of them holds
    for the rest of the function)."""
    return [
        o.name
        for o in operands
        if isinstance(o, Sym) and o.name in c.fn.stable and c.resolve(o.name, record=False).kind == "local"
    ]


def loop_test_numbers(c: Compiler, cond: Form) -> tuple[list[ast.stmt], Facts]:
    """A `while` test `(i < n)` (one ordering comparison of names and literals) with a
    parameter never assigned, `n`: the parameter is checked once before the loop (a
    boolean raises the error the first test would raise, with the same operands, and
    nothing runs in between), and is a number inside the loop, where the operators
    need no boolean guard for it."""
    node = core.resolve(cond) if isinstance(cond, GeneF) and not cond.props else None
    if not (isinstance(node, core.Compare) and len(node.ops) == 1 and node.ops[0] in _FLIP):
        return [], {}
    operands = [o for o in node.operands if isinstance(o, (Sym, Lit))]
    if len(operands) != 2 or any(isinstance(o, Sym) and o.is_complex for o in operands):
        return [], {}
    names = [n for n in _stable_names(c, tuple(operands)) if n not in c.fn.bounds]
    if not names:
        return [], {}
    a, b = (c.compile(o).expr for o in operands)
    slow = ops_c.CMP_SLOW[node.ops[0]]
    is_bool = [ops_c.is_bool(load(c.resolve(n).py)) for n in names]
    test = is_bool[0] if len(is_bool) == 1 else ast.BoolOp(op=ast.Or(), values=is_bool)
    check = ast.If(test=test, body=[ast.Expr(value=hcall(slow, a, b))], orelse=[])
    stamp(check, cond.span)
    return [check], {n: (None, None) for n in names}


def _meet(a: tuple[int | None, int | None], b: tuple[int | None, int | None]) -> tuple[int | None, int | None]:
    lo = b[0] if a[0] is None else (a[0] if b[0] is None else max(a[0], b[0]))
    hi = b[1] if a[1] is None else (a[1] if b[1] is None else min(a[1], b[1]))
    return lo, hi


@special("do")
def do_form(c: Compiler, form: GeneF, value: bool) -> Result:
    with c.block():
        return c.body(form.children, value)


@special("void")
def void_form(c: Compiler, form: GeneF, value: bool) -> Result:
    stmts: list[ast.stmt] = []
    for f in form.children:
        stmts.extend(c.stmts(f))
    return Result(stmts, const(None))


# ---------------------------------------------------------------- loops


def _loop_body(
    c: Compiler,
    forms: list[Form] | tuple[Form, ...],
    ctx: LoopCtx,
    pre: list[ast.stmt] | None = None,
) -> list[ast.stmt]:
    c.fn.loops.append(ctx)
    try:
        with c.block():
            stmts = list(pre or [])
            for f in forms:
                stmts.extend(c.stmts(f))
    finally:
        c.fn.loops.pop()
    return stmts or [ast.Pass()]


def _is_binding_array(f: Form) -> bool:
    return (
        isinstance(f, Arr)
        and len(f.items) % 2 == 0
        and len(f.items) > 0
        and all(isinstance(x, Sym) for x in f.items[::2])
    )


@special("loop")
def loop_form(c: Compiler, form: GeneF, value: bool) -> Result:
    """`(loop body...)` forever until `(break [v])`; `(loop [x e ...] body)` rebinds
    x to e at the top of every iteration."""
    ch = list(form.children)
    result = c.temp("loop") if value else None
    ctx = LoopCtx(result)
    c.fn.loops.append(ctx)
    try:
        with c.block():
            stmts: list[ast.stmt] = []
            if ch and _is_binding_array(ch[0]):
                binds = ch.pop(0).items  # type: ignore[attr-defined]
                for name, init in zip(binds[::2], binds[1::2], strict=False):
                    res = c.compile(init)
                    stmts.extend(res.stmts)
                    stmts.extend(c.store_ref(c.declare(name.name), res.expr))
            for f in ch:
                stmts.extend(c.stmts(f))
    finally:
        c.fn.loops.pop()
    loop = ast.While(test=const(True), body=stmts or [ast.Pass()], orelse=[])
    if result is None:
        return Result([loop], const(None))
    return Result([assign(result, const(None)), loop], load(result))


@special("while")
def while_form(c: Compiler, form: GeneF, value: bool) -> Result:
    if not form.children:
        raise syntax_error(form, "while expects (while cond body...)")
    pre, numbers = loop_test_numbers(c, form.children[0])
    with c.facts(numbers):
        cond = c.compile(form.children[0])
        test = c.truth(cond)
        ctx = LoopCtx(None)
        if not cond.stmts:
            body = _loop_body(c, form.children[1:], ctx)
            return Result([*pre, ast.While(test=test, body=body, orelse=[])], const(None))
        exit_ = ast.If(test=ast.UnaryOp(op=ast.Not(), operand=test), body=[ast.Break()], orelse=[])
        body = _loop_body(c, form.children[1:], ctx, [*cond.stmts, exit_])
    return Result([*pre, ast.While(test=const(True), body=body, orelse=[])], const(None))


@special("break")
def break_form(c: Compiler, form: GeneF, value: bool) -> Result:
    if not c.fn.loops:
        raise syntax_error(form, "break outside a loop")
    check_exit(c, form, "break")
    ctx = c.fn.loops[-1]
    stmts: list[ast.stmt] = []
    if form.children:
        res = c.compile(form.children[0])
        stmts.extend(res.stmts)
        if ctx.result is not None:
            stmts.append(assign(ctx.result, res.expr))
        else:
            stmts.append(ast.Expr(value=res.expr))
    stmts.append(ast.Break())
    return Result(stmts, const(None))


@special("continue")
def continue_form(c: Compiler, form: GeneF, value: bool) -> Result:
    if not c.fn.loops:
        raise syntax_error(form, "continue outside a loop")
    check_exit(c, form, "continue")
    return Result([ast.Continue()], const(None))


@special("return")
def return_form(c: Compiler, form: GeneF, value: bool) -> Result:
    if c.fn.is_module:
        raise syntax_error(form, "return outside a function")
    check_exit(c, form, "return")
    proofs.note_return(c)
    res = c.compile(form.children[0]) if form.children else pure(const(None))
    return Result([*res.stmts, ast.Return(value=res.expr)], const(None))


# ---------------------------------------------------------------- case and match


@special("case")
def case_form(c: Compiler, form: GeneF, value: bool) -> Result:
    """`(case v when x body... when [a b] body... else body...)`."""
    ch = list(form.children)
    if not ch:
        raise syntax_error(form, "case expects (case value when x body... else body...)")
    subject = c.compile(ch[0])
    stmts, v = c.to_temp(subject)
    whens: list[tuple[Form, list[Form]]] = []
    else_body: list[Form] = []
    i = 1
    while i < len(ch):
        kw = sym_name(ch[i])
        if kw == "when" and i + 1 < len(ch):
            pat = ch[i + 1]
            j = i + 2
            while j < len(ch) and sym_name(ch[j]) not in ("when", "else"):
                j += 1
            whens.append((pat, ch[i + 2 : j]))
            i = j
        elif kw == "else":
            else_body = ch[i + 1 :]
            break
        else:
            raise syntax_error(ch[i], "case expects when or else here")
    res = _case_chain(c, v, whens, else_body, value)
    return Result(stmts + res.stmts, res.expr)


def _case_chain(
    c: Compiler,
    v: ast.expr,
    whens: list[tuple[Form, list[Form]]],
    else_body: list[Form],
    value: bool,
) -> Result:
    if not whens:
        with c.block():
            return c.body(else_body, value)
    pat, body = whens[0]
    pres = c.compile(pat)
    test = hcall("case_matches", v, pres.expr)
    with c.block():
        then = c.body(body, value)
    other = _case_chain(c, v, whens[1:], else_body, value)
    t = c.temp()
    node = ast.If(
        test=test,
        body=[*then.stmts, assign(t, then.expr)],
        orelse=[*other.stmts, assign(t, other.expr)],
    )
    return Result([*pres.stmts, node], load(t))


@special("match")
def match_form(c: Compiler, form: GeneF, value: bool) -> Result:
    """`(match x v)` binds x; `(match [a b] arr)` destructures (nested, `rest...`)."""
    if len(form.children) != 2:
        raise syntax_error(form, "match expects (match pattern value)")
    res = c.compile(form.children[1])
    stmts, v = c.to_temp(res)
    stmts.extend(bind_pattern(c, form.children[0], v))
    return Result(stmts, v)


def bind_pattern(c: Compiler, pattern: Form, v: ast.expr) -> list[ast.stmt]:
    """Statements binding the names in `pattern` (a name or nested array) from `v`."""
    if isinstance(pattern, Sym):
        if pattern.name == "_":
            return []
        return c.store_ref(c.declare(pattern.name), v)
    if not isinstance(pattern, Arr):
        raise syntax_error(pattern, "a pattern is a name or an array of patterns")
    out: list[ast.stmt] = []
    for i, p in enumerate(pattern.items):
        if isinstance(p, Sym) and p.name.endswith("...") and len(p.name) > 3:
            out.extend(c.store_ref(c.declare(p.name[:-3]), hcall("rest_from", v, const(i))))
            break
        item = hcall("get_member", v, const(i)) if not isinstance(p, Arr) else None
        if item is None:
            t = c.temp()
            out.append(assign(t, hcall("get_member", v, const(i))))
            out.extend(bind_pattern(c, p, load(t)))
        else:
            out.extend(bind_pattern(c, p, item))
    return out


# ---------------------------------------------------------------- eval and friends


def visible_locals(c: Compiler) -> ast.Dict:
    """`{gene name: value}` of every lexical variable visible here (for eval)."""
    names: dict[str, str] = {}
    scopes = []
    scope = c.fn
    while scope is not None:
        scopes.append(scope)
        scope = scope.parent  # type: ignore[assignment]
    for s in reversed(scopes):
        if s.is_module:
            continue
        for block in s.blocks:
            names.update(block)
    return ast.Dict(keys=[const(k) for k in names], values=[load(v) for v in names.values()])


@special("eval")
def eval_form(c: Compiler, form: GeneF, value: bool) -> Result:
    stmts, exprs = c.seq([c.compile(f) for f in form.children])
    env = c.temp("env")
    t = c.temp()
    from gene_jit.frontend.compiler_exprs import const_span

    span = const_span(c, form)
    stmts.append(assign(env, hcall("CallerEnv", helper("env"), visible_locals(c), span)))
    stmts.append(assign(t, hcall("eval_values", load(env), ast.List(elts=exprs, ctx=ast.Load()))))
    return Result([*stmts, *write_back(c, env)], load(t))


def write_back(c: Compiler, env: str) -> list[ast.stmt]:
    """Copy the caller's locals back from the CallerEnv `env` after an eval (or a macro's
    `$caller_eval`) that may have assigned them."""
    out: list[ast.stmt] = []
    for name in visible_locals(c).keys:
        assert isinstance(name, ast.Constant) and isinstance(name.value, str)
        members = ast.Attribute(value=load(env), attr="locals", ctx=ast.Load())
        item = ast.Subscript(value=members, slice=name, ctx=ast.Load())
        out.extend(c.store_ref(c.resolve(name.value), item))
    return out


@special("$set")
def set_form(c: Compiler, form: GeneF, value: bool) -> Result:
    if len(form.children) != 3:
        raise syntax_error(form, "$set expects ($set target @key value)")
    stmts, exprs = c.seq([c.compile(f) for f in form.children])
    return Result(stmts, hcall("set_selected", *exprs))


@special("$with", "$tap")
def with_form(c: Compiler, form: GeneF, value: bool) -> Result:
    """`($with v body...)` runs body with self = v; `$tap` returns v instead."""
    if not form.children:
        raise syntax_error(form, f"{sym_name(form.head)} expects a value and a body")
    res = c.compile(form.children[0])
    t = c.temp("self")
    saved = c.fn.self_name
    c.fn.self_name = t
    rest = list(form.children[1:])
    tap = sym_name(form.head) == "$tap"
    # `($tap v :name body...)`: the body also sees the value as `name`
    first = rest[0] if tap and rest else None
    named = first.form if isinstance(first, Quote) and isinstance(first.form, Sym) and not first.form.is_complex \
        else None
    if named is not None:
        rest.pop(0)
    try:
        with c.block():
            pre = c.store_ref(c.declare(named.name), load(t)) if named is not None else []
            body = c.body(rest, value)
    finally:
        c.fn.self_name = saved
    stmts = [*res.stmts, assign(t, res.expr), *pre]
    if tap:
        return Result(stmts + c.discard(body), load(t))
    return Result(stmts + body.stmts, body.expr)


__all__ = ["NIL"]
