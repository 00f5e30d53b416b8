"""The tier-0 compiler: Gene forms to a Python `ast.Module`, run by CPython.

Entry points:

* `new_env(filename, args)`: a fresh module namespace (the Python globals of the compiled
  code; its `__builtins__` is `registry.BUILTINS`, so Gene builtins resolve as globals).
* `compile_forms(forms, filename, env)`: a code object for a list of forms.
* `run_forms(forms, filename, env)` / `run_source(text, filename, env)` / `run_file(path)`:
  compile and run one top-level form at a time (so that macros defined by one form apply
  to the next), returning the value of the last form.

Each top-level form becomes `def " top"(): global ...; <statements>; return <value>`, so
that temporaries are fast locals while Gene top-level names stay globals. Every Python
node carries the Gene line and column, and the code is compiled under the Gene file name,
so Python exceptions are translated into Gene errors that point at Gene source.
`GENE_DUMP=py` prints the generated Python to stderr.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Callable
from types import CodeType
from typing import Any

# Importing the special-form modules fills the SPECIAL table.
from gene_jit.frontend import (  # noqa: F401
    special_core,
    special_fn,
    special_loops,
    special_oop,
    special_templates,
    special_try,
    special_vm,
)
from gene_jit.frontend.compiler_core import Compiler, FnScope, assign, call, const, load, stamp
from gene_jit.frontend.compiler_errors import GENE_FILES, compile_failure, translate
from gene_jit.frontend.forms import Form, Span
from gene_jit.runtime import ops, ops_async, tiering
from gene_jit.runtime.errors import (
    GeneError,
    GeneNameError,
    GeneSyntaxError,
    GeneTypeError,
    remember_source,
)
from gene_jit.runtime.registry import BUILTINS, Namespace
from gene_jit.runtime.values import PLACEHOLDER, Gene, GeneSet, Instance, Range, Symbol

# for compiling deeply nested forms; running them has the Gene call depth limit
# (tiering.program_depth)
RECURSION_LIMIT = 20000

# Loaded modules by absolute path (module namespace), for `import`.
MODULES: dict[str, Namespace] = {}

# `hook(module_ast, filename, env)` runs on each module before it is compiled; empty
# unless a tool (the profiler's loop counters) adds one, so plain runs pay nothing.
AST_HOOKS: list[Callable[[ast.Module, str, dict[str, Any]], None]] = []


def _helpers() -> dict[str, Any]:
    names = [
        "add",
        "check_int",
        "check_pair",
        "sub",
        "mul",
        "div",
        "power",
        "neg",
        "lt",
        "le",
        "gt",
        "ge",
        "eq",
        "ne",
        "interp",
        "make_range",
        "make_gene",
        "spread",
        "iter_values",
        "iter_pairs",
        "get_member",
        "select",
        "set_member",
        "set_selected",
        "Selector",
        "call_method",
        "instance_method",
        "super_call",
        "new",
        "make_class",
        "make_enum",
        "call_kw_tail",
        "make_throw",
        "ex_value",
        "catch_matches",
        "case_matches",
        "Macro",
        "CallerEnv",
        "call_props",
    ]
    table: dict[str, Any] = {" " + n: getattr(ops, n) for n in names}
    ops_async.register()
    for n in ("run_async", "await_values", "async_fn"):
        table[" " + n] = getattr(ops_async, n)
    table.update(
        {
            " int": int,
            " bool": bool,
            " float": float,
            " str": str,
            " len": len,
            " list": list,
            " range": range,
            " Exception": Exception,
            " Symbol": Symbol,
            " Gene": Gene,
            " GeneSet": GeneSet,
            " Range": Range,
            " PLACEHOLDER": PLACEHOLDER,
            " Namespace": Namespace,
            " Instance": Instance,
            " gene_def": special_fn.gene_def,
            " translate_error": translate,
            " quote_form": quote_form,
            " eval_values": eval_values,
            " parse_value": parse_value,
            " import_module": import_module,
            " as_count": as_count,
            " rest_from": rest_from,
            " gene_range": BUILTINS["range"],
        }
    )
    table.update(special_templates.HELPERS)
    table.update(special_vm.HELPERS)
    return table


def as_count(n: Any) -> int:
    if type(n) is not int:
        raise GeneTypeError(f"repeat expects an int count, got {ops.kind_name(n)}")
    return n


def rest_from(v: Any, i: int) -> list[Any]:
    return list(ops.spread(v))[i:]


def quote_form(form: Form) -> Any:
    """`:form` and macro arguments: the value, remembered as made from `form` so that
    evaluating it later reports `form`'s source position."""
    from gene_jit.frontend.convert import form_to_value, remember_origin

    return remember_origin(form_to_value(form), form)


def parse_value(text: Any) -> Any:
    """`($parse "src")`: the first datum of `text`, as a value."""
    from gene_jit.frontend.convert import form_to_value
    from gene_jit.frontend.reader import read

    if not isinstance(text, str):
        raise GeneTypeError(f"$parse expects a string, got {ops.kind_name(text)}")
    forms = read(text, "<parse>")
    return form_to_value(forms[0]) if forms else None


_HELPERS: dict[str, Any] = {}


def new_env(
    filename: str = "<gene>", args: list[str] | None = None, module_name: str | None = None
) -> dict[str, Any]:
    """A fresh module namespace for running Gene code."""
    from gene_jit.runtime import builtins  # noqa: F401  (registers the builtins)
    from gene_jit.runtime.libraries import register_all

    register_all()
    for name, fn in (("mod", ops.mod), ("rem", ops.rem), ("div", ops.int_div), ("@", ops.Selector)):
        BUILTINS.setdefault(name, fn)
    if not _HELPERS:
        _HELPERS.update(_helpers())
    if sys.getrecursionlimit() < RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)
    env: dict[str, Any] = {"__builtins__": BUILTINS}
    env.update(_HELPERS)
    env[" env"] = env
    name = module_name or os.path.splitext(os.path.basename(filename))[0] or "main"
    env[" module_ns"] = Namespace(name, members=env)
    path = os.path.abspath(filename) if not filename.startswith("<") else os.getcwd()
    env["$file"] = filename
    env["$dir"] = os.path.dirname(path) if not filename.startswith("<") else path
    env["$args"] = list(args or [])
    return env


# ---------------------------------------------------------------- compiling


def _module_for(c: Compiler, forms: list[Form]) -> ast.Module:
    res = c.body(forms)
    scope = c.fn
    body: list[ast.stmt] = []
    if scope.globals:
        body.append(ast.Global(names=sorted(scope.globals)))
    body.extend(res.stmts)
    body.append(ast.Return(value=res.expr))
    args = ast.arguments(
        posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]
    )
    top = ast.FunctionDef(name=" top", args=args, body=body, decorator_list=[], returns=None)
    span = forms[0].span if forms else Span(c.filename, 1, 1)
    stamp(top, span)
    mod = ast.Module(body=[top], type_ignores=[])
    ast.fix_missing_locations(mod)
    return mod


def compile_forms(forms: list[Form], filename: str, env: dict[str, Any]) -> CodeType:
    """A code object that, run in `env`, defines `env[" top"]` computing the forms."""
    c = Compiler(env, filename)
    mod = _module_for(c, forms)
    for hook in AST_HOOKS:
        hook(mod, filename, env)
    if "py" in os.environ.get("GENE_DUMP", "").split(","):
        print(f"# ---- {filename}\n{ast.unparse(mod)}", file=sys.stderr)
    GENE_FILES.add(filename)
    return compile(mod, filename, "exec")


def run_forms(forms: list[Form], filename: str, env: dict[str, Any] | None = None) -> Any:
    """Compile and run top-level forms one at a time; the value of the last one."""
    if env is None:
        env = new_env(filename)
    value: Any = None
    for form in forms:
        try:
            code = compile_forms([form], filename, env)
        except GeneError:
            raise
        except RecursionError:
            raise GeneSyntaxError("the form is nested too deeply to compile", form.span) from None
        except Exception as exc:
            raise compile_failure(exc, form.span) from exc
        try:
            exec(code, env)
            with tiering.program_depth():  # the Gene call depth limit, alike in both tiers
                value = env[" top"]()
        except GeneError as err:
            if err.span is None:
                raise translate(err) from None
            raise
        except Exception as exc:
            raise translate(exc) from exc
    return value


def run_source(text: str, filename: str = "<gene>", env: dict[str, Any] | None = None) -> Any:
    """Read and run Gene source text; the value of the last form."""
    from gene_jit.frontend.reader import read

    remember_source(filename, text)
    forms = read(text, filename)
    return run_forms(forms, filename, env if env is not None else new_env(filename))


def run_file(path: str, args: list[str] | None = None) -> Any:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return run_source(text, path, new_env(path, args))


def import_module(env: dict[str, Any], path: Any) -> Namespace:
    """`(import ... from "dir/mod")`: the module's namespace, run once per file. The
    path is relative to the importing file's directory, then to the cwd."""
    if not isinstance(path, str):
        raise GeneTypeError(f"import expects a path string, got {ops.kind_name(path)}")
    rel = path if path.endswith(".gene") else path + ".gene"
    candidates = [os.path.join(str(env.get("$dir", "")), rel), os.path.join(os.getcwd(), rel)]
    for cand in candidates:
        full = os.path.abspath(cand)
        if full in MODULES:
            return MODULES[full]
        if os.path.isfile(full):
            menv = new_env(full, env.get("$args"))
            MODULES[full] = menv[" module_ns"]
            with open(full, encoding="utf-8") as f:
                run_source(f.read(), full, menv)
            return MODULES[full]
    raise GeneNameError(f"module {path!r} not found (looked in {', '.join(candidates)})")


def eval_values(caller: ops.CallerEnv, values: list[Any]) -> Any:
    """`eval` and `$caller_eval`: run values as code with the caller's globals and
    visible locals (assignments to those locals stay local to the evaluation).

    The code is compiled under the file of the `eval` form or macro call, and parts of
    it that came from source forms (macro arguments, quotes) keep their spans, so that
    an error names the caller's line rather than a generated position."""
    from gene_jit.frontend.convert import value_to_form

    where = caller.span if caller.span is not None else _origin_span(values)
    filename = where.file
    forms = [value_to_form(v, where, file=filename) for v in values]
    if not forms:
        return None
    env = caller.globals
    c = Compiler(env, filename)
    scope = FnScope(c.fn)
    with c.function(scope):
        params = [c.declare(name).py for name in caller.locals]
        res = c.body(forms)
        body: list[ast.stmt] = []
        if scope.globals:
            body.append(ast.Global(names=sorted(scope.globals)))
        if scope.nonlocals:
            raise InternalErrorLike("eval cannot assign enclosing variables")
        # Assignments to the caller's locals go back through `caller.locals` (the
        # caller copies them back), whichever way the evaluation ends.
        saved = ast.Dict(keys=[const(k) for k in caller.locals], values=[load(p) for p in params])
        update = ast.Expr(value=call(ast.Attribute(value=load(" out"), attr="update", ctx=ast.Load()), [saved]))
        body.append(
            ast.Try(
                body=[*res.stmts, ast.Return(value=res.expr)], handlers=[], orelse=[], finalbody=[update]
            )
        )
    args = ast.arguments(
        posonlyargs=[],
        args=[ast.arg(arg=" out"), *(ast.arg(arg=p) for p in params)],
        vararg=None,
        kwonlyargs=[],
        kw_defaults=[],
        kwarg=None,
        defaults=[],
    )
    fdef = ast.FunctionDef(name=" eval", args=args, body=body, decorator_list=[], returns=None)
    mod = ast.Module(body=[fdef, assign(" evalfn", load(" eval"))], type_ignores=[])
    stamp(mod, where)
    ast.fix_missing_locations(mod)
    GENE_FILES.add(filename)
    ns: dict[str, Any] = {}
    exec(compile(mod, filename, "exec"), env, ns)
    return ns[" eval"](caller.locals, *caller.locals.values())


def _origin_span(values: list[Any]) -> Span:
    """Where code built from `values` comes from, when the caller did not say."""
    from gene_jit.frontend.convert import origin_of

    for v in values:
        form = origin_of(v)
        if form is not None and form.span.line > 0:
            return form.span
    return Span("<eval>", 1, 1)


class InternalErrorLike(GeneError):
    kind = "error"
