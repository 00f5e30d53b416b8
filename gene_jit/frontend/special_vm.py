"""`(compile [name] [params] instr...)`: a function made of `$vm/...` instructions.

The instructions and what they do are in gene_jit/runtime/vm.py. An instruction written
in the form is data; `%e` in place of one evaluates e when the form runs and splices its
value in: one instruction, or an array of them (so programs can build instruction lists).
A list written out in full is verified when the form is compiled, so a bad one is a
`compile error` at the instruction before anything runs; one with splices is verified
when the form runs. The result is a function value, also bound to `name` as `fn` binds.
Tier 1 leaves the form to tier 0.
"""

from __future__ import annotations

import ast

from gene_jit.frontend import core
from gene_jit.frontend.compiler_core import (
    Compiler,
    Result,
    assign,
    const,
    hcall,
    helper,
    load,
    special,
)
from gene_jit.frontend.convert import form_to_value
from gene_jit.frontend.forms import GeneF, Span, Unquote
from gene_jit.runtime import vm


@special("compile")
def compile_form(c: Compiler, form: GeneF, value: bool) -> Result:
    from gene_jit.frontend.compiler_exprs import const_span, quote

    node = core.compile_node(form)
    literal = [f for f in node.code if not isinstance(f, Unquote)]
    for f in literal:
        vm.decode(form_to_value(f), f.span)
    if len(literal) == len(node.code):
        vm.verify([(form_to_value(f), f.span) for f in node.code], form.span)
    stmts: list[ast.stmt] = []
    items: list[ast.expr] = []
    for f in node.code:
        res = c.compile(f.form) if isinstance(f, Unquote) else quote(c, f)
        stmts.extend(res.stmts)
        t = c.temp()
        stmts.append(assign(t, res.expr))
        items.append(load(t))
    name = node.name.parts[-1] if node.name is not None else ""
    py = c.temp("vmfn")
    build = hcall(
        "vm_function",
        const(name),
        const(tuple(p.name for p in node.params)),
        ast.List(elts=items, ctx=ast.Load()),
        ast.List(elts=[const_span(c, f) for f in node.code], ctx=ast.Load()),
        const_span(c, form),
        helper("env"),
    )
    stmts.append(assign(py, build))
    if node.name is not None:
        from gene_jit.frontend.special_fn import bind_name

        stmts.extend(bind_name(c, node.name, py, form))
    return Result(stmts, load(py))


def vm_function(
    name: str,
    params: tuple[str, ...],
    items: list[object],
    spans: list[Span],
    where: Span,
    env: dict[str, object],
) -> object:
    """The function of an instruction list whose splices have their values now."""
    program = vm.verify(vm.flatten(items, list(spans)), where)
    return vm.make_function(name, params, program, env)


HELPERS = {" vm_function": vm_function}
