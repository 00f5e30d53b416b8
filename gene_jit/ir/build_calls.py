"""Calls in the IR builder: other Gene functions (direct native calls, typed by building
the callee for the argument types) and the builtins tier 1 knows natively (math, `len`,
`get`, number conversions). Anything else called by name stays in tier 0, with the name
in the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeGuard

from gene_jit.frontend import core
from gene_jit.frontend.compiler_core import pyid
from gene_jit.frontend.forms import Form, GeneF, Lit, Span, Sym
from gene_jit.ir import types as T
from gene_jit.ir.build_exprs import expr, load, store, syntax, to_f64
from gene_jit.ir.builder import FnBuilder, NotTypeable
from gene_jit.ir.nodes import Op, Value

FLOAT_MATH = {"sqrt", "exp", "log", "sin", "cos", "tan"}


def call(b: FnBuilder, name: str, form: GeneF) -> Value:
    """`(name args...)` with `name` bound as tier 0 binds it: a local or captured variable
    shadows every global and builtin of that name."""
    if b.lookup(name) is not None:
        raise NotTypeable(f"calls local value {name}", form.span)
    outer = b.outer(name)
    if outer is not None:
        raise NotTypeable(f"calls {outer}", form.span)
    target = b.program.resolve(name, b.key)
    if target is None:
        root = name.split("/", 1)[0] if "/" in name[1:] else name
        key = b.global_key(root)
        if key is not None and key != pyid(root):  # foreign calls resolve by the name
            raise NotTypeable(f"calls {name}, a redeclared global", form.span)
        from gene_jit.ir.ffi_calls import foreign_call

        direct = foreign_call(b, name, form)
        if direct is not None:
            return direct
        from gene_jit.py.tier1 import python_callee

        raise NotTypeable(python_callee(b, name) or f"calls {name}, which tier 1 cannot type",
                          form.span)
    if isinstance(target, str):
        handler = BUILTIN_CALLS.get(target)
        if handler is None:
            raise NotTypeable(f"calls builtin {name}", form.span)
        return handler(b, form)
    args = [b.typed(expr(b, k), k.span) for k in form.children]
    sig = tuple(a.type for a in args)
    ir_name, ret = b.program.callee(target, sig, form.span)
    b.fn.callees.add(ir_name)
    return b.emit(Op.CALL, tuple(args), ret, attr=ir_name, span=form.span)


def _args(b: FnBuilder, form: GeneF, n: int | None = None) -> list[Value]:
    if n is not None and len(form.children) != n:
        raise NotTypeable(f"{_name(form)} with {len(form.children)} arguments", form.span)
    return [b.typed(expr(b, k), k.span) for k in form.children]


def _is_call_of(form: Form, name: str) -> TypeGuard[GeneF]:
    """`form` is `(name args...)` as core reads it: not infix, not an assignment."""
    if not isinstance(form, GeneF) or form.props:
        return False
    node = syntax(form)
    return isinstance(node, core.Named) and node.name == name


def _builtin_here(b: FnBuilder, name: str) -> bool:
    """`name` means the builtin of that name here (no variable or global shadows it)."""
    return b.lookup(name) is None and b.outer(name) is None and b.program.is_builtin(name, b.key)


def _name(form: GeneF) -> str:
    return form.head.name if isinstance(form.head, Sym) else "?"


def _num(v: Value, form: GeneF) -> Value:
    if not v.type.is_numeric:
        raise NotTypeable(f"{_name(form)} of a {v.type}", form.span)
    return v


def float_math(b: FnBuilder, form: GeneF) -> Value:
    (x,) = _args(b, form, 1)
    return b.emit(Op.MATH, (to_f64(b, _num(x, form), form.span),), T.F64, attr=_name(form), span=form.span)


def pow_call(b: FnBuilder, form: GeneF) -> Value:
    x, y = _args(b, form, 2)
    if _num(x, form).type == T.I64 and _num(y, form).type == T.I64:
        raise NotTypeable("pow of two ints (int or float result) is left to tier 0", form.span)
    sp = form.span
    return b.emit(Op.MATH, (to_f64(b, x, sp), to_f64(b, y, sp)), T.F64, attr="pow", span=sp)


def abs_call(b: FnBuilder, form: GeneF) -> Value:
    (x,) = _args(b, form, 1)
    return b.emit(Op.MATH, (_num(x, form),), x.type, attr="abs", span=form.span)


def extreme(b: FnBuilder, form: GeneF) -> Value:
    args = _args(b, form)
    if len(args) < 2 or len({a.type for a in args}) != 1 or not args[0].type.is_numeric:
        raise NotTypeable(f"{_name(form)} needs 2+ numbers of one type here", form.span)
    acc = args[0]
    for y in args[1:]:
        acc = b.emit(Op.MATH, (acc, y), acc.type, attr=_name(form), span=form.span)
    return acc


def rounding(b: FnBuilder, form: GeneF) -> Value:
    (x,) = _args(b, form, 1)
    if _num(x, form).type == T.I64:
        return x
    # the builtin's own name: a float it cannot turn into an int names it
    return b.emit(Op.MATH, (x,), T.I64, attr=_name(form), span=form.span)


def to_float(b: FnBuilder, form: GeneF) -> Value:
    (x,) = _args(b, form, 1)
    return to_f64(b, _num(x, form), form.span)


def length(b: FnBuilder, form: GeneF) -> Value:
    (a,) = _args(b, form, 1)
    if a.type.kind is not T.Kind.ARRAY:
        raise NotTypeable(f"len of a {a.type}", form.span)
    return b.emit(Op.LEN, (a,), T.I64, attr=0, span=form.span)


def get_call(b: FnBuilder, form: GeneF) -> Value:
    if len(form.children) != 2:
        raise NotTypeable("get with a default", form.span)
    coll, idx = form.children
    if _is_call_of(coll, "get") and len(coll.children) == 2 and _builtin_here(b, "get"):
        base = b.typed(expr(b, coll.children[0]), coll.span)
        if base.type.kind is T.Kind.ARRAY and base.type.ndim == 2:
            i = b.typed(expr(b, coll.children[1]), coll.span)
            j = b.typed(expr(b, idx), form.span)
            return load(b, base, [i, j], form.span)
        raise NotTypeable(f"get of an element of a {base.type}", form.span)
    arr = b.typed(expr(b, coll), form.span)
    i = b.typed(expr(b, idx), form.span)
    if arr.type.kind is T.Kind.ARRAY and arr.type.ndim == 2:
        from gene_jit.ir.ffi_calls import row_view

        return row_view(b, arr, i, form.span)  # a row, as NumPy's a[i] (kernels take rows)
    return load(b, arr, [i], form.span)


def set_index(b: FnBuilder, form: GeneF) -> Value:
    """`($set a i v)`, `($set a (@ i) v)`, `($set m (@ i j) v)`: a store at computed
    indexes (GENE.md 3.12; `a/i` is the member named "i"), bounds-checked like `a/0`.
    The target, the indexes and the value are evaluated in that order, as in tier 0."""
    if len(form.children) != 3:
        raise NotTypeable("$set with other than 3 arguments", form.span)
    target, key, value = form.children
    arr = b.typed(expr(b, target), target.span)
    idx = [b.typed(expr(b, k), k.span) for k in _selector_keys(b, key)]
    return store(b, arr, idx, expr(b, value), form.span)


def _selector_keys(b: FnBuilder, key: Form) -> tuple[Form, ...]:
    """The index forms of a `$set` key: `(@ i j)`, `@0`, or one plain index."""
    if isinstance(key, GeneF) and _is_call_of(key, "@") and b.lookup("@") is None and b.outer("@") is None:
        if not key.children:
            raise NotTypeable("an empty selector", key.span)
        return tuple(key.children)
    if isinstance(key, Sym) and key.name[:1] == "@" and key.name[1:].isdigit():
        return (Lit(key.span, int(key.name[1:])),)
    return (key,)


def int_division(b: FnBuilder, form: GeneF) -> Value:
    x, y = _args(b, form, 2)
    if x.type != T.I64 or y.type != T.I64:
        raise NotTypeable(f"{_name(form)} of {x.type} and {y.type}", form.span)
    op = {"mod": Op.MOD, "rem": Op.REM, "div": Op.IDIV}[_name(form)]
    return b.emit(op, (x, y), T.I64, span=form.span)


def io_call(b: FnBuilder, form: GeneF) -> Value:
    raise NotTypeable(f"calls {_name(form)} (I/O)", form.span)


BUILTIN_CALLS: dict[str, Callable[[FnBuilder, GeneF], Value]] = {
    **{n: float_math for n in FLOAT_MATH},
    "pow": pow_call, "abs": abs_call, "min": extreme, "max": extreme,
    "floor": rounding, "ceil": rounding, "to_i": rounding, "int": rounding, "to-i": rounding,
    "to_f": to_float, "float": to_float, "to-f": to_float,
    "len": length, "size": length, "length": length, "get": get_call,
    "mod": int_division, "rem": int_division, "div": int_division,
    "print": io_call, "println": io_call,
}


def builtin_span(form: GeneF) -> Span:
    return form.span
