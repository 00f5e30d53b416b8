"""IR verifier: structural and type checks, run after building and after every pass.

Checks: each block ends in exactly one terminator, branch targets exist, every value is
defined once and used only in the function that defines it (temporaries never cross
blocks: the builder keeps cross-block state in slots), operand and result types agree (an ordering may take an int and a float),
slots are declared, returns match the function's type. A failure is a bug in gene-jit.
"""

from __future__ import annotations

from gene_jit.ir import types as T
from gene_jit.ir.nodes import COMPARISONS, ORDERINGS, Function, Instr, Op, Unit, Value
from gene_jit.runtime.errors import InternalError

_ARITH = {Op.ADD, Op.SUB, Op.MUL, Op.IDIV, Op.MOD, Op.REM}


def _fail(fn: Function, message: str) -> InternalError:
    return InternalError(f"IR verification failed in {fn.name}: {message}")


def _check_types(fn: Function, ins: Instr) -> None:
    res = ins.result
    args = ins.args
    if ins.op in _ARITH:
        if not (res and res.type.is_numeric and all(a.type == res.type for a in args)):
            raise _fail(fn, f"operand types of {ins.op.value}")
        if ins.op in (Op.IDIV, Op.MOD, Op.REM) and res.type != T.I64:
            raise _fail(fn, f"{ins.op.value} needs i64")
    elif ins.op is Op.DIV or ins.op is Op.MATH:
        if not (res and res.type == T.F64 or ins.op is Op.MATH):
            raise _fail(fn, "div must produce f64")
    elif ins.op in COMPARISONS:
        if not (res and res.type == T.BOOL and len(args) == 2):
            raise _fail(fn, f"comparison {ins.op.value} operands")
        kinds = {args[0].type, args[1].type}
        # an int against a float compares exactly (never through a rounded int); `==`
        # between them is always false and never reaches the IR as an instruction
        if len(kinds) > 1 and not (kinds == {T.I64, T.F64} and ins.op in ORDERINGS):
            raise _fail(fn, f"comparison {ins.op.value} operands")
    elif ins.op is Op.CBR:
        if len(args) != 1 or args[0].type != T.BOOL or len(ins.targets) != 2:
            raise _fail(fn, "cbr needs one bool and two targets")
    elif ins.op is Op.SET:
        if fn.locals.get(ins.attr) != args[0].type:
            raise _fail(fn, f"set {ins.attr}: slot type mismatch")
    elif ins.op is Op.GET:
        if res is None or fn.locals.get(ins.attr) != res.type:
            raise _fail(fn, f"get {ins.attr}: slot type mismatch")
    elif ins.op is Op.RET:
        got = args[0].type if args else T.NIL
        if got != fn.ret:
            raise _fail(fn, f"ret {got} in a function returning {fn.ret}")
    elif ins.op is Op.NEXT:
        step, _inclusive = ins.attr
        if not (res and res.type == T.BOOL and [a.type for a in args] == [T.I64, T.I64]
                and type(step) is int and step != 0):
            raise _fail(fn, "next needs two i64 operands and a non-zero int step")
    elif ins.op is Op.DEPTH:
        if res is not None or args or ins.attr not in (1, -1):
            raise _fail(fn, "depth takes no operands and +1 or -1")
    elif ins.op in (Op.LOAD, Op.STORE, Op.LEN):
        if not args or args[0].type.kind is not T.Kind.ARRAY:
            raise _fail(fn, f"{ins.op.value} needs an array")


def verify(fn: Function) -> Function:
    names = {b.name for b in fn.blocks}
    if len(names) != len(fn.blocks):
        raise _fail(fn, "duplicate block names")
    defined: dict[int, Value] = {p.id: p for p in fn.params}
    all_defs = {p.id for p in fn.params} | {
        i.result.id for blk in fn.blocks for i in blk.instrs if i.result is not None
    }
    for block in fn.blocks:
        if not block.instrs or not block.instrs[-1].is_terminator:
            raise _fail(fn, f"block {block.name} lacks a terminator")
        for i, ins in enumerate(block.instrs):
            if ins.is_terminator and i != len(block.instrs) - 1:
                raise _fail(fn, f"terminator in the middle of {block.name}")
            for t in ins.targets:
                if t not in names:
                    raise _fail(fn, f"branch to unknown block {t}")
            for a in ins.args:
                if a.id not in all_defs:
                    raise _fail(fn, f"{a} used in {block.name} but never defined")
            if ins.result is not None:
                if ins.result.id in defined:
                    raise _fail(fn, f"{ins.result} defined twice")
                defined[ins.result.id] = ins.result
            _check_types(fn, ins)
    return fn


def verify_unit(unit: Unit) -> Unit:
    for fn in unit.ordered():
        verify(fn)
        for callee in fn.callees:
            if callee not in unit.functions:
                raise _fail(fn, f"calls {callee}, which the unit lacks")
    return unit
