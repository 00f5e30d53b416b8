"""Inlining of small calls.

Assumes verified functions. A call to a unit function whose body is one block of at
most `MAX_INSTRS` instructions ending in `ret` (straight-line code: arithmetic, math,
array reads) is replaced by a copy of that body, with fresh value ids and renamed slots.
Functions no longer called from the root are dropped from the unit. Recursive calls are
never inlined. Guarantees: same behaviour, including errors raised by the copied code.
"""

from __future__ import annotations

from dataclasses import replace

from gene_jit.ir.nodes import Function, Instr, Op, Unit, Value

MAX_INSTRS = 24


def _inlinable(fn: Function) -> bool:
    if len(fn.blocks) != 1 or fn.instr_count() > MAX_INSTRS:
        return False
    instrs = fn.blocks[0].instrs
    return instrs[-1].op is Op.RET and all(i.op not in (Op.CALL, Op.BR, Op.CBR) for i in instrs)


def _inline_into(caller: Function, unit: Unit) -> bool:
    next_id = 1 + max([p.id for p in caller.params] + [
        i.result.id for b in caller.blocks for i in b.instrs if i.result is not None])
    changed = False
    for block in caller.blocks:
        out: list[Instr] = []
        for ins in block.instrs:
            callee = unit.functions.get(ins.attr) if ins.op is Op.CALL else None
            if callee is None or callee is caller or not _inlinable(callee):
                out.append(ins)
                continue
            changed = True
            tag = f"{callee.gene_name}.{next_id}"
            vmap: dict[int, Value] = {p.id: a for p, a in zip(callee.params, ins.args, strict=True)}
            for slot, ty in callee.locals.items():
                caller.locals[f"{slot}@{tag}"] = ty
            for cins in callee.blocks[0].instrs:
                args = tuple(vmap[a.id] for a in cins.args)
                if cins.op is Op.RET:
                    if ins.result is not None and args:
                        # the call's result becomes a copy of the returned value
                        caller.locals[f"$ret@{tag}"] = ins.result.type
                        out.append(Instr(Op.SET, None, args, f"$ret@{tag}", span=ins.span))
                        out.append(Instr(Op.GET, ins.result, (), f"$ret@{tag}", span=ins.span))
                    break
                result = None
                if cins.result is not None:
                    result = Value(next_id, cins.result.type)
                    next_id += 1
                    vmap[cins.result.id] = result
                attr = f"{cins.attr}@{tag}" if cins.op in (Op.GET, Op.SET) else cins.attr
                out.append(replace(cins, result=result, args=args, attr=attr))
            caller.callees.discard(ins.attr)
        block.instrs = out
    return changed


def inline_small_calls(unit: Unit) -> Unit:
    for fn in unit.ordered():
        _inline_into(fn, unit)
    # keep only what the root still reaches
    reach: set[str] = set()
    todo = [unit.root.name]
    while todo:
        name = todo.pop()
        if name in reach:
            continue
        reach.add(name)
        todo.extend(unit.functions[name].callees)
    unit.functions = {k: v for k, v in unit.functions.items() if k in reach}
    return unit
