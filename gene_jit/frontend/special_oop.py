"""Special forms for program structure: ns, class (with .ctor/.fn/super), new, enum,
import, `$parse` (try and throw live in special_try)."""

from __future__ import annotations

import ast

from gene_jit.frontend.compiler_core import (
    Compiler,
    FnScope,
    NsInfo,
    Result,
    assign,
    const,
    hcall,
    helper,
    load,
    ns_members,
    pure,
    special,
    store,
    sym_name,
    syntax_error,
)
from gene_jit.frontend.compiler_exprs import call_args
from gene_jit.frontend.forms import Arr, Form, GeneF, Lit, Sym
from gene_jit.frontend.special_fn import bind_name, build_function

_DEFINERS = {"fn", "class", "ns", "macro", "enum"}


def _defined_names(body: tuple[Form, ...] | list[Form]) -> set[str]:
    """Names a namespace body defines, so that its functions can refer to later ones."""
    names: set[str] = set()
    for f in body:
        if isinstance(f, GeneF) and f.children and isinstance(f.children[0], Sym):
            head = sym_name(f.head)
            first = f.children[0].name
            if (head in _DEFINERS or head == "var") and "/" not in first:
                names.add(first)
    return names


@special("ns")
def ns_form(c: Compiler, form: GeneF, value: bool) -> Result:
    ch = form.children
    if not ch or not isinstance(ch[0], Sym):
        raise syntax_error(form, "ns expects (ns name body...)")
    name = ch[0]
    var = c.temp("ns")
    parent = c.ns_expr()
    stmts: list[ast.stmt] = [
        assign(var, hcall("Namespace", const(name.parts[-1]), const(None), parent))
    ]
    stmts.extend(bind_name(c, name, var, form))
    info = NsInfo(var, _defined_names(ch[1:]))
    c.ns_stack.append(info)
    try:
        for f in ch[1:]:
            stmts.extend(c.stmts(f))
    finally:
        c.ns_stack.pop()
    return Result(stmts, load(var))


# ---------------------------------------------------------------- classes


@special("class")
def class_form(c: Compiler, form: GeneF, value: bool) -> Result:
    ch = list(form.children)
    if not ch or not isinstance(ch[0], Sym):
        raise syntax_error(form, "class expects (class Name [< Parent] body...)")
    name = ch[0]
    body = ch[1:]
    parent: ast.expr = const(None)
    stmts: list[ast.stmt] = []
    if body and sym_name(body[0]) == "<":
        if len(body) < 2:
            raise syntax_error(form, "class expects a parent after <")
        pres = c.compile(body[1])
        stmts.extend(pres.stmts)
        parent = pres.expr
        body = body[2:]
    var = c.temp("cls")
    stmts.append(assign(var, hcall("make_class", const(name.parts[-1]), parent)))
    stmts.extend(bind_name(c, name, var, form))
    for f in body:
        stmts.extend(_class_member(c, var, f))
    return Result(stmts, load(var))


def _class_member(c: Compiler, var: str, f: Form) -> list[ast.stmt]:
    head = sym_name(f.head) if isinstance(f, GeneF) else None
    if not isinstance(f, GeneF) or head is None:
        return c.stmts(f)
    ch = list(f.children)
    if head in (".ctor", ".fn", ".macro"):
        if head == ".ctor":
            mname, params, body = "ctor", (ch[0] if ch else None), ch[1:]
        else:
            if len(ch) < 2 or not isinstance(ch[0], (Sym, Lit)):
                raise syntax_error(f, f"{head} expects ({head} name ARGS body...)")
            mname = ch[0].name if isinstance(ch[0], Sym) else str(ch[0].value)
            params, body = ch[1], ch[2:]
        stmts, py = build_function(c, mname, params, body, f, method=(var, mname))
        target = ast.Subscript(
            value=ast.Attribute(value=load(var), attr="methods", ctx=ast.Load()),
            slice=const(mname),
            ctx=ast.Store(),
        )
        return [*stmts, ast.Assign(targets=[target], value=load(py))]
    if head == "fn" and ch and isinstance(ch[0], Sym) and "/" not in ch[0].name:
        stmts, py = build_function(c, ch[0].name, ch[1] if len(ch) > 1 else None, ch[2:], f)
        return [*stmts, _member_store(var, ch[0].name, load(py))]
    if head == "var" and ch and isinstance(ch[0], Sym) and ch[0].name.startswith("/"):
        res = c.compile(ch[1]) if len(ch) > 1 else pure(const(None))
        return [*res.stmts, _member_store(var, ch[0].name[1:], res.expr)]
    return c.stmts(f)


def _member_store(var: str, key: str, value: ast.expr) -> ast.stmt:
    target = ast.Subscript(value=ns_members(var), slice=const(key), ctx=ast.Store())
    return ast.Assign(targets=[target], value=value)


def _method_scope(c: Compiler) -> FnScope | None:
    scope: FnScope | None = c.fn
    while scope is not None and scope.method is None:
        scope = scope.parent
    return scope


@special("super")
def super_form(c: Compiler, form: GeneF, value: bool) -> Result:
    """`(super args...)` calls the parent's method of the same name; `(super .m args)`."""
    scope = _method_scope(c)
    if scope is None or scope.method is None:
        raise syntax_error(form, "super is only valid inside a method")
    var, mname = scope.method
    args = list(form.children)
    if args and isinstance(args[0], Sym) and args[0].name.startswith(".") and len(args[0].name) > 1:
        mname = args.pop(0).name[1:]  # type: ignore[attr-defined]
    stmts, argx, kws = call_args(c, form, args)
    fn = ast.Call(
        func=helper("super_call"), args=[load(var), const(mname), load("self"), *argx], keywords=kws
    )
    return Result(stmts, fn)


@special("new")
def new_form(c: Compiler, form: GeneF, value: bool) -> Result:
    if not form.children:
        raise syntax_error(form, "new expects (new Class args...)")
    cres = c.compile(form.children[0])
    astmts, argx, kws = call_args(c, form, list(form.children[1:]))
    stmts, cls = c.before(cres, astmts)
    return Result(stmts, ast.Call(func=helper("new"), args=[cls, *argx], keywords=kws))


@special("enum")
def enum_form(c: Compiler, form: GeneF, value: bool) -> Result:
    ch = list(form.children)
    if not ch or not isinstance(ch[0], Sym):
        raise syntax_error(form, "enum expects (enum Name a b = 5 c)")
    entries: list[tuple[str, object]] = []
    names = ch[1:]
    props = dict(form.props)
    if "values" in props and isinstance(props["values"], Arr):
        names = list(props["values"].items)
    i = 0
    while i < len(names):
        n = names[i]
        if not isinstance(n, Sym):
            raise syntax_error(n, "an enum member must be a name")
        if i + 2 < len(names) + 1 and i + 1 < len(names) and sym_name(names[i + 1]) == "=":
            v = names[i + 2] if i + 2 < len(names) else None
            if not isinstance(v, Lit) or type(v.value) is not int:
                raise syntax_error(n, "an enum value must be an int literal: (enum E a = 5)")
            entries.append((n.name, v.value))
            i += 3
        else:
            entries.append((n.name, None))
            i += 1
    var = c.temp("enum")
    spec = ast.List(
        elts=[ast.Tuple(elts=[const(k), const(v)], ctx=ast.Load()) for k, v in entries],
        ctx=ast.Load(),
    )
    stmts: list[ast.stmt] = [assign(var, hcall("make_enum", const(ch[0].name), spec))]
    stmts.extend(bind_name(c, ch[0], var, form))
    return Result(stmts, load(var))


# ---------------------------------------------------------------- modules


def _import_specs(form: GeneF) -> tuple[Form, list[Sym]]:
    ch = list(form.children)
    if ch and sym_name(ch[0]) == "from":
        if len(ch) < 2:
            raise syntax_error(form, 'import expects (import from "path" a b)')
        return ch[1], [x for x in ch[2:] if isinstance(x, Sym)]
    names: list[Sym] = []
    for i, x in enumerate(ch):
        if sym_name(x) == "from":
            if i + 1 >= len(ch):
                raise syntax_error(form, "import expects a path after from")
            return ch[i + 1], names
        if isinstance(x, Arr) and names and names[-1].name.endswith("/"):
            # `n/[a b:y]` reads as the symbol `n/` then an array: n/a and n/b as y
            prefix = names.pop().name
            for item in x.items:
                if not isinstance(item, Sym):
                    raise syntax_error(item, "import expects names inside n/[...]")
                names.append(Sym(item.span, prefix + item.name))
            continue
        if not isinstance(x, Sym):
            raise syntax_error(x, 'import expects names, then from "path"')
        names.append(x)
    raise syntax_error(form, 'import expects (import a b from "path")')


@special("import")
def import_form(c: Compiler, form: GeneF, value: bool) -> Result:
    path, names = _import_specs(form)
    pres = c.compile(path)
    mod = c.temp("mod")
    stmts: list[ast.stmt] = [
        *pres.stmts,
        assign(mod, hcall("import_module", helper("env"), pres.expr)),
    ]
    for n in names:
        text, _, alias = n.name.partition(":")
        parts = text.split("/")
        value_expr: ast.expr = load(mod)
        for part in parts:
            value_expr = hcall("get_member", value_expr, const(part))
        stmts.extend(c.store_ref(c.declare(alias or parts[-1]), value_expr))
    return Result(stmts, load(mod))


@special("$parse")
def parse_form(c: Compiler, form: GeneF, value: bool) -> Result:
    if len(form.children) != 1:
        raise syntax_error(form, '$parse expects one string: ($parse "src")')
    res = c.compile(form.children[0])
    return Result(res.stmts, hcall("parse_value", res.expr))


__all__ = ["store"]


# ---------------------------------------------------------------- async


@special("async")
def async_form(c: Compiler, form: GeneF, value: bool) -> Result:
    """`(async e)`: a future completed with e's value (failed if e raises)."""
    from gene_jit.frontend.special_fn import build_function

    stmts, py = build_function(c, "", None, form.children, form)
    return Result(stmts, hcall("run_async", load(py)))


@special("await")
def await_form(c: Compiler, form: GeneF, value: bool) -> Result:
    if not form.children:
        raise syntax_error(form, "await expects (await future...)")
    stmts, exprs = c.seq([c.compile(f) for f in form.children])
    return Result(stmts, hcall("await_values", *exprs))
