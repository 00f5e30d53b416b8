"""The LLVM JIT engine: the process's MCJIT instances (see `Engine`), the host target
machine, the O3 pipelines (llvmlite's new pass manager), the symbols native code may call (the
CPython C API, libm, the error cells) and the runtime module (`gene_jit_raise`,
`gene_jit_set_error`, the current jmp_buf).

`compile_module(ir_text, key)` optimises and adds a module, or loads its object code
from the disk cache when `key` names a cached object (then nothing is optimised or
code-generated).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

import llvmlite.binding as llvm

from gene_jit.runtime import errors

# C API functions and data the trampolines use, resolved from the running interpreter.
_PY_FUNCS = ["PyLong_FromLongLong", "PyFloat_FromDouble", "PyLong_AsLongLongAndOverflow",
             "PyObject_Vectorcall", "PyUnicode_FromString", "Py_DecRef", "PyErr_CheckSignals",
             "PyErr_Occurred", "PyThreadState_Get"]
_PY_DATA = ["PyLong_Type", "PyFloat_Type", "PyBool_Type", "_Py_TrueStruct",
            "_Py_FalseStruct", "_Py_NoneStruct"]
_LIBM = ["tan", "exp", "log", "sin", "cos", "pow", "floor", "ceil", "trunc", "sqrt", "fabs"]
_LIBC = ["_setjmp", "longjmp"]

# Error kind -> (Gene error class, message); the order matches emit.ERR_*.
ERRORS: list[tuple[type[errors.GeneError], str]] = [
    (errors.GeneError, "error in compiled code"),
    (errors.GeneOverflowError, "integer overflow: result exceeds 64 bits"),
    (errors.GeneIndexError, "index out of range"),
    (errors.GeneError, "division by zero in div"),
    (errors.GeneTypeError, "cannot convert a non-finite float to an int"),
    (errors.GeneTypeError, "ffi argument out of range of its C type"),
    (errors.GeneError, "a native call failed"),
    (errors.GeneError, "stack overflow (recursion too deep)"),
    (errors.GeneOverflowError, "integer overflow in +: result exceeds 64 bits"),
    (errors.GeneOverflowError, "integer overflow in -: result exceeds 64 bits"),
    (errors.GeneOverflowError, "integer overflow in *: result exceeds 64 bits"),
    (errors.GeneOverflowError, "integer overflow in div: result exceeds 64 bits"),
    (errors.GeneError, "interrupted"),
    (errors.GeneError, "division by zero in mod"),
    (errors.GeneError, "division by zero in rem"),
]
# Gene errors built by Python at native code's request just before it raises
# ERR_PENDING: their messages hold run-time values (a kernel's name and shapes).
PENDING: list[errors.GeneError] = []


# what a failed check left for its message (emit.FAULT), just before it raised
FAULT = (ctypes.c_int64 * 3)()


def index_message() -> str:
    """Tier 0's words for the failed index check FAULT describes."""
    from gene_jit.ir.types import ARRAY_ELEMS

    index, length, kind = FAULT
    FAULT[2] = -1
    dtypes = list(ARRAY_ELEMS)
    if not 0 <= kind // 16 < len(dtypes):
        return "index out of range"  # an ffi array's check leaves nothing
    return f"index {index} out of range for a {kind % 16}-D {dtypes[kind // 16]} array of length {length}"


def convert_error() -> errors.GeneError:
    """Tier 0's error for the float FAULT holds that a builtin could not make an int."""
    from gene_jit.codegen.emit import TO_INT_NAMES

    v = struct.unpack("<d", struct.pack("<q", FAULT[0]))[0]
    name = TO_INT_NAMES[FAULT[1]] if 0 <= FAULT[1] < len(TO_INT_NAMES) else "to_i"
    if not math.isfinite(v):
        return errors.GeneTypeError(f"{name}: cannot convert {v} to an int")
    return errors.GeneOverflowError(f"{name}: integer overflow ({int(v)} does not fit in 64 bits)")


def raise_native_error(code: int, file: str) -> None:
    """Called by an entry whose native code failed: raise the Gene error at its site."""
    from gene_jit.codegen.emit import ERR_CONVERT, ERR_INDEX, ERR_PENDING, decode_error
    from gene_jit.frontend.forms import Span

    kind, line, col = decode_error(code)
    span = Span(file, line, col) if line else None
    if kind == ERR_PENDING and PENDING:
        raise PENDING.pop().with_span(span)
    if kind == ERR_INDEX:
        raise errors.GeneIndexError(index_message(), span)
    if kind == ERR_CONVERT:
        raise convert_error().with_span(span)
    cls, message = ERRORS[kind] if kind < len(ERRORS) else ERRORS[0]
    raise cls(message, span)

RUNTIME_IR = r"""
@gene_jit_jmpbuf = global ptr null
declare void @longjmp(ptr, i32) noreturn nounwind
@gene_jit_error_handler = external global ptr
declare ptr @PyLong_FromLongLong(i64)
declare ptr @PyUnicode_FromString(ptr)
declare ptr @PyObject_Vectorcall(ptr, ptr, i64, ptr)
declare void @Py_DecRef(ptr)
declare ptr @PyErr_Occurred()
declare i32 @PyErr_CheckSignals()
declare ptr @PyThreadState_Get()

; Interrupts (see interrupt.py): the SIGINT handler sets the flag that loops poll, then
; runs the handler it replaced (CPython's, which makes Python raise KeyboardInterrupt)
@gene_jit_interrupt = global i32 0
@gene_jit_prev_sigint = global ptr null
@gene_jit_main_tstate = global ptr null

define void @gene_jit_on_sigint(i32 %%sig, ptr %%info, ptr %%ctx) nounwind {
  store atomic i32 1, ptr @gene_jit_interrupt monotonic, align 4
  %%prev = load ptr, ptr @gene_jit_prev_sigint
  %%none = icmp eq ptr %%prev, null
  br i1 %%none, label %%done, label %%chain
chain:
  call void %%prev(i32 %%sig, ptr %%info, ptr %%ctx)
  br label %%done
done:
  ret void
}

; a loop found the flag set: in the main thread, clear it and run Python's signal
; handlers; one that raised (KeyboardInterrupt) ends the native call with its exception
define void @gene_jit_poll(i32 %%code) cold {
  %%t = call ptr @PyThreadState_Get()
  %%main = load ptr, ptr @gene_jit_main_tstate
  %%is_main = icmp eq ptr %%t, %%main
  br i1 %%is_main, label %%check, label %%done
check:
  store atomic i32 0, ptr @gene_jit_interrupt monotonic, align 4
  %%r = call i32 @PyErr_CheckSignals()
  %%failed = icmp ne i32 %%r, 0
  br i1 %%failed, label %%raise, label %%done
raise:
  call void @gene_jit_raise(i32 %%code)
  unreachable
done:
  ret void
}

define void @gene_jit_raise(i32 %%code) noreturn cold nounwind {
  %%buf = load ptr, ptr @gene_jit_jmpbuf
  call void @longjmp(ptr %%buf, i32 %%code)
  unreachable
}

; the vectorcall of a NativeCallable with no native entry yet: call its fallback
define ptr @gene_jit_vcall_forward(ptr %%c, ptr %%args, i64 %%n, ptr %%kw) {
  %%p = getelementptr i8, ptr %%c, i64 FALLBACK_OFFSET
  %%fb = load ptr, ptr %%p
  %%r = call ptr @PyObject_Vectorcall(ptr %%fb, ptr %%args, i64 %%n, ptr %%kw)
  ret ptr %%r
}

; an error whose Python exception is set already (an interrupt) keeps it
define void @gene_jit_set_error(i32 %%code, ptr %%file) cold {
  %%set = call ptr @PyErr_Occurred()
  %%kept = icmp ne ptr %%set, null
  br i1 %%kept, label %%done, label %%build
done:
  ret void
build:
  %%args = alloca [2 x ptr]
  %%c64 = sext i32 %%code to i64
  %%a0 = call ptr @PyLong_FromLongLong(i64 %%c64)
  %%a1 = call ptr @PyUnicode_FromString(ptr %%file)
  store ptr %%a0, ptr %%args
  %%p1 = getelementptr [2 x ptr], ptr %%args, i64 0, i64 1
  store ptr %%a1, ptr %%p1
  %%handler = load ptr, ptr @gene_jit_error_handler
  %%r = call ptr @PyObject_Vectorcall(ptr %%handler, ptr %%args, i64 2, ptr null)
  call void @Py_DecRef(ptr %%a0)
  call void @Py_DecRef(ptr %%a1)
  call void @Py_DecRef(ptr %%r)
  ret void
}
"""


@dataclass
class Compiled:
    """A module added to the engine: symbol addresses, optimised IR and timings."""

    addresses: dict[str, int]
    llvm_ir: str
    compile_ms: float
    cache_hit: bool


class Engine:
    """Two MCJIT instances: `ee` generates the code of Gene functions at O3; `glue`
    holds the runtime module and the shared entries (straight-line code emitted in its
    final form) and generates theirs at O0, which costs a third as much (an entry: 2
    ms instead of 6; the runtime module: the bulk of the start-up) for the same
    instructions on the paths calls take. Code in `ee` reaches the runtime module's
    definitions through the process symbol table (`_export_runtime`)."""

    def __init__(self) -> None:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self._keep: list[Any] = []
        self._register_symbols()
        target = llvm.Target.from_default_triple()
        self.cpu = llvm.get_host_cpu_name()
        self.features = llvm.get_host_cpu_features().flatten()
        self.tm = target.create_target_machine(cpu=self.cpu, features=self.features, opt=3, jit=True)
        glue_tm = target.create_target_machine(cpu=self.cpu, features=self.features, opt=0, jit=True)
        runtime = self._runtime_module()
        functions = [f.name for f in runtime.functions if not f.is_declaration]
        variables = [g.name for g in runtime.global_variables if not g.is_declaration]
        self.glue = llvm.create_mcjit_compiler(runtime, glue_tm)
        self.ee = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self.tm)
        self.pto = llvm.PipelineTuningOptions(speed_level=3)
        self._cached_objects: dict[str, bytes] = {}
        self._new_objects: dict[str, bytes] = {}
        # llvmlite finds the module of each object-cache call by a linear search of all
        # the modules an engine holds, so compiles got slower as a process compiled more;
        # an index by address keeps each lookup constant
        self._modules_at: dict[int, dict[int | None, llvm.ModuleRef]] = {}
        for ee in (self.glue, self.ee):
            index = {ctypes.cast(m._ptr, ctypes.c_void_p).value: m for m in ee._modules}
            self._modules_at[id(ee)] = index
            ee._find_module_ptr = lambda ptr, index=index: index.get(ctypes.cast(ptr, ctypes.c_void_p).value)
            ee.set_object_cache(self._notify, self._getbuffer)
        self.glue.finalize_object()
        self._export_runtime(functions, variables)
        self.forward_address = self.glue.get_function_address("gene_jit_vcall_forward")
        self.lock = threading.RLock()

    def _export_runtime(self, functions: list[str], variables: list[str]) -> None:
        for name in functions:
            llvm.add_symbol(name, self.glue.get_function_address(name))
        for name in variables:
            llvm.add_symbol(name, self.glue.get_global_value_address(name))

    def runtime_address(self, name: str, variable: bool = False) -> int:
        """The address of a function (or a global variable) of the runtime module."""
        if variable:
            return int(self.glue.get_global_value_address(name))
        return int(self.glue.get_function_address(name))

    # -- symbols -------------------------------------------------------------------------

    def _register_symbols(self) -> None:
        api = ctypes.pythonapi
        for name in _PY_FUNCS:
            llvm.add_symbol(name, ctypes.cast(getattr(api, name), ctypes.c_void_p).value)
        for name in _PY_DATA:
            llvm.add_symbol(name, ctypes.addressof(ctypes.c_char.in_dll(api, name)))
        libm = _libm()
        libc = ctypes.CDLL(None)
        for lib, names in ((libm, _LIBM), (libc, _LIBC)):
            for name in names:
                llvm.add_symbol(name, ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)
        handler = ctypes.c_void_p(id(raise_native_error))
        self._keep.append(handler)
        llvm.add_symbol("gene_jit_error_handler", ctypes.addressof(handler))
        FAULT[2] = -1  # no index check failed (ffi arrays raise ERR_INDEX without one)
        llvm.add_symbol("gene_jit_fault", ctypes.addressof(FAULT))
        self._ndarray_cell: ctypes.c_void_p | None = None

    def ndarray_symbol(self) -> str:
        """The symbol of the cell that holds NumPy's ndarray type, bound on first use:
        only entries that take arrays read it, and NumPy is not imported before."""
        if self._ndarray_cell is None:
            import numpy

            self._ndarray_cell = ctypes.c_void_p(id(numpy.ndarray))
            llvm.add_symbol("gene_jit_ndarray_type", ctypes.addressof(self._ndarray_cell))
        return "gene_jit_ndarray_type"

    def _runtime_module(self) -> llvm.ModuleRef:
        # the fallback's place in a NativeCallable (trampoline.py), after the object header
        fallback = str(object.__basicsize__ + 16)
        mod = llvm.parse_assembly(RUNTIME_IR.replace("%%", "%").replace("FALLBACK_OFFSET", fallback))
        mod.verify()
        return mod

    # -- object cache --------------------------------------------------------------------

    def _notify(self, module: llvm.ModuleRef, data: bytes) -> None:
        self._new_objects[module.name] = data

    def _getbuffer(self, module: llvm.ModuleRef) -> bytes | None:
        return self._cached_objects.pop(module.name, None)

    def take_object(self, key: str) -> bytes | None:
        """The object code just generated for module `key` (to store on disk)."""
        return self._new_objects.pop(key, None)

    # -- compiling -----------------------------------------------------------------------

    def optimise(self, mod: llvm.ModuleRef, full: bool = True, plain: frozenset[str] = frozenset()) -> None:
        """O3 over the module (inlining across functions, vectorisation, unrolling) when
        `full`; otherwise O3's function simplification pipeline on each function
        (SROA, instcombine, GVN, LICM, induction variables, no vectoriser), about half
        the optimisation time and a smaller object to code-generate, with the same
        speed on scalar loops and recursion. Functions named in `plain` (the entry
        trampolines: straight-line code emitted already in its final form) skip the
        function pipeline, which saved about a third of the optimisation time of a
        small function. A fresh pass builder each time (it costs microseconds): its
        analysis caches are keyed by function address and would go stale."""
        pb = llvm.create_pass_builder(self.tm, self.pto)
        if full:
            pb.getModulePassManager().run(mod, pb)
            return
        fpm = pb.getFunctionPassManager()
        for fn in mod.functions:
            if not fn.is_declaration and fn.name not in plain:
                fpm.run(fn, pb)

    def compile_module(self, ir_text: str, key: str, names: list[str],
                       cached_object: bytes | None = None, full: bool = True,
                       plain: frozenset[str] = frozenset(), glue: bool = False) -> Compiled:
        """Parse, optimise and code-generate `ir_text` (or load `cached_object`), and
        return the addresses of `names`; `plain` functions skip the function pipeline
        (see `optimise`); `glue` modules (shared entries) go to the O0 instance. The
        parser checks the text; the verifier runs only under GENE_JIT_VERIFY=1, since
        the emitter's output is verified by the tests."""
        ee = self.glue if glue else self.ee
        with self.lock:
            t0 = time.perf_counter()
            mod = llvm.parse_assembly(ir_text)
            mod.name = key
            if os.environ.get("GENE_JIT_VERIFY", "") not in ("", "0"):
                mod.verify()
            if cached_object is not None:
                self._cached_objects[key] = cached_object
            else:
                self.optimise(mod, full, plain)
            optimised = "" if glue else str(mod)  # an entry's text is never shown
            ee.add_module(mod)
            self._modules_at[id(ee)][ctypes.cast(mod._ptr, ctypes.c_void_p).value] = mod
            ee.finalize_object()
            addresses = {n: ee.get_function_address(n) for n in names}
            ms = (time.perf_counter() - t0) * 1e3
            return Compiled(addresses, optimised, ms, cached_object is not None)

    def assembly(self, llvm_ir: str) -> str:
        return self.tm.emit_assembly(llvm.parse_assembly(llvm_ir))


def _libm() -> ctypes.CDLL:
    # find_library runs a subprocess (milliseconds of start-up): try the usual name first
    try:
        return ctypes.CDLL("libm.so.6")
    except OSError:
        return ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")


_engine: Engine | None = None


def engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = Engine()
    return _engine
