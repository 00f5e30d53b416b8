"""Bounded inlining of a recursive function's direct calls to itself.

LLVM never inlines a function into itself, so a recursive Gene function pays one native
call per Gene call; gcc -O2 gets its speed on such code by inlining the recursion into
itself a few levels deep. This pass does the same on the typed IR: each direct call of a
function to itself is replaced by a copy of the function's original body (fresh value
ids, renamed blocks and slots), level by level, while the function stays under
`MAX_INSTRS` instructions and `MAX_LEVELS` levels, for bodies of at most `MAX_TEMPLATE`
instructions; the copies' own self-calls stay real calls. A copy's argument goes straight
into the slot the body keeps its parameter in, and its result is read from the body's own
result slot (`$endif`, a variable), where the body has them: fewer slots and moves for
LLVM to remove, once per copy.

Assumes verified functions whose temporaries never cross blocks (the builder's form).
A function whose body already holds depth marks (tailcall.py turned a tail call into
a loop) is left alone: a copy's `depth.leave` gives back one call, not the loop's.

Guarantees: the same results and errors (the copied code keeps its overflow checks and
spans), temporaries still never cross blocks, and each inlined call still counts as one
Gene call against the recursion depth limit: the copy is bracketed by `depth.enter` /
`depth.leave` (see `depth_marks`), which the emitter turns into the same counter update
and check a real call's prologue and epilogue make.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gene_jit.frontend.forms import Span
from gene_jit.ir.nodes import Block, Function, Instr, Op, Unit, Value
from gene_jit.ir.types import Type

MAX_LEVELS = 3
MAX_INSTRS = 600
# only small bodies are copied: the call is a large part of what they cost (gcc's
# recursive inlining has the same kind of limit)
MAX_TEMPLATE = 60


@dataclass(frozen=True)
class _Template:
    """The function body as it was before any inlining: what each copy is made of."""

    params: tuple[Value, ...]
    blocks: tuple[Block, ...]
    locals: dict[str, Type]
    # per parameter, the slot the body's entry stores it in and never reads it again
    # (the builder's `set x.0 %x`): a call site stores its argument there directly
    param_slots: tuple[str | None, ...]
    # the slot every `ret` returns the value of, read just before (the builder's
    # `$endif` or a variable): the continuation reads the copy's result from there
    ret_slot: str | None


def _snapshot(fn: Function) -> _Template:
    blocks = tuple(Block(b.name, list(b.instrs)) for b in fn.blocks)
    uses: dict[int, int] = {}
    for b in blocks:
        for ins in b.instrs:
            for a in ins.args:
                uses[a.id] = uses.get(a.id, 0) + 1
    stored: dict[int, str] = {}  # value -> the slot the entry stores it in first
    touched: set[str] = set()
    reentered = any(blocks[0].name in b.successors() for b in blocks)  # would store it again
    for ins in [] if reentered else blocks[0].instrs:
        if ins.op is Op.SET and len(ins.args) == 1 and ins.attr not in touched:
            stored.setdefault(ins.args[0].id, ins.attr)
        if ins.op in (Op.GET, Op.SET):
            touched.add(ins.attr)
    param_slots = tuple(stored.get(p.id) if uses.get(p.id) == 1 and fn.locals.get(stored.get(p.id, ""))
                        == p.type else None for p in fn.params)
    return _Template(tuple(fn.params), blocks, dict(fn.locals), param_slots, _ret_slot(blocks))


def _ret_slot(blocks: tuple[Block, ...]) -> str | None:
    """The slot whose value every `ret` returns, read right before it, or None."""
    slots = set()
    for b in blocks:
        term = b.terminator
        if term is None or term.op is not Op.RET:
            continue
        before = b.instrs[-2] if len(b.instrs) > 1 else None
        if not (term.args and before is not None and before.op is Op.GET and before.result == term.args[0]):
            return None
        slots.add(before.attr)
    return slots.pop() if len(slots) == 1 else None


class _Inliner:
    def __init__(self, fn: Function) -> None:
        self.fn = fn
        self.template = _snapshot(fn)
        self.next_id = 1 + max([0] + [p.id for p in fn.params] + [
            i.result.id for b in fn.blocks for i in b.instrs if i.result is not None])
        self.copies = 0
        self.moved: dict[int, Instr] = {}  # id of an instruction -> its rewritten copy
        self.home: dict[int, Block] = {}  # id of an instruction -> the block it moved to

    def fresh(self, like: Value) -> Value:
        v = Value(self.next_id, like.type)
        self.next_id += 1
        return v

    def self_calls(self, blocks: list[Block]) -> list[tuple[Block, Instr]]:
        return [(b, i) for b in blocks for i in b.instrs if i.op is Op.CALL and i.attr == self.fn.name]

    def inline(self, block: Block, call: Instr) -> list[Block]:
        """Replace `call` (in `block`) by a copy of the template; returns the new blocks
        (the copy's, then the continuation)."""
        self.copies += 1
        tag = f"i{self.copies}"
        fn = self.fn
        at = next(k for k, i in enumerate(block.instrs) if i is call)
        pre, post = block.instrs[:at], block.instrs[at + 1:]
        span = call.span
        # values made before the call and used after it go through slots: the call
        # becomes a branch, and temporaries never cross blocks
        made_before = {i.result.id: i.result for i in pre if i.result is not None}
        carried: dict[int, Value] = {}
        for ins in post:
            for a in ins.args:
                if a.id in made_before and a.id not in carried:
                    carried[a.id] = made_before[a.id]
        after = Block(f"{block.name}.ret{tag}")
        restore: list[Instr] = []
        renamed: dict[int, Value] = {}
        for vid, value in carried.items():
            slot = f"$keep{vid}@{tag}"
            fn.locals[slot] = value.type
            pre.append(Instr(Op.SET, None, (value,), slot, span=span))
            renamed[vid] = self.fresh(value)
            restore.append(Instr(Op.GET, renamed[vid], (), slot, span=span))
        # the arguments reach the copy's entry through slots, for the same reason: the
        # slot the body keeps the parameter in, where it has one
        arg_slots: list[str | None] = []
        for k, arg in enumerate(call.args):
            kept = self.template.param_slots[k]
            slot = f"{kept}@{tag}" if kept is not None else f"$arg{k}@{tag}"
            fn.locals[slot] = arg.type
            pre.append(Instr(Op.SET, None, (arg,), slot, span=span))
            arg_slots.append(None if kept is not None else slot)
        names = {b.name: f"{b.name}.{tag}" for b in self.template.blocks}
        pre.append(Instr(Op.BR, targets=(names[self.template.blocks[0].name],), span=span))
        block.instrs = pre
        ret_slot = None
        if call.result is not None:
            kept = self.template.ret_slot
            ret_slot = f"{kept}@{tag}" if kept is not None else f"$ret@{tag}"
            fn.locals[ret_slot] = call.result.type
        copies = self.copy_body(tag, names, arg_slots, ret_slot, after.name, span)
        enter, leave = depth_marks(span)
        copies[0].instrs[:0] = enter
        after.instrs = list(leave)
        if ret_slot is not None and call.result is not None:
            after.instrs.append(Instr(Op.GET, call.result, (), ret_slot, span=span))
        after.instrs += restore
        for ins in post:
            if any(a.id in renamed for a in ins.args):
                moved = replace(ins, args=tuple(renamed.get(a.id, a) for a in ins.args))
                self.moved[id(ins)] = moved
                ins = moved
            after.instrs.append(ins)
            self.home[id(ins)] = after
        return copies + [after]

    def copy_body(self, tag: str, names: dict[str, str], arg_slots: list[str | None],
                  ret_slot: str | None, after: str, span: Span) -> list[Block]:
        """The template's blocks, renamed for copy `tag`. A parameter with no slot in
        `arg_slots` was stored by the call site in the slot the body keeps it in (its
        `set` is left out); `ret`s store their value in `ret_slot` (unless the body's
        own result slot is it) and branch to `after`."""
        fn, t = self.fn, self.template
        for slot, ty in t.locals.items():
            fn.locals[f"{slot}@{tag}"] = ty
        vmap: dict[int, Value] = {}
        out: list[Block] = []
        direct = {p.id for p, arg_slot in zip(t.params, arg_slots, strict=True) if arg_slot is None}
        result_kept = t.ret_slot is not None and ret_slot == f"{t.ret_slot}@{tag}"
        for k, block in enumerate(t.blocks):
            instrs: list[Instr] = []
            if k == 0:
                for p, arg_slot in zip(t.params, arg_slots, strict=True):
                    if arg_slot is not None:
                        vmap[p.id] = self.fresh(p)
                        instrs.append(Instr(Op.GET, vmap[p.id], (), arg_slot, span=span))
            for ins in block.instrs:
                if k == 0 and ins.op is Op.SET and ins.args and ins.args[0].id in direct:
                    continue
                args = tuple(vmap[a.id] if a.id in vmap else a for a in ins.args)
                if ins.op is Op.RET:
                    if ret_slot is not None and args and not result_kept:
                        instrs.append(Instr(Op.SET, None, args, ret_slot, span=ins.span))
                    instrs.append(Instr(Op.BR, targets=(after,), span=ins.span))
                    continue
                result = None
                if ins.result is not None:
                    result = vmap[ins.result.id] = self.fresh(ins.result)
                attr = f"{ins.attr}@{tag}" if ins.op in (Op.GET, Op.SET) else ins.attr
                targets = tuple(names[x] for x in ins.targets) if ins.targets else ()
                # the constructor, not dataclasses.replace: a third of the cost, per instruction
                instrs.append(Instr(ins.op, result, args, attr, targets, ins.span))
            out.append(Block(names[block.name], instrs))
        for name, (kind, loop_span) in list(fn.loops.items()):
            if name in names and names[name] not in fn.loops:
                fn.loops[names[name]] = (kind, loop_span)
        return out

    def run(self) -> None:
        sites = self.self_calls(self.fn.blocks)
        size = sum(len(b.instrs) for b in self.template.blocks)
        if size > MAX_TEMPLATE:
            return
        for _ in range(MAX_LEVELS):
            if not sites or self.fn.instr_count() + len(sites) * size > MAX_INSTRS:
                return
            new_blocks: list[Block] = []
            for block, call in sites:
                while id(call) in self.moved:
                    call = self.moved.pop(id(call))
                host = self.host_of(block, call)
                added = self.inline(host, call)
                at = self.fn.blocks.index(host) + 1
                self.fn.blocks[at:at] = added
                new_blocks += added
            sites = self.self_calls(new_blocks)

    def host_of(self, block: Block, call: Instr) -> Block:
        """The block that holds `call` now: an earlier inlining in the same block moved
        the rest of it into a continuation block."""
        return self.home.get(id(call), block)


def depth_marks(span: Span) -> tuple[list[Instr], list[Instr]]:
    """The instructions that open and close an inlined Gene call for the recursion
    depth limit, as a real call's prologue and epilogue would."""
    return [Instr(Op.DEPTH, None, (), 1, span=span)], [Instr(Op.DEPTH, None, (), -1, span=span)]


def inline_self_calls(unit: Unit) -> Unit:
    for fn in unit.functions.values():
        ops = [(i.op, i.attr) for b in fn.blocks for i in b.instrs]
        # a body that already spends depth in a loop (a tail call made a loop) would not
        # give the budget back at the end of a copy: such functions keep their calls
        if (Op.CALL, fn.name) in ops and not any(op is Op.DEPTH for op, _ in ops):
            _Inliner(fn).run()
    return unit
