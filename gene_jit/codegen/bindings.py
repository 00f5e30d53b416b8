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

if TYPE_CHECKING:
    import llvmlite.ir as ir

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
    `[count, check, (namespace, key, cell) per name]`, each cell holding the expected
    object's address (0 for absent)."""

    def __init__(self, bindings: list[Binding], file: str, ir_name: str,
                 same_function: Callable[[Any, Any], bool], on_stale: Callable[[str], None]) -> None:
        self.bindings = bindings
        self.same_function = same_function
        self.on_stale = on_stale
        self.dead = False
        self.cells = [ctypes.c_void_p(_address(b.expected)) for b in bindings]
        self.keys = [b.key for b in bindings]
        self.callback = self.check  # one object: the array holds its address
        words = [len(bindings), id(self.callback)]
        for b, cell in zip(bindings, self.cells, strict=True):
            words += [id(b.namespace), id(b.key), ctypes.addressof(cell)]
        self.array = (ctypes.c_void_p * len(words))(*words)
        where = f"{file}|{ir_name}|{','.join(self.keys)}"
        n = _compiles[where] = _compiles.get(where, -1) + 1
        self.symbol = "gj_bind_" + hashlib.sha1(f"{where}|{n}".encode()).hexdigest()[:20]
        _tables.append(self)

    def moved(self, namespace: dict[str, Any], old: Any, new: Any) -> None:
        """Tier 1 rebound a function's names in `namespace` from `old` to `new` (its
        newer entry, or its tier-0 function again): expect `new` where `old` was."""
        for i, b in enumerate(self.bindings):
            if b.expected is old and b.namespace is namespace:
                b.expected = new
                self.cells[i].value = id(new)

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
    """In an entry trampoline: check the names of the function's table, or miss. A
    shared entry finds the table in its NativeCallable (NULL: nothing to check); an
    entry of its own uses its unit's."""
    import llvmlite.binding as llvm
    import llvmlite.ir as ir

    from gene_jit.codegen.emit import I64, PTR
    from gene_jit.codegen.trampoline import BINDINGS_OFFSET

    b, mod, fn = entry.b, entry.mod, entry.fn
    for name in ("PyDict_GetItem", "PyErr_Clear"):
        llvm.add_symbol(name, ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value)
    done = fn.append_basic_block("names_bound")
    if entry.shared:
        table = entry.field(entry.self_, BINDINGS_OFFSET, PTR)
        start = fn.append_basic_block("names")
        b.cbranch(b.icmp_unsigned("==", table, ir.Constant(PTR, None)), done, start)
        b.position_at_end(start)
    else:
        own: BindingTable | None = mod.__dict__.get(MODULE_ATTR, {}).get(entry.target.name)
        if own is None or not own.bindings:
            b.branch(done)
            b.position_at_end(done)
            return
        llvm.add_symbol(own.symbol, ctypes.addressof(own.array))
        table = mod.globals.get(own.symbol)
        if table is None:
            table = ir.GlobalVariable(mod, ir.ArrayType(PTR, len(own.array)), own.symbol)
            table.linkage = "external"

    def word(k: Any) -> Any:
        return b.load(b.gep(table, [k], source_etype=PTR), typ=PTR)

    count = b.ptrtoint(word(ir.Constant(I64, 0)), I64)
    before = b.block
    head, body, step, stale = (fn.append_basic_block(n) for n in ("name", "name_check", "name_next", "rebound"))
    b.branch(head)
    b.position_at_end(head)
    k = b.phi(I64)
    k.add_incoming(ir.Constant(I64, 0), before)
    b.cbranch(b.icmp_signed("<", k, count), body, done)
    b.position_at_end(body)
    base = b.add(b.mul(k, ir.Constant(I64, 3)), ir.Constant(I64, 2))
    get_item = _decl(mod, "PyDict_GetItem", PTR, [PTR, PTR])
    got = b.call(get_item, [word(base), word(b.add(base, ir.Constant(I64, 1)))])
    want = b.load(word(b.add(base, ir.Constant(I64, 2))), typ=PTR)
    b.cbranch(b.icmp_unsigned("==", got, want), step, stale)
    b.position_at_end(step)
    k.add_incoming(b.add(k, ir.Constant(I64, 1)), step)
    b.branch(head)
    b.position_at_end(stale)
    _call_check(entry, word(ir.Constant(I64, 1)))
    b.position_at_end(done)


def _call_check(entry: EntryEmitter, callback: Any) -> None:
    """Run the table's `check` (Python), then miss."""
    import llvmlite.ir as ir

    from gene_jit.codegen.emit import I64, PTR

    b, mod = entry.b, entry.mod
    vcall = _decl(mod, "PyObject_Vectorcall", PTR, [PTR, PTR, I64, PTR])
    result = b.call(vcall, [callback, ir.Constant(PTR, None), ir.Constant(I64, 0), ir.Constant(PTR, None)])
    failed, done = entry.fn.append_basic_block("check_failed"), entry.fn.append_basic_block("checked")
    b.cbranch(b.icmp_unsigned("==", result, ir.Constant(PTR, None)), failed, done)
    b.position_at_end(failed)  # no room to run the check (the depth limit): miss all the same
    b.call(_decl(mod, "PyErr_Clear", ir.VoidType(), []), [])
    b.branch(entry.miss)
    b.position_at_end(done)
    b.call(_decl(mod, "Py_DecRef", ir.VoidType(), [PTR]), [result])
    b.branch(entry.miss)


def attach(builtin: Any, table: BindingTable | None) -> None:
    """Give the builtin of a shared entry (its `__self__`, a NativeCallable made by
    trampoline.make_shared_builtin) the table to check."""
    from gene_jit.codegen.trampoline import BINDINGS_OFFSET, NATIVE_CALLABLE_SIZE

    holder = getattr(builtin, "__self__", None)
    if table is not None and type(holder).__name__ == "NativeEntry" \
            and type(holder).__basicsize__ == NATIVE_CALLABLE_SIZE:
        ctypes.c_void_p.from_address(id(holder) + BINDINGS_OFFSET).value = ctypes.addressof(table.array)


def _decl(mod: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    import llvmlite.ir as ir

    existing = mod.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(mod, ir.FunctionType(ret, args), name)
