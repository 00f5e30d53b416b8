"""LLVM emission of the math builtins (sqrt exp log sin cos tan pow abs min max floor
ceil trunc), matching gene_jit.runtime.stdlib_math: IEEE results (nan, inf) for floats,
overflow-checked ints, and a Gene error when a non-finite float is turned into an int.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import llvmlite.ir as ir

from gene_jit.codegen.emit import ERR_CONVERT, F64, I64, TO_INT_NAMES
from gene_jit.ir import types as T
from gene_jit.ir.nodes import Instr

if TYPE_CHECKING:
    from gene_jit.codegen.emit import FunctionEmitter

_UNARY = {"sqrt": "llvm.sqrt.f64", "exp": "llvm.exp.f64", "log": "llvm.log.f64",
          "sin": "llvm.sin.f64", "cos": "llvm.cos.f64", "tan": "tan",
          "floor": "llvm.floor.f64", "ceil": "llvm.ceil.f64", "trunc": "llvm.trunc.f64",
          "to_i": "llvm.trunc.f64", "int": "llvm.trunc.f64", "to-i": "llvm.trunc.f64"}


def emit_math(e: FunctionEmitter, ins: Instr) -> Any:
    name = ins.attr
    args = [e.v(a) for a in ins.args]
    b = e.b
    if name in ("min", "max"):
        x, y = args
        if ins.args[0].type == T.F64:
            better = b.fcmp_ordered("<" if name == "min" else ">", y, x)
        else:
            better = b.icmp_signed("<" if name == "min" else ">", y, x)
        return b.select(better, y, x)
    if name == "abs":
        (x,) = args
        if ins.args[0].type == T.F64:
            return b.call(e.mod.intrinsic("llvm.fabs.f64", F64, [F64]), [x])
        neg = e.checked("ssub", ir.Constant(I64, 0), x)
        return b.select(b.icmp_signed("<", x, ir.Constant(I64, 0)), neg, x)
    if name == "pow":
        return b.call(e.mod.intrinsic("llvm.pow.f64", F64, [F64, F64]), args)
    fn = e.mod.intrinsic(_UNARY[name], F64, [F64])
    r = b.call(fn, args)
    if ins.result is not None and ins.result.type == T.I64:
        return _to_int(e, r, name)
    return r


def _to_int(e: FunctionEmitter, r: Any, name: str) -> Any:
    """r as an int; a non-finite r, or one beyond 64 bits, leaves its bits and the
    builtin's name for the message (engine.convert_error)."""
    b = e.b
    in_range = b.and_(b.fcmp_ordered(">=", r, ir.Constant(F64, -(2.0**63))),
                      b.fcmp_ordered("<", r, ir.Constant(F64, 2.0**63)))  # false for nan
    e.check_leaving(b.not_(in_range), (b.bitcast(r, I64), TO_INT_NAMES.index(name), 0), ERR_CONVERT)
    return b.fptosi(r, I64)
