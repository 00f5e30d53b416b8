"""LLVM emission of direct foreign calls (`ffi` instructions, typed by
gene_jit/ir/ffi_calls.py), struct field reads, and the entry guards that keep them honest.

A foreign call is an LLVM `call` through the symbol's address as a constant
(`inttoptr`), with the C signature and the x86-64 System V calling convention, so it
costs what a call from C costs: no Python object, no ctypes, no lookup.

Struct values live in tier 1 as `[n x i64]` (the bytes, padded to eightbytes). By value
they cross C calls as the SysV ABI says: a struct of at most 16 bytes whose fields are
naturally aligned is split into eightbytes, each passed in a general register (INTEGER
class: any integer or pointer byte in it) or an SSE register (only float/double bytes),
and returned in RAX/RDX or XMM0/XMM1 the same way; bigger structs, or small ones when
the registers left do not hold all their eightbytes, go by a `byval` pointer to a copy
(arguments) or a hidden `sret` pointer (results).

NumPy arrays passed for pointer parameters go as their data pointer, after a check that
they are C-contiguous. Kernel calls (records with `dtypes`, from
gene_jit/tensor_kernels/gene_kernels.py) also check, before the call, that no shape is
negative and that every array holds what the shapes need, and after it that the status
is 0. A failed check calls back into Python (`raise_pending`): the kernel module builds
the same Gene error tier 0 raises, naming the kernel and the shapes, and the compiled
code raises it through the entry. `RowView` instructions (row `i` of a 2-D array) are
emitted here too.

Guards: a compiled function calls the address that its callee's name held when it was
compiled. Every ffi/defun name a module calls is recorded on the `ir.Module`, and the
entry trampoline checks (one dict lookup each) that each name is still bound to the same
object before running native code. On a mismatch it tells `_rebound`, which retires that
signature, and takes the guard-miss path to tier 0. Compiled code cannot rebind globals,
so one check per entry covers every call it makes.
"""

from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING, Any

import llvmlite.binding as llvm
import llvmlite.ir as ir
from llvmlite.ir.types import _TypedPointerType

from gene_jit.codegen.emit import (
    ARRAY,
    ERR_INDEX,
    ERR_PENDING,
    F64,
    I1,
    I8,
    I64,
    PTR,
    error_code,
)
from gene_jit.ffi import crash
from gene_jit.ir import types as T
from gene_jit.ir.builder import NotTypeable
from gene_jit.ir.ffi_calls import Binding, FieldRead, ForeignCall, RowView, StructType
from gene_jit.ir.nodes import Instr

if TYPE_CHECKING:
    from gene_jit.codegen.emit import FunctionEmitter
    from gene_jit.codegen.trampoline import EntryEmitter

F32 = ir.FloatType()
INT_REGS, SSE_REGS = 6, 8  # argument registers of the SysV ABI
GUARDS_ATTR = "gene_ffi_guards"

# Objects whose addresses compiled code holds as constants (namespaces, names, callables).
_KEEP: list[Any] = []
_NONCE = int.from_bytes(os.urandom(8), "little") >> 1

llvm.add_symbol("PyDict_GetItem", ctypes.cast(ctypes.pythonapi.PyDict_GetItem, ctypes.c_void_p).value)


class PtrTo(_TypedPointerType):
    """An opaque `ptr` that remembers what it points to: llvmlite needs the pointee to
    print `byval(T)` / `sret(T)` and to call through a function pointer, while the
    printed IR keeps LLVM's opaque pointers."""

    def _to_string(self) -> str:
        return "ptr"


def struct_llvm_type(t: T.Type) -> ir.ArrayType:
    assert isinstance(t, StructType)
    return ir.ArrayType(I64, max(1, (t.struct.size + 7) // 8))


# -- SysV classification ------------------------------------------------------------------


def _scalars(cls: Any, base: int = 0) -> list[tuple[int, int, bool]]:
    """(offset, size, is_float) of every scalar in a struct, nested structs and arrays
    flattened."""
    out: list[tuple[int, int, bool]] = []
    for f in cls.fields:
        t, off = f.type, base + f.offset
        if t.kind == "struct":
            out += _scalars(t.target, off)
        elif t.kind == "array":
            elem = t.target
            for i in range(t.length):
                if elem.kind == "struct":
                    out += _scalars(elem.target, off + i * elem.size)
                else:
                    out.append((off + i * elem.size, elem.size, elem.kind == "float"))
        else:
            out.append((off, t.size, t.kind == "float"))
    return out


def classify(cls: Any) -> tuple[bool, ...] | None:
    """Per eightbyte, True for the SSE class and False for INTEGER; None for MEMORY."""
    size = cls.size
    if size == 0 or size > 16:
        return None
    sse = [True] * ((size + 7) // 8)
    for off, sz, is_float in _scalars(cls):
        if sz and off % sz:
            return None  # an unaligned field (packed struct) puts the struct in memory
        if not is_float:
            sse[off // 8] = False
    return tuple(sse)


# -- calls --------------------------------------------------------------------------------


class CallBuilder:
    """Lowers one foreign call: C parameter types, attributes and argument values."""

    def __init__(self, e: FunctionEmitter, ins: Instr, call: ForeignCall) -> None:
        self.e = e
        self.b = e.b
        self.rec = call.rec
        self.ins = ins
        self.types: list[ir.Type] = []
        self.values: list[Any] = []
        self.attrs: dict[int, tuple[str, ...]] = {}
        self.gprs = self.sses = 0
        self.sret: Any = None
        self.pos = 0  # the argument being lowered

    def add(self, ty: ir.Type, value: Any, attrs: tuple[str, ...] = ()) -> None:
        if attrs:
            self.attrs[len(self.types)] = attrs
        self.types.append(ty)
        self.values.append(value)

    def build(self) -> Any:
        ret = self.rec.returns
        ret_ty = self.return_type(ret)
        for pos, (t, arg) in enumerate(zip(self.rec.params, self.ins.args, strict=True)):
            self.pos = pos
            self.argument(t, arg)
        fnty = ir.FunctionType(ret_ty, self.types)
        # an instruction, not a constant expression: llvmlite types calls through values
        # only (LLVM folds it back into a constant address)
        callee = self.b.inttoptr(ir.Constant(I64, self.rec.address), PtrTo(fnty))
        # the record of the current call that crash reports read (gene_jit/ffi/crash.py)
        slot = self.b.inttoptr(ir.Constant(I64, crash.CURRENT_ADDRESS), PTR)
        self.b.store(ir.Constant(I64, crash.name_address(self.rec.name)), slot)
        result = self.b.call(callee, self.values, arg_attrs=self.attrs or None)
        self.b.store(ir.Constant(I64, 0), slot)
        return self.result(ret, result)

    def return_type(self, t: Any) -> ir.Type:
        kind = t.kind
        if kind == "void":
            return ir.VoidType()
        if kind == "int":
            return ir.IntType(8 * t.size)
        if kind == "float":
            return F32 if t.size == 4 else F64
        if kind == "bool":
            return I8
        if kind == "struct":
            classes = classify(t.target)
            if classes is None:
                agg = struct_llvm_type(self.ins.result.type)  # type: ignore[union-attr]
                self.sret = entry_alloca(self.e, agg)
                self.add(PtrTo(agg), self.sret, ("sret", "noalias"))
                self.gprs += 1
                return ir.VoidType()
            return ir.LiteralStructType([F64 if s else I64 for s in classes])
        return PTR

    def argument(self, t: Any, arg: Any) -> None:
        v = self.e.v(arg)
        kind = t.kind
        if kind == "int":
            self.gprs += 1
            self.add(*self.int_arg(t, v))
        elif kind == "float":
            self.sses += 1
            if arg.type == T.I64:
                v = self.b.sitofp(v, F64)
            self.add(F32, self.b.fptrunc(v, F32)) if t.size == 4 else self.add(F64, v)
        elif kind == "bool":
            self.gprs += 1
            self.add(I1, v, ("zeroext",))
        elif kind == "struct":
            self.struct_arg(t, v)
        else:  # pointers
            self.gprs += 1
            kernel = getattr(self.rec, "dtypes", None) is not None  # checked already
            if arg.type.kind is T.Kind.ARRAY:
                if not kernel:
                    contiguous = array_facts(self.e, v, arg.type)[1]
                    raise_pending(self.e, self.b.not_(contiguous), _not_contiguous,
                                  [self.rec, self.pos])
                v = self.b.extract_value(v, 0)
            elif arg.type == T.I64:  # nil where nullable, or an address (bindings only)
                raise_pending(self.e, self.b.icmp_signed("<", v, ir.Constant(I64, 0)),
                              bad_argument, [self.rec, self.pos, v])
                v = self.b.inttoptr(v, PTR)
            elif not (kernel or t.nullable or self.rec.addresses):
                raise_pending(self.e, self.b.icmp_unsigned("==", v, ir.Constant(PTR, None)),
                              null_argument, [self.rec, self.pos])
            self.add(PTR, v)

    def int_arg(self, t: Any, v: Any) -> tuple[ir.Type, Any, tuple[str, ...]]:
        """The C integer for an i64, after the range check tier 0 makes too."""
        bits = 8 * t.size
        if bits == 64 and t.signed:
            return I64, v, ()
        args = [self.rec, self.pos, v]
        if bits == 64:
            raise_pending(self.e, self.b.icmp_signed("<", v, ir.Constant(I64, 0)),
                          bad_argument, args)
            return I64, v, ()
        low = self.b.icmp_signed("<", v, ir.Constant(I64, t.lo))
        high = self.b.icmp_signed(">", v, ir.Constant(I64, t.hi))
        raise_pending(self.e, self.b.or_(low, high), bad_argument, args)
        ty = ir.IntType(bits)
        ext = ("signext",) if t.signed else ("zeroext",)
        return ty, self.b.trunc(v, ty), ext if bits < 32 else ()

    def struct_arg(self, t: Any, agg: Any) -> None:
        classes = classify(t.target)
        if classes is not None:
            need_sse = sum(classes)
            need_gpr = len(classes) - need_sse
            if self.gprs + need_gpr <= INT_REGS and self.sses + need_sse <= SSE_REGS:
                self.gprs += need_gpr
                self.sses += need_sse
                for i, sse in enumerate(classes):
                    word = self.b.extract_value(agg, i)
                    self.add(F64, self.b.bitcast(word, F64)) if sse else self.add(I64, word)
                return
        # memory class, or out of registers: the whole struct goes on the stack
        copy = entry_alloca(self.e, agg.type)
        self.b.store(agg, copy)
        self.add(PtrTo(agg.type), copy, ("byval",))

    def result(self, t: Any, r: Any) -> Any:
        kind = t.kind
        b = self.b
        if kind == "void":
            return None
        if kind == "int":
            return self.extend(t, r)
        if kind == "float":
            return b.fpext(r, F64) if t.size == 4 else r
        if kind == "bool":
            return b.icmp_unsigned("!=", r, ir.Constant(I8, 0))
        if kind == "struct":
            if self.sret is not None:
                return b.load(self.sret)
            agg_ty = struct_llvm_type(self.ins.result.type)  # type: ignore[union-attr]
            agg = ir.Constant(agg_ty, None)
            for i, elt in enumerate(r.type.elements):
                word = b.extract_value(r, i)
                agg = b.insert_value(agg, b.bitcast(word, I64) if elt == F64 else word, i)
            return agg
        return r

    def extend(self, t: Any, r: Any) -> Any:
        return extend_int(self.e, t, r, self.rec.name)


def extend_int(e: FunctionEmitter, t: Any, r: Any, what: str) -> Any:
    """A C integer as a Gene int: extended to 64 bits; a uint64 past int64 range is an
    overflow, as Gene ints are 64-bit (the error tier 0 raises, naming `what`)."""
    if t.size == 8:
        if not t.signed:
            raise_pending(e, e.b.icmp_signed("<", r, ir.Constant(I64, 0)), too_big, [what, r])
        return r
    return e.b.sext(r, I64) if t.signed else e.b.zext(r, I64)


def entry_alloca(e: FunctionEmitter, ty: ir.Type) -> Any:
    """A stack slot allocated once in the entry block (an alloca inside a loop would
    grow the stack on every trip)."""
    here = e.b.block
    e.b.position_at_start(e.lfn.entry_basic_block)
    slot = e.b.alloca(ty)
    slot.align = 16
    e.b.position_at_end(here)
    return slot


def emit_ffi(e: FunctionEmitter, ins: Instr) -> Any:
    attr = ins.attr
    if isinstance(attr, FieldRead):
        return field_read(e, ins, attr)
    if isinstance(attr, RowView):
        return row_view(e, ins)
    assert isinstance(attr, ForeignCall)
    guards = e.mod.module.__dict__.setdefault(GUARDS_ATTR, {})
    for binding in (*attr.outer, attr.binding):
        guards[(id(binding.namespace), binding.key)] = binding
    if getattr(attr.rec, "dtypes", None) is not None:
        return kernel_call(e, ins, attr)
    return CallBuilder(e, ins, attr).build()


# -- arrays and kernels -------------------------------------------------------------------

ITEMSIZE = {T.F64: 8, T.I64: 8, T.F32: 4, T.U16: 2, T.U8: 1}


def row_view(e: FunctionEmitter, ins: Instr) -> Any:
    """Row i of a 2-D array `{data, n0, n1, s0, s1}`: `{data + i*s0, n1, 1, s1, 0}`."""
    b = e.b
    arr, i = e.v(ins.args[0]), e.v(ins.args[1])
    n0 = b.extract_value(arr, 1)
    i = b.select(b.icmp_signed("<", i, ir.Constant(I64, 0)), b.add(i, n0), i)
    e.check(b.icmp_unsigned(">=", i, n0), ERR_INDEX)
    data = b.gep(b.extract_value(arr, 0), [b.mul(i, b.extract_value(arr, 3))], source_etype=I8)
    row = ir.Constant(ARRAY, None)
    for k, v in enumerate((data, b.extract_value(arr, 2), ir.Constant(I64, 1),
                           b.extract_value(arr, 4), ir.Constant(I64, 0))):
        row = b.insert_value(row, v, k)
    return row


def array_facts(e: FunctionEmitter, arr: Any, ty: T.Type) -> tuple[Any, Any]:
    """(element count, C-contiguous?) of an array value, with NumPy's rule: an empty
    array is contiguous, and a stride does not matter along an axis of length 1. (A 1-D
    array is stored with n1 = 1, which the same test covers.)"""
    assert ty.elem is not None
    b = e.b
    n0, n1, s0, s1 = (b.extract_value(arr, k) for k in (1, 2, 3, 4))
    size = ir.Constant(I64, ITEMSIZE[ty.elem])

    def eq(x: Any, y: Any) -> Any:
        return b.icmp_signed("==", x, y)

    one, zero = ir.Constant(I64, 1), ir.Constant(I64, 0)
    inner = b.or_(eq(n1, one), eq(s1, size))
    outer = b.or_(eq(n0, one), eq(s0, b.mul(n1, size)))
    empty = b.or_(eq(n0, zero), eq(n1, zero))
    return b.mul(n0, n1), b.or_(empty, b.and_(inner, outer))


def raise_pending(e: FunctionEmitter, failed: Any, fn: Any, args: list[Any]) -> None:
    """When `failed`: call `fn(*args)` through the C API, then raise the Gene error `fn`
    left in engine.PENDING; the builder goes on where it did not fail. `args`: Python
    objects (passed as they are), ints and LLVM i64/f64 values (boxed). The failure path
    is a cold function of its own, so the hot code holds one call and no C API."""
    b = e.b
    values = [a for a in args if isinstance(a, ir.Value)]
    helper = _fail_helper(e, fn, args)
    cold, ok = e.lfn.append_basic_block("ffi_fail"), e.lfn.append_basic_block("ok")
    b.cbranch(failed, cold, ok)
    b.position_at_end(cold)
    b.call(helper, values)
    b.unreachable()
    b.position_at_end(ok)


def _fail_helper(e: FunctionEmitter, fn: Any, args: list[Any]) -> ir.Function:
    mod = e.mod.module
    n = sum(1 for name in mod.globals if name.startswith("ffi_fail_"))
    params = [a.type for a in args if isinstance(a, ir.Value)]
    helper = ir.Function(mod, ir.FunctionType(ir.VoidType(), params), f"ffi_fail_{n}")
    helper.linkage = "private"
    for attr in ("noinline", "cold", "noreturn"):
        helper.attributes.add(attr)
    b = ir.IRBuilder(helper.append_basic_block("entry"))
    box_int = _decl(mod, "PyLong_FromLongLong", PTR, [I64])
    box_float = _decl(mod, "PyFloat_FromDouble", PTR, [F64])
    vcall = _decl(mod, "PyObject_Vectorcall", PTR, [PTR, PTR, I64, PTR])
    decref = _decl(mod, "Py_DecRef", ir.VoidType(), [PTR])
    vec = b.alloca(ir.ArrayType(PTR, len(args)))
    boxed = []
    incoming = iter(helper.args)
    for k, a in enumerate(args):
        if isinstance(a, ir.Value):
            obj = b.call(box_float if a.type == F64 else box_int, [next(incoming)])
            boxed.append(obj)
        elif isinstance(a, int):
            obj = b.call(box_int, [ir.Constant(I64, a)])
            boxed.append(obj)
        else:
            obj = _const_ptr(a)
        b.store(obj, b.gep(vec, [ir.Constant(I64, 0), ir.Constant(I64, k)]))
    r = b.call(vcall, [_const_ptr(fn), vec, ir.Constant(I64, len(args)), ir.Constant(PTR, None)])
    for obj in (r, *boxed):
        b.call(decref, [obj])
    b.call(e.mod.raise_fn, [ir.Constant(ir.IntType(32), error_code(ERR_PENDING, e.span))])
    b.unreachable()
    return helper


def bad_argument(rec: Any, index: int, value: int) -> None:
    """Leave the error tier 0 raises for argument `index` of `rec` having `value`."""
    from gene_jit.codegen.engine import PENDING
    from gene_jit.ffi.types import arg_error, to_c

    t = rec.params[index]
    try:
        to_c(t, value, rec.addresses)
        why = "refused by the compiled call"
    except TypeError as exc:
        why = str(exc)
    PENDING.append(arg_error(rec.name, index, t, value, why))


def null_argument(rec: Any, index: int) -> None:
    """A NULL pointer (nil in tier 0) for a parameter that is not nullable."""
    from gene_jit.codegen.engine import PENDING
    from gene_jit.ffi.types import arg_error, to_c

    t = rec.params[index]
    try:
        to_c(t, None, rec.addresses)
        why = "refused by the compiled call"
    except TypeError as exc:
        why = str(exc)
    PENDING.append(arg_error(rec.name, index, t, None, why))


def too_big(what: str, raw: int) -> None:
    """A uint64 result above the int64 range (`raw` is its bits as an int64)."""
    from gene_jit.codegen.engine import PENDING
    from gene_jit.ffi import types

    PENDING.append(types.too_big(what, raw % 2**64))


def _not_contiguous(rec: Any, index: int) -> None:
    from gene_jit.codegen.engine import PENDING
    from gene_jit.runtime.errors import GeneTypeError

    t = rec.params[index]
    PENDING.append(GeneTypeError(f"{rec.name}: argument {index + 1} must be :{t.name}, got "
                                 "an array that is not C-contiguous"))


def _need(e: FunctionEmitter, need: Any, shapes: dict[str, Any]) -> tuple[Any, Any]:
    """(elements a buffer needs, overflowed?) for a gene_kernels.Need."""
    b = e.b
    mul = e.mod.intrinsic("llvm.smul.with.overflow.i64", ir.LiteralStructType([I64, I1]), [I64, I64])
    n: Any = ir.Constant(I64, 1)
    overflow: Any = ir.Constant(I1, 0)
    for factor in need.factors:
        pair = b.call(mul, [n, shapes[factor]])
        n, overflow = b.extract_value(pair, 0), b.or_(overflow, b.extract_value(pair, 1))
    if need.div != 1:
        n = b.sdiv(n, ir.Constant(I64, need.div))
    if need.mul != 1:
        n = b.mul(n, ir.Constant(I64, need.mul))
    return n, overflow


def kernel_call(e: FunctionEmitter, ins: Instr, call: ForeignCall) -> None:
    """A kernel call: the checks tier 0 makes (gene_kernels.problem), the call, the
    status; any failure raises the Gene error that gene_kernels.native_failure builds."""
    from gene_jit.tensor_kernels.gene_kernels import NOT_CONTIGUOUS, UNKNOWN, native_failure

    rec, b = call.rec, e.b
    spec = rec.spec
    bad: Any = ir.Constant(I1, 0)
    summary: list[Any] = []  # what gene_kernels.problem reads, in C order
    counts: dict[str, Any] = {}
    shapes: dict[str, Any] = {}
    for name, t, arg, dtype in zip(spec.names, rec.params, ins.args, rec.dtypes, strict=True):
        v = e.v(arg)
        if dtype is None:
            if t.kind == "int":
                shapes[name] = v
                bad = b.or_(bad, b.icmp_signed("<", v, ir.Constant(I64, 0)))
            summary.append(v)
        elif arg.type.kind is T.Kind.ARRAY:
            count, contiguous = array_facts(e, v, arg.type)
            counts[name] = count
            bad = b.or_(bad, b.not_(contiguous))
            summary.append(b.select(contiguous, count, ir.Constant(I64, NOT_CONTIGUOUS)))
        else:  # never reached: ffi_calls keeps pointers to kernels in tier 0
            summary.append(ir.Constant(I64, UNKNOWN))
    for name, need in spec.needs.items():
        want, overflow = _need(e, need, shapes)
        bad = b.or_(bad, overflow)
        if name in counts:
            bad = b.or_(bad, b.icmp_signed("<", counts[name], want))
    raise_pending(e, bad, native_failure, [rec, 0, *summary])
    status = CallBuilder(e, ins, call).build()
    raise_pending(e, b.icmp_signed("!=", status, ir.Constant(I64, 0)), native_failure,
                  [rec, status, *summary])


def field_read(e: FunctionEmitter, ins: Instr, read: FieldRead) -> Any:
    b = e.b
    agg = e.v(ins.args[0])
    cell = entry_alloca(e, agg.type)
    b.store(agg, cell)
    f = read.field
    p = b.gep(cell, [ir.Constant(I64, f.offset)], source_etype=I8)
    t = f.type
    if t.kind == "int":
        return extend_int(e, t, b.load(p, typ=ir.IntType(8 * t.size)),
                          f"{read.owner}.{f.name}" if read.owner else f.name)
    if t.kind == "float":
        return b.fpext(b.load(p, typ=F32), F64) if t.size == 4 else b.load(p, typ=F64)
    if t.kind == "bool":
        return b.icmp_unsigned("!=", b.load(p, typ=I8), ir.Constant(I8, 0))
    return b.load(p, typ=PTR)


# -- entry guards -------------------------------------------------------------------------


def _const_ptr(obj: Any) -> Any:
    _KEEP.append(obj)
    return ir.Constant(I64, id(obj)).inttoptr(PTR)


def _decl(mod: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = mod.globals.get(name)
    if existing is not None:
        return existing
    return ir.Function(mod, ir.FunctionType(ret, args), name)


def entry_guards(entry: EntryEmitter) -> None:
    """Called by the entry trampoline after its argument-count guard: refuse results
    Python cannot receive, and check every ffi/defun binding the module calls."""
    if entry.ret == T.PTR or entry.ret.kind is T.Kind.STRUCT:
        raise NotTypeable(f"returns a {entry.ret} (a C value tier 1 does not give back to Python)")
    if entry.ret.kind is T.Kind.ARRAY:  # the entry boxes no arrays (it would give nil)
        raise NotTypeable(f"returns an {entry.ret} (tier 1 does not give arrays back to Python)")
    guards: dict[Any, Binding] = entry.mod.__dict__.get(GUARDS_ATTR, {})
    if not guards:
        return
    b, mod = entry.b, entry.mod
    _process_nonce(mod)
    get_item = _decl(mod, "PyDict_GetItem", PTR, [PTR, PTR])
    rebound = entry.fn.append_basic_block("ffi_rebound")
    for binding in guards.values():
        key = _const_ptr(binding.key)
        got = b.call(get_item, [_const_ptr(binding.namespace), key])
        want = _const_ptr(binding.value)
        if binding.builtins is not None:  # not in the module: must still be absent there
            ok = b.icmp_unsigned("==", got, ir.Constant(PTR, None))
            nxt = entry.fn.append_basic_block("ffi_ok")
            b.cbranch(ok, nxt, rebound)
            b.position_at_end(nxt)
            got = b.call(get_item, [_const_ptr(binding.builtins), key])
        nxt = entry.fn.append_basic_block("ffi_ok")
        b.cbranch(b.icmp_unsigned("==", got, want), nxt, rebound)
        b.position_at_end(nxt)
    here = b.block
    b.position_at_end(rebound)
    _call_rebound(entry)
    b.branch(entry.miss)
    b.position_at_end(here)


def _process_nonce(mod: ir.Module) -> None:
    """Make the module text unique to this process: it holds addresses of this process's
    objects, so its object code must never come back from the disk cache in another."""
    if "gene_jit_ffi_nonce" not in mod.globals:
        g = ir.GlobalVariable(mod, I64, "gene_jit_ffi_nonce")
        g.linkage = "private"
        g.global_constant = True
        g.initializer = ir.Constant(I64, _NONCE)


def _call_rebound(entry: EntryEmitter) -> None:
    """`_rebound(address of this entry)` through the C API."""
    b, mod = entry.b, entry.mod
    box = _decl(mod, "PyLong_FromLongLong", PTR, [I64])
    vcall = _decl(mod, "PyObject_Vectorcall", PTR, [PTR, PTR, I64, PTR])
    decref = _decl(mod, "Py_DecRef", ir.VoidType(), [PTR])
    arg = b.call(box, [b.ptrtoint(entry.fn, I64)])
    vec = b.alloca(PTR)
    b.store(arg, vec)
    r = b.call(vcall, [_const_ptr(_rebound), vec, ir.Constant(I64, 1), ir.Constant(PTR, None)])
    b.call(decref, [r])
    b.call(decref, [arg])


def _rebound(entry_address: int) -> None:
    """An entry found an ffi/defun name rebound: retire its signature, so that the
    guard-miss path (and every later call) runs tier 0 with the new binding."""
    try:
        from gene_jit.codegen import hooks

        jit = hooks._hooks
        for state in jit.states.values() if jit is not None else ():
            for native in state.natives:
                if native.entry_address == entry_address:
                    state.native.pop(native.sig, None)
                    state.failed.add(native.sig)
                    state.stats.reason = "an ffi/defun name it calls was rebound"
                    if not state.native:
                        state.stats.tier = 0
    except Exception:  # noqa: BLE001 - called from native code, which cannot take an error
        pass
