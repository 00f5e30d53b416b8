"""Compile a verified IR unit to native code: passes, LLVM emission with an entry
trampoline, O3, MCJIT (or the disk cache). `GENE_DUMP=ir,llvm,asm` prints what was made
to stderr.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from gene_jit.codegen import cache
from gene_jit.codegen.emit import ModuleEmitter, symbol_name
from gene_jit.codegen.engine import engine
from gene_jit.codegen.trampoline import emit_entry, make_builtin
from gene_jit.ir import types as T
from gene_jit.ir.nodes import Unit
from gene_jit.ir.passes import run_passes
from gene_jit.ir.printer import format_unit


@dataclass
class NativeFunction:
    """One compiled signature of a Gene function."""

    gene_name: str
    sig: tuple[T.Type, ...]
    ret: T.Type
    ir_text: str
    llvm_ir: str  # optimised (or, from the cache, as emitted)
    entry_address: int
    compile_ms: float
    cache_hit: bool
    _asm: str | None = field(default=None, repr=False)

    def assembly(self) -> str:
        if self._asm is None:
            self._asm = engine().assembly(self.llvm_ir)
        return self._asm

    def builtin(self, fallback: Any) -> Any:
        """A builtin that enters this signature, calling `fallback` on a guard miss."""
        return make_builtin(self.gene_name, self.entry_address, fallback)


def dump_flags() -> set[str]:
    return {p.strip() for p in os.environ.get("GENE_DUMP", "").split(",") if p.strip()}


def compile_unit(unit: Unit, use_cache: bool = True) -> NativeFunction:
    t0 = time.perf_counter()
    unit = run_passes(unit)
    ir_text = format_unit(unit)
    emitter = ModuleEmitter(unit, "gene")
    module = emitter.emit()
    root = emitter.functions[unit.root.name]
    entry = emit_entry(module, root, unit.root.signature, unit.root.ret, unit.root.span.file)
    text = str(module)
    eng = engine()
    key = cache.key_for(text, eng.cpu, eng.features)
    cached = cache.load(key) if use_cache else None
    compiled = eng.compile_module(text, key, [entry], cached)
    if cached is None and use_cache:
        obj = eng.take_object(key)
        if obj is not None:
            cache.store(key, obj)
    ms = (time.perf_counter() - t0) * 1e3
    native = NativeFunction(unit.root.gene_name, unit.root.signature, unit.root.ret, ir_text,
                            compiled.llvm_ir, compiled.addresses[entry], ms, compiled.cache_hit)
    _dump(native, text)
    return native


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


__all__ = ["NativeFunction", "compile_unit", "symbol_name"]
