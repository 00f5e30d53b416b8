"""The recursion depth limit in native code.

Tier 0 and tier 1 count Gene calls against one budget: CPython's own recursion counter
(`recursion_remaining` of the running thread state, 3.11; `py_recursion_remaining` from
3.12), which every tier-0 Gene call already decrements as a Python frame. The budget is
set by `gene_jit.runtime.tiering.program_depth` (GENE_MAX_DEPTH Gene calls, default
10,000).

An entry trampoline reads what is left of it and passes it to the native function as a
hidden last argument (`left`, i32); each native function keeps it in a local, and each
call it makes raises the Gene "stack overflow" error at the call when nothing is left,
and otherwise passes one less. An inlined call carries `depth` marks that spend and give
back one around its copy. The count lives in registers: a compare and a subtraction per
call, no memory traffic, and nothing to undo when native code fails.
"""

from __future__ import annotations

import ctypes
from functools import cache
from typing import TYPE_CHECKING, Any

import llvmlite.ir as ir

from gene_jit.codegen.emit import ERR_DEPTH, I8, I32, I64, PTR
from gene_jit.ir.builder import NotTypeable
from gene_jit.runtime import tiering

if TYPE_CHECKING:
    from gene_jit.codegen.emit import FunctionEmitter

BUDGET = I32  # the type of the hidden argument
LEFT_SLOT = "depth.left"


@cache
def remaining_offset() -> int:
    """Where the thread state keeps the recursion counter (checked by tiering); native
    code stays off (NotTypeable) on a Python laid out otherwise, since its recursion
    would go unchecked."""
    offset = tiering.recursion_counter_offset()
    if offset is None:
        raise NotTypeable("this Python's recursion counter is not where tier 1 expects it")
    import llvmlite.binding as llvm

    get = ctypes.pythonapi.PyThreadState_Get
    llvm.add_symbol("PyThreadState_Get", ctypes.cast(get, ctypes.c_void_p).value)
    return offset


def begin_function(e: FunctionEmitter, budget: Any) -> None:
    """In the entry block: keep the budget the caller passed in a local."""
    slot = e.b.alloca(BUDGET, name=LEFT_SLOT)
    e.b.store(budget, slot)
    e.slots[LEFT_SLOT] = slot


def call_budget(e: FunctionEmitter) -> Any:
    """Before a Gene call (at the emitter's current span): raise "stack overflow" when
    the budget is spent; the callee's budget, one less, otherwise."""
    b = e.b
    left = b.load(e.slots[LEFT_SLOT], typ=BUDGET)
    e.check(b.icmp_signed("<=", left, ir.Constant(BUDGET, 0)), ERR_DEPTH)
    return b.sub(left, ir.Constant(BUDGET, 1))


def depth_mark(e: FunctionEmitter, step: int) -> None:
    """`depth +1` opens an inlined Gene call (checked as a call), `depth -1` closes it."""
    slot = e.slots[LEFT_SLOT]
    if step > 0:
        e.b.store(call_budget(e), slot)
    else:
        e.b.store(e.b.add(e.b.load(slot, typ=BUDGET), ir.Constant(BUDGET, 1)), slot)


def entry_begin(b: ir.IRBuilder, mod: ir.Module) -> Any:
    """At an entry: what is left of the calling thread's recursion budget."""
    get = mod.globals.get("PyThreadState_Get")
    if get is None:
        get = ir.Function(mod, ir.FunctionType(PTR, []), "PyThreadState_Get")
    counter = b.gep(b.call(get, []), [ir.Constant(I64, remaining_offset())], source_etype=I8)
    return b.load(counter, typ=I32)


def entry_call(b: ir.IRBuilder, left: Any, target: Any, values: list[Any]) -> Any:
    """The entry's call of its target, with the budget. The call itself is not counted
    here: CPython counts a call of a builtin (unless the call site is specialised, which
    gives native code at most one frame more than tier 0)."""
    return b.call(target, [*values, left])


def entry_fail(b: ir.IRBuilder, left: Any) -> None:
    """Native code failed: nothing to undo (the budget never left registers)."""
