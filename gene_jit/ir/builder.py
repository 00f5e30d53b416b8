"""IR builder: a Gene `fn` form plus argument types to a typed IR function.

Type inference runs while building: parameters take the observed argument types, every
expression gets a type from its operands, a local slot keeps the type of its first
value, calls to other Gene functions are typed by building the callee for the argument
types (through the `Program`, which also breaks recursion by assuming a return type and
rebuilding when the assumption was wrong). Anything that cannot be typed statically
(strings, maps, globals, dynamic calls, I/O, a variable that changes kind) raises
`NotTypeable` with the reason, and the function stays in tier 0.

Semantics follow tier 0 (gene_jit.runtime.ops): int + - * are overflow-checked, `/`
is a float, int vs float `==` is false, only nil and false are falsy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gene_jit.frontend.forms import Arr, Form, GeneF, Lit, Span, Sym
from gene_jit.ir import types as T
from gene_jit.ir.nodes import Block, Function, Instr, Op, Value

if TYPE_CHECKING:
    from gene_jit.ir.program import Program


class NotTypeable(Exception):
    """Tier 1 cannot compile this function; `reason` says why (shown by profile)."""

    def __init__(self, reason: str, span: Span | None = None) -> None:
        where = f" at {span}" if span is not None and span.line > 0 else ""
        super().__init__(reason + where)
        self.reason = reason + where


@dataclass
class Loop:
    cont: str  # block to jump to on `continue`
    exit: str  # block to jump to on `break`
    breaks: list[tuple[Block, Value | None]] = field(default_factory=list)


def sig_code(sig: tuple[T.Type, ...]) -> str:
    return "_".join(str(t).replace("<", "").replace(">", "").replace(",", "x") for t in sig) or "v"


class FnBuilder:
    """Builds one IR function. Expression handlers live in `gene_jit.ir.build_exprs`."""

    def __init__(self, program: Program, key: Any, name: str, form: GeneF,
                 params: list[str], sig: tuple[T.Type, ...], ret_guess: T.Type | None,
                 free: Mapping[str, tuple[str, str]] | None = None) -> None:
        self.program = program
        self.free = free
        self.key = key
        self.ret_guess = ret_guess
        self.counter = 0
        ir_name = program.ir_name_for(key, name, sig)
        self.fn = Function(ir_name, name, [], T.NIL, span=form.span, key=key)
        self.fn.params = [self.new_value(t, p) for p, t in zip(params, sig, strict=True)]
        self.form = form
        self.param_names = params
        self.scopes: list[dict[str, str]] = [{}]
        self.loops: list[Loop] = []
        self.returns: list[tuple[Block, Value | None]] = []
        self.nil_reasons: dict[int, str] = {}
        self.cur = self.new_block("entry")

    # -- low-level emission ------------------------------------------------------------

    def new_value(self, ty: T.Type, name: str = "") -> Value:
        self.counter += 1
        return Value(self.counter, ty, f"{name}" if name else "")

    def new_block(self, hint: str) -> Block:
        block = Block(f"{hint}{len(self.fn.blocks)}" if self.fn.blocks else hint)
        self.fn.blocks.append(block)
        return block

    def emit(self, op: Op, args: tuple[Value, ...] = (), ty: T.Type | None = None,
             attr: Any = None, targets: tuple[str, ...] = (), span: Span | None = None) -> Value:
        result = self.new_value(ty) if ty is not None else None
        from gene_jit.frontend.forms import NO_SPAN

        self.cur.instrs.append(Instr(op, result, args, attr, targets, span or NO_SPAN))
        return result if result is not None else self.nil()

    def terminated(self) -> bool:
        return self.cur.terminator is not None

    def jump(self, target: str) -> None:
        if not self.terminated():
            self.emit(Op.BR, targets=(target,))

    def start(self, block: Block) -> None:
        self.cur = block

    def dead_block(self) -> None:
        """Continue after return/break/continue in a block nothing jumps to."""
        self.start(self.new_block("dead"))

    def const(self, value: Any, ty: T.Type) -> Value:
        return self.emit(Op.CONST, ty=ty, attr=value)

    def nil(self, reason: str = "") -> Value:
        v = Value(0, T.NIL)
        if reason:
            v = self.new_value(T.NIL)
            self.nil_reasons[v.id] = reason
        return v

    # -- scopes and slots -------------------------------------------------------------

    def declare(self, name: str, ty: T.Type) -> str:
        slot = f"{name}.{len(self.fn.locals)}"
        self.fn.locals[slot] = ty
        self.scopes[-1][name] = slot
        return slot

    def lookup(self, name: str) -> str | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def outer(self, name: str) -> str | None:
        """Why `name`, where no local of this function has it, means what tier 1 cannot
        reach: tier 0 bound it outside the function to a variable of an enclosing one
        (captured: it shadows every global and builtin of that name), a namespace
        member, or to different things at different places. None: a global or builtin.
        A complex name `a/b` is bound through `a`."""
        root = name.split("/", 1)[0] if "/" in name[1:] else name
        return {"outer": f"captured variable {root}", "ns": f"namespace member {root}",
                "mixed": f"{root}, bound to different variables"}.get(self.outer_kind(root) or "")

    def outer_kind(self, name: str) -> str | None:
        """How tier 0 bound `name` outside this function: "outer", "ns", "mixed", or
        None for a global (or builtin) and where unknown."""
        kind = self.free.get(name, ("global", ""))[0] if self.free is not None else "global"
        return None if kind == "global" else kind

    def global_key(self, name: str) -> str | None:
        """The Python global that tier 0 reads for `name` in this function (a top-level
        `var` that redeclares a name makes a new one); None where unknown."""
        entry = self.free.get(name) if self.free is not None else None
        return entry[1] if entry is not None and entry[0] == "global" else None

    def set_slot(self, slot: str, value: Value, span: Span) -> None:
        want = self.fn.locals[slot]
        if value.type != want:
            raise NotTypeable(f"variable {slot.rsplit('.', 1)[0]} changes type from {want} to {value.type}", span)
        self.emit(Op.SET, (value,), attr=slot, span=span)

    def temp_slot(self, value: Value, span: Span) -> str:
        """Store `value` in a fresh slot, to read it in another block."""
        slot = f"$t.{len(self.fn.locals)}"
        self.fn.locals[slot] = value.type
        self.emit(Op.SET, (value,), attr=slot, span=span)
        return slot

    def typed(self, value: Value, span: Span) -> Value:
        """`value`, which must carry a real type (not a statement's nil)."""
        if value.type == T.NIL:
            reason = self.nil_reasons.get(value.id, "a nil value is used in an expression")
            raise NotTypeable(reason, span)
        return value

    # -- merging control flow -----------------------------------------------------------

    def merge(self, ends: Sequence[tuple[Block, Value | None]], hint: str, span: Span) -> Value:
        """Join branch ends (block, value) into a new block; the value is typed only when
        every live branch gives the same type."""
        join = self.new_block(hint)
        live = [(b, v) for b, v in ends if b.terminator is None]
        types = {v.type if v is not None else T.NIL for _, v in live}
        slot = None
        if len(types) == 1 and T.NIL not in types:
            slot = f"${hint}.{len(self.fn.locals)}"
            self.fn.locals[slot] = types.pop()
        for block, value in live:
            self.cur = block
            if slot is not None and value is not None:
                self.emit(Op.SET, (value,), attr=slot, span=span)
            self.emit(Op.BR, targets=(join.name,))
        self.start(join)
        if slot is not None:
            return self.emit(Op.GET, ty=self.fn.locals[slot], attr=slot, span=span)
        if len(types) > 1:
            kinds = ", ".join(sorted(str(t) for t in types))
            return self.nil(f"branches give values of different types ({kinds})")
        return self.nil()

    # -- the function -------------------------------------------------------------------

    def build(self, body: tuple[Form, ...]) -> Function:
        from gene_jit.ir.build_exprs import body_value

        for pname, pval in zip(self.param_names, self.fn.params, strict=True):
            slot = self.declare(pname, pval.type)
            self.emit(Op.SET, (pval,), attr=slot)
        value = body_value(self, body)
        if value.id in self.nil_reasons:
            self.typed(value, self.form.span)
        self.returns.append((self.cur, value))
        self._finish_returns()
        return self.fn

    def _reachable(self) -> set[str]:
        by_name = {b.name: b for b in self.fn.blocks}
        seen: set[str] = set()
        todo = [self.fn.blocks[0].name]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(by_name[name].successors())
        return seen

    def _finish_returns(self) -> None:
        reach = self._reachable()
        live = [(b, v) for b, v in self.returns if b.terminator is None and b.name in reach]
        types = {v.type if v is not None else T.NIL for _, v in live}
        if len(types) > 1:
            kinds = ", ".join(sorted(str(t) for t in types))
            raise NotTypeable(f"{self.fn.gene_name} returns values of different types ({kinds})", self.form.span)
        ret = types.pop() if types else (self.ret_guess or T.NIL)
        self.fn.ret = ret
        for block, value in live:
            self.cur = block
            args = (value,) if value is not None and ret != T.NIL else ()
            self.emit(Op.RET, args)
        for block in self.fn.blocks:  # unreachable leftovers still need a terminator
            if block.terminator is None:
                self.cur = block
                args = () if ret == T.NIL else (self.const(_zero(ret), ret),)
                self.emit(Op.RET, args)


def _zero(ty: T.Type) -> Any:
    return {T.I64: 0, T.F64: 0.0, T.BOOL: False}.get(ty, 0)


def fn_parts(form: Form) -> tuple[str, list[str], tuple[Form, ...]]:
    """Name, positional parameter names and body of a `(fn name [params] body...)` form."""
    if not isinstance(form, GeneF) or not isinstance(form.head, Sym) or form.head.name not in ("fn", "fnx"):
        raise NotTypeable("not a fn form")
    kids = list(form.children)
    name = "anon"
    if form.head.name == "fn" and kids and isinstance(kids[0], (Sym, Lit)) and not isinstance(kids[0], Arr):
        first = kids.pop(0)
        name = first.name if isinstance(first, Sym) else str(getattr(first, "value", ""))
    if not kids:
        raise NotTypeable("fn without parameters")
    plist = kids.pop(0)
    if form.props:
        raise NotTypeable("fn with properties")
    if isinstance(plist, Sym):
        params = [] if plist.name == "_" else [plist.name]
    elif isinstance(plist, Arr):
        params = []
        for p in plist.items:
            if not isinstance(p, Sym) or p.name.endswith("...") or p.name == "=":
                raise NotTypeable("only plain positional parameters are compiled", p.span)
            params.append(p.name)
    else:
        raise NotTypeable("unsupported parameter list", plist.span)
    return name.replace("/", "."), params, tuple(kids)
