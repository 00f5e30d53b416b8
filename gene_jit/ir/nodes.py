"""IR nodes: values, instructions, basic blocks and functions.

Temporaries are SSA values (each defined by exactly one instruction or parameter).
Gene local variables live in typed slots (`local x.1: i64`) read by `get` and written by
`set`, the form LLVM's mem2reg turns into phis, so the builder needs no dominance
computation. Every instruction carries the span of the form it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from gene_jit.frontend.forms import NO_SPAN, Span
from gene_jit.ir.types import Type


class Op(Enum):
    CONST = "const"
    GET = "get"  # read a local slot (attr: slot name)
    SET = "set"  # write a local slot (attr: slot name)
    ADD = "add"  # integer ops are overflow-checked
    SUB = "sub"
    MUL = "mul"
    DIV = "div"  # float division (Gene `/` is always float)
    IDIV = "idiv"  # floor division, ints (`div`)
    MOD = "mod"  # floored modulo (`mod`)
    REM = "rem"  # truncated remainder (`rem`)
    NEG = "neg"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    EQ = "eq"
    NE = "ne"
    NOT = "not"
    I2F = "i2f"
    MATH = "math"  # attr: math function name
    CALL = "call"  # attr: callee's IR function name (direct native call)
    LEN = "len"  # attr: axis
    LOAD = "load"  # array element read, bounds-checked
    STORE = "store"  # array element write, bounds-checked
    BR = "br"
    CBR = "cbr"
    RET = "ret"
    FFI = "ffi"  # attr: ffi_calls.ForeignCall (direct C call) or FieldRead
    # attr (step, inclusive): whether a range counter can take one more step, i.e.
    # i + step is still inside the range that ends at the second operand. Computed
    # without forming i + step, so a range ending near the int64 limits never overflows.
    NEXT = "next"
    # attr +1: a Gene call begins (checked against the recursion depth limit, raising
    # "stack overflow" at its span); -1: it ends. Real calls count themselves; inlined
    # calls carry these marks so that they still count.
    DEPTH = "depth"


TERMINATORS = frozenset({Op.BR, Op.CBR, Op.RET})
ORDERINGS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})  # may compare an i64 with an f64
COMPARISONS = ORDERINGS | {Op.EQ, Op.NE}
PURE = frozenset(
    {Op.CONST, Op.GET, Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.NEG, Op.NOT, Op.I2F, Op.MATH, Op.LEN}
    | COMPARISONS
)


@dataclass(frozen=True, slots=True)
class Value:
    """An SSA value: a parameter or an instruction result."""

    id: int
    type: Type
    name: str = ""

    def __str__(self) -> str:
        return f"%{self.name}" if self.name else f"%{self.id}"


@dataclass(frozen=True, slots=True)
class Instr:
    op: Op
    result: Value | None = None
    args: tuple[Value, ...] = ()
    attr: Any = None
    targets: tuple[str, ...] = ()  # successor block names for br/cbr
    span: Span = field(default=NO_SPAN, compare=False)

    @property
    def is_terminator(self) -> bool:
        return self.op in TERMINATORS


@dataclass(slots=True)
class Block:
    name: str
    instrs: list[Instr] = field(default_factory=list)

    @property
    def terminator(self) -> Instr | None:
        if self.instrs and self.instrs[-1].is_terminator:
            return self.instrs[-1]
        return None

    def successors(self) -> tuple[str, ...]:
        term = self.terminator
        return term.targets if term is not None else ()


@dataclass(slots=True)
class Function:
    """A typed IR function: `name` is unique per (Gene function, signature)."""

    name: str
    gene_name: str
    params: list[Value]
    ret: Type
    blocks: list[Block] = field(default_factory=list)
    locals: dict[str, Type] = field(default_factory=dict)
    span: Span = NO_SPAN
    # IR functions this one calls directly, by IR name.
    callees: set[str] = field(default_factory=set)
    # The resolver's key of the Gene function (what profiling counters are kept by).
    key: Any = None
    # Loop body blocks (entered once per iteration): block name -> (loop kind, span).
    loops: dict[str, tuple[str, Span]] = field(default_factory=dict)

    def block(self, name: str) -> Block:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(name)

    @property
    def signature(self) -> tuple[Type, ...]:
        return tuple(p.type for p in self.params)

    def instr_count(self) -> int:
        return sum(len(b.instrs) for b in self.blocks)


@dataclass(slots=True)
class Unit:
    """A compilation unit: a root function and every IR function it reaches by calls."""

    root: Function
    functions: dict[str, Function] = field(default_factory=dict)
    # the global names the unit's calls were resolved through, which its entry checks
    # (gene_jit.codegen.bindings.BindingTable; None when compiled without a JIT)
    bindings: Any = None

    def ordered(self) -> list[Function]:
        return [self.root] + [f for n, f in self.functions.items() if n != self.root.name]
