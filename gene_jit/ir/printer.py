"""IR printer: one line per instruction, stable text for golden tests and `gene-jit ir`."""

from __future__ import annotations

from gene_jit.ir.nodes import Function, Instr, Op, Unit


def format_instr(ins: Instr) -> str:
    lhs = f"{ins.result}: {ins.result.type} = " if ins.result is not None else ""
    parts = [ins.op.value]
    if ins.op is Op.CONST:
        value = ins.attr
        parts.append("true" if value is True else "false" if value is False else repr(value))
    elif ins.attr is not None:
        parts.append(str(ins.attr))
    args = ", ".join(str(a) for a in ins.args)
    if args:
        parts.append(args)
    if ins.targets:
        parts.append(", ".join(f"label {t}" for t in ins.targets))
    return lhs + " ".join(parts)


def format_function(fn: Function) -> str:
    params = ", ".join(f"{p}: {p.type}" for p in fn.params)
    lines = [f"fn {fn.name}({params}) -> {fn.ret} {{"]
    for slot, ty in fn.locals.items():
        lines.append(f"  local {slot}: {ty}")
    for block in fn.blocks:
        lines.append(f"{block.name}:")
        for ins in block.instrs:
            lines.append("  " + format_instr(ins))
    lines.append("}")
    return "\n".join(lines)


def format_unit(unit: Unit) -> str:
    return "\n\n".join(format_function(f) for f in unit.ordered())
