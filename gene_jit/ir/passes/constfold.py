"""Constant folding.

Assumes a verified function. Folds arithmetic, comparisons, `not` and int-to-float
conversion whose operands are constants, computing exactly what tier 0 computes; an int
operation that would overflow is left alone so that it still raises at run time. A
`cbr` on a constant becomes a `br`. A slot written exactly once, with a constant, reads as
that constant: the builder declares a variable (its one write) before any read in its
scope, so that write dominates every read. Guarantees: same results, value ids unchanged.
"""

from __future__ import annotations

import operator
from dataclasses import replace
from typing import Any

from gene_jit.ir import types as T
from gene_jit.ir.nodes import Function, Instr, Op, Unit

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_BIN: dict[Op, Any] = {Op.ADD: operator.add, Op.SUB: operator.sub, Op.MUL: operator.mul,
                       Op.LT: operator.lt, Op.LE: operator.le, Op.GT: operator.gt,
                       Op.GE: operator.ge, Op.EQ: operator.eq, Op.NE: operator.ne}


def _fold(ins: Instr, consts: dict[int, Any]) -> Any:
    if not ins.args or any(a.id not in consts for a in ins.args):
        return None
    vals = [consts[a.id] for a in ins.args]
    if ins.op in _BIN:
        r = _BIN[ins.op](*vals)
    elif ins.op is Op.NOT:
        r = not vals[0]
    elif ins.op is Op.I2F:
        r = float(vals[0])
    elif ins.op is Op.NEG:
        r = -vals[0]
    elif ins.op is Op.DIV and vals[1] != 0:
        r = vals[0] / vals[1]
    else:
        return None
    if type(r) is int and not _INT_MIN <= r <= _INT_MAX:
        return None  # keep the overflow for run time
    return r


def _single_constant_slots(fn: Function, consts: dict[int, Any]) -> dict[str, Any]:
    writes: dict[str, list[Instr]] = {}
    for block in fn.blocks:
        for ins in block.instrs:
            if ins.op is Op.SET:
                writes.setdefault(ins.attr, []).append(ins)
    return {slot: consts[w[0].args[0].id] for slot, w in writes.items()
            if len(w) == 1 and w[0].args[0].id in consts}


def fold_function(fn: Function) -> Function:
    consts: dict[int, Any] = {}
    for _ in range(4):  # slot constants expose more folding; a few rounds suffice
        before = len(consts)
        _fold_once(fn, consts, _single_constant_slots(fn, consts))
        if len(consts) == before:
            break
    return fn


def _fold_once(fn: Function, consts: dict[int, Any], slots: dict[str, Any]) -> None:
    for block in fn.blocks:
        for i, ins in enumerate(block.instrs):
            if ins.op is Op.CONST and ins.result is not None and ins.result.type != T.NIL:
                consts[ins.result.id] = ins.attr
                continue
            if ins.op is Op.CBR and ins.args[0].id in consts:
                target = ins.targets[0] if consts[ins.args[0].id] else ins.targets[1]
                block.instrs[i] = Instr(Op.BR, targets=(target,), span=ins.span)
                continue
            if ins.result is None:
                continue
            r = slots.get(ins.attr) if ins.op is Op.GET else _fold(ins, consts)
            if r is not None:
                block.instrs[i] = replace(ins, op=Op.CONST, args=(), attr=r)
                consts[ins.result.id] = r


def constant_fold(unit: Unit) -> Unit:
    for fn in unit.functions.values():
        fold_function(fn)
    return unit
