"""The tier-0 compiler's core: results, scopes, AST helpers and form dispatch.

A Gene form compiles to a `Result`: Python statements to run first, then an expression
giving the form's value (Hy's model). Lexical scopes map Gene names to Python names:
function parameters and `var`s become Python locals (a shadowing `var` gets a fresh
Python name, such as `x 2`, that no Gene symbol can spell), top-level names live in the
module's globals dict, and namespace bodies keep their members in the `Namespace`.
Special forms live in `SPECIAL` (name -> handler), filled by the `special_*` modules;
core.py says which heads are special forms and what the other forms mean.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from gene_jit.frontend.core import SPECIAL_FORMS
from gene_jit.frontend.forms import (
    Arr,
    Form,
    GeneF,
    Interp,
    Lit,
    MapF,
    Quote,
    SetF,
    Span,
    Sym,
    Unquote,
)
from gene_jit.runtime.errors import GeneSyntaxError, InternalError

INT_MAX = 2**63 - 1
INT_MIN = -(2**63)


@dataclass
class Result:
    """Statements to run, then an expression for the value."""

    stmts: list[ast.stmt]
    expr: ast.expr
    is_bool: bool = False  # the expression is always a Python bool
    kind: str | None = None  # an inferred kind (compiler_types): nat int float num str
    bounds: Bounds | None = None  # known (low, high) of a number (None: unbounded side)
    # never a boolean (an arithmetic result): operators need no guard for it; a str is
    # a flag global under which that holds (frontend/proofs.py)
    nonbool: bool | str = False


Handler = Callable[["Compiler", GeneF, bool], Result]
Bounds = tuple[int | None, int | None]
SPECIAL: dict[str, Handler] = {}


def special(*names: str) -> Callable[[Handler], Handler]:
    """Register a special-form handler under one or more head symbols, each of which
    core.SPECIAL_FORMS must name (that table is what both tiers read)."""

    def register(fn: Handler) -> Handler:
        for n in names:
            if n not in SPECIAL_FORMS:
                raise InternalError(f"special form {n} is missing from core.SPECIAL_FORMS")
            SPECIAL[n] = fn
        return fn

    return register


# ---------------------------------------------------------------- AST helpers


# Python's AST refuses the first three as identifiers (every other string is accepted);
# a global named __builtins__ would replace the builtins every Gene call looks up, and
# __debug__ cannot be assigned
_RENAMED = frozenset({"None", "True", "False", "__builtins__", "__debug__"})


def pyid(name: str) -> str:
    return " " + name if name in _RENAMED else name


def load(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Load())


def store(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Store())


def const(v: Any) -> ast.Constant:
    return ast.Constant(value=v)


def helper(name: str) -> ast.Name:
    """A runtime helper, stored in every module's globals under a name with a space."""
    return load(" " + name)


def call(
    fn: ast.expr, args: list[ast.expr] | None = None, kwargs: dict[str, ast.expr] | None = None
) -> ast.Call:
    kws = [ast.keyword(arg=k, value=v) for k, v in (kwargs or {}).items()]
    return ast.Call(func=fn, args=args or [], keywords=kws)


def hcall(name: str, *args: ast.expr) -> ast.Call:
    return call(helper(name), list(args))


def assign(name: str, value: ast.expr) -> ast.Assign:
    return ast.Assign(targets=[store(name)], value=value)


def is_simple(e: ast.expr) -> bool:
    """Evaluating `e` twice is harmless and cheap (no side effects, no cost)."""
    return isinstance(e, (ast.Name, ast.Constant))


NIL = Result([], const(None))


def pure(expr: ast.expr, is_bool: bool = False) -> Result:
    return Result([], expr, is_bool)


def stamp(node: ast.AST, span: Span) -> None:
    """Give `node` and its unlocated descendants the Gene position (line, column)."""
    if getattr(node, "lineno", None) is not None and not isinstance(node, ast.Module):
        return
    if isinstance(node, (ast.expr, ast.stmt, ast.excepthandler, ast.arg, ast.keyword)):
        line = max(span.line, 1)
        col = max(span.col - 1, 0)
        node.lineno = line
        node.col_offset = col
        node.end_lineno = line
        node.end_col_offset = col + 1
    for child in ast.iter_child_nodes(node):
        stamp(child, span)


def syntax_error(form: Form, message: str) -> GeneSyntaxError:
    return GeneSyntaxError(message, form.span)


# ---------------------------------------------------------------- scopes


@dataclass
class LoopCtx:
    result: str | None  # temp that `(break v)` assigns, for `loop`


@dataclass
class NsInfo:
    """A namespace body being compiled: where its object lives, members declared so far."""

    var: str  # Python name holding the Namespace object
    members: set[str] = field(default_factory=set)


@dataclass
class FnScope:
    """One Python function being generated (the module's top level is one too)."""

    parent: FnScope | None
    is_module: bool = False
    blocks: list[dict[str, str]] = field(default_factory=lambda: [{}])
    used: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)
    globals: set[str] = field(default_factory=set)
    global_reads: set[str] = field(default_factory=set)
    loops: list[LoopCtx] = field(default_factory=list)
    self_name: str | None = None
    method: tuple[str, str] | None = None  # (class variable, method name) for super
    caller: str | None = None  # in a macro body: the caller-environment parameter
    ex_names: list[str] = field(default_factory=list)
    loop_decls: set[str] = field(default_factory=set)  # py names declared in loop bodies
    captures: set[str] = field(default_factory=set)  # py names read from enclosing scopes
    free: dict[str, Ref] = field(default_factory=dict)  # Gene names bound outside, as resolved
    kinds: dict[str, str] = field(default_factory=dict)  # Gene local name -> inferred kind
    stable: set[str] = field(default_factory=set)  # parameters never assigned
    bounds: dict[str, Bounds] = field(default_factory=dict)  # stable name -> bounds here
    counters: dict[str, Bounds] = field(default_factory=dict)  # compiler_types.counters

    def find(self, name: str) -> str | None:
        for block in reversed(self.blocks):
            if name in block:
                return block[name]
        return None


@dataclass
class Ref:
    """Where a Gene name resolved: kind is local, outer, ns or global."""

    kind: str
    py: str
    ns: NsInfo | None = None


# ---------------------------------------------------------------- the compiler


class Compiler:
    """Compiles forms of one module (one globals dict) to Python AST."""

    def __init__(self, env: dict[str, Any], filename: str) -> None:
        self.env = env
        self.filename = filename
        self.fn = FnScope(None, is_module=True)
        # Top-level names (gene name -> Python global name) persist across forms.
        self.fn.blocks = [env.setdefault(" globals_map", {})]
        self.ns_stack: list[NsInfo] = []
        self._ids: Iterator[int] = env.setdefault(" ids", itertools.count(1))
        self.macros: set[str] = env.setdefault(" macros", set())
        self.defining: set[str] = set()  # top-level fn names whose bodies are compiling
        self.generic_depth = 0  # > 0 inside the generic copy of a range loop (special_loops)

    def is_macro(self, name: str) -> bool:
        """`name` is a macro here (defined earlier in this module, or a macro value)."""
        from gene_jit.frontend.compiler_exprs import is_macro_value

        return name in self.macros or is_macro_value(self, name)

    # -- names and temps

    def temp(self, hint: str = "t") -> str:
        name = f" {hint}{next(self._ids)}"
        self.fn.used.add(name)
        return name

    @contextmanager
    def block(self) -> Iterator[None]:
        self.fn.blocks.append({})
        try:
            yield
        finally:
            self.fn.blocks.pop()

    @contextmanager
    def facts(self, facts: dict[str, Bounds]) -> Iterator[None]:
        """Bounds that hold for stable locals while compiling a branch."""
        saved = self.fn.bounds
        if facts:
            self.fn.bounds = {**saved, **facts}
        try:
            yield
        finally:
            self.fn.bounds = saved

    @contextmanager
    def function(self, scope: FnScope) -> Iterator[FnScope]:
        saved = self.fn
        self.fn = scope
        try:
            yield scope
        finally:
            self.fn = saved

    def resolve(self, name: str, *, record: bool = True) -> Ref:
        """Where `name` is bound here. A name bound outside the function is recorded in
        its scope's `free`, so that tier 1 resolves it as tier 0 did."""
        ref = self._find(name)
        if record and ref.kind != "local" and not self.fn.is_module:
            seen = self.fn.free.setdefault(name, ref)
            if (seen.kind, seen.py) != (ref.kind, ref.py):
                self.fn.free[name] = Ref("mixed", "")
        return ref

    def _find(self, name: str) -> Ref:
        scope: FnScope | None = self.fn
        first = True
        module: FnScope | None = None
        while scope is not None:
            if scope.is_module:
                module = scope
                break
            py = scope.find(name)
            if py is not None:
                if not first:
                    self.fn.captures.add(py)
                return Ref("local" if first else "outer", py)
            first = False
            scope = scope.parent
        for ns in reversed(self.ns_stack):
            if name in ns.members:
                return Ref("ns", name, ns)
        py = module.find(name) if module is not None else None
        if py is not None and self.fn is not module:
            self.fn.captures.add(py)
        return Ref("global", py if py is not None else pyid(name))

    def declare(self, name: str, fresh: bool = True) -> Ref:
        """A new binding for `var`, a parameter or a loop variable in the current block.

        At top level a `var` that redeclares a name gets a new Python global, so that
        functions defined before keep the binding they saw (GENE.md 2.8); definitions
        (`fresh=False`) replace the binding instead.
        """
        fn = self.fn
        if fn.is_module:
            if self.ns_stack:
                ns = self.ns_stack[-1]
                ns.members.add(name)
                return Ref("ns", name, ns)
            py = pyid(name)
            # a var in a nested block (a branch, a loop body) ends with it: a name of its own
            if fresh and (fn.find(name) is not None or len(fn.blocks) > 1):
                py = f"{name} {next(self._ids)}"
            elif not fresh:
                py = fn.find(name) or py
            fn.blocks[-1][name] = py
            fn.globals.add(py)
            self.env.setdefault(" stored", set()).add(py)  # see proofs.py
            if fn.loops:
                fn.loop_decls.add(py)
            return Ref("global", py)
        py = pyid(name)
        visible = self.resolve(name, record=False)
        # a binding in a nested block (an if branch, a loop body, a do) gets a Python name
        # of its own: past the block, the plain name is the namespace's again (GENE.md 2.8)
        if (py in fn.used or visible.kind == "outer" or py in fn.global_reads or py in fn.globals
                or len(fn.blocks) > 1):
            py = f"{name} {next(self._ids)}"
        fn.blocks[-1][name] = py
        fn.used.add(py)
        if fn.loops:
            fn.loop_decls.add(py)
        return Ref("local", py)

    def bounds_of(self, name: str, ref: Ref) -> Bounds | None:
        """What the enclosing `if` tests proved about stable local `name`, or the
        bounds of a counter."""
        if ref.kind != "local":
            return None
        return self.fn.bounds.get(name) or self.fn.counters.get(name)

    def kind_of(self, name: str, ref: Ref) -> str | None:
        """The inferred kind of local `name` (None unless certain)."""
        return self.fn.kinds.get(name) if ref.kind == "local" else None

    def load_ref(self, ref: Ref) -> ast.expr:
        if ref.kind == "ns":
            assert ref.ns is not None
            return ast.Subscript(value=ns_members(ref.ns.var), slice=const(ref.py), ctx=ast.Load())
        if ref.kind == "global" and not self.fn.is_module:
            self.fn.global_reads.add(ref.py)
        return load(ref.py)

    def store_ref(self, ref: Ref, value: ast.expr) -> list[ast.stmt]:
        """Statements that assign `value` to the binding `ref` (adding nonlocal/global)."""
        if ref.kind == "ns":
            assert ref.ns is not None
            target = ast.Subscript(
                value=ns_members(ref.ns.var), slice=const(ref.py), ctx=ast.Store()
            )
            return [ast.Assign(targets=[target], value=value)]
        if ref.kind == "outer":
            self.fn.nonlocals.add(ref.py)
        elif ref.kind == "global":
            from gene_jit.frontend.proofs import note_store

            self.fn.globals.add(ref.py)
            return [assign(ref.py, value), *note_store(self, ref.py)]
        return [assign(ref.py, value)]

    # -- compiling

    def compile(self, form: Form, value: bool = True) -> Result:
        try:
            res = self._dispatch(form, value)
        except GeneSyntaxError as err:
            raise err.with_span(form.span) from None
        for s in res.stmts:
            stamp(s, form.span)
        stamp(res.expr, form.span)
        return res

    def _dispatch(self, form: Form, value: bool) -> Result:
        from gene_jit.frontend import compiler_exprs as ex

        if isinstance(form, Lit):
            from gene_jit.frontend.compiler_types import expr_kind

            v = form.value
            b = (v, v) if type(v) is int else None
            return Result([], const(v), isinstance(v, bool), expr_kind(form, {}), b)
        if isinstance(form, Sym):
            return ex.symbol(self, form)
        if isinstance(form, GeneF):
            return ex.gene_form(self, form, value)
        if isinstance(form, Arr):
            return ex.array(self, form.items)
        if isinstance(form, MapF):
            return ex.mapping(self, form.entries)
        if isinstance(form, Quote):
            return ex.quote(self, form.form)
        if isinstance(form, Interp):
            return ex.interpolation(self, form)
        if isinstance(form, SetF):
            res = ex.array(self, form.items)
            return Result(res.stmts, hcall("GeneSet", res.expr))
        if isinstance(form, Unquote):
            raise syntax_error(form, "%x (unquote) is only valid inside a template ($render)")
        raise syntax_error(form, f"cannot compile {type(form).__name__}")

    def stmts(self, form: Form) -> list[ast.stmt]:
        """Compile `form` for its effects only."""
        return self.discard(self.compile(form, value=False))

    @staticmethod
    def discard(res: Result) -> list[ast.stmt]:
        if is_simple(res.expr):
            return list(res.stmts)
        return [*res.stmts, ast.Expr(value=res.expr)]

    def body(self, forms: tuple[Form, ...] | list[Form], value: bool = True) -> Result:
        """A sequence of forms; the value is the last one's (nil when empty)."""
        if not forms:
            return Result([], const(None))
        out: list[ast.stmt] = []
        for f in forms[:-1]:
            out.extend(self.stmts(f))
        last = self.compile(forms[-1], value)
        return Result(out + last.stmts, last.expr, last.is_bool, last.kind, last.bounds, last.nonbool)

    def seq(self, results: list[Result]) -> tuple[list[ast.stmt], list[ast.expr]]:
        """Combine results keeping evaluation order: a value computed before a later
        result's statements is saved in a temp first."""
        stmts: list[ast.stmt] = []
        exprs: list[ast.expr] = []
        last_with_stmts = max((i for i, r in enumerate(results) if r.stmts), default=-1)
        for i, r in enumerate(results):
            stmts.extend(r.stmts)
            e = r.expr
            if i < last_with_stmts and not isinstance(e, ast.Constant):
                t = self.temp()
                stmts.append(assign(t, e))
                e = load(t)
            exprs.append(e)
        return stmts, exprs

    def before(self, first: Result, later: list[ast.stmt]) -> tuple[list[ast.stmt], ast.expr]:
        """Statements and value of `first`, kept in a temp if `later` statements follow."""
        if not later or isinstance(first.expr, ast.Constant):
            return [*first.stmts, *later], first.expr
        t = self.temp()
        return [*first.stmts, assign(t, first.expr), *later], load(t)

    def to_temp(self, res: Result) -> tuple[list[ast.stmt], ast.expr]:
        """The result's statements plus an assignment to a temp if the value is complex."""
        if is_simple(res.expr):
            return list(res.stmts), res.expr
        t = self.temp()
        return [*res.stmts, assign(t, res.expr)], load(t)

    def truth(self, res: Result) -> ast.expr:
        """A Python test for Gene truthiness (only nil and false are falsy)."""
        if res.is_bool:
            e = res.expr
            if (isinstance(e, ast.IfExp) and isinstance(e.body, ast.Constant) and e.body.value is True
                    and isinstance(e.orelse, ast.Constant) and e.orelse.value is False):
                return e.test  # a comparison made a Gene boolean (compiler_ops.gene_bool)
            return e
        e = res.expr
        if res.kind is not None and isinstance(e, ast.Name):
            return const(True)  # a number or a string is always truthy
        if isinstance(e, ast.Constant):
            return const(e.value is not None and e.value is not False)
        if isinstance(e, ast.Name):
            ref: ast.expr = e
            first: ast.expr = e
        else:
            t = self.temp()
            first = ast.NamedExpr(target=store(t), value=e)
            ref = load(t)
        return ast.BoolOp(
            op=ast.And(),
            values=[
                ast.Compare(left=first, ops=[ast.IsNot()], comparators=[const(None)]),
                ast.Compare(left=ref, ops=[ast.IsNot()], comparators=[const(False)]),
            ],
        )

    def ns_expr(self) -> ast.expr:
        """`$ns`: the innermost namespace being defined, else the module's."""
        if self.ns_stack:
            return load(self.ns_stack[-1].var)
        return helper("module_ns")

    def self_expr(self) -> ast.expr:
        scope: FnScope | None = self.fn
        while scope is not None:
            if scope.self_name is not None:
                return load(scope.self_name)
            scope = scope.parent
        return const(None)

    def ex_expr(self) -> ast.expr:
        scope: FnScope | None = self.fn
        while scope is not None:
            if scope.ex_names:
                return hcall("ex_value", load(scope.ex_names[-1]))
            scope = scope.parent
        return const(None)


def ns_members(var: str) -> ast.expr:
    return ast.Attribute(value=load(var), attr="members", ctx=ast.Load())


def sym_name(form: Form | None) -> str | None:
    return form.name if isinstance(form, Sym) else None
