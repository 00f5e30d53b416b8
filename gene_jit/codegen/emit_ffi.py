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

from gene_jit.codegen.emit import ERR_FFI_ARG, ERR_OVERFLOW, F64, I1, I8, I64, PTR
from gene_jit.ir import types as T
from gene_jit.ir.builder import NotTypeable
from gene_jit.ir.ffi_calls import Binding, FieldRead, ForeignCall, StructType
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

    def add(self, ty: ir.Type, value: Any, attrs: tuple[str, ...] = ()) -> None:
        if attrs:
            self.attrs[len(self.types)] = attrs
        self.types.append(ty)
        self.values.append(value)

    def build(self) -> Any:
        ret = self.rec.returns
        ret_ty = self.return_type(ret)
        for t, arg in zip(self.rec.params, self.ins.args, strict=True):
            self.argument(t, arg)
        fnty = ir.FunctionType(ret_ty, self.types)
        # an instruction, not a constant expression: llvmlite types calls through values
        # only (LLVM folds it back into a constant address)
        callee = self.b.inttoptr(ir.Constant(I64, self.rec.address), PtrTo(fnty))
        result = self.b.call(callee, self.values, arg_attrs=self.attrs or None)
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
            if arg.type == T.I64:
                self.e.check(self.b.icmp_signed("<", v, ir.Constant(I64, 0)), ERR_FFI_ARG)
                v = self.b.inttoptr(v, PTR)
            self.add(PTR, v)

    def int_arg(self, t: Any, v: Any) -> tuple[ir.Type, Any, tuple[str, ...]]:
        """The C integer for an i64, after the range check tier 0 makes too."""
        bits = 8 * t.size
        if bits == 64 and t.signed:
            return I64, v, ()
        if bits == 64:
            self.e.check(self.b.icmp_signed("<", v, ir.Constant(I64, 0)), ERR_FFI_ARG)
            return I64, v, ()
        low = self.b.icmp_signed("<", v, ir.Constant(I64, t.lo))
        high = self.b.icmp_signed(">", v, ir.Constant(I64, t.hi))
        self.e.check(self.b.or_(low, high), ERR_FFI_ARG)
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
        return extend_int(self.e, t, r)


def extend_int(e: FunctionEmitter, t: Any, r: Any) -> Any:
    """A C integer as a Gene int: extended to 64 bits; a uint64 past int64 range is an
    overflow, as Gene ints are 64-bit."""
    if t.size == 8:
        if not t.signed:
            e.check(e.b.icmp_signed("<", r, ir.Constant(I64, 0)), ERR_OVERFLOW)
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
    assert isinstance(attr, ForeignCall)
    guards = e.mod.module.__dict__.setdefault(GUARDS_ATTR, {})
    guards[(id(attr.binding.namespace), attr.binding.key)] = attr.binding
    return CallBuilder(e, ins, attr).build()


def field_read(e: FunctionEmitter, ins: Instr, read: FieldRead) -> Any:
    b = e.b
    agg = e.v(ins.args[0])
    cell = entry_alloca(e, agg.type)
    b.store(agg, cell)
    f = read.field
    p = b.gep(cell, [ir.Constant(I64, f.offset)], source_etype=I8)
    t = f.type
    if t.kind == "int":
        return extend_int(e, t, b.load(p, typ=ir.IntType(8 * t.size)))
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
