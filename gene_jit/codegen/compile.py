"""Compile a verified IR unit to native code: passes, LLVM emission with an entry
trampoline, O3 (the module pipeline, or the function pipeline for a lone scalar
function), MCJIT (or the disk cache). Many units can share one module. `GENE_DUMP=ir,llvm,asm` prints what was made
to stderr.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llvmlite.ir as ir

from gene_jit.codegen import cache, interrupt, pylayout
from gene_jit.codegen.emit import ModuleEmitter, symbol_name
from gene_jit.codegen.emit_ffi import GUARDS_ATTR
from gene_jit.codegen.engine import engine
from gene_jit.codegen.trampoline import (
    emit_entry,
    emit_shared_entry,
    make_builtin,
    make_shared_builtin,
    set_target,
    set_vcall,
    vcall_name,
)
from gene_jit.ir import types as T
from gene_jit.ir.builder import NotTypeable
from gene_jit.ir.nodes import Op, Unit
from gene_jit.ir.passes import PROFILE_SKIPS, run_passes
from gene_jit.ir.printer import format_unit


@dataclass
class NativeFunction:
    """One compiled signature of a Gene function."""

    gene_name: str
    sig: tuple[T.Type, ...]
    ret: T.Type
    unit: Unit  # the typed IR after the passes (`ir_text` prints it when asked)
    llvm_ir: str  # optimised (or, from the cache, as emitted)
    entry_address: int
    compile_ms: float
    cache_hit: bool
    vcall_address: int = 0  # the vectorcall twin of the entry (trampoline.emit_vcall)
    # the native function a shared entry runs (0: the entry is this function's own)
    target_address: int = 0
    file: str = ""  # the source file the entry's errors name
    _asm: str | None = field(default=None, repr=False)

    @functools.cached_property
    def ir_text(self) -> str:
        return format_unit(self.unit)

    def assembly(self) -> str:
        if self._asm is None:
            self._asm = engine().assembly(self.llvm_ir)
        return self._asm

    def builtin(self, fallback: Any) -> Any:
        """A builtin that enters this signature, calling `fallback` on a guard miss."""
        if self.target_address:
            return make_shared_builtin(self.gene_name, self.entry_address, self.vcall_address,
                                       self.target_address, self.file, fallback)
        return make_builtin(self.gene_name, self.entry_address, fallback)

    def bind(self, obj: Any, fallback: Any, kw_fallback: Any = None) -> None:
        """Make calls to `obj` (a trampoline.native_callable_type instance) enter this
        signature, calling `fallback` on a guard miss and `kw_fallback` with keywords."""
        set_vcall(obj, self.vcall_address, fallback, kw_fallback)
        if self.target_address:
            set_target(obj, self.target_address, self.file)


@dataclass(frozen=True)
class Counters:
    """Profiling counter cells for a counting variant: `calls(key)` gives the address of
    the native call cell of the Gene function with resolver key `key` (or None), and
    `loop(kind, file, line, column, function)` that of a loop's trip cell."""

    calls: Callable[[Any], int | None]
    loop: Callable[[str, str, int, int, str], int]


def _count(b: ir.IRBuilder, where: str, address: int) -> None:
    """Bump the cell at `address` through an external global named after `where` (the
    source place it counts), bound to the address in this process: the code has no
    process-specific constant in it, so counting variants can be cached on disk."""
    import llvmlite.binding as llvm

    name = "gj_count_" + hashlib.sha1(where.encode()).hexdigest()[:16]
    llvm.add_symbol(name, address)
    module = b.module
    cell = module.globals.get(name)
    if cell is None:
        cell = ir.GlobalVariable(module, ir.IntType(64), name)
    i64 = ir.IntType(64)
    b.store(b.add(b.load(cell, typ=i64), ir.Constant(i64, 1)), cell)


def instrument(emitter: ModuleEmitter, counters: Counters) -> None:
    """Make the emitted functions count their entries and loop iterations."""
    for fn in emitter.unit.functions.values():
        lfn = emitter.functions[fn.name]
        blocks = {blk.name: blk for blk in lfn.blocks}
        address = counters.calls(fn.key)
        if address is not None:
            b = ir.IRBuilder(lfn.blocks[0])
            b.position_at_start(lfn.blocks[0])
            _count(b, f"calls {fn.span.file}:{fn.span.line} {fn.gene_name}", address)
        for name, (kind, span) in fn.loops.items():
            if name in blocks:
                b = ir.IRBuilder(blocks[name])
                b.position_at_start(blocks[name])
                cell = counters.loop(kind, span.file, span.line, span.col, fn.gene_name)
                _count(b, f"loop {span.file}:{span.line}:{span.col}", cell)


def dump_flags() -> set[str]:
    return {p.strip() for p in os.environ.get("GENE_DUMP", "").split(",") if p.strip()}


def full_pipeline(unit: Unit) -> bool:
    """Whether `unit` gets the whole O3 module pipeline: with callees (LLVM inlines
    them) or array accesses (the vectoriser pays off); a lone scalar function gets the
    cheaper function pipeline. `GENE_JIT_OPT=full|fast` forces one."""
    forced = os.environ.get("GENE_JIT_OPT", "").strip().lower()
    if forced in ("full", "fast"):
        return forced == "full"
    if len(unit.functions) > 1:
        return True
    return any(i.op in (Op.LOAD, Op.STORE) for f in unit.functions.values() for b in f.blocks for i in b.instrs)


def compile_unit(unit: Unit, use_cache: bool = True, counters: Counters | None = None) -> NativeFunction:
    return compile_units([unit], use_cache, counters)[0]


# Whether functions without ffi guards run through the shared entry of their signature
# (False: each gets its own entry in its module, the slower path the bench compares)
SHARED_ENTRIES = True


def compile_units(units: list[Unit], use_cache: bool = True,
                  counters: Counters | None = None) -> list[NativeFunction]:
    """Compile units into one LLVM module (one parse, one optimisation, one code
    generation), so many small functions cost about what one does. Units whose IR
    function names collide are compiled separately. With `counters` (profiling), the
    code counts calls and loop trips (cached apart: its text names the cells)."""
    t0 = time.perf_counter()
    layout, reason = pylayout.current()
    if layout is None:
        raise NotTypeable(reason)
    units = [run_passes(u, PROFILE_SKIPS if counters is not None else frozenset()) for u in units]
    names = [n for u in units for n in u.functions]
    if len(names) != len(set(names)):
        return [n for u in units for n in compile_units([u], use_cache, counters)]
    module: ir.Module | None = None
    roots: list[ir.Function] = []
    full = False
    for unit in units:
        emitter = ModuleEmitter(unit, "gene", module)
        module = emitter.emit()
        if counters is not None:
            instrument(emitter, counters)
        roots.append(emitter.functions[unit.root.name])
        full = full or full_pipeline(unit)
    assert module is not None
    # a module that calls ffi/defun symbols checks their bindings in its own entries;
    # every other function runs through the shared entry of its signature
    shared = SHARED_ENTRIES and not module.__dict__.get(GUARDS_ATTR)
    if shared:
        shapes = [entry_shape(u.root.signature, u.root.ret, r.function_type, use_cache)
                  for u, r in zip(units, roots, strict=True)]
        names = [r.name for r in roots]
    else:
        entries = [emit_entry(module, r, u.root.signature, u.root.ret, u.root.span.file)
                   for u, r in zip(units, roots, strict=True)]
        names = entries + [vcall_name(e) for e in entries]
    text = str(module)
    compiled = _compile_text(text, names, full, use_cache, plain=frozenset() if shared else frozenset(names))
    interrupt.ensure()  # before the native code first runs: Ctrl-C must stop its loops
    ms = (time.perf_counter() - t0) * 1e3 / len(units)
    natives = []
    for k, (unit, lfn) in enumerate(zip(units, roots, strict=True)):
        root = unit.root
        if shared:
            (entry, vcall), target = shapes[k], compiled.addresses[lfn.name]
        else:
            entry, vcall, target = compiled.addresses[names[k]], compiled.addresses[vcall_name(names[k])], 0
        native = NativeFunction(root.gene_name, root.signature, root.ret, unit,
                                compiled.llvm_ir, entry, ms, compiled.cache_hit, vcall, target,
                                root.span.file)
        _dump(native, text)
        natives.append(native)
    return natives


def _compile_text(text: str, names: list[str], full: bool, use_cache: bool,
                  plain: frozenset[str] = frozenset(), glue: bool = False) -> Any:
    """Compile module text, through the disk cache; `plain` names functions that skip
    the function pipeline (see Engine.optimise); `glue` is for shared entries."""
    eng = engine()
    key = cache.key_for(text, eng.cpu, eng.features)
    cached = cache.load(key) if use_cache else None
    compiled = eng.compile_module(text, key, names, cached, full, plain, glue)
    if cached is None and use_cache:
        obj = eng.take_object(key)
        if obj is not None:
            cache.store(key, obj)
    return compiled


_SHAPES: dict[str, tuple[int, int]] = {}  # signature shape -> (entry, vcall) addresses


def entry_shape(sig: tuple[T.Type, ...], ret: T.Type, ftype: ir.FunctionType,
                use_cache: bool = True) -> tuple[int, int]:
    """The addresses of the shared entry (and its vectorcall twin) for native functions
    of type `ftype`, compiled on first use: an entry is most of the code a small
    function's module would hold, so sharing it halves what most compiles cost."""
    shape = f"{', '.join(map(str, sig))} -> {ret} | {ftype}"
    hit = _SHAPES.get(shape)
    if hit is None:
        name = "gj_shape_" + hashlib.sha1(shape.encode()).hexdigest()[:16] + "_entry"
        mod = ir.Module(name="gene_shape")
        entry = emit_shared_entry(mod, name, ftype, sig, ret)
        # emitted in its final form: neither the optimiser (about 4 ms) nor O3 code
        # generation (4 ms more than O0's) makes calls through it faster
        names = [entry, vcall_name(entry)]
        compiled = _compile_text(str(mod), names, False, use_cache, plain=frozenset(names), glue=True)
        hit = _SHAPES[shape] = (compiled.addresses[entry], compiled.addresses[vcall_name(entry)])
    return hit


def _dump(native: NativeFunction, emitted: str) -> None:
    flags = dump_flags()
    if not flags:
        return
    sig = ", ".join(map(str, native.sig))
    if "ir" in flags:
        print(f";; typed IR of {native.gene_name}({sig})\n{native.ir_text}", file=sys.stderr)
    if "llvm" in flags:
        print(f";; LLVM IR of {native.gene_name}({sig})\n{native.llvm_ir}", file=sys.stderr)
    if "asm" in flags:
        print(f";; assembly of {native.gene_name}({sig})\n{native.assembly()}", file=sys.stderr)


__all__ = ["NativeFunction", "compile_unit", "compile_units", "symbol_name"]
