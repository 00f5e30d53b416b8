"""Self-calls in tail position become loops.

A direct call of a function to itself whose result is returned unchanged (through slot
copies and branches, with nothing else done on the way) is replaced by writing its
arguments to the parameters' slots and branching back to the start of the body. The
call's arguments are all computed before any parameter is written, so they see the old
values, as the call would have.

Each such iteration still counts as one Gene call against the recursion depth limit: a
`depth +1` mark (checked, raising "stack overflow" at the call's span) precedes the
branch back, so a tail-recursive function fails at exactly the depth where tier 0 and
the un-transformed call fail. The count needs no `depth -1` on the way out: the budget
is the frame's own, handed to it by its caller.

Assumes verified functions in the builder's form: the entry block starts by writing
each parameter to its slot. Guarantees: same results and errors, temporaries never
cross blocks.
"""

from __future__ import annotations

from gene_jit.ir import types as T
from gene_jit.ir.nodes import Block, Function, Instr, Op, Unit, Value

_MAX_WALK = 64  # instructions followed from a call to its return


def _returns_result(fn: Function, block: Block, at: int) -> bool:
    """Whether the call at `block.instrs[at]` is in tail position."""
    by_name = {b.name: b for b in fn.blocks}
    call = block.instrs[at]
    cur: Value | None = call.result if call.result is not None and call.result.type != T.NIL else None
    slot: str | None = None
    instrs, k = block.instrs, at + 1
    for _ in range(_MAX_WALK):
        if k >= len(instrs):
            return False
        ins = instrs[k]
        k += 1
        if ins.op is Op.SET and cur is not None and ins.args == (cur,):
            slot = ins.attr
        elif ins.op is Op.GET and slot is not None and ins.attr == slot and ins.result is not None:
            cur = ins.result
        elif ins.op is Op.BR:
            instrs, k = by_name[ins.targets[0]].instrs, 0
        elif ins.op is Op.RET:
            return ins.args == ((cur,) if cur is not None else ())
        else:
            return False
    return False


def _param_slots(fn: Function) -> list[str] | None:
    """The slots the entry block writes the parameters to, in order (None if the
    entry does not start that way)."""
    entry = fn.blocks[0].instrs
    if len(entry) < len(fn.params):
        return None
    slots = []
    for p, ins in zip(fn.params, entry, strict=False):
        if ins.op is not Op.SET or ins.args != (p,):
            return None
        slots.append(ins.attr)
    return slots


def loopify(fn: Function) -> bool:
    """Turn `fn`'s tail self-calls into branches back to its body; True if any was."""
    is_self = [(b, k) for b in fn.blocks for k, i in enumerate(b.instrs)
               if i.op is Op.CALL and i.attr == fn.name]
    if not any(_returns_result(fn, b, k) for b, k in is_self):
        return False
    slots = _param_slots(fn)
    if slots is None:
        return False
    entry = fn.blocks[0]
    names = {b.name for b in fn.blocks}
    body_name = next(f"tailloop{n}" for n in range(len(names) + 1) if f"tailloop{n}" not in names)
    body = Block(body_name, entry.instrs[len(slots):])
    entry.instrs = entry.instrs[:len(slots)] + [Instr(Op.BR, targets=(body_name,), span=fn.span)]
    fn.blocks.insert(1, body)
    for block in fn.blocks:
        k = 0
        while k < len(block.instrs):
            ins = block.instrs[k]
            if ins.op is Op.CALL and ins.attr == fn.name and _returns_result(fn, block, k):
                writes = [Instr(Op.SET, None, (a,), s, span=ins.span) for a, s in zip(ins.args, slots, strict=True)]
                block.instrs[k:] = [*writes, Instr(Op.DEPTH, None, (), 1, span=ins.span),
                                    Instr(Op.BR, targets=(body_name,), span=ins.span)]
            k += 1
    return True


def tail_calls_to_loops(unit: Unit) -> Unit:
    for fn in unit.functions.values():
        loopify(fn)
    return unit
