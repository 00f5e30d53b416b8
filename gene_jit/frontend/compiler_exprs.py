"""Expressions: symbols, complex symbols, collections, quote, interpolation, calls.

`gene_form` lowers the core node (core.py) of a `(head ...)` form: selectors, ranges,
assignments, blocks, method calls, operators, gene data, and named heads, which are
special forms, operators, macros or plain calls unless a local variable shadows them.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable
from typing import Any

from gene_jit.frontend import compiler_ops as ops_c
from gene_jit.frontend import core, proofs
from gene_jit.frontend.compiler_core import (
    NIL,
    SPECIAL,
    Compiler,
    Ref,
    Result,
    assign,
    call,
    const,
    hcall,
    helper,
    load,
    pure,
    store,
    sym_name,
    syntax_error,
)
from gene_jit.frontend.core import segment_key
from gene_jit.frontend.forms import Form, GeneF, Interp, Lit, Quote, Sym
from gene_jit.runtime.registry import BUILTINS, Namespace

__all__ = ["NIL", "load", "segment_key"]


# ---------------------------------------------------------------- symbols


def symbol(c: Compiler, form: Sym) -> Result:
    name = form.name
    if form.is_complex:
        return complex_symbol(c, form)
    if name == "self":
        return pure(c.self_expr())
    if name == "_":
        return pure(helper("PLACEHOLDER"))
    if name == "$ns":
        return pure(c.ns_expr())
    if name == "$ex":
        return pure(c.ex_expr())
    if name.startswith("@") and len(name) > 1:
        keys: list[ast.expr] = [const(segment_key(k)) for k in name[1:].split("/")]
        return pure(call(helper("Selector"), keys))
    if name.endswith("...") and len(name) > 3:
        raise syntax_error(form, f"spread {name} is only valid inside an array or a call (a $render "
                                 f"template splices an array with %(for x in {name[:-3]} ($emit x)))")
    ref = c.resolve(name)
    return Result([], c.load_ref(ref), False, c.kind_of(name, ref), c.bounds_of(name, ref))


def complex_symbol(c: Compiler, form: Sym) -> Result:
    """`a/b/0`, `/x` (self's prop), `$ns/x`, `obj/.m` (a method call)."""
    parts = form.parts
    first = parts[0]
    if first == "":
        obj: ast.expr = c.self_expr()
    elif first == "$ns":
        obj = c.ns_expr()
        if not c.ns_stack and len(parts) > 1:
            parts = [first, module_key(c, parts[1]), *parts[2:]]
    else:
        obj = symbol(c, Sym(form.span, first)).expr
    # `model/forward` where the user's `model` holds a Model: the member lookup falls
    # back to the builtin namespace `model` (ops.get_member's third argument).
    fallback = first if isinstance(BUILTINS.get(first), Namespace) else None
    for seg in parts[1:]:
        obj = member_step(obj, seg, form, fallback)
        fallback = None
    return pure(obj)


def module_key(c: Compiler, name: str) -> str:
    """The module globals key of top-level `name`: a redeclared `var` lives under a fresh
    Python name (compiler_core.declare), and `$ns/x` means the newest binding."""
    py = c.env.get(" globals_map", {}).get(name)
    return py if isinstance(py, str) and not py.startswith(" ") else name


def member_step(obj: ast.expr, seg: str, form: Form, builtin_ns: str | None = None) -> ast.expr:
    if seg.startswith(".") and len(seg) > 1:
        return hcall("call_method", obj, const(seg[1:]))
    if seg == "":
        raise syntax_error(form, f"empty segment in {getattr(form, 'name', '')}")
    if builtin_ns is not None:
        return hcall("get_member", obj, const(segment_key(seg)), const(builtin_ns))
    return hcall("get_member", obj, const(segment_key(seg)))


# ---------------------------------------------------------------- collections


def spread_item(form: Form) -> Form | None:
    """The form spread by `xs...` or `(... xs)`, or None if `form` is not a spread."""
    if isinstance(form, Sym) and form.name.endswith("...") and len(form.name) > 3:
        return Sym(form.span, form.name[:-3])
    if isinstance(form, GeneF) and sym_name(form.head) == "..." and len(form.children) == 1:
        return form.children[0]
    return None


def items(
    c: Compiler, forms: tuple[Form, ...] | list[Form]
) -> tuple[list[ast.stmt], list[ast.expr]]:
    """Compile array elements / call arguments, with spreads as `*`."""
    results: list[Result] = []
    spreads: list[bool] = []
    for f in forms:
        inner = spread_item(f)
        results.append(c.compile(inner if inner is not None else f))
        spreads.append(inner is not None)
    stmts, exprs = c.seq(results)
    out = [
        ast.Starred(value=hcall("spread", e), ctx=ast.Load()) if s else e
        for e, s in zip(exprs, spreads, strict=False)
    ]
    return stmts, out


def array(c: Compiler, forms: tuple[Form, ...]) -> Result:
    stmts, exprs = items(c, forms)
    return Result(stmts, ast.List(elts=exprs, ctx=ast.Load()))


def mapping(c: Compiler, entries: tuple[tuple[str, Form], ...]) -> Result:
    stmts, exprs = c.seq([c.compile(v) for _, v in entries])
    return Result(stmts, ast.Dict(keys=[const(k) for k, _ in entries], values=list(exprs)))


def quote(c: Compiler, form: Form) -> Result:
    """`:x`: the value the form denotes as data (a fresh value on each evaluation)."""
    if isinstance(form, Sym):
        return pure(hcall("Symbol", const(form.name)))
    if isinstance(form, Lit):
        return pure(const(form.value))
    return pure(hcall("quote_form", const_form(c, form)))


def const_form(c: Compiler, form: Form) -> ast.expr:
    """An expression for `form` itself, kept in the module's table of forms."""
    table: list[Form] = c.env.setdefault(" forms", [])
    table.append(form)
    return ast.Subscript(value=helper("forms"), slice=const(len(table) - 1), ctx=ast.Load())


def const_span(c: Compiler, form: Form) -> ast.expr:
    """An expression for `form`'s span (where evaluated code is reported)."""
    return ast.Attribute(value=const_form(c, form), attr="span", ctx=ast.Load())


def interpolation(c: Compiler, form: Interp) -> Result:
    stmts, exprs = c.seq([c.compile(p) for p in form.parts])
    return Result(stmts, call(helper("interp"), exprs))


# ---------------------------------------------------------------- gene forms


def gene_form(c: Compiler, form: GeneF, value: bool) -> Result:
    node = core.resolve(form)
    return _LOWER[type(node)](c, node, value)


def _range(c: Compiler, node: core.Range, value: bool) -> Result:
    stmts, (a, b) = c.seq([c.compile(node.start), c.compile(node.end)])
    return Result(stmts, hcall("make_range", a, b))


def _assign(c: Compiler, node: core.Assign, value: bool) -> Result:
    from gene_jit.frontend.special_core import assignment

    return assignment(c, node)


def _lambda(c: Compiler, node: core.Lambda, value: bool) -> Result:
    from gene_jit.frontend.special_fn import block_lambda

    return block_lambda(c, node.form)


def _select(c: Compiler, node: core.Select, value: bool) -> Result:
    return selector(c, list(node.args))


def _operator(c: Compiler, node: core.Node, value: bool) -> Result:
    return ops_c.emit(c, node)


def _method(c: Compiler, node: core.MethodCall, value: bool) -> Result:
    return method_call(c, node.form, node.target, node.name, list(node.args))


def _gene_data(c: Compiler, node: core.GeneData, value: bool) -> Result:
    head = node.form.head
    if isinstance(head, Quote):
        return gene_data(c, node.form, quote(c, head.form))
    if head is None:
        return gene_data(c, node.form, pure(const(None)))
    return gene_data(c, node.form, pure(helper("PLACEHOLDER")))


def _named(c: Compiler, node: core.Named, value: bool) -> Result:
    res = named_head(c, node, value)
    return res if res is not None else plain_call(c, node.form)


def _call(c: Compiler, node: core.Call, value: bool) -> Result:
    return plain_call(c, node.form)


def _literal_head(c: Compiler, node: core.LiteralHead, value: bool) -> Result:
    return literal_head(c, node.form, node.head)


_LOWER: dict[type, Callable[[Compiler, Any, bool], Result]] = {
    core.Range: _range,
    core.Assign: _assign,
    core.Lambda: _lambda,
    core.Select: _select,
    core.Binary: _operator,
    core.Compare: _operator,
    core.Logic: _operator,
    core.Unary: _operator,
    core.MethodCall: _method,
    core.GeneData: _gene_data,
    core.LiteralHead: _literal_head,
    core.Named: _named,
    core.Call: _call,
}


def selector(c: Compiler, args: list[Form]) -> Result:
    stmts, exprs = c.seq([c.compile(a) for a in args])
    return Result(stmts, call(helper("select"), exprs))


def literal_head(c: Compiler, form: GeneF, head: Lit) -> Result:
    if isinstance(head.value, str):
        # `("n=" n)`: a string head concatenates display forms.
        stmts, exprs = items(c, form.children)
        return Result(stmts, call(helper("interp"), [const(head.value), *exprs]))
    if not form.children and not form.props:
        return pure(const(head.value))
    return gene_data(c, form, pure(const(head.value)))


def gene_data(c: Compiler, form: GeneF, type_res: Result) -> Result:
    """`(:t ^x 1 2)` / `(_ ...)`: gene data with evaluated props and children."""
    props = mapping(c, form.props)
    children = array(c, form.children)
    stmts, (t, p, ch) = c.seq([type_res, props, children])
    return Result(stmts, hcall("make_gene", t, p, ch))


def named_head(c: Compiler, node: core.Named, value: bool) -> Result | None:
    name, form = node.name, node.form
    ref = c.resolve(name)
    if ref.kind in ("local", "outer"):
        return None  # a lexical variable shadows special forms and operators
    if node.role is core.Role.SPECIAL:
        return SPECIAL[name](c, form, value)
    if node.role is core.Role.OPERATOR:
        return ops_c.prefix(c, form)
    if node.role is core.Role.METHOD:
        return method_call(c, form, None, name[1:], list(form.children))
    if name in c.macros or is_macro_value(c, name):
        from gene_jit.frontend.special_fn import macro_call

        return macro_call(c, form, name)
    return None


def is_macro_value(c: Compiler, name: str) -> bool:
    from gene_jit.runtime.ops import Macro
    from gene_jit.runtime.registry import BUILTINS

    val = c.env.get(name, BUILTINS.get(name))
    return isinstance(val, Macro)


# ---------------------------------------------------------------- calls


def kw_tail_start(children: tuple[Form, ...]) -> int:
    """Where a trailing run of seed-style `:kw value` pairs starts (len if none)."""
    n = len(children)
    best = n
    i = n - 2
    while i >= 0 and isinstance(children[i], Quote) and isinstance(children[i].form, Sym):  # type: ignore[attr-defined]
        best = i
        i -= 2
    return best


def call_args(
    c: Compiler, form: GeneF, children: list[Form], proven: list[bool] | None = None
) -> tuple[list[ast.stmt], list[ast.expr], list[ast.keyword]]:
    """Positional args (with spreads) and props as Python keyword arguments; `proven`
    gets, per positional arg, whether it is proven no boolean (ops_c.proof)."""
    results: list[Result] = []
    spreads: list[bool] = []
    for f in children:
        inner = spread_item(f)
        results.append(c.compile(inner if inner is not None else f))
        spreads.append(inner is not None)
    results.extend(c.compile(v) for _, v in form.props)
    if proven is not None:
        proven.extend(ops_c.proof(r, r.expr) is True and not s for r, s in zip(results, spreads, strict=False))
    stmts, exprs = c.seq(results)
    n = len(children)
    args = [
        ast.Starred(value=hcall("spread", e), ctx=ast.Load()) if s else e
        for e, s in zip(exprs[:n], spreads, strict=False)
    ]
    kws = [
        ast.keyword(arg=k.replace("-", "_"), value=e)
        for (k, _), e in zip(form.props, exprs[n:], strict=False)
    ]
    return stmts, args, kws


# Library calls that define a name take it unevaluated, as `var` does: `(ffi/defun f ...)`.
QUOTED_NAME_CALLS = frozenset({"ffi/defun", "ffi/defstruct", "ffi/callback-type"})


def plain_call(c: Compiler, form: GeneF) -> Result:
    ch = form.children
    if ch and isinstance(ch[0], Sym) and sym_name(form.head) in QUOTED_NAME_CALLS:
        ch = (Quote(ch[0].span, ch[0]), *ch[1:])
    tail = kw_tail_start(ch)
    fres = c.compile(form.head)  # type: ignore[arg-type]
    if tail < len(ch):
        return kw_tail_call(c, form, fres, list(ch[:tail]), list(ch[tail:]))
    if _late_bound(c, form.head):
        return late_call(c, form, fres)
    proven_args: list[bool] = []
    astmts, args, kws = call_args(c, form, list(ch), proven_args)
    stmts, fexpr = c.before(fres, astmts)
    if kws:
        # Props a Gene function does not declare are dropped by call_props.
        return Result(stmts, ast.Call(func=helper("call_props"), args=[fexpr, *args], keywords=kws))
    return _proven_call(c, form, Result(stmts, ast.Call(func=fexpr, args=args, keywords=kws)), proven_args)


def _proven_call(c: Compiler, form: GeneF, res: Result, proven_args: list[bool]) -> Result:
    """A call of a proven global function (frontend/proofs.py): its result is no boolean
    while the proof's flag holds; with arguments proven no booleans, a function with a
    second entry is called through it while the flag holds."""
    assert isinstance(res.expr, ast.Call)
    fexpr = res.expr.func
    if not (isinstance(fexpr, ast.Name) and isinstance(form.head, Sym) and not form.head.is_complex):
        return res
    ref = c.resolve(form.head.name, record=False)
    if ref.kind != "global" or ref.py != fexpr.id:
        return res
    flag = proofs.trusted(c, ref.py)
    if flag is None:
        return res
    inner = proofs.inner_of(c, ref.py)
    args = res.expr.args
    if inner is None or len(args) != inner.arity or not all(proven_args[i] for i in inner.params):
        return Result(res.stmts, res.expr, nonbool=flag)
    direct = ast.Call(func=c.load_ref(Ref("global", inner.py)), args=list(args), keywords=[])
    test = c.load_ref(Ref("global", flag))
    return Result(res.stmts, ast.IfExp(test=test, body=direct, orelse=res.expr), nonbool=flag)


def _late_bound(c: Compiler, head: Form | None) -> bool:
    """A call of a global name not defined when the call is compiled: it may become a
    macro defined later in the file, so the call decides at run time."""
    if not isinstance(head, Sym) or head.is_complex:
        return False
    ref = c.resolve(head.name)
    return (
        ref.kind == "global"
        and ref.py not in c.env
        and head.name not in BUILTINS
        and head.name not in c.defining
    )


def late_call(c: Compiler, form: GeneF, fres: Result) -> Result:
    """`(m a b)` with m unbound at compile time: a macro call (unevaluated arguments) if m
    is a macro when the call runs, else a plain call."""
    from gene_jit.frontend.special_fn import macro_args

    f = c.temp("f")
    t = c.temp()
    astmts, args, kws = call_args(c, form, list(form.children))
    plain: ast.expr = ast.Call(func=load(f), args=args, keywords=kws)
    if kws:
        plain = ast.Call(func=helper("call_props"), args=[load(f), *args], keywords=kws)
    margs, mkws = macro_args(c, form)
    mcall = ast.Call(func=ast.Attribute(value=load(f), attr="fn", ctx=ast.Load()), args=margs, keywords=mkws)
    test = ast.Compare(
        left=ast.Attribute(value=load(f), attr="__class__", ctx=ast.Load()),
        ops=[ast.Is()],
        comparators=[helper("Macro")],
    )
    node = ast.If(test=test, body=[assign(t, mcall)], orelse=[*astmts, assign(t, plain)])
    return Result([*fres.stmts, assign(f, fres.expr), node], load(t))


def kw_tail_call(
    c: Compiler, form: GeneF, fres: Result, pos: list[Form], tail: list[Form]
) -> Result:
    astmts, args, kws = call_args(c, form, pos)
    pairs = [(t.form.name, v) for t, v in zip(tail[::2], tail[1::2], strict=False)]  # type: ignore[attr-defined]
    tres = [c.compile(v) for _, v in pairs]
    stmts, exprs = c.seq([fres, Result(astmts, ast.List(elts=args, ctx=ast.Load())), *tres])
    tail_expr = ast.List(
        elts=[
            ast.Tuple(elts=[const(k), e], ctx=ast.Load())
            for (k, _), e in zip(pairs, exprs[2:], strict=False)
        ],
        ctx=ast.Load(),
    )
    props = ast.Dict(keys=[const(k.arg) for k in kws], values=[k.value for k in kws])
    return Result(stmts, hcall("call_kw_tail", exprs[0], exprs[1], tail_expr, props))


def method_call(
    c: Compiler, form: GeneF, target: Form | None, name: str, args: list[Form]
) -> Result:
    """`(obj .m a b)`; with no target, `(.m a)` calls a method of `self`."""
    tres = c.compile(target) if target is not None else pure(c.self_expr())
    if name in _FAST_METHODS and not form.props and not any(spread_item(a) for a in args):
        ares = [c.compile(a) for a in args]
        stmts, exprs = c.seq([tres, *ares])
        fast = _fast_method(c, name, tres.kind, exprs[0], [(r.kind, e) for r, e in zip(ares, exprs[1:], strict=True)])
        if fast is not None:
            return Result(stmts, fast[0], False, fast[1])
        return Result(stmts, hcall("call_method", exprs[0], const(name), *exprs[1:]))
    astmts, argx, kws = call_args(c, form, args)
    stmts, texpr = c.before(tres, astmts)
    if not kws:
        # an instance's own method is called from here: one frame per Gene call
        from gene_jit.frontend.compiler_ops import _class_is, _operand

        t1, t2 = _operand(c, texpr)
        m = c.temp("m")
        method = ast.NamedExpr(target=store(m), value=hcall("instance_method", t2, const(name)))
        found = ast.BoolOp(op=ast.And(), values=[
            _class_is(t1, "Instance"), ast.Compare(left=method, ops=[ast.IsNot()], comparators=[const(None)])])
        direct = ast.Call(func=load(m), args=[t2, *argx], keywords=[])
        slow = hcall("call_method", t2, const(name), *copy.deepcopy(argx))
        return Result(stmts, ast.IfExp(test=found, body=direct, orelse=slow))
    generic = ast.Call(func=helper("call_method"), args=[texpr, const(name), *argx], keywords=kws)
    return Result(stmts, generic)


_FAST_METHODS = {"append", "size", "length"}


def _fast_method(
    c: Compiler, name: str, kt: str | None, target: ast.expr, args: list[tuple[str | None, ast.expr]]
) -> tuple[ast.expr, str | None] | None:
    """Inline paths for the hottest string methods (same results as runtime/methods.py):
    `(s .append x)` on two strings is `s + x`; `(s .size)` on a string is len. Operands
    whose kind is known to be string need no class check."""
    from gene_jit.frontend.compiler_ops import _class_is, _operand

    if name == "append" and len(args) == 1:
        ka, arg = args[0]
        if kt == "str" and (ka == "str" or (isinstance(arg, ast.Constant) and type(arg.value) is str)):
            return ast.BinOp(left=target, op=ast.Add(), right=arg), "str"
        t1, t2 = _operand(c, target)
        a1, a2 = _operand(c, arg)
        tests = [_class_is(t1, "str")]
        if not (isinstance(arg, ast.Constant) and type(arg.value) is str) and ka != "str":
            tests.append(_class_is(a1, "str"))
        else:
            a2 = arg
        test = ast.BoolOp(op=ast.And(), values=tests) if len(tests) > 1 else tests[0]
        slow = hcall("call_method", t2, const(name), a2)
        return ast.IfExp(test=test, body=ast.BinOp(left=t2, op=ast.Add(), right=a2), orelse=slow), None
    if name in ("size", "length") and not args:
        if kt == "str":
            return hcall("len", target), "nat"
        t1, t2 = _operand(c, target)
        return ast.IfExp(
            test=_class_is(t1, "str"),
            body=hcall("len", t2),
            orelse=hcall("call_method", t2, const(name)),
        ), None
    return None

