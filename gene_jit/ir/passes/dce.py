"""Dead code elimination.

Assumes a verified function. Removes blocks unreachable from the entry, pure
instructions whose results are never used, and writes to slots that are never read
(then the slots). Instructions that may raise (checked int ops, array access, calls)
are kept even when unused: the error is part of the program's behaviour.
"""

from __future__ import annotations

from gene_jit.ir.nodes import Function, Op, Unit

_REMOVABLE = {Op.CONST, Op.GET, Op.DIV, Op.NOT, Op.I2F, Op.LEN,
              Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE}


def _reachable(fn: Function) -> set[str]:
    seen: set[str] = set()
    todo = [fn.blocks[0].name]
    by_name = {b.name: b for b in fn.blocks}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(by_name[name].successors())
    return seen


def dce_function(fn: Function) -> Function:
    live_blocks = _reachable(fn)
    fn.blocks = [b for b in fn.blocks if b.name in live_blocks]
    changed = True
    while changed:
        changed = False
        used = {a.id for b in fn.blocks for i in b.instrs for a in i.args}
        read_slots = {i.attr for b in fn.blocks for i in b.instrs if i.op is Op.GET}
        for block in fn.blocks:
            keep = []
            for ins in block.instrs:
                dead_value = ins.op in _REMOVABLE and ins.result is not None and ins.result.id not in used
                dead_store = ins.op is Op.SET and ins.attr not in read_slots
                if dead_value or dead_store:
                    changed = True
                    continue
                keep.append(ins)
            block.instrs = keep
    slots = {i.attr for b in fn.blocks for i in b.instrs if i.op in (Op.GET, Op.SET)}
    fn.locals = {k: v for k, v in fn.locals.items() if k in slots}
    return fn


def dead_code(unit: Unit) -> Unit:
    for fn in unit.functions.values():
        dce_function(fn)
    return unit
