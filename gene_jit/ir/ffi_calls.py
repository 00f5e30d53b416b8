"""Typing of calls to `ffi/defun` functions in tier 1, and of struct field reads.

A call `(f a b)` whose head is a module-level name bound, when the function is compiled,
to a callable made by `ffi/defun` becomes one `ffi` instruction whose attribute is a
`ForeignCall`: the `ForeignFunction` record (its C address and signature) plus the
binding it was found through. Codegen (gene_jit/codegen/emit_ffi.py) emits a direct
C call to the address and adds a guard to the function's entry that the name is still
bound to the same object, so a rebinding falls back to tier 0.

How C types meet IR types:

| C (FfiType kind)   | argument IR types accepted       | result IR type |
|--------------------|----------------------------------|----------------|
| int (any width)    | i64 (range-checked for narrower) | i64 (sign/zero extended; a uint64 >= 2**63 is an overflow) |
| float / double     | f64, i64 (converted)             | f64            |
| bool               | bool                             | bool           |
| pointer, buffer, struct pointer | ptr (checked non-NULL unless the type is nullable), nil where nullable | ptr (pointer, buffer) |
| struct by value    | the same struct type             | the struct type (`s/field` reads a field) |

A pointer or a struct may flow between foreign calls, locals and compiled callees, but
not back to Python: a compiled entry returning one stays in tier 0. Strings,
callbacks, variadic functions, struct pointers returned by C and nested struct fields
keep the calling function in tier 0, with the reason recorded; so does an argument tier
0 would refuse whatever its value (an int or a non-nullable nil for a pointer), so that
tier 0 raises its error. Checks that depend on values (int ranges, NULL pointers, a
uint64 result above the int64 range) run in the compiled code and raise, through
Python, the error tier 0 raises (gene_jit/codegen/emit_ffi.py).

A NumPy array (1-D or 2-D) passed where C takes a pointer or buffer goes as its data
pointer (C-contiguous, checked when called); `(get a i)` on a 2-D array is row `i` as a
1-D array (a `RowView`), so a loop can hand rows to C. The callee may also be a
namespace member such as `kernel/rmsnorm` (gene_jit/tensor_kernels/gene_kernels.py):
the root name and each member are guarded by identity, as module-level names are.
Kernel records carry `dtypes` (the NumPy element type of each pointer parameter): an
array of another element type keeps the function in tier 0, which raises the Gene
error; their int32 status is checked by the compiled code and the call gives nil.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gene_jit.frontend.forms import GeneF, Lit, Span, Sym
from gene_jit.ir import types as T
from gene_jit.ir.builder import FnBuilder, NotTypeable
from gene_jit.ir.nodes import Op, Value

POINTERISH = frozenset({"pointer", "buffer", "struct_ptr"})
FIELD_KINDS = frozenset({"int", "float", "bool", "pointer", "buffer"})


@dataclass(frozen=True, slots=True)
class StructType(T.Type):
    """A C struct held by value in tier 1 (its LLVM type is `[n x i64]`, the struct's
    bytes padded to whole eightbytes). `struct` is the class `ffi/defstruct` made."""

    struct: Any = None

    def __str__(self) -> str:
        return f"struct.{self.struct.name}"


def struct_type(cls: Any) -> StructType:
    return StructType(T.Kind.STRUCT, struct=cls)


@dataclass(frozen=True, eq=False)
class Binding:
    """Where a global name was found at compile time: in `namespace` under `key`, or
    (when `namespace` lacks it) in the builtins dict `builtins`."""

    namespace: dict[str, Any]
    key: str
    value: Any
    builtins: dict[str, Any] | None


@dataclass(frozen=True, eq=False)
class ForeignCall:
    """The attribute of an `ffi` instruction that calls a foreign function."""

    rec: Any  # gene_jit.ffi.core.ForeignFunction
    binding: Binding
    outer: tuple[Binding, ...] = ()  # the namespaces of a `ns/member` callee, root first

    def __str__(self) -> str:
        return f"call {self.rec.name} @0x{self.rec.address:x}"


@dataclass(frozen=True, eq=False)
class RowView:
    """The attribute of an `ffi` instruction taking row `i` of a 2-D array as a 1-D array
    (bounds-checked, negative `i` counting from the end, as NumPy's `a[i]`)."""

    def __str__(self) -> str:
        return "row"


@dataclass(frozen=True, eq=False)
class FieldRead:
    """The attribute of an `ffi` instruction reading a scalar field of a struct value."""

    field: Any  # gene_jit.ffi.structs.Field
    owner: str = ""  # the struct's name, for errors

    def __str__(self) -> str:
        return f"field {self.field.name}+{self.field.offset}"


def _bindings(b: FnBuilder, name: str) -> tuple[Binding, ...] | None:
    """The global bindings that `name` resolves through as the resolver sees it (the
    function's module globals, then the Gene builtins; then namespace members for
    `ns/member`), the last holding an `ffi/defun` callable; else None."""
    from gene_jit.ffi.core import foreign_info
    from gene_jit.frontend.compiler_core import pyid
    from gene_jit.runtime.registry import BUILTINS, Namespace

    state = getattr(b.program.resolver, "states", {}).get(b.key)
    info = getattr(state, "info", None)
    namespace = getattr(info, "namespace", None)
    if not isinstance(namespace, dict):
        return None
    parts = name.split("/")
    if len(parts) < 2 or not all(parts):
        parts = [name]
    key = pyid(parts[0])
    if key in namespace:
        value, builtins = namespace[key], None
    elif parts[0] in BUILTINS:
        value, builtins = BUILTINS[parts[0]], BUILTINS
    else:
        return None
    chain = [Binding(namespace, key, value, builtins)]
    for part in parts[1:]:
        if not isinstance(value, Namespace):
            return None
        value = value.get(part, _MISSING)  # imports a lazy namespace's module
        if value is _MISSING:
            return None
        chain.append(Binding(chain[-1].value.members, part, value, None))
    if foreign_info(value) is None:
        return None
    return tuple(chain)


_MISSING = object()


def foreign_call(b: FnBuilder, name: str, form: GeneF) -> Value | None:
    """Type `(name args...)` as a direct foreign call, or None if `name` is not bound
    to an `ffi/defun` function (raises NotTypeable for calls tier 1 cannot make)."""
    from gene_jit.ffi.core import foreign_info

    chain = _bindings(b, name)
    if chain is None:
        return None
    binding = chain[-1]
    rec = foreign_info(binding.value)
    assert rec is not None  # _bindings only returns ffi/defun callables
    if rec.variadic:
        raise NotTypeable(f"calls variadic ffi function {rec.name}", form.span)
    if len(form.children) != len(rec.params):
        raise NotTypeable(f"calls ffi function {rec.name} with {len(form.children)} arguments, "
                          f"it takes {len(rec.params)}", form.span)
    args = tuple(_argument(b, rec, i, t, k) for i, (t, k) in
                 enumerate(zip(rec.params, form.children, strict=True)))
    # a kernel's status is checked by the call itself, which gives nil as in tier 0
    kernel = getattr(rec, "dtypes", None) is not None
    ret = None if kernel else result_type(rec.returns, rec.name, form.span)
    call = ForeignCall(rec, binding, chain[:-1])
    return b.emit(Op.FFI, args, ret, attr=call, span=form.span)


def _argument(b: FnBuilder, rec: Any, i: int, t: Any, form: Any) -> Value:
    from gene_jit.ir.build_exprs import expr

    dtypes = getattr(rec, "dtypes", None)
    is_nil = (isinstance(form, Sym) and form.name == "nil" and b.lookup("nil") is None) or (
        isinstance(form, Lit) and form.value is None)
    if is_nil and t.kind in POINTERISH:
        if dtypes is not None:  # tier 0 refuses a NULL buffer for a kernel
            raise NotTypeable(f"passes nil to kernel {rec.name}", form.span)
        if not (t.nullable or rec.addresses):  # tier 0 raises the error
            raise NotTypeable(f"passes nil as argument {i + 1} (:{t.name}, not nullable) of "
                              f"ffi function {rec.name}", form.span)
        return b.const(0, T.I64)  # NULL; codegen turns the address 0 into a null pointer
    v = b.typed(expr(b, form), form.span)
    if dtypes is not None and v.type.kind is T.Kind.ARRAY and t.kind in POINTERISH:
        want = T.ARRAY_ELEMS.get(dtypes[i] or "")
        if v.type.elem != want:
            raise NotTypeable(f"passes a {v.type} as argument {i + 1} of {rec.name}, which "
                              f"takes {dtypes[i]} data", form.span)
        return v
    if dtypes is not None and t.kind in POINTERISH:  # tier 0 refuses a pointer of unknown size
        raise NotTypeable(f"passes a {v.type} as argument {i + 1} of kernel {rec.name}, which "
                          "takes arrays", form.span)
    if _accepts(t, v.type, rec.addresses):
        return v
    raise NotTypeable(f"passes a {v.type} as argument {i + 1} (:{t.name}) of ffi function "
                      f"{rec.name}", form.span)


def _accepts(t: Any, ty: T.Type, addresses: bool) -> bool:
    kind = t.kind
    if kind == "int":
        return ty == T.I64
    if kind == "float":
        return ty in (T.I64, T.F64)
    if kind == "bool":
        return ty == T.BOOL
    if kind in POINTERISH:  # an int is an address only for bindings that say so
        return ty == T.PTR or (ty == T.I64 and addresses) or (
            ty.kind is T.Kind.ARRAY and kind != "struct_ptr")
    if kind == "struct":
        return isinstance(ty, StructType) and ty.struct is t.target
    return False  # strings, callbacks: Python objects tier 1 does not carry


def result_type(t: Any, fname: str, span: Span) -> T.Type | None:
    """The IR type of a C value of FfiType `t` (None for void)."""
    kind = t.kind
    if kind == "void":
        return None
    if kind == "int":
        return T.I64
    if kind == "float":
        return T.F64
    if kind == "bool":
        return T.BOOL
    if kind in ("pointer", "buffer"):
        return T.PTR
    if kind == "struct":
        return struct_type(t.target)
    raise NotTypeable(f"{fname} gives a :{t.name}, which tier 1 does not carry", span)


def field_read(b: FnBuilder, slot: str, names: list[str], span: Span) -> Value:
    """`s/field` on a local holding a struct value."""
    from gene_jit.runtime.errors import GeneError

    ty = b.fn.locals[slot]
    assert isinstance(ty, StructType)
    if len(names) != 1:
        raise NotTypeable(f"nested field access {'/'.join(names)} on a {ty}", span)
    try:
        f = ty.struct.field(names[0])
    except GeneError:
        raise NotTypeable(f"{ty} has no field {names[0]}", span) from None
    if f.type.kind not in FIELD_KINDS:
        raise NotTypeable(f"reads field {f.name} (:{f.type.name}) of a {ty}", span)
    value = b.emit(Op.GET, ty=ty, attr=slot, span=span)
    return b.emit(Op.FFI, (value,), result_type(f.type, ty.struct.name, span), attr=FieldRead(f, ty.struct.name),
                  span=span)


def row_view(b: FnBuilder, arr: Value, i: Value, span: Span) -> Value:
    """`(get a i)` on a 2-D array: row `i`, a 1-D array sharing `a`'s memory."""
    if i.type != T.I64:
        raise NotTypeable(f"a row index of type {i.type}", span)
    assert arr.type.elem is not None
    return b.emit(Op.FFI, (arr, i), T.array(arr.type.elem, 1), attr=RowView(), span=span)
