"""Overflow checks that cannot fail, dropped: integer ranges from comparisons.

An int `+` or `-` is overflow-checked (the emitter's `llvm.s*.with.overflow` call, a
branch and a cold raise block); where the operands' ranges prove the result fits in 64
bits, the instruction gets `attr="nowrap"` and is emitted as a plain `add`/`sub nsw`.
The ranges come from constants and from the branches of comparisons of a local with a
constant: past `(if (n < 2) ... else ...)` the else side knows `n >= 2`, so `(n - 1)`
and `(n - 2)` cannot overflow. LLVM finds the same facts, at a cost in optimisation time
that grows with every inlined copy of such code (self-inlining makes fifteen of fib's
body); found here, the checks are never emitted.

Assumes verified functions whose temporaries never cross blocks (the builder's form).
Facts are kept per local slot, forward over the blocks in order: a block whose every
predecessor was seen already starts from what holds on all its incoming edges (the
branch's condition added on each edge); any other block (a loop header) starts knowing
nothing. A `set` replaces the slot's range by the stored value's (or forgets it).

Guarantees: only `add`/`sub` instructions whose result provably fits are changed; values,
blocks and errors are otherwise untouched.
"""

from __future__ import annotations

from dataclasses import replace

from gene_jit.ir import types as T
from gene_jit.ir.nodes import Block, Function, Instr, Op, Unit

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
Range = tuple[int, int]
Facts = dict[str, Range]
# how a comparison `slot OP c` bounds the slot when it holds (True) or fails (False)
_EDGE = {
    Op.LT: (lambda c: (INT_MIN, c - 1), lambda c: (c, INT_MAX)),
    Op.LE: (lambda c: (INT_MIN, c), lambda c: (c + 1, INT_MAX)),
    Op.GT: (lambda c: (c + 1, INT_MAX), lambda c: (INT_MIN, c)),
    Op.GE: (lambda c: (c, INT_MAX), lambda c: (INT_MIN, c - 1)),
}
_MIRROR = {Op.LT: Op.GT, Op.LE: Op.GE, Op.GT: Op.LT, Op.GE: Op.LE}


def _meet(a: Range | None, b: Range) -> Range:
    return b if a is None else (max(a[0], b[0]), min(a[1], b[1]))


def _join(facts: list[Facts]) -> Facts:
    """What holds on every one of several incoming edges."""
    first, rest = facts[0], facts[1:]
    out = {}
    for slot, (lo, hi) in first.items():
        ranges = [f.get(slot) for f in rest]
        if all(r is not None for r in ranges):
            out[slot] = (min([lo] + [r[0] for r in ranges if r]), max([hi] + [r[1] for r in ranges if r]))
    return out


class _Block:
    """One block's walk: value ranges, and the comparison its `cbr` tests."""

    def __init__(self, facts: Facts) -> None:
        self.facts = dict(facts)
        self.ranges: dict[int, Range] = {}
        self.slot_of: dict[int, str] = {}  # value id -> the slot it was read from, unchanged since
        self.tests: dict[int, tuple[str, Op, int]] = {}  # condition id -> (slot, op, constant)

    def visit(self, ins: Instr) -> Instr:
        op, res = ins.op, ins.result
        if op is Op.CONST and res is not None and res.type == T.I64 and type(ins.attr) is int:
            self.ranges[res.id] = (ins.attr, ins.attr)
        elif op is Op.GET and res is not None and res.type == T.I64:
            self.slot_of[res.id] = ins.attr
            if ins.attr in self.facts:
                self.ranges[res.id] = self.facts[ins.attr]
        elif op is Op.SET:
            self.store(ins)
        elif op in (Op.ADD, Op.SUB) and res is not None and res.type == T.I64:
            return self.arith(ins)
        elif op in _EDGE and res is not None:
            self.compare(ins)
        return ins

    def store(self, ins: Instr) -> None:
        slot = ins.attr
        self.facts.pop(slot, None)
        for vid in [v for v, s in self.slot_of.items() if s == slot]:
            del self.slot_of[vid]
        for cid in [c for c, (s, _, _) in self.tests.items() if s == slot]:
            del self.tests[cid]
        value = ins.args[0] if ins.args else None
        if value is not None and value.id in self.ranges:
            self.facts[slot] = self.ranges[value.id]

    def arith(self, ins: Instr) -> Instr:
        a, b = (self.ranges.get(x.id) for x in ins.args)
        if a is None or b is None:
            return ins
        lo, hi = (a[0] + b[0], a[1] + b[1]) if ins.op is Op.ADD else (a[0] - b[1], a[1] - b[0])
        if lo < INT_MIN or hi > INT_MAX:
            return ins
        assert ins.result is not None
        self.ranges[ins.result.id] = (lo, hi)
        return ins if ins.attr == "nowrap" else replace(ins, attr="nowrap")

    def compare(self, ins: Instr) -> None:
        assert ins.result is not None
        x, y = ins.args
        if x.type != T.I64 or y.type != T.I64:
            return
        op = ins.op
        if x.id not in self.slot_of:
            x, y, op = y, x, _MIRROR[op]
        known = self.ranges.get(y.id)
        if x.id in self.slot_of and known is not None and known[0] == known[1]:
            self.tests[ins.result.id] = (self.slot_of[x.id], op, known[0])

    def edges(self, block: Block) -> list[tuple[str, Facts]]:
        """The facts this block hands each successor."""
        term = block.terminator
        if term is None:
            return []
        if term.op is not Op.CBR or term.targets[0] == term.targets[1]:
            return [(t, self.facts) for t in term.targets]
        test = self.tests.get(term.args[0].id)
        if test is None:
            return [(t, self.facts) for t in term.targets]
        slot, op, c = test
        out = []
        for target, holds in zip(term.targets, (True, False), strict=True):
            facts = dict(self.facts)
            facts[slot] = _meet(facts.get(slot), _EDGE[op][0 if holds else 1](c))
            out.append((target, facts))
        return out


def _function(fn: Function) -> None:
    preds: dict[str, list[str]] = {b.name: [] for b in fn.blocks}
    for b in fn.blocks:
        for t in b.successors():
            preds[t].append(b.name)
    given: dict[str, dict[str, Facts]] = {b.name: {} for b in fn.blocks}  # block -> pred -> facts
    for k, block in enumerate(fn.blocks):
        incoming = given[block.name]
        if k == 0 or not preds[block.name] or len(incoming) < len(set(preds[block.name])):
            facts: Facts = {}  # the entry, or a block entered from one not seen yet
        else:
            facts = _join(list(incoming.values()))
        walk = _Block(facts)
        block.instrs = [walk.visit(ins) for ins in block.instrs]
        for target, out in walk.edges(block):
            if target in given:
                # two edges from one block to the same target: what holds on both
                prior = given[target].get(block.name)
                given[target][block.name] = out if prior is None else _join([prior, out])


def drop_overflow_checks(unit: Unit) -> Unit:
    for fn in unit.functions.values():
        _function(fn)
    return unit
