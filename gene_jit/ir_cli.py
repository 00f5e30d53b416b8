"""`gene-jit ir FILE --fn NAME [--sig i64,f64] [--emit ir|llvm|asm] [--after PASS|all]`:
show what tier 1 makes of a function, without running the program.

The function is built for the signature given (default: every parameter i64), with calls
resolved among the file's top-level `fn` forms and the builtins tier 1 knows.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gene_jit.frontend.forms import GeneF, Sym
from gene_jit.ir import types as T
from gene_jit.ir.builder import NotTypeable
from gene_jit.ir.program import FnSource, build_unit
from gene_jit.runtime.errors import GeneError

_TYPES = {"i64": T.I64, "int": T.I64, "f64": T.F64, "float": T.F64, "bool": T.BOOL,
          "f64[]": T.array(T.F64, 1), "i64[]": T.array(T.I64, 1),
          "f64[,]": T.array(T.F64, 2), "i64[,]": T.array(T.I64, 2)}


class FileResolver:
    def __init__(self, fns: dict[str, FnSource]) -> None:
        self.fns = fns

    def resolve(self, name: str, key: Any) -> FnSource | str | None:
        if name in self.fns:
            return self.fns[name]
        from gene_jit.frontend.compiler import new_env  # registers the builtins
        from gene_jit.runtime import ops
        from gene_jit.runtime.registry import BUILTINS

        new_env()
        value = BUILTINS.get(name)
        named = {id(ops.mod): "mod", id(ops.rem): "rem", id(ops.int_div): "div"}
        if id(value) in named:
            return named[id(value)]
        builtin_name = getattr(value, "__gene_builtin__", None)
        return builtin_name if isinstance(builtin_name, str) else None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file")
    parser.add_argument("--fn", required=True, dest="fn_name", help="the function to show")
    parser.add_argument("--sig", default=None, help="argument types, e.g. i64,f64,f64[] (default: all i64)")
    parser.add_argument("--emit", default="ir", help="ir, llvm, asm, or several: ir,llvm,asm")
    parser.add_argument("--after", default=None, metavar="PASS",
                        help="also print the IR after this pass (or all) to stderr, as "
                             "GENE_DUMP=ir-after:PASS does")


def run(args: argparse.Namespace) -> int:
    from gene_jit.frontend.reader import read
    from gene_jit.runtime.stdlib_io import read_file

    forms = read(read_file("ir", args.file), args.file)  # an unreadable file: an io error, as `run` gives
    emit = {e.strip() for e in args.emit.split(",")}
    if not emit or not emit <= {"ir", "llvm", "asm"}:
        sys.stderr.write(f"gene-jit ir: --emit takes ir, llvm, asm or several of them (ir,llvm), got {args.emit!r}\n")
        return 2
    fns = {}
    for form in forms:
        if isinstance(form, GeneF) and isinstance(form.head, Sym) and form.head.name == "fn" \
                and form.children and isinstance(form.children[0], Sym):
            try:
                src = FnSource.from_form(form.children[0].name, form)
            except NotTypeable:
                continue
            fns[src.name] = src
    if args.fn_name not in fns:
        sys.stderr.write(f"gene-jit ir: no compilable fn {args.fn_name} in {args.file}\n")
        return 2
    src = fns[args.fn_name]
    try:
        sig = tuple(_TYPES[t.strip()] for t in args.sig.split(",")) if args.sig else (T.I64,) * len(src.params)
    except KeyError as exc:
        sys.stderr.write(f"gene-jit ir: unknown type {exc.args[0]} (known: {', '.join(_TYPES)})\n")
        return 2
    try:
        unit = build_unit(src, sig, FileResolver(fns))
    except NotTypeable as exc:
        raise GeneError(f"{args.fn_name} stays in tier 0: {exc.reason}") from None
    if args.after:
        dump = os.environ.get("GENE_DUMP", "")
        os.environ["GENE_DUMP"] = f"{dump},ir-after:{args.after}" if dump else f"ir-after:{args.after}"
    from gene_jit.codegen.compile import compile_unit

    native = compile_unit(unit, use_cache=False)
    if "ir" in emit:
        print(f";; typed IR\n{native.ir_text}")
    if "llvm" in emit:
        print(f";; LLVM IR (optimised)\n{native.llvm_ir}")
    if "asm" in emit:
        print(f";; assembly\n{native.assembly()}")
    return 0
