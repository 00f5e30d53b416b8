"""Functions and macros: fn, fnx, fnxx, `->` blocks, macro, `$caller_eval`.

A Gene function is a Python `def`: positional parameters default to None (missing args
are nil), `*rest` collects `b...` (or swallows extra args), `^opt` params are keyword-only
and `**props` ignores unknown props. Defaults are evaluated at call time. After the def
runs, the name is rebound to `gene_def(fn_id, f)`, which registers the function with the
tier-1 seam (gene_jit.runtime.tiering).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from gene_jit.frontend import compiler_ops as ops_c
from gene_jit.frontend import proofs
from gene_jit.frontend.compiler_core import (
    Compiler,
    FnScope,
    Result,
    assign,
    call,
    const,
    hcall,
    load,
    pure,
    pyid,
    special,
    stamp,
    sym_name,
    syntax_error,
)
from gene_jit.frontend.compiler_exprs import is_macro_value
from gene_jit.frontend.compiler_types import infer_locals
from gene_jit.frontend.forms import Arr, Form, GeneF, Lit, Sym
from gene_jit.runtime import tiering
from gene_jit.runtime.registry import py_name

# Per function id: (name, form, params, has_varargs, kw-only names) for gene_def.
FN_META: dict[int, tuple[str, Form, list[str], bool, frozenset[str]]] = {}
# The function id of each def by its Python name, for its second entry (build_inner).
_public_ids: dict[str, int] = {}
# Per function id: the Gene names its body resolved outside itself, as (kind, Python
# name) of compiler_core.Ref; tier 1 resolves names through it.
FN_FREE: dict[int, dict[str, tuple[str, str]]] = {}


@dataclass
class Params:
    positional: list[tuple[str, Form | None]] = field(default_factory=list)  # name, default
    patterns: dict[int, Form] = field(default_factory=dict)  # index -> nested pattern
    self_props: dict[int, str] = field(default_factory=dict)  # index -> `/p` prop name
    rest: str | None = None
    kwonly: list[tuple[str, Form | None]] = field(default_factory=list)


def parse_params(form: Form | None, where: Form) -> Params:
    """ARGS: `_` | x | [a b] | [a = 1] | [a b...] | [^opt] | [[a b] c] | [/p]."""
    p = Params()
    if form is None or sym_name(form) == "_":
        return p
    if isinstance(form, Sym):
        p.positional.append((form.name, None))
        return p
    if not isinstance(form, Arr):
        raise syntax_error(where, "function parameters must be _, a name or an array like [a b]")
    items = list(form.items)
    i = 0
    while i < len(items):
        it = items[i]
        default: Form | None = None
        if i + 2 < len(items) + 1 and i + 1 < len(items) and sym_name(items[i + 1]) == "=":
            if i + 2 >= len(items):
                raise syntax_error(it, "a default needs a value: [a = 1]")
            default = items[i + 2]
            step = 3
        else:
            step = 1
        if isinstance(it, Arr):
            p.patterns[len(p.positional)] = it
            p.positional.append((f" arg{len(p.positional)}", default))
        elif isinstance(it, Sym) and it.name.startswith("^") and len(it.name) > 1:
            p.kwonly.append((it.name.lstrip("^"), default))
        elif isinstance(it, Sym) and it.name.endswith("...") and len(it.name) > 3:
            p.rest = it.name[:-3]
        elif isinstance(it, Sym) and it.name.startswith("/") and len(it.name) > 1:
            p.self_props[len(p.positional)] = it.name[1:]
            p.positional.append((f" arg{len(p.positional)}", default))
        elif isinstance(it, Sym):
            p.positional.append((it.name, default))
        else:
            raise syntax_error(it, "a parameter must be a name, [pattern], name... or ^name")
        i += step
    return p


def build_function(
    c: Compiler,
    name: str,
    params_form: Form | None,
    body: list[Form] | tuple[Form, ...],
    form: Form,
    *,
    method: tuple[str, str] | None = None,
    macro: bool = False,
    results: list[bool | str] | None = None,
) -> tuple[list[ast.stmt], str]:
    """Statements defining the function (def + registration) and the Python name
    holding it (a temp; callers bind the Gene name). `results` gets what the body
    proves of the function's results (see proofs.py)."""
    from gene_jit.frontend.special_core import bind_pattern

    p = parse_params(params_form, form)
    fn_id = tiering.new_fn_id()
    scope = FnScope(c.fn)
    pyname = c.temp("fn")
    with c.function(scope):
        if method is not None:
            scope.self_name = "self"
            scope.used.add("self")
            scope.method = method
        if macro:
            scope.caller = " caller"
        pos = [c.declare(n).py if not n.startswith(" ") else n for n, _ in p.positional]
        rest = c.declare(p.rest).py if p.rest else None
        kw = [(k, py_name(k)) for k, _ in p.kwonly]
        for k, py in kw:
            # `^top-k` binds the keyword argument top_k (registry.py's convention).
            scope.blocks[-1][k] = py
            scope.used.add(py)
        known = infer_locals(
            body,
            [n for n, _ in p.positional] + [k for k, _ in p.kwonly] + [p.rest or ""],
            lambda n: n in c.macros or is_macro_value(c, n),
        )
        scope.kinds, scope.stable, scope.counters = known.kinds, known.stable, known.counters
        pre: list[ast.stmt] = list(tiering.prologue(fn_id))
        for (_n, default), py in zip(p.positional, pos, strict=False):
            if default is not None:
                pre.extend(_default(c, py, default))
        for (_k, default), (_, py) in zip(p.kwonly, kw, strict=False):
            if default is not None:
                pre.extend(_default(c, py, default))
        if rest is not None:
            pre.append(assign(rest, call(hcall_name("list"), [load(rest)])))
        for idx, pat in p.patterns.items():
            pre.extend(bind_pattern(c, pat, load(pos[idx])))
        for idx, prop in p.self_props.items():
            pre.append(
                ast.Expr(value=hcall("set_member", load("self"), const(prop), load(pos[idx])))
            )
        res = c.body(list(body))
        if results is not None:
            results.append(proofs.body_done(c, ops_c.proof(res, res.expr)))
        stmts = [*pre, *res.stmts, *returns(res.expr)]
        decls: list[ast.stmt] = []
        if scope.globals:
            decls.append(ast.Global(names=sorted(scope.globals)))
        if scope.nonlocals:
            decls.append(ast.Nonlocal(names=sorted(scope.nonlocals)))
    first = ["self"] if method is not None else []
    args = ast.arguments(
        posonlyargs=[],
        args=[ast.arg(arg=a) for a in first + pos],
        # `*extra` swallows surplus arguments (GENE.md 3.5). It keeps CPython off its
        # exact-arity call path, but only ~9% on fib, and guarding call sites to retry a
        # surplus call instead costs the same: measured, kept.
        vararg=ast.arg(arg=rest or " extra"),
        kwonlyargs=[ast.arg(arg=py) for _, py in kw],
        kw_defaults=[const(None) for _ in kw],
        kwarg=None,  # calls with props filter them (ops.call_props): no dict per call
        defaults=[const(None) for _ in pos],
    )
    if macro:
        args.kwonlyargs.append(ast.arg(arg=" caller"))
        args.kw_defaults.append(const(None))
    fdef = ast.FunctionDef(
        name=pyname, args=args, body=decls + stmts, decorator_list=[], returns=None
    )
    stamp(fdef, form.span)
    FN_META[fn_id] = (
        name,
        form,
        [n for n, _ in p.positional],
        p.rest is not None,
        frozenset(k for k, _ in p.kwonly),
    )
    FN_FREE[fn_id] = {n: (r.kind, r.py) for n, r in scope.free.items()}
    reg = assign(pyname, hcall("gene_def", const(fn_id), load(pyname)))
    if results is not None:
        _public_ids[pyname] = fn_id
    fresh = sorted((scope.captures & c.fn.loop_decls) - scope.nonlocals - scope.globals)
    if fresh and c.fn.loops:
        return _per_iteration(c, fresh, [fdef, reg], pyname), pyname
    return [fdef, reg], pyname


def _per_iteration(
    c: Compiler, names: list[str], stmts: list[ast.stmt], pyname: str
) -> list[ast.stmt]:
    """A closure made in a loop body keeps that iteration's variables (GENE.md 2.8: each
    iteration is a scope): define it inside a factory that takes them as parameters."""
    args = ast.arguments(
        posonlyargs=[],
        args=[ast.arg(arg=n) for n in names],
        vararg=None,
        kwonlyargs=[],
        kw_defaults=[],
        kwarg=None,
        defaults=[],
    )
    mk = c.temp("mk")
    body = [*stmts, ast.Return(value=load(pyname))]
    fdef = ast.FunctionDef(name=mk, args=args, body=body, decorator_list=[], returns=None)
    return [fdef, assign(pyname, call(load(mk), [load(n) for n in names]))]


def returns(value: ast.expr) -> list[ast.stmt]:
    """`return a if t else b` as `if t: return a` then `return b`: CPython then returns
    from each branch instead of jumping to a shared return (fib's body has two)."""
    if isinstance(value, ast.IfExp):
        return [ast.If(test=value.test, body=returns(value.body), orelse=[]), *returns(value.orelse)]
    return [ast.Return(value=value)]


def hcall_name(name: str) -> ast.expr:
    return load(" " + name)


def _default(c: Compiler, py: str, default: Form) -> list[ast.stmt]:
    res = c.compile(default)
    test = ast.Compare(left=load(py), ops=[ast.Is()], comparators=[const(None)])
    return [ast.If(test=test, body=[*res.stmts, assign(py, res.expr)], orelse=[])]


def gene_def(fn_id: int, f: Any) -> Any:
    """Mark `f` as a Gene function and hand it to the tier-1 seam."""
    name, form, params, varargs, kwonly = FN_META[fn_id]
    f.__gene_name__ = name
    f.__gene_kwonly__ = (
        kwonly
        | {py_name(k) for k in kwonly}
        | ({" caller"} if " caller" in f.__code__.co_varnames else set())
    )
    f.__name__ = f.__qualname__ = name or "fn"
    info = tiering.FnInfo(name, form, params, f.__globals__, has_varargs=varargs, has_props=False,
                          extra={"free": FN_FREE.get(fn_id, {})})
    return tiering.register(fn_id, f, info)


def bind_name(c: Compiler, name: Form, pyname: str, form: Form) -> list[ast.stmt]:
    """Bind a defined fn/class/macro under `name`: local in a function (and in the
    namespace), global at top level, a member for `n/f` and `$ns/f`."""
    if isinstance(name, Lit) and isinstance(name.value, str):
        name = Sym(name.span, name.value)
    if not isinstance(name, Sym):
        raise syntax_error(form, "a definition's name must be a symbol")
    if name.is_complex:
        from gene_jit.frontend.special_core import set_path

        res = set_path(c, name, pure(load(pyname)))
        return [*res.stmts, ast.Expr(value=res.expr)]
    if c.fn.is_module:
        return c.store_ref(c.declare(name.name, fresh=False), load(pyname))
    stmts = c.store_ref(c.declare(name.name), load(pyname))
    stmts.append(ns_define(c, name.name, pyname))
    return stmts


def ns_define(c: Compiler, name: str, pyname: str) -> ast.stmt:
    """The namespace's member `name` := the definition, as any store to it from outside
    compiled code (what tier 0 proved about the old definition no longer holds)."""
    return ast.Expr(value=hcall("set_member", c.ns_expr(), const(name), load(pyname)))


@special("fn", "fnx", "fnxx", "macro")
def fn_form(c: Compiler, form: GeneF, value: bool) -> Result:
    head = sym_name(form.head)
    ch = list(form.children)
    name: Form | None = None
    if head == "fnxx":
        params: Form | None = None
    elif head == "fnx" or (ch and isinstance(ch[0], Arr)):
        if not ch:
            raise syntax_error(form, f"{head} expects ({head} ARGS body...)")
        params = ch.pop(0)
    else:
        if len(ch) < 2:
            raise syntax_error(form, f"{head} expects ({head} name ARGS body...)")
        name, params = ch[0], ch[1]
        ch = ch[2:]
    gname = name.name if isinstance(name, Sym) else (name.value if isinstance(name, Lit) else "")
    if head == "macro" and isinstance(name, Sym) and not name.is_complex:
        c.macros.add(name.name)
    # Declare the name first, so that the body's recursive calls see the new binding.
    ref = None
    if isinstance(name, Sym) and not name.is_complex and not c.fn.is_module:
        ref = c.declare(name.name)
    if isinstance(name, Sym) and head != "macro":
        c.defining.add(name.name)  # its recursive calls are not late-bound macro calls
    flag = proofs.start(c, name, str(head), form)
    inner = _inner_entry(c, flag, name, params, ch, form)
    results: list[bool | str] = []
    with proofs.building(c.resolve(name.name, record=False).py if inner and isinstance(name, Sym) else None):
        stmts, py = build_function(
            c, str(gname).split("/")[-1], params, ch, form, macro=head == "macro", results=results
        )
        fn_id = _public_ids.pop(py, None)
        if inner is not None:
            inner_stmts, proven = build_inner(c, inner, params, ch, form, fn_id)
            stmts = [*inner_stmts, *stmts]
            results = [results[0] if proven is True or proven == inner.flag else False]
    if head == "macro":
        stmts.append(assign(py, hcall("Macro", load(py), const(str(gname)))))
    elif any(k == "async" and isinstance(v, Lit) and v.value is True for k, v in form.props):
        stmts.append(assign(py, hcall("async_fn", load(py))))  # `(fn ^^async f ...)`
    if ref is not None:
        stmts.extend(c.store_ref(ref, load(py)))
        stmts.append(ns_define(c, str(gname), py))
    elif name is not None:
        stmts.extend(bind_name(c, name, py, form))
    if flag is not None and isinstance(name, Sym):
        stmts.extend(proofs.finish(c, flag, c.resolve(name.name, record=False).py, results[0]))
    return Result(stmts, load(py))


def _inner_entry(
    c: Compiler, flag: str | None, name: Form | None, params: Form | None, body: list[Form], form: Form
) -> proofs.Inner | None:
    """A second entry for a proven function with plain positional parameters."""
    if flag is None or not isinstance(name, Sym):
        return None
    p = parse_params(params, form)
    if p.rest or p.kwonly or p.patterns or p.self_props or any(d is not None for _, d in p.positional):
        return None
    names = [n for n, _ in p.positional]
    if any(n.startswith(" ") for n in names):
        return None
    stable = infer_locals(body, names, lambda n: n in c.macros or is_macro_value(c, n)).stable
    py = c.fn.find(name.name) or pyid(name.name)
    return proofs.inner_entry(c, flag, name.name, py, names, stable, body)


def build_inner(
    c: Compiler, inner: proofs.Inner, params: Form | None, body: list[Form], form: Form,
    fn_id: int | None,
) -> tuple[list[ast.stmt], bool | str]:
    """The def of `inner` (see proofs.Inner), registered under the public function's id
    so that a profile counts its calls as the function's; and what its body proves of
    its results."""
    p = parse_params(params, form)
    names = [n for n, _ in p.positional]
    scope = FnScope(c.fn)
    with c.function(scope):
        pos = [c.declare(n).py for n in names]
        known = infer_locals(body, names, lambda n: n in c.macros or is_macro_value(c, n))
        scope.kinds, scope.stable, scope.counters = known.kinds, known.stable, known.counters
        # the callers' arguments are proven no booleans: numbers or other kinds, which
        # the operators' own checks refuse as they do in the public entry
        scope.bounds = {names[i]: (None, None) for i in inner.params if names[i] in scope.stable}
        res = c.body(list(body))
        proven = proofs.body_done(c, ops_c.proof(res, res.expr))
        stmts = [*res.stmts, *returns(res.expr)]
        decls: list[ast.stmt] = []
        if scope.globals:
            decls.append(ast.Global(names=sorted(scope.globals)))
    args = ast.arguments(posonlyargs=[], args=[ast.arg(arg=a) for a in pos], vararg=None,
                         kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])
    fdef = ast.FunctionDef(name=inner.py, args=args, body=decls + stmts, decorator_list=[], returns=None)
    stamp(fdef, form.span)
    reg = [assign(inner.py, hcall("gene_def", const(fn_id), load(inner.py)))] if fn_id else []
    return [fdef, *reg], proven


def block_lambda(c: Compiler, form: GeneF) -> Result:
    """`(ARGS -> body...)`; `(-> body...)` has no params."""
    params = form.head if sym_name(form.head) != "->" else None
    body = form.children[1:] if sym_name(form.head) != "->" else form.children
    stmts, py = build_function(c, "", params, body, form)
    return Result(stmts, load(py))


@special("->")
def arrow_form(c: Compiler, form: GeneF, value: bool) -> Result:
    stmts, py = build_function(c, "", None, form.children, form)
    return Result(stmts, load(py))


def macro_call(c: Compiler, form: GeneF, name: str) -> Result:
    """`(m a b)` with m a macro: args as unevaluated values, plus the caller's env."""

    from gene_jit.frontend.special_core import write_back

    m = c.load_ref(c.resolve(name))
    fn = ast.Attribute(value=m, attr="fn", ctx=ast.Load())
    args, kws = macro_args(c, form)
    if c.fn.is_module:
        return Result([], ast.Call(func=fn, args=args, keywords=kws))
    env, t = c.temp("env"), c.temp()
    kws[-1] = ast.keyword(arg=" caller", value=load(env))
    stmts = [assign(env, kws_env(c, form)), assign(t, ast.Call(func=fn, args=args, keywords=kws))]
    return Result([*stmts, *write_back(c, env)], load(t))


def kws_env(c: Compiler, form: Form) -> ast.expr:
    """The `CallerEnv` a macro called by `form` receives."""
    from gene_jit.frontend.compiler_exprs import const_span
    from gene_jit.frontend.special_core import visible_locals

    return hcall("CallerEnv", hcall_name("env"), visible_locals(c), const_span(c, form))


def macro_args(c: Compiler, form: GeneF) -> tuple[list[ast.expr], list[ast.keyword]]:
    """A macro's arguments: the unevaluated children and props, and the caller's env."""
    from gene_jit.frontend.compiler_exprs import quote

    args = [quote(c, f).expr for f in form.children]
    kws = [ast.keyword(arg=k.replace("-", "_"), value=quote(c, v).expr) for k, v in form.props]
    kws.append(ast.keyword(arg=" caller", value=kws_env(c, form)))
    return args, kws


@special("$caller_eval")
def caller_eval_form(c: Compiler, form: GeneF, value: bool) -> Result:
    scope: FnScope | None = c.fn
    while scope is not None and scope.caller is None:
        scope = scope.parent
    if scope is None:
        raise syntax_error(form, "$caller_eval is only valid inside a macro")
    if len(form.children) != 1:
        raise syntax_error(form, "$caller_eval expects one argument")
    res = c.compile(form.children[0])
    assert scope.caller is not None
    caller = load(scope.caller)
    return Result(
        res.stmts, hcall("eval_values", caller, ast.List(elts=[res.expr], ctx=ast.Load()))
    )
