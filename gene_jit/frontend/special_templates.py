"""Templates (GENE.md 3.6): `($render t)` and `($emit v...)`.

A template is quoted data with unquotes in it: `:(%f %b)`, `:[a %xs]`, `:{^k %(g y)}`.
As a value it is plain data (convert.py: `%x` is the gene `(% x)`, printed `%x`), so it
can be stored, passed around and rendered later. `$render` copies the template and puts
in place of each `%e` the value of `e`, evaluated when the render runs, in the scope of
the `$render` form: later assignments to the names a template mentions show in the next
render. `%_e` evaluates `e` and leaves nothing in its place.

`($emit v...)`, while an unquote of a render is being evaluated, adds values that take
the unquote's place among the children or items around it (its own value is dropped):
`($render :[0 %_(for x in xs ($emit x (x * 10)))])`. Outside a render it is an error,
and so is an emit into a place that holds one value (a head, a prop, a map value).

Two ways in, one behaviour: `($render :literal)` is compiled in place (the unquotes
become ordinary code of the enclosing function), and `($render value)` walks the value
at run time and evaluates each unquote as `eval` does, with the caller's locals visible
and assignable. A quote inside a template is data like the rest (`:x` as data is x),
so the unquotes inside it are rendered too.
"""

from __future__ import annotations

import ast
from typing import Any

from gene_jit.frontend.compiler_core import (
    Compiler,
    Result,
    assign,
    const,
    hcall,
    helper,
    load,
    pure,
    special,
    syntax_error,
)
from gene_jit.frontend.forms import Arr, Form, GeneF, MapF, Quote, SetF, Span, Unquote
from gene_jit.runtime.builtins import gene_builtin
from gene_jit.runtime.errors import GeneError
from gene_jit.runtime.values import Gene, GeneSet, Symbol

UNQUOTE = Symbol("%")
UNQUOTE_DISCARD = Symbol("%_")

# One list per unquote being evaluated, innermost last: where `$emit` puts its values.
_EMITS: list[list[Any]] = []

_NO_PLACE = "$emit inside a template's head, prop or map value: there is no list to splice into"


# ---------------------------------------------------------------- emit (run time)


def emit_push() -> int:
    _EMITS.append([])
    return len(_EMITS) - 1


def emit_drop(token: int) -> None:
    del _EMITS[token:]


def emit_take(token: int, value: Any, discard: bool) -> list[Any]:
    """What an unquote among items leaves: the emitted values, else its value (none for
    `%_`)."""
    emitted = _EMITS[token]
    if emitted:
        return list(emitted)
    return [] if discard else [value]


def emit_one(token: int, value: Any) -> Any:
    """An unquote in a one-value place (head, prop, map value)."""
    if _EMITS[token]:
        raise GeneError(_NO_PLACE)
    return value


@gene_builtin("$emit")
def emit(*values: Any) -> None:
    """`($emit v...)`: splice values in place of the unquote being rendered."""
    if not _EMITS:
        raise GeneError("$emit outside a $render template")
    _EMITS[-1].extend(values)


# ---------------------------------------------------------------- $render, compiled


@special("$render")
def render_form(c: Compiler, form: GeneF, value: bool) -> Result:
    """`($render :(f %x))` compiles the template in place; `($render t)` renders the
    value of t at run time."""
    if len(form.children) != 1:
        raise syntax_error(form, "$render expects one template: ($render :(f %x)) or ($render t)")
    arg = form.children[0]
    if isinstance(arg, Quote):
        return _template(c, arg.form)
    from gene_jit.frontend.compiler_exprs import const_span
    from gene_jit.frontend.special_core import visible_locals, write_back

    stmts, v = c.to_temp(c.compile(arg))
    env, t = c.temp("env"), c.temp()
    span = const_span(c, form)
    stmts.append(assign(env, hcall("CallerEnv", helper("env"), visible_locals(c), span)))
    stmts.append(assign(t, hcall("render_value", load(env), v)))
    return Result([*stmts, *write_back(c, env)], load(t))


def _template(c: Compiler, f: Form) -> Result:
    """The value of template part `f` in a one-value place."""
    if isinstance(f, Unquote):
        if f.discard:
            raise syntax_error(f, "%_ leaves no value; it stands among children or items only")
        return _unquote(c, f, "emit_one")
    if isinstance(f, Arr):
        return _items(c, f.items)
    if isinstance(f, SetF):
        res = _items(c, f.items)
        return Result(res.stmts, hcall("GeneSet", res.expr))
    if isinstance(f, MapF):
        stmts, exprs = c.seq([_template(c, v) for _, v in f.entries])
        return Result(stmts, ast.Dict(keys=[const(k) for k, _ in f.entries], values=exprs))
    if isinstance(f, GeneF):
        head = _template(c, f.head) if f.head is not None else pure(const(None))
        props = [_template(c, v) for _, v in f.props]
        stmts, exprs = c.seq([head, *props, _items(c, f.children)])
        pmap = ast.Dict(keys=[const(k) for k, _ in f.props], values=exprs[1:-1])
        return Result(stmts, hcall("make_gene", exprs[0], pmap, exprs[-1]))
    if isinstance(f, Quote):
        return _template(c, f.form)  # as data `:x` is x, so a render reaches inside
    from gene_jit.frontend.compiler_exprs import quote

    return quote(c, f)


def _items(c: Compiler, forms: tuple[Form, ...]) -> Result:
    """A list of template parts; an unquote splices what it leaves (emit_take)."""
    results: list[Result] = []
    spliced: list[bool] = []
    for f in forms:
        results.append(_unquote(c, f, "emit_take") if isinstance(f, Unquote) else _template(c, f))
        spliced.append(isinstance(f, Unquote))
    stmts, exprs = c.seq(results)
    elts: list[ast.expr] = [
        ast.Starred(value=e, ctx=ast.Load()) if s else e
        for e, s in zip(exprs, spliced, strict=True)
    ]
    return Result(stmts, ast.List(elts=elts, ctx=ast.Load()))


def _unquote(c: Compiler, f: Unquote, take: str) -> Result:
    """`tok = emit_push(); try: out = take(tok, e[, discard]) finally: emit_drop(tok)`."""
    tok, out = c.temp("emit"), c.temp()
    res = c.compile(f.form, value=not f.discard)
    args: list[ast.expr] = [load(tok), res.expr]
    if take == "emit_take":
        args.append(const(f.discard))
    body = [*res.stmts, assign(out, hcall(take, *args))]
    guarded = ast.Try(
        body=body,
        handlers=[],
        orelse=[],
        finalbody=[ast.Expr(value=hcall("emit_drop", load(tok)))],
    )
    return Result([assign(tok, hcall("emit_push")), guarded], load(out))


# ---------------------------------------------------------------- $render of a value


def render_value(caller: Any, template: Any) -> Any:
    """`($render t)` for a template value t, evaluated in the caller's scope."""
    from gene_jit.frontend.convert import origin_of

    return _Renderer(caller).one(template, origin_of(template))


class _Renderer:
    """One render walk. Each part is walked beside the form it came from (when known),
    so that an error inside an unquote names the unquote's line."""

    def __init__(self, caller: Any) -> None:
        self.caller = caller
        self.active: set[int] = set()

    def one(self, v: Any, hint: Form | None) -> Any:
        if isinstance(hint, Quote):
            hint = hint.form
        if _is_unquote(v):
            if v.type is UNQUOTE_DISCARD:
                raise GeneError("%_ leaves no value; it stands among children or items only")
            token = emit_push()
            try:
                return emit_one(token, self.evaluate(v, hint))
            finally:
                emit_drop(token)
        if not isinstance(v, (list, dict, Gene, GeneSet)):
            return v
        if id(v) in self.active:
            raise GeneError("cannot render a template that contains itself")
        self.active.add(id(v))
        try:
            return self.container(v, hint)
        finally:
            self.active.discard(id(v))

    def container(self, v: Any, hint: Form | None) -> Any:
        if isinstance(v, list):
            return self.items(v, hint.items if isinstance(hint, Arr) else None)
        if isinstance(v, GeneSet):
            return GeneSet(
                self.items(list(v.items), hint.items if isinstance(hint, SetF) else None)
            )
        if isinstance(v, dict):
            by_key = dict(hint.entries) if isinstance(hint, MapF) else {}
            return {k: self.one(x, by_key.get(k)) for k, x in v.items()}
        g = hint if isinstance(hint, GeneF) else None
        head = self.one(v.type, g.head if g else None)
        pforms = dict(g.props) if g else {}
        props = {k: self.one(x, pforms.get(k)) for k, x in v.props.items()}
        return Gene(head, props, self.items(v.children, g.children if g else None))

    def items(self, values: list[Any], hints: tuple[Form, ...] | None) -> list[Any]:
        if hints is None or len(hints) != len(values):
            hints = (None,) * len(values)  # type: ignore[assignment]
        out: list[Any] = []
        for x, h in zip(values, hints, strict=True):  # type: ignore[arg-type]
            if not _is_unquote(x):
                out.append(self.one(x, h))
                continue
            token = emit_push()
            try:
                out.extend(emit_take(token, self.evaluate(x, h), x.type is UNQUOTE_DISCARD))
            finally:
                emit_drop(token)
        return out

    def evaluate(self, unquote: Gene, hint: Form | None) -> Any:
        from gene_jit.frontend.compiler import eval_values
        from gene_jit.frontend.convert import remember_origin
        from gene_jit.runtime.ops import CallerEnv

        code = unquote.children[0]
        span: Span | None = self.caller.span
        if isinstance(hint, Unquote):
            remember_origin(code, hint.form)
            if hint.span.line > 0:
                span = hint.span
        where = CallerEnv(self.caller.globals, self.caller.locals, span)
        return eval_values(where, [code])


def _is_unquote(v: Any) -> bool:
    return (
        type(v) is Gene
        and (v.type is UNQUOTE or v.type is UNQUOTE_DISCARD)
        and not v.props
        and len(v.children) == 1
    )


HELPERS: dict[str, Any] = {
    " render_value": render_value,
    " emit_push": emit_push,
    " emit_drop": emit_drop,
    " emit_take": emit_take,
    " emit_one": emit_one,
}
