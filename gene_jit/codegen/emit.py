"""LLVM IR emission: typed IR functions to an `llvmlite.ir.Module`.

Gene locals become allocas (LLVM's mem2reg promotes them). Integer + - * and negation
use the `llvm.s*.with.overflow` intrinsics and branch to a shared cold block that calls
`gene_jit_raise(code)`, which never returns (it longjmps back to the entry trampoline,
which turns the code into a Gene error). Float arithmetic is plain IEEE, without
fast-math flags, so results equal tier 0's bit for bit. Arrays are passed by value as
`{ptr data, i64 n0, i64 n1, i64 s0, i64 s1}` (byte strides), bounds-checked on access.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llvmlite.ir as ir

from gene_jit.frontend.forms import Span
from gene_jit.ir import types as T
from gene_jit.ir.nodes import Function, Instr, Op, Unit, Value

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F64 = ir.DoubleType()
PTR = ir.PointerType()
ARRAY = ir.LiteralStructType([PTR, I64, I64, I64, I64])
NIL_T = I8

# Error kinds passed to gene_jit_raise; the entry turns them into Gene errors.
ERR_OVERFLOW, ERR_INDEX, ERR_ZERO, ERR_CONVERT, ERR_FFI_ARG = 1, 2, 3, 4, 5
ERR_PENDING = 6  # raise the Gene error that native code had Python build (engine.PENDING)
ERR_DEPTH = 7  # the recursion depth limit (emit_depth.py)
# overflow of one operator: the message names it, as tier 0's does
ERR_OVERFLOW_OP = {"sadd": 8, "ssub": 9, "smul": 10, "sdiv": 11}
ERR_INTERRUPT = 12  # SIGINT reached a loop: Python's exception is set (interrupt.py)
# division by zero in one operator: the message names it, as tier 0's does
ERR_ZERO_OP = {Op.IDIV: ERR_ZERO, Op.MOD: 13, Op.REM: 14}
# values a failed check leaves for its message (engine.FAULT): [index, length, array
# kind] for ERR_INDEX, [float bits, builtin, 0] for ERR_CONVERT
FAULT = "gene_jit_fault"
# the builtins that turn a float into an int, in the order ERR_CONVERT's fault names them
TO_INT_NAMES = ("floor", "ceil", "to_i", "int", "to-i")


def index_kind(elem: T.Type, ndim: int) -> int:
    """The array an index check guards, in one int (decoded by engine.index_message)."""
    return list(T.ARRAY_ELEMS.values()).index(elem) * 16 + ndim


def error_code(kind: int, span: Span) -> int:
    """Kind (4 bits), line (16 bits) and column (11 bits) of an error site in one int32:
    the span survives longjmp and the disk cache without any table."""
    line = span.line if 0 < span.line < 1 << 16 else 0
    col = span.col if 0 < span.col < 1 << 11 else 0
    return kind | line << 4 | col << 20


def decode_error(code: int) -> tuple[int, int, int]:
    return code & 15, (code >> 4) & 0xFFFF, (code >> 20) & 0x7FF


def llvm_type(t: T.Type) -> ir.Type:
    if t.kind is T.Kind.STRUCT:
        from gene_jit.codegen.emit_ffi import struct_llvm_type

        return struct_llvm_type(t)
    return {T.Kind.I64: I64, T.Kind.F64: F64, T.Kind.BOOL: I1, T.Kind.NIL: NIL_T,
            T.Kind.ARRAY: ARRAY, T.Kind.PTR: PTR}[t.kind]


def symbol_name(ir_name: str) -> str:
    """An ASCII symbol for a Gene name (which may hold any Unicode letter: `平方`)."""
    return "gj_" + "".join(c if (c.isascii() and c.isalnum()) or c == "_" else
                           "_" if c.isascii() else f"_u{ord(c):x}_" for c in ir_name)


class ModuleEmitter:
    """Emits every function of a unit into one module; the root is external, callees
    are internal so LLVM may inline or drop them."""

    def __init__(self, unit: Unit, module_name: str, module: ir.Module | None = None) -> None:
        self.unit = unit
        # several units may share one module (batch compiles): declarations are reused
        self.module = module if module is not None else ir.Module(name=module_name)
        self.functions: dict[str, ir.Function] = {}
        existing = self.module.globals.get("gene_jit_raise")
        if isinstance(existing, ir.Function):
            self.raise_fn = existing
        else:
            raise_ty = ir.FunctionType(ir.VoidType(), [I32])
            self.raise_fn = ir.Function(self.module, raise_ty, "gene_jit_raise")
            self.raise_fn.attributes.add("noreturn")
            self.raise_fn.attributes.add("cold")
            self.raise_fn.attributes.add("nounwind")
        self._intrinsics: dict[str, ir.Function] = {}
        self.recursive = _recursive(unit)

    def emit(self) -> ir.Module:
        for fn in self.unit.ordered():
            ret = ir.VoidType() if fn.ret == T.NIL else llvm_type(fn.ret)
            # the hidden last argument is the recursion depth budget (emit_depth.py)
            fty = ir.FunctionType(ret, [llvm_type(p.type) for p in fn.params] + [I32])
            lfn = ir.Function(self.module, fty, symbol_name(fn.name))
            lfn.attributes.add("nounwind")
            if fn is not self.unit.root:
                lfn.linkage = "internal"
            self.functions[fn.name] = lfn
        for fn in self.unit.ordered():
            FunctionEmitter(self, fn, self.functions[fn.name]).emit()
        if self.unit.bindings is not None:  # read by the unit's entry (bindings.py)
            from gene_jit.codegen.bindings import MODULE_ATTR

            tables = self.module.__dict__.setdefault(MODULE_ATTR, {})
            tables[self.functions[self.unit.root.name].name] = self.unit.bindings
        return self.module

    def global_i32(self, name: str) -> ir.GlobalVariable:
        """An i32 defined elsewhere (the engine's runtime module)."""
        found = self.module.globals.get(name)
        if isinstance(found, ir.GlobalVariable):
            return found
        g = ir.GlobalVariable(self.module, I32, name)
        g.linkage = "external"
        return g

    def fault(self) -> ir.GlobalVariable:
        """The cells where a failed check leaves the values its message shows (FAULT)."""
        g = self.module.globals.get(FAULT)
        if g is None:
            g = ir.GlobalVariable(self.module, ir.ArrayType(I64, 3), FAULT)
        return g

    def intrinsic(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        fn = self._intrinsics.get(name)
        if fn is None:
            shared = self.module.globals.get(name)
            fn = shared if isinstance(shared, ir.Function) else ir.Function(self.module, ir.FunctionType(ret, args), name)
            self._intrinsics[name] = fn
        return fn


class FunctionEmitter:
    def __init__(self, mod: ModuleEmitter, fn: Function, lfn: ir.Function) -> None:
        self.mod = mod
        self.fn = fn
        self.lfn = lfn
        self.values: dict[int, Any] = {}
        self.blocks = {b.name: lfn.append_basic_block(b.name) for b in fn.blocks}
        self.slots: dict[str, Any] = {}
        self.b = ir.IRBuilder(self.blocks[fn.blocks[0].name])
        self._err_blocks: dict[int, ir.Block] = {}
        self.span: Span = fn.span
        self.order = {b.name: i for i, b in enumerate(fn.blocks)}
        self.at = 0  # the index of the IR block being emitted

    def emit(self) -> None:
        entry = self.blocks[self.fn.blocks[0].name]
        self.b.position_at_start(entry)
        for slot, ty in self.fn.locals.items():
            if ty != T.NIL:
                self.slots[slot] = self.b.alloca(llvm_type(ty), name=slot.replace("$", "t"))
        for p, arg in zip(self.fn.params, self.lfn.args[:-1], strict=True):
            arg.name = p.name or f"a{p.id}"
            self.values[p.id] = arg
        from gene_jit.codegen.emit_depth import begin_function

        self.lfn.args[-1].name = "depth.left"
        begin_function(self, self.lfn.args[-1])
        if self.fn.name in self.mod.recursive:
            # recursion runs no loop: each call polls for Ctrl-C once, here, rather than
            # at each of its call sites (self-inlining leaves a function many of those)
            body = self.lfn.append_basic_block("body")
            self.poll(body)
            self.blocks[self.fn.blocks[0].name] = body
        for at, block in enumerate(self.fn.blocks):
            self.at = at
            self.b.position_at_end(self.blocks[block.name])
            for ins in block.instrs:
                self.instr(ins)

    def v(self, value: Value) -> Any:
        if value.type == T.NIL:
            return ir.Constant(NIL_T, 0)
        return self.values[value.id]

    def error_block(self, kind: int) -> ir.Block:
        code = error_code(kind, self.span)
        block = self._err_blocks.get(code)
        if block is None:
            block = self.lfn.append_basic_block(f"raise{code}")
            here = self.b.block
            self.b.position_at_end(block)
            self.b.call(self.mod.raise_fn, [ir.Constant(I32, code)])
            self.b.unreachable()
            self.b.position_at_end(here)
            self._err_blocks[code] = block
        return block

    def check(self, failed: Any, code: int) -> None:
        """Branch to the raise block when `failed` (unlikely), continue otherwise."""
        ok = self.lfn.append_basic_block("ok")
        self.b.cbranch(failed, self.error_block(code), ok)
        self.b.position_at_end(ok)

    def check_leaving(self, failed: Any, values: tuple[Any, Any, Any], kind: int) -> None:
        """`check` whose failing path leaves three i64 values in the fault cells, for a
        message that says what tier 0's says (an index and a length, a float)."""
        fault = self.lfn.append_basic_block("fault")
        ok = self.lfn.append_basic_block("ok")
        self.b.cbranch(failed, fault, ok)
        self.b.position_at_end(fault)
        cells = self.mod.fault()
        for k, v in enumerate(values):
            v = v if isinstance(v, ir.Value) else ir.Constant(I64, v)
            self.b.store(v, self.b.gep(cells, [ir.Constant(I32, 0), ir.Constant(I32, k)]))
        self.b.call(self.mod.raise_fn, [ir.Constant(I32, error_code(kind, self.span))])
        self.b.unreachable()
        self.b.position_at_end(ok)

    def instr(self, ins: Instr) -> None:
        if ins.span.line > 0:
            self.span = ins.span
        handler = HANDLERS[ins.op]
        result = handler(self, ins)
        if ins.result is not None and result is not None:
            self.values[ins.result.id] = result

    # -- arithmetic ----------------------------------------------------------------------

    def checked(self, name: str, x: Any, y: Any) -> Any:
        f = self.mod.intrinsic(f"llvm.{name}.with.overflow.i64", ir.LiteralStructType([I64, I1]), [I64, I64])
        pair = self.b.call(f, [x, y])
        self.check(self.b.extract_value(pair, 1), ERR_OVERFLOW_OP[name])
        return self.b.extract_value(pair, 0)

    def arith(self, ins: Instr) -> Any:
        x, y = (self.v(a) for a in ins.args)
        if ins.args[0].type == T.F64:
            return {Op.ADD: self.b.fadd, Op.SUB: self.b.fsub, Op.MUL: self.b.fmul}[ins.op](x, y)
        if ins.attr == "nowrap":  # the builder proved it stays in range (a range's step)
            return {Op.ADD: self.b.add, Op.SUB: self.b.sub, Op.MUL: self.b.mul}[ins.op](x, y, flags=["nsw"])
        return self.checked({Op.ADD: "sadd", Op.SUB: "ssub", Op.MUL: "smul"}[ins.op], x, y)

    def int_division(self, ins: Instr) -> Any:
        x, y = (self.v(a) for a in ins.args)
        zero, minus1 = ir.Constant(I64, 0), ir.Constant(I64, -1)
        self.check(self.b.icmp_signed("==", y, zero), ERR_ZERO_OP[ins.op])
        is_m1 = self.b.icmp_signed("==", y, minus1)
        safe_y = self.b.select(is_m1, ir.Constant(I64, 1), y)  # srem/sdiv by -1 is UB at INT_MIN
        r = self.b.srem(x, safe_y)
        r = self.b.select(is_m1, zero, r)
        if ins.op is Op.REM:
            return r
        adjust = self.b.and_(self.b.icmp_signed("!=", r, zero),
                             self.b.icmp_signed("<", self.b.xor(r, y), zero))
        if ins.op is Op.MOD:
            return self.b.select(adjust, self.b.add(r, y), r)
        # x // -1 == -x, which overflows only for INT_MIN
        self.check(self.b.and_(is_m1, self.b.icmp_signed("==", x, ir.Constant(I64, -(2**63)))),
                   ERR_OVERFLOW_OP["sdiv"])
        neg = self.b.sub(zero, x)
        q = self.b.sdiv(x, safe_y)
        q = self.b.select(adjust, self.b.sub(q, ir.Constant(I64, 1)), q)
        return self.b.select(is_m1, neg, q)

    def neg(self, ins: Instr) -> Any:
        x = self.v(ins.args[0])
        if ins.args[0].type == T.F64:
            return self.b.fneg(x)
        return self.checked("ssub", ir.Constant(I64, 0), x)

    def compare(self, ins: Instr) -> Any:
        x, y = (self.v(a) for a in ins.args)
        sym = CMP_SYMBOLS[ins.op]
        tx, ty = ins.args[0].type, ins.args[1].type
        if tx != ty:  # an int against a float: exact, as Python compares them
            if tx == T.F64:
                return self.int_float_compare(_SWAPPED[sym], y, x)
            return self.int_float_compare(sym, x, y)
        if tx == T.F64:
            if ins.op is Op.NE:
                return self.b.fcmp_unordered("!=", x, y)
            return self.b.fcmp_ordered(sym, x, y)
        if ins.args[0].type == T.BOOL:
            return self.b.icmp_unsigned(sym, x, y)
        return self.b.icmp_signed(sym, x, y)

    def int_float_compare(self, sym: str, i: Any, f: Any) -> Any:
        """`i sym f` for an i64 `i` and an f64 `f`, exactly. Rounding `i` to a double is
        monotonic, so when the rounded value differs from `f` it orders `i` as `i` itself
        would; when they are equal, `f` is integral with |f| <= 2^63 and is compared as an
        int (2^63 itself exceeds every i64). NaN compares false."""
        b = self.b
        fi = b.sitofp(i, F64)
        below, above = b.fcmp_ordered("<", fi, f), b.fcmp_ordered(">", fi, f)
        small = b.fcmp_ordered("<", f, ir.Constant(F64, 2.0**63))
        tie = b.and_(b.fcmp_ordered("==", fi, f), small)
        # fptosi of an out-of-range double is poison: convert only where it is exact
        fint = b.fptosi(b.select(tie, f, ir.Constant(F64, 0.0)), I64)
        tie_cmp = b.and_(tie, b.icmp_signed(sym, i, fint))
        if sym in ("<", "<="):
            top = b.and_(b.fcmp_ordered("==", fi, f), b.not_(small))  # i < 2^63 == f
            return b.or_(b.or_(below, top), tie_cmp)
        return b.or_(above, tie_cmp)

    # -- memory and calls ----------------------------------------------------------------

    def get(self, ins: Instr) -> Any:
        if ins.attr not in self.slots:  # a nil slot holds nothing
            return None
        return self.b.load(self.slots[ins.attr], name=ins.attr.replace("$", "t"))

    def set(self, ins: Instr) -> None:
        if ins.attr in self.slots:
            self.b.store(self.v(ins.args[0]), self.slots[ins.attr])

    def call(self, ins: Instr) -> Any:
        from gene_jit.codegen.emit_depth import call_budget

        callee = self.mod.functions[ins.attr]
        result = self.b.call(callee, [*(self.v(a) for a in ins.args), call_budget(self)])
        return result if ins.result is not None and ins.result.type != T.NIL else None

    def element_ptr(self, ins: Instr) -> Any:
        arr = self.v(ins.args[0])
        ndim, elem = ins.args[0].type.ndim, ins.args[0].type.elem
        assert elem is not None, "an element pointer into a non-array"
        offset = ir.Constant(I64, 0)
        for axis in range(ndim):
            i = self.v(ins.args[1 + axis])
            n = self.b.extract_value(arr, 1 + axis)
            given = i
            i = self.b.select(self.b.icmp_signed("<", i, ir.Constant(I64, 0)), self.b.add(i, n), i)
            self.check_leaving(self.b.icmp_unsigned(">=", i, n), (given, n, index_kind(elem, ndim - axis)),
                               ERR_INDEX)
            offset = self.b.add(offset, self.b.mul(i, self.b.extract_value(arr, 3 + axis)))
        return self.b.gep(self.b.extract_value(arr, 0), [offset], source_etype=I8)

    def load(self, ins: Instr) -> Any:
        assert ins.result is not None
        return self.b.load(self.element_ptr(ins), typ=llvm_type(ins.result.type))

    def store(self, ins: Instr) -> None:
        self.b.store(self.v(ins.args[-1]), self.element_ptr(ins))

    def length(self, ins: Instr) -> Any:
        return self.b.extract_value(self.v(ins.args[0]), 1 + int(ins.attr))

    def next_step(self, ins: Instr) -> Any:
        """`next (step, inclusive) i, end`: whether i + step is still in the range, from
        the distance end - i (which fits in 64 unsigned bits while i is in the range)."""
        i, end = (self.v(a) for a in ins.args)
        step, inclusive = ins.attr
        if step == 1 and inclusive:
            return self.b.icmp_signed("<", i, end)
        distance = self.b.sub(end, i) if step > 0 else self.b.sub(i, end)
        size = ir.Constant(I64, _signed64(abs(step)))
        return self.b.icmp_unsigned(">=" if inclusive else ">", distance, size)

    def depth(self, ins: Instr) -> None:
        from gene_jit.codegen.emit_depth import depth_mark

        depth_mark(self, int(ins.attr))

    # -- control flow --------------------------------------------------------------------

    def br(self, ins: Instr) -> None:
        self.b.branch(self.edge(ins.targets[0]))

    def cbr(self, ins: Instr) -> None:
        self.b.cbranch(self.v(ins.args[0]), self.edge(ins.targets[0]), self.edge(ins.targets[1]))

    def edge(self, target: str) -> ir.Block:
        """The block a branch to `target` enters. The builder makes a loop's head before
        its body, so a branch back to an earlier block (or its own) closes a loop: it
        passes the interrupt check first (interrupt.py), so that Ctrl-C stops any loop.
        A relaxed atomic load, since LLVM must not hoist it out of the loop."""
        if self.order[target] > self.at:
            return self.blocks[target]
        here = self.b.block
        check = self.lfn.append_basic_block(f"poll.{target}")
        self.b.position_at_end(check)
        self.poll(self.blocks[target])
        self.b.position_at_end(here)
        return check

    def poll(self, then: ir.Block) -> None:
        """Here: run Python's signal handlers if SIGINT came (rarely taken), then `then`."""
        b = self.b
        cold = self.lfn.append_basic_block("interrupted")
        flag = self.mod.global_i32("gene_jit_interrupt")
        set_ = b.icmp_unsigned("!=", b.load_atomic(flag, "monotonic", 4, typ=I32), ir.Constant(I32, 0))
        b.cbranch(set_, cold, then).set_weights([1, 1 << 20])
        b.position_at_end(cold)
        poll = self.mod.intrinsic("gene_jit_poll", ir.VoidType(), [I32])
        b.call(poll, [ir.Constant(I32, error_code(ERR_INTERRUPT, self.span))])
        b.branch(then)

    def ret(self, ins: Instr) -> None:
        if self.fn.ret == T.NIL:
            self.b.ret_void()
        else:
            self.b.ret(self.v(ins.args[0]))

    def const(self, ins: Instr) -> Any:
        assert ins.result is not None
        t = ins.result.type
        if t == T.NIL:
            return None
        return ir.Constant(llvm_type(t), int(ins.attr) if t != T.F64 else float(ins.attr))

    def math(self, ins: Instr) -> Any:
        from gene_jit.codegen.emit_math import emit_math

        return emit_math(self, ins)

    def ffi(self, ins: Instr) -> Any:
        from gene_jit.codegen.emit_ffi import emit_ffi

        return emit_ffi(self, ins)


CMP_SYMBOLS = {Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">=", Op.EQ: "==", Op.NE: "!="}
_SWAPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}

HANDLERS: dict[Op, Callable[[FunctionEmitter, Instr], Any]] = {
    Op.CONST: FunctionEmitter.const,
    Op.GET: FunctionEmitter.get,
    Op.SET: FunctionEmitter.set,
    Op.ADD: FunctionEmitter.arith,
    Op.SUB: FunctionEmitter.arith,
    Op.MUL: FunctionEmitter.arith,
    Op.DIV: lambda e, i: e.b.fdiv(e.v(i.args[0]), e.v(i.args[1])),
    Op.IDIV: FunctionEmitter.int_division,
    Op.MOD: FunctionEmitter.int_division,
    Op.REM: FunctionEmitter.int_division,
    Op.NEG: FunctionEmitter.neg,
    Op.LT: FunctionEmitter.compare,
    Op.LE: FunctionEmitter.compare,
    Op.GT: FunctionEmitter.compare,
    Op.GE: FunctionEmitter.compare,
    Op.EQ: FunctionEmitter.compare,
    Op.NE: FunctionEmitter.compare,
    Op.NOT: lambda e, i: e.b.xor(e.v(i.args[0]), ir.Constant(I1, 1)),
    Op.I2F: lambda e, i: e.b.sitofp(e.v(i.args[0]), F64),
    Op.MATH: FunctionEmitter.math,
    Op.CALL: FunctionEmitter.call,
    Op.LEN: FunctionEmitter.length,
    Op.LOAD: FunctionEmitter.load,
    Op.STORE: FunctionEmitter.store,
    Op.BR: FunctionEmitter.br,
    Op.CBR: FunctionEmitter.cbr,
    Op.RET: FunctionEmitter.ret,
    Op.FFI: FunctionEmitter.ffi,
    Op.NEXT: FunctionEmitter.next_step,
    Op.DEPTH: FunctionEmitter.depth,
}


def _recursive(unit: Unit) -> set[str]:
    """The functions of `unit` that can reach themselves through its calls."""
    calls = {name: {i.attr for b in fn.blocks for i in b.instrs if i.op is Op.CALL} & unit.functions.keys()
             for name, fn in unit.functions.items()}
    found: set[str] = set()
    for start in calls:
        seen: set[str] = set()
        todo = list(calls[start])
        while todo:
            name = todo.pop()
            if name == start:
                found.add(start)
                break
            if name not in seen:
                seen.add(name)
                todo.extend(calls[name])
    return found


def _signed64(n: int) -> int:
    """`n` (0 <= n < 2^64) as the signed value with the same 64 bits."""
    return n - (1 << 64) if n >= 1 << 63 else n


def emit_unit(unit: Unit, module_name: str) -> ir.Module:
    return ModuleEmitter(unit, module_name).emit()
