"""Entry trampolines: CPython-callable native entries to compiled functions.

For each compiled signature we emit, next to the function, an LLVM function with the
METH_FASTCALL signature `PyObject *entry(PyObject *self, PyObject *const *args,
Py_ssize_t nargs)`. It checks the argument count and the exact type of every argument
(the guard), unboxes them (small ints read straight from their digits, floats from
`ob_fval`, NumPy arrays from their `PyArrayObject` fields), sets a jmp_buf for errors,
calls the function and boxes the result. On a guard miss it calls `self`, the fallback
callable (tier 0, or the entry of another signature), with the same vector. The entry is
wrapped as a builtin function object via `PyCFunction_NewEx`, so calling it from Python
costs about what calling `len` does. The object layouts it reads are the running
interpreter's, from pylayout.py (CPython 3.11 to 3.13, checked at run time before the
first entry is made) and NumPy's ABI.
"""

from __future__ import annotations

import ctypes
from typing import Any

import llvmlite.ir as ir

from gene_jit.codegen import pylayout as L
from gene_jit.codegen.emit import ARRAY, F64, I1, I8, I32, I64, PTR, llvm_type
from gene_jit.ir import types as T

NPY_DOUBLE, NPY_LONG, NPY_LONGLONG = 12, 7, 9
NPY_FLOAT, NPY_UBYTE, NPY_USHORT = 11, 2, 4
# NumPy type numbers accepted for each array element type (int64 is `long` on Linux)
NPY_NUMS: dict[T.Type, tuple[int, ...]] = {
    T.F64: (NPY_DOUBLE,), T.I64: (NPY_LONG, NPY_LONGLONG), T.F32: (NPY_FLOAT,),
    T.U8: (NPY_UBYTE,), T.U16: (NPY_USHORT,),
}
METH_FASTCALL = 0x0080
# NativeCallable instance layout: PyObject header, vectorcall function, __dict__,
# fallback, fallback for calls with keywords (both borrowed: __dict__ holds them), and
# for a shared entry the native function it runs, the source file its errors name and
# the global names it was compiled against (bindings.py; NULL: none to check).
_HEADER = object.__basicsize__
(VCALL_OFFSET, DICT_OFFSET, FALLBACK_OFFSET, KW_FALLBACK_OFFSET, TARGET_OFFSET, FILE_OFFSET,
 BINDINGS_OFFSET) = (_HEADER + 8 * k for k in range(7))
NATIVE_CALLABLE_SIZE = _HEADER + 56


def _decl(mod: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = mod.globals.get(name)
    if existing is not None:
        return existing
    return ir.Function(mod, ir.FunctionType(ret, args), name)


def _gvar(mod: ir.Module, name: str, ty: ir.Type = I8) -> ir.GlobalVariable:
    existing = mod.globals.get(name)
    if existing is not None:
        return existing
    g = ir.GlobalVariable(mod, ty, name)
    g.linkage = "external"
    return g


class EntryEmitter:
    """Emits one entry. `target` is the function it calls, or, for a shared entry (one
    per signature, used by every function of that signature), the type of the functions
    it calls: `self` is then a NativeCallable that holds the function's address and
    source file (TARGET_OFFSET, FILE_OFFSET) beside the fallback."""

    def __init__(self, mod: ir.Module, target: ir.Function | ir.FunctionType, sig: tuple[T.Type, ...],
                 ret: T.Type, file: str = "", name: str = "") -> None:
        self.file = file
        self.mod = mod
        self.target = target
        self.shared = isinstance(target, ir.FunctionType)
        self.sig = sig
        self.ret = ret
        self.layout = L.require()
        fty = ir.FunctionType(PTR, [PTR, PTR, I64])
        self.fn = ir.Function(mod, fty, name or target.name + "_entry")  # type: ignore[union-attr]
        self.self_, self.args, self.nargs = self.fn.args
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self.miss = self.fn.append_basic_block("miss")

    def field(self, obj: Any, offset: int, ty: ir.Type) -> Any:
        p = self.b.gep(obj, [ir.Constant(I64, offset)], source_etype=I8)
        return self.b.load(p, typ=ty)

    def guard(self, cond: Any) -> None:
        ok = self.fn.append_basic_block("ok")
        self.b.cbranch(cond, ok, self.miss)
        self.b.position_at_end(ok)

    def emit(self) -> ir.Function:
        b = self.b
        self.guard(b.icmp_signed("==", self.nargs, ir.Constant(I64, len(self.sig))))
        from gene_jit.codegen.emit_ffi import entry_guards

        entry_guards(self)  # ffi/defun names still bound as when compiled
        from gene_jit.codegen.bindings import binding_guards

        binding_guards(self)  # global names too (late binding)
        values = []
        for i, ty in enumerate(self.sig):
            obj = b.load(b.gep(self.args, [ir.Constant(I64, i)], source_etype=PTR), typ=PTR)
            values.append(self.unbox(obj, ty))
        result = self.call_protected(values)
        b.ret(self.box(result))
        b.position_at_end(self.miss)
        vc = _decl(self.mod, "PyObject_Vectorcall", PTR, [PTR, PTR, I64, PTR])
        fallback = self.field(self.self_, FALLBACK_OFFSET, PTR) if self.shared else self.self_
        b.ret(b.call(vc, [fallback, self.args, self.nargs, ir.Constant(PTR, None)]))
        return self.fn

    def type_is(self, obj: Any, type_obj: Any) -> Any:
        return self.b.icmp_unsigned("==", self.field(obj, L.OB_TYPE, PTR), type_obj)

    def unbox(self, obj: Any, ty: T.Type) -> Any:
        b = self.b
        if ty == T.F64:
            self.guard(self.type_is(obj, _gvar(self.mod, "PyFloat_Type")))
            return self.field(obj, L.FLOAT_VALUE, F64)
        if ty == T.BOOL:
            self.guard(self.type_is(obj, _gvar(self.mod, "PyBool_Type")))
            return b.icmp_unsigned("==", obj, _gvar(self.mod, "_Py_TrueStruct"))
        if ty == T.I64:
            self.guard(self.type_is(obj, _gvar(self.mod, "PyLong_Type")))
            return self.unbox_int(obj)
        if ty.kind is T.Kind.ARRAY:
            return self.unbox_array(obj, ty)
        raise ValueError(f"no entry for {ty}")

    def unbox_int(self, obj: Any) -> Any:
        """Ints of at most one 30-bit digit are read inline (pylayout.small_int says
        how); bigger ones through PyLong_AsLongLongAndOverflow (out of int64 range: a
        guard miss)."""
        b = self.b
        size = self.field(obj, L.LONG_SIZE, I64)
        fast, slow, done = (self.fn.append_basic_block(n) for n in ("small", "big", "int"))
        if self.layout.tagged_ints:  # lv_tag: digit count << 3 | sign (0 +, 1 zero, 2 -)
            small = b.icmp_unsigned("<", size, ir.Constant(I64, 2 << 3))
            sign = b.sub(ir.Constant(I64, 1), b.and_(size, ir.Constant(I64, 3)))
        else:  # ob_size: the digit count, negative for negative ints
            small = b.icmp_unsigned("<=", b.add(size, ir.Constant(I64, 1)), ir.Constant(I64, 2))
            sign = size
        b.cbranch(small, fast, slow)
        b.position_at_end(fast)
        digit = b.zext(self.field(obj, L.LONG_DIGIT, I32), I64)
        v_fast = b.mul(digit, sign)
        b.branch(done)
        b.position_at_end(slow)
        overflow = b.alloca(I32)
        conv = _decl(self.mod, "PyLong_AsLongLongAndOverflow", I64, [PTR, PTR])
        v_slow = b.call(conv, [obj, overflow])
        slow_end = b.block
        ok = b.icmp_signed("==", b.load(overflow), ir.Constant(I32, 0))
        b.cbranch(ok, done, self.miss)
        b.position_at_end(done)
        phi = b.phi(I64)
        phi.add_incoming(v_fast, fast)
        phi.add_incoming(v_slow, slow_end)
        return phi

    def unbox_array(self, obj: Any, ty: T.Type) -> Any:
        b = self.b
        from gene_jit.codegen.engine import engine

        L.require_numpy()
        nd_type = b.load(_gvar(self.mod, engine().ndarray_symbol(), PTR), typ=PTR)
        self.guard(self.type_is(obj, nd_type))
        self.guard(b.icmp_signed("==", self.field(obj, L.ND_NDIM, I32), ir.Constant(I32, ty.ndim)))
        descr = self.field(obj, L.ND_DESCR, PTR)
        num = self.field(descr, L.DESCR_TYPE_NUM, I32)
        assert ty.elem is not None
        good = ir.Constant(I1, 0)
        for type_num in NPY_NUMS[ty.elem]:
            good = b.or_(good, b.icmp_signed("==", num, ir.Constant(I32, type_num)))
        self.guard(good)
        self.guard(b.icmp_unsigned("!=", self.field(descr, L.DESCR_BYTEORDER, I8), ir.Constant(I8, ord(">"))))
        # compiled code may store into any array it takes: a read-only one (np.frombuffer of
        # bytes, a broadcast view, a read-only memory map) runs in tier 0, which refuses stores
        flags = self.field(obj, L.ND_FLAGS, I32)
        self.guard(b.icmp_unsigned("!=", b.and_(flags, ir.Constant(I32, L.NPY_ARRAY_WRITEABLE)), ir.Constant(I32, 0)))
        dims, strides = self.field(obj, L.ND_DIMS, PTR), self.field(obj, L.ND_STRIDES, PTR)
        arr = ir.Constant(ARRAY, None)
        arr = b.insert_value(arr, self.field(obj, L.ND_DATA, PTR), 0)
        for axis in range(2):
            if axis < ty.ndim:
                n = self.field(dims, 8 * axis, I64)
                s = self.field(strides, 8 * axis, I64)
            else:
                n, s = ir.Constant(I64, 1), ir.Constant(I64, 0)
            arr = b.insert_value(arr, n, 1 + axis)
            arr = b.insert_value(arr, s, 3 + axis)
        return arr

    def call_protected(self, values: list[Any]) -> Any:
        """Call the target under a fresh jmp_buf; an error code raises a Gene error."""
        from gene_jit.codegen import emit_depth

        b = self.b
        target: Any = self.target
        if isinstance(target, ir.FunctionType):
            # an address (int to pointer): llvmlite takes an indirect callee's type from
            # a typed pointer, and folds a pointer-to-pointer bitcast away
            address = self.field(self.self_, TARGET_OFFSET, I64)
            target = b.inttoptr(address, target.as_pointer())
        depth = emit_depth.entry_begin(b, self.mod)  # native calls count against the depth limit
        cur = _gvar(self.mod, "gene_jit_jmpbuf", PTR)
        old = b.load(cur, typ=PTR)
        buf = b.alloca(ir.ArrayType(I64, 40))
        buf.align = 16
        b.store(buf, cur)
        setjmp = _decl(self.mod, "_setjmp", I32, [PTR])
        setjmp.attributes.add("returns_twice")
        code = b.call(setjmp, [buf])
        run, fail = self.fn.append_basic_block("run"), self.fn.append_basic_block("fail")
        b.cbranch(b.icmp_signed("==", code, ir.Constant(I32, 0)), run, fail)
        b.position_at_end(fail)
        b.store(old, cur)
        emit_depth.entry_fail(b, depth)
        set_error = _decl(self.mod, "gene_jit_set_error", ir.VoidType(), [I32, PTR])
        file = self.field(self.self_, FILE_OFFSET, PTR) if self.shared else self.file_name()
        b.call(set_error, [code, file])
        b.ret(ir.Constant(PTR, None))
        b.position_at_end(run)
        result = emit_depth.entry_call(b, depth, target, values)
        b.store(old, cur)
        return result

    def file_name(self) -> Any:
        data = (self.file or "<gene>").encode() + b"\0"
        g = ir.GlobalVariable(self.mod, ir.ArrayType(I8, len(data)), self.fn.name + "_file")
        g.global_constant = True
        g.linkage = "private"
        g.initializer = ir.Constant(ir.ArrayType(I8, len(data)), bytearray(data))
        return g

    def box(self, value: Any) -> Any:
        b = self.b
        if self.ret == T.I64:
            return b.call(_decl(self.mod, "PyLong_FromLongLong", PTR, [I64]), [value])
        if self.ret == T.F64:
            return b.call(_decl(self.mod, "PyFloat_FromDouble", PTR, [F64]), [value])
        if self.ret == T.BOOL:
            obj = b.select(value, _gvar(self.mod, "_Py_TrueStruct"), _gvar(self.mod, "_Py_FalseStruct"))
        else:
            obj = _gvar(self.mod, "_Py_NoneStruct")
        if not self.layout.immortal_singletons:
            cell = b.bitcast(obj, I64.as_pointer())
            refcnt = b.load(cell, typ=I64)  # Py_INCREF: these objects are not immortal in 3.11
            b.store(b.add(refcnt, ir.Constant(I64, 1)), cell)
        return b.bitcast(obj, PTR)


def emit_entry(mod: ir.Module, target: ir.Function, sig: tuple[T.Type, ...], ret: T.Type,
               file: str = "") -> str:
    """Add the entry of `target` to `mod`, and its vectorcall twin (`vcall_name`);
    returns the entry's symbol name. `file` names the source in the errors the entry
    raises."""
    for t in (*sig, ret):
        llvm_type(t)  # raises for types an entry cannot carry
    entry = EntryEmitter(mod, target, sig, ret, file).emit()
    emit_vcall(mod, entry)
    return entry.name


def vcall_name(entry: str) -> str:
    return "vc_" + entry


def emit_shared_entry(mod: ir.Module, name: str, target: ir.FunctionType, sig: tuple[T.Type, ...],
                      ret: T.Type) -> str:
    """Add a shared entry for functions of type `target` (signature `sig`, result
    `ret`) to `mod`, and its vectorcall twin; returns the entry's symbol name."""
    for t in (*sig, ret):
        llvm_type(t)
    entry = EntryEmitter(mod, target, sig, ret, name=name).emit()
    emit_vcall(mod, entry, shared=True)
    return entry.name


def emit_vcall(mod: ir.Module, entry: ir.Function | None, shared: bool = False) -> ir.Function:
    """`PyObject *vc(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject
    *kwnames)`: the vectorcall function of a `NativeCallable` (see `native_callable`).
    Without keywords it runs `entry` with the callable's fallback as `self` (a shared
    entry: the callable itself, which holds the target); no `entry` (the generic
    forwarder) calls the fallback; keywords go to the keyword fallback."""
    name = vcall_name(entry.name) if entry is not None else "gene_jit_vcall_forward"
    fn = ir.Function(mod, ir.FunctionType(PTR, [PTR, PTR, I64, PTR]), name)
    callable_, args, nargsf, kwnames = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    fallback = b.load(b.gep(callable_, [ir.Constant(I64, FALLBACK_OFFSET)], source_etype=I8), typ=PTR)
    slow = fn.append_basic_block("slow")
    if entry is not None:
        fast = fn.append_basic_block("fast")
        b.cbranch(b.icmp_unsigned("==", kwnames, ir.Constant(PTR, None)), fast, slow)
        b.position_at_end(fast)
        nargs = b.and_(nargsf, ir.Constant(I64, (1 << 63) - 1))  # drop ARGUMENTS_OFFSET
        b.ret(b.call(entry, [callable_ if shared else fallback, args, nargs]))
    else:
        b.branch(slow)
    b.position_at_end(slow)
    if entry is not None:
        fallback = b.load(b.gep(callable_, [ir.Constant(I64, KW_FALLBACK_OFFSET)], source_etype=I8), typ=PTR)
    vc = _decl(mod, "PyObject_Vectorcall", PTR, [PTR, PTR, I64, PTR])
    b.ret(b.call(vc, [fallback, args, nargsf, kwnames]))
    return fn


class _MethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


_new_cfunc = ctypes.pythonapi.PyCFunction_NewEx
_new_cfunc.restype = ctypes.py_object
_new_cfunc.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p]
_defs: list[Any] = []  # method defs must outlive their function objects


def make_builtin(name: str, address: int, fallback: Any) -> Any:
    """A builtin function object that runs the entry at `address`; `fallback` is its
    `__self__`, called on a guard miss."""
    name_buf = ctypes.create_string_buffer(name.encode())
    mdef = _MethodDef(ctypes.cast(name_buf, ctypes.c_char_p), address, METH_FASTCALL, None)
    _defs.append((name_buf, mdef))
    return _new_cfunc(ctypes.addressof(mdef), fallback, None)


class _TypeSlot(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_int), ("pfunc", ctypes.c_void_p)]


class _TypeSpec(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("basicsize", ctypes.c_int), ("itemsize", ctypes.c_int),
                ("flags", ctypes.c_uint), ("slots", ctypes.POINTER(_TypeSlot))]


class _MemberDef(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("type", ctypes.c_int), ("offset", ctypes.c_ssize_t),
                ("flags", ctypes.c_int), ("doc", ctypes.c_char_p)]


Py_tp_call, Py_tp_members, T_PYSSIZET, READONLY = 50, 72, 19, 1
Py_TPFLAGS_DEFAULT = 1 << 18  # HAVE_VERSION_TAG
Py_TPFLAGS_HAVE_VECTORCALL = 1 << 11


def native_callable_type(name: str, methods: dict[str, Any]) -> type:
    """A heap type whose instances are called through a per-instance vectorcall pointer
    (the CPython fast path for calls: no argument tuple, no `__call__` lookup), with a
    `__dict__` for attributes and `methods` as its Python-level members. `set_vcall`
    points an instance at a native entry and its fallback."""
    members = (_MemberDef * 3)(
        _MemberDef(b"__vectorcalloffset__", T_PYSSIZET, VCALL_OFFSET, READONLY, None),
        _MemberDef(b"__dictoffset__", T_PYSSIZET, DICT_OFFSET, READONLY, None),
        _MemberDef(None, 0, 0, 0, None))
    vcall_call = ctypes.cast(ctypes.pythonapi.PyVectorcall_Call, ctypes.c_void_p).value
    slots = (_TypeSlot * 3)(_TypeSlot(Py_tp_call, vcall_call),
                            _TypeSlot(Py_tp_members, ctypes.addressof(members)), _TypeSlot(0, None))
    spec = _TypeSpec(name.encode(), NATIVE_CALLABLE_SIZE, 0,
                     Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL, slots)
    from_spec = ctypes.pythonapi.PyType_FromSpec
    from_spec.restype = ctypes.py_object
    from_spec.argtypes = [ctypes.c_void_p]
    cls: type = from_spec(ctypes.addressof(spec))
    _defs.append((members, slots, spec))
    for key, value in methods.items():
        setattr(cls, key, value)
    return cls


def set_vcall(obj: Any, vcall_address: int, fallback: Any, kw_fallback: Any = None) -> None:
    """Make calls to `obj` (a native_callable_type instance) run `vcall_address`, whose
    misses call `fallback` and calls with keywords `kw_fallback` (default: `fallback`).
    The instance's `__dict__` keeps both alive."""
    kw_fallback = fallback if kw_fallback is None else kw_fallback
    obj._vc_fallback, obj._vc_kw_fallback = fallback, kw_fallback
    base = id(obj)
    ctypes.c_void_p.from_address(base + FALLBACK_OFFSET).value = id(fallback)
    ctypes.c_void_p.from_address(base + KW_FALLBACK_OFFSET).value = id(kw_fallback)
    ctypes.c_void_p.from_address(base + VCALL_OFFSET).value = vcall_address


def set_target(obj: Any, target_address: int, file: str) -> None:
    """Point `obj` (a native_callable_type instance) at the native function a shared
    entry runs for it, and the source file its errors name (kept alive by `__dict__`)."""
    obj._vc_file = ctypes.create_string_buffer((file or "<gene>").encode())
    base = id(obj)
    ctypes.c_void_p.from_address(base + TARGET_OFFSET).value = target_address
    ctypes.c_void_p.from_address(base + FILE_OFFSET).value = ctypes.addressof(obj._vc_file)


_holder_type: type | None = None


def make_shared_builtin(name: str, entry: int, vcall: int, target: int, file: str, fallback: Any) -> Any:
    """A builtin function object that runs the shared entry at `entry` for the native
    function at `target`; its `__self__` is a NativeCallable holding the target, the
    file and `fallback`, which a guard miss calls."""
    global _holder_type
    if _holder_type is None:
        _holder_type = native_callable_type("gene_jit.NativeEntry", {})
    holder = _holder_type()
    set_vcall(holder, vcall, fallback)
    set_target(holder, target, file)
    return make_builtin(name, entry, holder)


_ = I1  # re-exported type kept for emitters that import from here
