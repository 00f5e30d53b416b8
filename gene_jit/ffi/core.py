"""Foreign functions: `ffi/defun`.

`defun` binds a symbol of a loaded library to a Gene-callable Python function. The
callable is generated per signature (Python source compiled once per `defun`): each
argument gets one inline type test on the fast path and falls back to the full converter
in `types.py`, which raises a Gene error naming the function, the position and the
expected type. The callable is a plain function, not an object with `__call__`, because
CPython calls plain functions through vectorcall and that halves the overhead per call.

Every callable carries its `ForeignFunction` record (`foreign_info(f)`, also
`f.address`, `f.returns`, `f.params`), which is what tier 1 reads to emit a direct LLVM
`call` to the symbol's address.
"""

from __future__ import annotations

import ctypes
import keyword
from dataclasses import dataclass, field
from typing import Any

from gene_jit.ffi import callbacks, crash
from gene_jit.ffi.library import LIBRARIES, Library, library
from gene_jit.ffi.memmap import check_code_address
from gene_jit.ffi.types import (
    INT64_MAX,
    MISSING,
    FfiType,
    Pointer,
    arg_error,
    ctype_of,
    describe,
    from_c,
    pointer_from,
    spec_name,
    to_c,
    too_big,
)
from gene_jit.runtime.errors import GeneArityError, GeneError, GeneNameError, GeneTypeError
from gene_jit.runtime.printer import quote_string


@dataclass(eq=False)
class ForeignFunction:
    """What `ffi/defun` defined: enough for tier 1 to call `address` directly."""

    name: str
    library: Library
    symbol: str
    returns: FfiType
    params: tuple[FfiType, ...]
    variadic: bool
    address: int
    cfunc: Any  # the ctypes function (tier 0 calls through it)
    fn: Any = None  # the generated Gene-callable function
    slots: dict[int, Any] = field(default_factory=dict)  # callbacks held per parameter
    addresses: bool = False  # ints pass as addresses, nil as NULL (see types.py)

    def __repr__(self) -> str:
        sig = " ".join(f":{p.name}" for p in self.params)
        return f"<ffi fn {self.name} {self.library.name}:{self.symbol} [{sig}] -> :{self.returns.name}>"


def foreign_info(fn: Any) -> ForeignFunction | None:
    """The `ForeignFunction` behind a callable made by `defun`, else None."""
    return getattr(fn, "__gene_foreign__", None)


def _process_library() -> Library:
    """Symbols already in the process (libc, libm, Python's own), for a `defun` without
    `:lib`."""
    lib = LIBRARIES.get("")
    if lib is None:
        lib = Library("", "(process)", ctypes.CDLL(None))
        LIBRARIES[""] = lib
    return lib


def find_library(lib: Any, symbol: str) -> Library:
    """The library named `lib`, or without one the first loaded library (then the
    process) that has `symbol`."""
    if lib is not None:
        return lib if isinstance(lib, Library) else library(lib)
    for candidate in [*LIBRARIES.values(), _process_library()]:
        if candidate.has(symbol):
            return candidate
    loaded = ", ".join(n for n in LIBRARIES if n) or "none"
    raise GeneNameError(
        f"no loaded library has symbol {quote_string(symbol)} (loaded: {loaded}); use :lib"
    )


def defun(
    name: Any,
    lib: Any = None,
    symbol: Any = None,
    returns: Any = "void",
    params: Any = (),
    variadic: bool = False,
    addresses: bool = True,
) -> Any:
    """Define a foreign function; returns the Gene-callable function. `addresses`: ints
    are taken as addresses and None as NULL for every pointer parameter, and pointers
    come back as ints, as Python bindings that manage raw addresses want; `ffi/defun`
    from Gene passes False (every value checked against the declaration)."""
    gname = spec_name(name)
    sym = spec_name(symbol) if symbol is not None else gname.replace("-", "_")
    library_ = find_library(lib, sym)
    ret = ctype_of(returns)
    if ret.kind == "array":
        raise GeneTypeError(f"ffi/defun {gname}: C functions cannot return arrays")
    if params is None:
        params = ()
    if not isinstance(params, (list, tuple)):
        raise GeneTypeError(f"ffi/defun {gname}: :params must be an array of types")
    ptypes = tuple(ctype_of(p) for p in params)
    for i, p in enumerate(ptypes):
        if p.kind in ("void", "array"):
            raise GeneTypeError(f"ffi/defun {gname}: parameter {i + 1} cannot be :{p.name}")
    cfunc = library_.function(sym)
    cfunc.restype = ret.ctype
    cfunc.argtypes = [p.ctype for p in ptypes]
    address = library_.address(sym)
    check_code_address(address, f"ffi/defun {gname}: symbol {quote_string(sym)} of {library_.path}")
    rec = ForeignFunction(
        gname, library_, sym, ret, ptypes, bool(variadic), address, cfunc,
        addresses=bool(addresses),
    )
    rec.fn = _build(rec)
    return rec.fn


# --- generating the callable -------------------------------------------------------


def _fast_check(i: int, t: FfiType, loose: bool) -> str:
    """The converted-argument expression for parameter i: one inline test, then the
    slow converter `_c{i}`."""
    a, slow = f"a{i}", f"_c{i}({f'a{i}'})"
    kind = t.kind
    if kind == "int":
        if t.size == 8 and t.signed:
            return f"{a} if type({a}) is int else {slow}"
        if t.size == 8:
            return f"{a} if type({a}) is int and {a} >= 0 else {slow}"
        return f"{a} if type({a}) is int and {t.lo} <= {a} <= {t.hi} else {slow}"
    if kind == "float":
        return f"{a} if type({a}) is float else {slow}"
    if kind == "bool":
        return f"{a} if type({a}) is bool else {slow}"
    if kind in ("pointer", "buffer"):
        if loose:
            return f"{a} if type({a}) is int or {a} is None else {slow}"
        return f"{a}.address if type({a}) is _Ptr and {a}.address and not {a}.cast else {slow}"
    if kind == "string":
        return f"{a}.encode() if type({a}) is str and '\\0' not in {a} else {slow}"
    if kind == "struct":
        return f"{a}._c if type({a}) is _S{i} and {a}._c is not None else {slow}"
    if kind == "struct_ptr":
        return f"{a}.address if type({a}) is _S{i} and {a}.address else {slow}"
    return slow  # callbacks: the slot that keeps them alive is filled by the converter


def _return_expr(t: FfiType, loose: bool) -> str:
    kind = t.kind
    if kind == "void":
        return "None"
    if kind in ("pointer", "buffer", "callback") and not loose:
        return "_ptr(r)"
    if kind == "int" and t.size == 8 and not t.signed:
        return "r if r <= _IMAX else _big(r)"
    if kind == "string":
        return "None if r is None else r.decode('utf-8', 'replace')"
    if kind == "struct":
        return "_R.own(r)"
    if kind == "struct_ptr":
        return "None if r is None else _R.at(r)"
    return "r"


def _slow_converter(rec: ForeignFunction, i: int, t: FfiType) -> Any:
    name = rec.name

    def convert(value: Any) -> Any:
        if value is MISSING:
            raise arg_error(name, i, t, value)
        try:
            if t.kind == "callback" and callable(value) and not isinstance(value, (int, Pointer)):
                cb = callbacks.as_callback(t.target, value)
                rec.slots[i] = cb  # held until the next call through this slot
                return cb.address
            return to_c(t, value, rec.addresses)
        except (TypeError, GeneTypeError) as exc:
            raise arg_error(name, i, t, value, str(exc)) from None

    return convert


def _variadic_arg(rec: ForeignFunction, pos: int, value: Any) -> Any:
    """C default argument promotions for the `...` part of a variadic call."""
    if isinstance(value, bool):
        return ctypes.c_int(int(value))
    if isinstance(value, int):
        return ctypes.c_int64(value)
    if isinstance(value, float):
        return ctypes.c_double(value)
    if isinstance(value, str):
        if "\0" in value:
            raise GeneTypeError(
                f"{rec.name}: variadic argument {pos + 1} holds a NUL character at index "
                f"{value.index(chr(0))}, where C would end it"
            )
        return ctypes.c_char_p(value.encode())
    try:
        return ctypes.c_void_p(to_c(ctype_of("pointer"), value, rec.addresses))
    except TypeError:
        raise GeneTypeError(
            f"{rec.name}: variadic argument {pos + 1} must be an int, float, string or "
            f"pointer, got {describe(value)}"
        ) from None


def _build(rec: ForeignFunction) -> Any:
    crash.install()
    n = len(rec.params)
    args = [f"a{i}" for i in range(n)]
    conv = [f"c{i}" for i in range(n)]
    env: dict[str, Any] = {
        "_M": MISSING,
        "_cf": rec.cfunc,
        "_ArgErr": ctypes.ArgumentError,
        "_pend": callbacks.PENDING,
        "_rp": callbacks.raise_pending,
        "_bad": lambda exc, values: _diagnose(rec, exc, values),
        "_extra": lambda extra: GeneArityError(
            f"{rec.name} takes {n} argument{'s' if n != 1 else ''}, got {n + len(extra)}"
        ),
        "_va_conv": lambda extra: [_variadic_arg(rec, n + j, v) for j, v in enumerate(extra)],
        "_Ptr": Pointer,
        "_ptr": pointer_from,
        "_IMAX": INT64_MAX,
        "_big": lambda r: _overflow(rec, r),
        "_cs": crash.CURRENT,
        "_nm": crash.name_address(rec.name),
    }
    if rec.returns.kind in ("struct", "struct_ptr"):
        env["_R"] = rec.returns.target
    lines = []
    for i, t in enumerate(rec.params):
        env[f"_c{i}"] = _slow_converter(rec, i, t)
        if t.kind in ("struct", "struct_ptr"):
            env[f"_S{i}"] = t.target
        lines.append(f"    c{i} = {_fast_check(i, t, rec.addresses)}")
    call_args = ", ".join(conv)
    if rec.variadic:
        lines.append("    cva = _va_conv(_va) if _va else ()")
        call_args = f"{call_args}, *cva" if n else "*cva"
    else:
        lines.append("    if _va: raise _extra(_va)")
    lines += [  # the record of the current call, for crash reports (gene_jit/ffi/crash.py)
        "    _cs[0] = _nm",
        "    try:",
        f"        r = _cf({call_args})",
        "    except _ArgErr as exc:",
        f"        raise _bad(exc, ({', '.join(args)}{',' if n == 1 else ''})) from None",
        "    finally:",
        "        _cs[0] = 0",
        "    if _pend: _rp()",
        f"    return {_return_expr(rec.returns, rec.addresses)}",
    ]
    pyname = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in rec.name) or "ffi_fn"
    if keyword.iskeyword(pyname) or pyname[0].isdigit():
        pyname = f"ffi_{pyname}"
    params_src = ", ".join([f"{a}=_M" for a in args] + ["*_va"])
    src = f"def {pyname}({params_src}):\n" + "\n".join(lines) + "\n"
    exec(compile(src, f"<ffi/defun {rec.name}>", "exec"), env)
    fn = env[pyname]
    fn.__gene_foreign__ = rec
    fn.address = rec.address
    fn.returns = rec.returns
    fn.params = rec.params
    fn.symbol = rec.symbol
    fn.library = rec.library
    fn.__qualname__ = fn.__name__ = rec.name
    fn.__doc__ = repr(rec)
    return fn


def _overflow(rec: ForeignFunction, raw: int) -> Any:
    raise too_big(rec.name, raw)


def _diagnose(rec: ForeignFunction, exc: Exception, values: tuple[Any, ...]) -> GeneError:
    """ctypes refused an argument the fast path let through: find which, and say why."""
    if callbacks.too_deep(exc):
        return callbacks.stack_overflow()
    for i, (t, v) in enumerate(zip(rec.params, values, strict=False)):
        try:
            to_c(t, v, rec.addresses)
        except (TypeError, GeneError) as why:
            return arg_error(rec.name, i, t, v, str(why))
    return GeneTypeError(f"{rec.name}: bad argument: {exc}")


def call_returning(rec: ForeignFunction, raw: Any) -> Any:
    """Convert a raw C result the way the generated callable does (for tier 1)."""
    return from_c(rec.returns, raw, rec.addresses, rec.name)
