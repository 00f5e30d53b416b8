"""Late binding of global names in native code.

Native code calls the Gene functions and builtins it was compiled against directly, but
Gene's global functions are late-bound: assigning or redefining a global name (or a
builtin's name) changes what every caller calls from then on. A compile therefore
records every global name its unit resolved (`Binding`: namespace, key, the object bound
then, or nothing where the name was a builtin not shadowed in the namespace), and the
unit's entry trampoline checks them before running native code: one dictionary lookup
and a compare per name. Native code runs no Gene code that could rebind a name, so a
check at the entry is enough.

On a mismatch the entry calls the table's `check` (Python) and then takes its guard-miss
path (tier 0, or another signature). `check` tells tier 1's own rebinding (a function's
name now bound to its newer native entry: same function, the expected object is
updated) from a real one (another function or value: the owner's compiled code is
dropped, and it compiles again against the current definitions when hot).

The table lives in Python memory and is reached through an external symbol whose name
depends only on the program (file, function, signature, names, and how many times this
function compiled before), bound to the table's address in this process: the module
text stays free of addresses, so the disk cache still serves it.
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import llvmlite.ir as ir

from gene_jit.codegen.emit import I64, PTR

if TYPE_CHECKING:
    from gene_jit.codegen.trampoline import EntryEmitter

MODULE_ATTR = "gene_bindings"  # llvmlite module attribute: entry symbol -> BindingTable
_ABSENT = object()
_compiles: dict[str, int] = {}
_tables: list[BindingTable] = []  # native code may outlive its function's state


@dataclass
class Binding:
    """A global name a compile resolved: `expected` is the object it was bound to in
    `namespace` (None: absent there, a builtin)."""

    namespace: dict[str, Any]
    key: str
    expected: Any


class BindingTable:
    """The names one compiled unit depends on, as its entry reads them: a ctypes array
    `[check, (namespace, key, cell) per name]`, each cell holding the expected object's
    address (0 for absent)."""

    def __init__(self, bindings: list[Binding], file: str, ir_name: str,
                 same_function: Callable[[Any, Any], bool], on_stale: Callable[[str], None]) -> None:
        self.bindings = bindings
        self.same_function = same_function
        self.on_stale = on_stale
        self.dead = False
        self.cells = [ctypes.c_void_p(_address(b.expected)) for b in bindings]
        self.keys = [b.key for b in bindings]
        self.callback = self.check  # one object: the array holds its address
        words = [id(self.callback)]
        for b, cell in zip(bindings, self.cells, strict=True):
            words += [id(b.namespace), id(b.key), ctypes.addressof(cell)]
        self.array = (ctypes.c_void_p * len(words))(*words)
        where = f"{file}|{ir_name}|{','.join(self.keys)}"
        n = _compiles[where] = _compiles.get(where, -1) + 1
        self.symbol = "gj_bind_" + hashlib.sha1(f"{where}|{n}".encode()).hexdigest()[:20]
        _tables.append(self)

    def check(self) -> None:
        """Called by the entry when a name is not bound as expected."""
        if self.dead:
            return
        try:
            stale = self._recheck()
        except BaseException:  # noqa: BLE001 - never let an error back into native code
            stale = "a global name changed"
        if stale:
            self.dead = True
            self.on_stale(stale)

    def _recheck(self) -> str:
        for i, b in enumerate(self.bindings):
            now = b.namespace.get(b.key, _ABSENT)
            if now is _ABSENT:
                now = None
            if now is b.expected:
                continue
            if now is not None and b.expected is not None and self.same_function(now, b.expected):
                b.expected = now  # tier 1 rebound the name to a newer entry of it
                self.cells[i].value = id(now)
                continue
            return f"{b.key} was rebound; recompiles when hot"
        return ""


def _address(obj: Any) -> int:
    return 0 if obj is None else id(obj)


def binding_guards(entry: EntryEmitter) -> None:
    """In an entry trampoline: check the unit's global names, or miss."""
    tables: dict[str, BindingTable] = entry.mod.__dict__.get(MODULE_ATTR, {})
    table = tables.get(entry.target.name)
    if table is None or not table.bindings:
        return
    import llvmlite.binding as llvm

    llvm.add_symbol(table.symbol, ctypes.addressof(table.array))
    for name in ("PyDict_GetItem", "PyErr_Clear"):
        llvm.add_symbol(name, ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value)
    b, mod = entry.b, entry.mod
    words = ir.ArrayType(PTR, len(table.array))
    gv = mod.globals.get(table.symbol)
    if gv is None:
        gv = ir.GlobalVariable(mod, words, table.symbol)
        gv.linkage = "external"
    get_item = _decl(mod, "PyDict_GetItem", PTR, [PTR, PTR])
    stale = entry.fn.append_basic_block("rebound")

    def word(k: int) -> Any:
        return b.load(b.gep(gv, [ir.Constant(I64, 0), ir.Constant(I64, k)]), typ=PTR)

    for k in range(len(table.bindings)):
        got = b.call(get_item, [word(1 + 3 * k), word(2 + 3 * k)])
        want = b.load(word(3 + 3 * k), typ=PTR)
        ok = entry.fn.append_basic_block("bound")
        b.cbranch(b.icmp_unsigned("==", got, want), ok, stale)
        b.position_at_end(ok)
    here = b.block
    b.position_at_end(stale)
    vcall = _decl(mod, "PyObject_Vectorcall", PTR, [PTR, PTR, I64, PTR])
    result = b.call(vcall, [word(0), ir.Constant(PTR, None), ir.Constant(I64, 0), ir.Constant(PTR, None)])
    failed, done = entry.fn.append_basic_block("check_failed"), entry.fn.append_basic_block("checked")
    b.cbranch(b.icmp_unsigned("==", result, ir.Constant(PTR, None)), failed, done)
    b.position_at_end(failed)  # no room to run the check (the depth limit): miss all the same
    b.call(_decl(mod, "PyErr_Clear", ir.VoidType(), []), [])
    b.branch(entry.miss)
    b.position_at_end(done)
    b.call(_decl(mod, "Py_DecRef", ir.VoidType(), [PTR]), [result])
    b.branch(entry.miss)
    b.position_at_end(here)


def _decl(mod: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = mod.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(mod, ir.FunctionType(ret, args), name)
