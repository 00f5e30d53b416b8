"""Functions built from `$vm/...` instruction lists by `(compile ...)`.

    (compile add3 [a b c]
      ($vm/load a) ($vm/load b) ($vm/add) ($vm/load c) ($vm/add) ($vm/return))

A compiled function runs its instructions on a value stack. Instructions are gene data:
the head names the instruction, the children are its operands (data, never evaluated).

| instruction | stack | does |
|---|---|---|
| `($vm/push v)` | -> v | the value v (quoted data: `($vm/push [1 x])` pushes that array) |
| `($vm/load x)` | -> x | a parameter or local `x`, else the global or builtin `x` (`a/b` paths too) |
| `($vm/store x)` | v -> | sets local `x` |
| `($vm/pop)` `($vm/dup)` `($vm/swap)` | | drop, copy, exchange the top values |
| `($vm/add)` `sub` `mul` `div` `pow` | a b -> r | `+ - * / **`, as the operators (overflow is an error) |
| `($vm/lt)` `le` `gt` `ge` `eq` `ne` | a b -> bool | `< <= > >= == !=` |
| `($vm/neg)` `($vm/not)` | a -> r | `(- a)`, `(not a)` |
| `($vm/label L)` | | names this position |
| `($vm/jump L)` | | continues at label L |
| `($vm/jump_if_false L)` `($vm/jump_if_true L)` | c -> | jumps when c is falsy / truthy (Gene truthiness) |
| `($vm/call n)` | f a1..an -> r | calls f with n arguments |
| `($vm/return)` | v -> | returns v; running off the end returns the top value, or nil |

A list is checked completely before the function exists (`verify`): every item an
instruction with the right operands, labels defined once and every jump target defined,
and the stack depth known at every instruction: no instruction takes more values than
the stack holds, and paths that meet agree on the depth. A bad list is a `compile
error` at the instruction. Like any Gene function, a compiled one ignores extra
arguments and gets nil for missing ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gene_jit.frontend.forms import Span
from gene_jit.runtime import ops
from gene_jit.runtime.errors import GeneError, GeneNameError, GeneSyntaxError, GeneTypeError
from gene_jit.runtime.printer import repr_
from gene_jit.runtime.values import Gene, Symbol


class GeneCompileError(GeneSyntaxError):
    """A `$vm` instruction list that cannot make a function."""

    kind = "compile error"


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": ops.add, "sub": ops.sub, "mul": ops.mul, "div": ops.div, "pow": ops.power,
    "lt": ops.lt, "le": ops.le, "gt": ops.gt, "ge": ops.ge, "eq": ops.eq, "ne": ops.ne,
}  # fmt: skip
_UNARY: dict[str, Callable[[Any], Any]] = {"neg": ops.neg, "not": lambda v: v is None or v is False}

# operand kind, values taken, values left (call: n + 1 taken)
_SHAPES: dict[str, tuple[str | None, int, int]] = {
    "push": ("value", 0, 1), "load": ("name", 0, 1), "store": ("name", 1, 0),
    "pop": (None, 1, 0), "dup": (None, 1, 2), "swap": (None, 2, 2),
    "label": ("label", 0, 0), "jump": ("label", 0, 0),
    "jump_if_false": ("label", 1, 0), "jump_if_true": ("label", 1, 0),
    "call": ("count", 0, 1), "return": (None, 1, 0),
    **{op: (None, 2, 1) for op in _BINARY}, **{op: (None, 1, 1) for op in _UNARY},
}  # fmt: skip
_OPERAND_TEXT = {
    "value": "one value",
    "name": "a name",
    "label": "a label name",
    "count": "an argument count (an int >= 0)",
}
_PREFIX = "$vm/"


@dataclass(frozen=True, slots=True)
class Instr:
    op: str
    arg: Any
    span: Span | None


@dataclass(frozen=True, slots=True)
class Program:
    """A verified instruction list; jump operands are instruction indexes."""

    code: tuple[Instr, ...]


def _fail(message: str, span: Span | None) -> GeneCompileError:
    return GeneCompileError(message, span)


def decode(item: Any, span: Span | None) -> Instr:
    """One instruction from its gene data, its operand checked."""
    head = item.type if type(item) is Gene else None
    if not (isinstance(head, Symbol) and head.name.startswith(_PREFIX)) or item.props:
        raise _fail(f"compile expects $vm instructions like ($vm/push 1), got {repr_(item)}", span)
    op = head.name[len(_PREFIX) :]
    shape = _SHAPES.get(op)
    if shape is None:
        known = " ".join(sorted(_SHAPES))
        raise _fail(f"unknown instruction {head.name} (known: {known})", span)
    kind, args = shape[0], item.children
    if kind is None:
        if args:
            raise _fail(f"{head.name} takes no operand", span)
        return Instr(op, None, span)
    if len(args) != 1:
        raise _fail(f"{head.name} expects {_OPERAND_TEXT[kind]}", span)
    arg = args[0]
    ok = {
        "value": True,
        "name": isinstance(arg, Symbol),
        "label": isinstance(arg, (Symbol, str)),
        "count": type(arg) is int and arg >= 0,
    }[kind]
    if not ok:
        raise _fail(f"{head.name} expects {_OPERAND_TEXT[kind]}, got {repr_(arg)}", span)
    if kind in ("label", "name"):
        arg = arg.name if isinstance(arg, Symbol) else arg
    return Instr(op, arg, span)


def flatten(items: list[Any], spans: list[Span | None]) -> list[tuple[Any, Span | None]]:
    """Instructions in order; an array item (a spliced list) gives its elements."""
    out: list[tuple[Any, Span | None]] = []
    for item, span in zip(items, spans, strict=True):
        if isinstance(item, list):
            out.extend(flatten(item, [span] * len(item)))
        else:
            out.append((item, span))
    return out


def verify(items: list[tuple[Any, Span | None]], where: Span | None) -> Program:
    """The program of an instruction list, or a compile error naming what is wrong."""
    code = [decode(item, span) for item, span in items]
    labels: dict[str, int] = {}
    for i, ins in enumerate(code):
        if ins.op == "label":
            if ins.arg in labels:
                raise _fail(f"label {ins.arg} is defined twice", ins.span)
            labels[ins.arg] = i
    for ins in code:
        if ins.op.startswith("jump") and ins.arg not in labels:
            raise _fail(f"$vm/{ins.op} to label {ins.arg}, which is not defined", ins.span)
    resolved = tuple(
        Instr(ins.op, labels[ins.arg], ins.span) if ins.op.startswith("jump") else ins
        for ins in code
    )
    _check_depths(resolved, where)
    return Program(resolved)


def _check_depths(code: tuple[Instr, ...], where: Span | None) -> None:
    """Abstract run over stack depths, every path once per instruction. Paths that meet
    with different depths are reported before an instruction that lacks values, which
    is often only their consequence."""
    depth: dict[int, int] = {0: 0}
    short: dict[int, int] = {}  # pc -> values it takes, where the stack holds fewer
    work = [0]
    while work:
        pc = work.pop()
        if pc == len(code):
            continue
        ins, d = code[pc], depth[pc]
        _, takes, leaves = _SHAPES[ins.op]
        if ins.op == "call":
            takes = ins.arg + 1
        if d < takes:
            short[pc] = takes
            continue
        after = d - takes + leaves
        for nxt in _successors(pc, ins):
            if nxt not in depth:
                depth[nxt] = after
                work.append(nxt)
            elif depth[nxt] != after:
                at = code[nxt].span if nxt < len(code) else where
                raise _fail(
                    f"the stack holds {_values(depth[nxt])} on one path to here"
                    f" and {after} on another",
                    at,
                )
    if short:
        pc = min(short)
        ins = code[pc]
        raise _fail(
            f"$vm/{ins.op} takes {_values(short[pc])} from a stack of {depth[pc]} here", ins.span
        )


def _values(n: int) -> str:
    return f"{n} value" if n == 1 else f"{n} values"


def _successors(pc: int, ins: Instr) -> list[int]:
    if ins.op == "return":
        return []
    if ins.op == "jump":
        return [ins.arg]
    if ins.op.startswith("jump_if"):
        return [pc + 1, ins.arg]
    return [pc + 1]


# ---------------------------------------------------------------- running


def make_function(
    name: str, params: tuple[str, ...], program: Program, globals_: dict[str, Any]
) -> Callable[..., Any]:
    """The Gene function running `program` (names it loads resolve in `globals_`)."""

    def compiled(*args: Any, **_props: Any) -> Any:
        local = dict(zip(params, args, strict=False))
        for p in params[len(args) :]:
            local[p] = None
        return _run(program.code, local, globals_)

    compiled.__name__ = compiled.__qualname__ = name or "compiled"
    compiled.__gene_name__ = name  # type: ignore[attr-defined]
    compiled.__gene_kwonly__ = frozenset()  # type: ignore[attr-defined]
    return compiled


def _run(code: tuple[Instr, ...], local: dict[str, Any], globals_: dict[str, Any]) -> Any:
    stack: list[Any] = []
    pc, end = 0, len(code)
    ins = code[0] if code else None
    try:
        while pc < end:
            ins = code[pc]
            op = ins.op
            pc += 1
            if op in _BINARY:
                b = stack.pop()
                stack.append(_BINARY[op](stack.pop(), b))
            elif op == "push":
                stack.append(_fresh(ins.arg))
            elif op == "load":
                stack.append(local[ins.arg] if ins.arg in local else _global(ins.arg, globals_))
            elif op == "store":
                local[ins.arg] = stack.pop()
            elif op == "jump":
                pc = ins.arg
            elif op == "jump_if_false" or op == "jump_if_true":
                v = stack.pop()
                if (v is not None and v is not False) == (op == "jump_if_true"):
                    pc = ins.arg
            elif op == "call":
                stack.append(_call(stack, ins.arg))
            elif op == "return":
                return stack.pop()
            else:
                _stack_op(op, stack)
    except GeneError as err:
        raise err.with_span(ins.span if ins is not None else None) from None
    return stack[-1] if stack else None


def _stack_op(op: str, stack: list[Any]) -> None:
    if op in _UNARY:
        stack.append(_UNARY[op](stack.pop()))
    elif op == "pop":
        stack.pop()
    elif op == "dup":
        stack.append(stack[-1])
    elif op == "swap":
        stack[-1], stack[-2] = stack[-2], stack[-1]
    # `label` does nothing when run


def _fresh(v: Any) -> Any:
    """A pushed array or map is a new one each time, as a literal is."""
    if isinstance(v, list):
        return [_fresh(x) for x in v]
    if isinstance(v, dict):
        return {k: _fresh(x) for k, x in v.items()}
    return v


def _global(name: str, globals_: dict[str, Any]) -> Any:
    from gene_jit.runtime.registry import BUILTINS

    first, *rest = name.split("/")
    # a top-level name redeclared by `var` lives under a fresh key (compiler_core.declare)
    key = globals_.get(" globals_map", {}).get(first)
    if not isinstance(key, str) or key.startswith(" "):
        key = first
    if key in globals_:
        value = globals_[key]
    elif first in BUILTINS:
        value = BUILTINS[first]
    else:
        raise GeneNameError(f"{first} is not defined")
    for seg in rest:
        value = ops.get_member(value, int(seg) if seg.lstrip("-").isdigit() else seg)
    return value


def _call(stack: list[Any], n: int) -> Any:
    args = stack[len(stack) - n :] if n else []
    del stack[len(stack) - n :]
    fn = stack.pop()
    if not callable(fn):
        raise GeneTypeError(
            f"$vm/call expects a function below its {n} arguments, got {ops.kind_name(fn)}"
        )
    return fn(*args)
