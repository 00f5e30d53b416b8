"""The LLVM JIT engine: one MCJIT instance for the process, the host target machine,
the O3 pipeline (llvmlite's new pass manager), the symbols native code may call (the
CPython C API, libm, the error cells) and the runtime module (`gene_jit_raise`,
`gene_jit_set_error`, the current jmp_buf).

`compile_module(ir_text, key)` optimises and adds a module, or loads its object code
from the disk cache when `key` names a cached object (then nothing is optimised or
code-generated).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from dataclasses import dataclass
from typing import Any

import llvmlite.binding as llvm

from gene_jit.runtime import errors

# C API functions and data the trampolines use, resolved from the running interpreter.
_PY_FUNCS = ["PyLong_FromLongLong", "PyFloat_FromDouble", "PyLong_AsLongLongAndOverflow",
             "PyObject_Vectorcall", "PyErr_SetString"]
_PY_DATA = ["PyLong_Type", "PyFloat_Type", "PyBool_Type", "_Py_TrueStruct",
            "_Py_FalseStruct", "_Py_NoneStruct"]
_LIBM = ["tan", "exp", "log", "sin", "cos", "pow", "floor", "ceil", "trunc", "sqrt", "fabs"]
_LIBC = ["_setjmp", "longjmp"]

# Error code -> (Gene error class, message); the order matches emit.ERR_*.
ERRORS: list[tuple[type[errors.GeneError], bytes]] = [
    (errors.GeneError, b"error in compiled code"),
    (errors.GeneOverflowError, b"integer overflow: result exceeds 64 bits"),
    (errors.GeneIndexError, b"index out of range"),
    (errors.GeneError, b"division by zero"),
    (errors.GeneTypeError, b"cannot convert a non-finite float to an int"),
]

RUNTIME_IR = r"""
@gene_jit_jmpbuf = global ptr null
@gene_jit_exc_table = external global [%(n)d x ptr]
%(msgs)s
declare void @longjmp(ptr, i32) noreturn nounwind
declare void @PyErr_SetString(ptr, ptr)

define void @gene_jit_raise(i32 %%code) noreturn cold nounwind {
  %%buf = load ptr, ptr @gene_jit_jmpbuf
  call void @longjmp(ptr %%buf, i32 %%code)
  unreachable
}

define void @gene_jit_set_error(i32 %%code) cold {
  %%i = zext i32 %%code to i64
  %%excp = getelementptr [%(n)d x ptr], ptr @gene_jit_exc_table, i64 0, i64 %%i
  %%exc = load ptr, ptr %%excp
  %%msgp = getelementptr [%(n)d x ptr], ptr @gene_jit_msgs, i64 0, i64 %%i
  %%msg = load ptr, ptr %%msgp
  call void @PyErr_SetString(ptr %%exc, ptr %%msg)
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
    def __init__(self) -> None:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self._keep: list[Any] = []
        self._register_symbols()
        target = llvm.Target.from_default_triple()
        self.cpu = llvm.get_host_cpu_name()
        self.features = llvm.get_host_cpu_features().flatten()
        self.tm = target.create_target_machine(cpu=self.cpu, features=self.features, opt=3, jit=True)
        self.ee = llvm.create_mcjit_compiler(self._runtime_module(), self.tm)
        self.pto = llvm.PipelineTuningOptions(speed_level=3)
        self._cached_objects: dict[str, bytes] = {}
        self._new_objects: dict[str, bytes] = {}
        self.ee.set_object_cache(self._notify, self._getbuffer)
        self.ee.finalize_object()
        self.lock = threading.RLock()

    # -- symbols -------------------------------------------------------------------------

    def _register_symbols(self) -> None:
        api = ctypes.pythonapi
        for name in _PY_FUNCS:
            llvm.add_symbol(name, ctypes.cast(getattr(api, name), ctypes.c_void_p).value)
        for name in _PY_DATA:
            llvm.add_symbol(name, ctypes.addressof(ctypes.c_char.in_dll(api, name)))
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        libc = ctypes.CDLL(None)
        for lib, names in ((libm, _LIBM), (libc, _LIBC)):
            for name in names:
                llvm.add_symbol(name, ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)
        table = (ctypes.c_void_p * len(ERRORS))(*[id(cls) for cls, _ in ERRORS])
        self._keep.append(table)
        llvm.add_symbol("gene_jit_exc_table", ctypes.addressof(table))
        import numpy

        cell = ctypes.c_void_p(id(numpy.ndarray))
        self._keep.append(cell)
        llvm.add_symbol("gene_jit_ndarray_type", ctypes.addressof(cell))

    def _runtime_module(self) -> llvm.ModuleRef:
        msgs = []
        for i, (_, text) in enumerate(ERRORS):
            enc = "".join(f"\\{c:02X}" for c in text + b"\0")
            msgs.append(f'@gene_jit_msg{i} = private constant [{len(text) + 1} x i8] c"{enc}"')
        table = ", ".join(f"ptr @gene_jit_msg{i}" for i in range(len(ERRORS)))
        msgs.append(f"@gene_jit_msgs = private constant [{len(ERRORS)} x ptr] [{table}]")
        text = RUNTIME_IR % {"n": len(ERRORS), "msgs": "\n".join(msgs)}
        mod = llvm.parse_assembly(text)
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

    def optimise(self, mod: llvm.ModuleRef) -> None:
        pb = llvm.create_pass_builder(self.tm, self.pto)
        pb.getModulePassManager().run(mod, pb)

    def compile_module(self, ir_text: str, key: str, names: list[str],
                       cached_object: bytes | None = None) -> Compiled:
        with self.lock:
            t0 = time.perf_counter()
            mod = llvm.parse_assembly(ir_text)
            mod.name = key
            mod.verify()
            if cached_object is not None:
                self._cached_objects[key] = cached_object
            else:
                self.optimise(mod)
            optimised = str(mod)
            self.ee.add_module(mod)
            self.ee.finalize_object()
            addresses = {n: self.ee.get_function_address(n) for n in names}
            ms = (time.perf_counter() - t0) * 1e3
            return Compiled(addresses, optimised, ms, cached_object is not None)

    def assembly(self, llvm_ir: str) -> str:
        return self.tm.emit_assembly(llvm.parse_assembly(llvm_ir))


_engine: Engine | None = None


def engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = Engine()
    return _engine
