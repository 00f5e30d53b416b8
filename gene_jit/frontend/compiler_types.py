"""Local kind inference for tier 0: which local variables of a function always hold an
int (`nat` when also never negative), a float, a number of either kind, or a string.

The operators use the kinds to drop guards that cannot fail: `(i < n)` with `i` an int
needs no class check (Python's `<` raises for a non-number, as Gene does), `(acc + i)` of
two non-negative ints checks only the upper int64 bound, `(a - b)` of two such needs no
check at all, `(s .append "x")` on a string is `s + "x"`.

Soundness rests on seeing every binding of a name. The analysis walks the whole function
body (nested functions included) by name: a name is a candidate only if it is bound by
`var`, assigned with `=`/`op=`, bound by `(loop [x e])` or a `repeat ^index`, and it
appears nowhere else in a binding position. Any form the walker does not know binds
nothing (function parameters, `for`/`match` patterns, class bodies, imports...) poisons
every name inside it, and a function that calls `eval`, `$caller_eval` or a macro (which
may assign its locals) gets no kinds at all. Kinds of all assignments to a name are
joined, to a fixed point (assignments may refer to each other, as `(acc = (acc + i))`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gene_jit.frontend import core
from gene_jit.frontend.forms import Arr, Form, GeneF, Interp, Lit, MapF, SetF, Sym
from gene_jit.runtime.errors import GeneSyntaxError

BOTTOM = ""  # no assignment seen yet (optimistic start of the fixed point)
INTS = ("nat", "int")
NUMERIC = ("nat", "int", "float", "num")
ARITH = ("+", "-", "*")
# Special forms whose children are all expressions (or keywords) and bind no local.
_EXPR_HEADS = {"if", "do", "void", "while", "return", "break", "continue", "case", "try",
               "throw", "$set", "new", "not", "!"}
_DISABLE = {"eval", "$caller_eval"}
INT_MAX = 2**63 - 1


def join(a: str | None, b: str | None) -> str | None:
    if a == BOTTOM:
        return b
    if b == BOTTOM or a == b:
        return a
    if a is None or b is None:
        return None
    if a in INTS and b in INTS:
        return "int"
    if a in NUMERIC and b in NUMERIC:
        return "num"
    return None


def arith_kind(op: str, a: str | None, b: str | None) -> str | None:
    """The kind of `a op b` for `+ - *` (the overflow-checked result, or an error)."""
    if a is None or b is None or a not in (*NUMERIC, BOTTOM) or b not in (*NUMERIC, BOTTOM):
        return None
    if a == BOTTOM or b == BOTTOM:
        return BOTTOM
    if a == "float" or b == "float":
        return "float"
    if a == "num" or b == "num":
        return "num"
    if op != "-" and a == "nat" and b == "nat":
        return "nat"
    return "int"


def assign_kind(op: str, old: str | None, new: str | None) -> str | None:
    """The kind of `(x op new)` with x of kind `old`."""
    base = op[:-1]
    if op == "=":
        return new
    if base == "/":
        return "float"
    if base in ARITH:
        return arith_kind(base, old, new)
    return None  # `**` gives an int or a float, `&&=` `||=` either operand


def _resolve(form: GeneF) -> core.Node | None:
    """The core node of `form`, None when it is malformed (compiling it reports that)."""
    try:
        return core.resolve(form)
    except GeneSyntaxError:
        return None


@dataclass
class _Facts:
    assigns: dict[str, list[tuple[str, Form | str]]] = field(default_factory=dict)
    poisoned: set[str] = field(default_factory=set)
    disabled: bool = False

    def bind(self, name: str, op: str, rhs: Form | str) -> None:
        self.assigns.setdefault(name, []).append((op, rhs))


class _Walker:
    def __init__(self, is_macro: Callable[[str], bool]) -> None:
        self.is_macro = is_macro
        self.facts = _Facts()

    def poison_all(self, form: Form | None) -> None:
        for name in _symbols(form):
            self.facts.poisoned.add(name)
            if name in _DISABLE or self.is_macro(name):
                # an eval in a nested function may assign this function's locals
                self.facts.disabled = True

    def walk(self, form: Form | None) -> None:
        if isinstance(form, (Arr, SetF)):
            self.walk_all(form.items)
        elif isinstance(form, MapF):
            self.walk_all(v for _, v in form.entries)
        elif isinstance(form, Interp):
            self.walk_all(form.parts)
        elif isinstance(form, GeneF):
            self.gene(form)

    def walk_all(self, forms: Iterable[Form]) -> None:
        for f in forms:
            self.walk(f)

    def gene(self, form: GeneF) -> None:
        head, ch = form.head, form.children
        name = head.name if isinstance(head, Sym) else None
        self.walk_all(v for _, v in form.props)
        if name in _DISABLE or (name is not None and self.is_macro(name)):
            self.facts.disabled = True
            return
        node = _resolve(form)
        if node is None or isinstance(node, core.Lambda):  # `([a b] -> body)` binds a and b
            self.poison_all(form)
        elif isinstance(node, core.Assign):
            if not node.target.is_complex:
                self.facts.bind(node.target.name, node.op, node.value)
            self.walk(node.value)
        elif not (isinstance(node, core.Named) and node.role is core.Role.SPECIAL):
            self.walk(head)
            self.walk_all(ch)
        elif name == "var":
            self.var(form)
        elif name == "loop":
            self.loop(form)
        elif name == "repeat":
            self.repeat(form)
        elif name == "for" and len(ch) >= 3:
            self.for_var(ch[0], ch[2])
            self.walk_all(ch[2:])
        elif name not in _EXPR_HEADS:
            self.poison_all(form)
        else:
            self.walk(head)
            self.walk_all(ch)

    def var(self, form: GeneF) -> None:
        ch = form.children
        if len(ch) == 2 and isinstance(ch[0], Sym) and not ch[0].is_complex:
            self.facts.bind(ch[0].name, "=", ch[1])
            self.walk(ch[1])
        elif ch and isinstance(ch[0], Sym) and not ch[0].is_complex:
            self.facts.poisoned.add(ch[0].name)  # `(var x)` is nil
        else:
            self.poison_all(form)

    def loop(self, form: GeneF) -> None:
        ch = list(form.children)
        if ch and isinstance(ch[0], Arr):
            items = ch.pop(0).items  # type: ignore[attr-defined]
            for n, init in zip(items[::2], items[1::2], strict=False):
                if isinstance(n, Sym) and not n.is_complex:
                    self.facts.bind(n.name, "=", init)
                else:
                    self.poison_all(n)
                self.walk(init)
        self.walk_all(ch)

    def for_var(self, pattern: Form, coll: Form) -> None:
        """`(for i in (a .. b))` binds i to ints from a to b: its kind joins theirs (the
        values lie between them). `range` may be redefined, so other loops poison."""
        bounds = _dotdot(coll)
        if isinstance(pattern, Sym) and not pattern.is_complex and bounds is not None:
            for f in bounds:
                self.facts.bind(pattern.name, "=", f)
        else:
            self.poison_all(pattern)

    def repeat(self, form: GeneF) -> None:
        for key, v in form.props:
            if key == "index" and isinstance(v, Sym):
                self.facts.bind(v.name, "=", "nat")
            else:
                self.poison_all(v)
        self.walk_all(form.children)


def _dotdot(form: Form) -> tuple[Form, Form] | None:
    """The bounds of `(a .. b)`, else None."""
    if not isinstance(form, GeneF) or form.head is None or form.props:
        return None
    node = _resolve(form)
    return (node.start, node.end) if isinstance(node, core.Range) else None


def rebinds(forms: Iterable[Form], name: str, is_macro: Callable[[str], bool]) -> bool:
    """Whether `forms` may bind or assign `name`, or run code that could (eval, macros)."""
    w = _Walker(is_macro)
    w.walk_all(forms)
    facts = w.facts
    return facts.disabled or name in facts.assigns or name in facts.poisoned


def _symbols(form: Form | None) -> Iterable[str]:
    if isinstance(form, Sym):
        yield form.name.split("/")[0].rstrip(".").lstrip("^")
    elif isinstance(form, (Arr, SetF)):
        for f in form.items:
            yield from _symbols(f)
    elif isinstance(form, MapF):
        for _, f in form.entries:
            yield from _symbols(f)
    elif isinstance(form, Interp):
        for f in form.parts:
            yield from _symbols(f)
    elif isinstance(form, GeneF):
        yield from _symbols(form.head)
        for _, f in form.props:
            yield from _symbols(f)
        for f in form.children:
            yield from _symbols(f)


@dataclass
class Locals:
    """What tier 0 knows of a function's locals before compiling its body."""

    kinds: dict[str, str] = field(default_factory=dict)  # Gene name -> certain kind
    stable: set[str] = field(default_factory=set)  # parameters never assigned
    counters: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)  # bounds


def infer_locals(
    body: Iterable[Form], params: Iterable[str], is_macro: Callable[[str], bool]
) -> Locals:
    """Gene name -> kind for the locals of a function whose kind is certain, the
    parameters that are never assigned (so a test on them holds for the whole branch),
    and the counters (`counters`)."""
    w = _Walker(is_macro)
    forms = list(body)
    w.walk_all(forms)
    facts = w.facts
    if facts.disabled:
        return Locals()
    params = set(params)
    stable = {p for p in params if p not in facts.assigns and p not in facts.poisoned}
    kinds = _fixed_point(facts, facts.poisoned | params)
    return Locals(kinds, stable, counters(facts, kinds))


# A counter starts from an int literal within +-2**61 and moves by a literal step of
# at most 1024 at a time, so it stays within +-2**62 for at least 2**51 steps: more
# than 260 days of nothing but steps, at 10 ns each. Its `i + 1` and `i - 1` cannot
# leave int64 in any run that ends, and need no overflow check.
COUNTER_START = 2**61
COUNTER_STEP = 1024
COUNTER_BOUND = 2**62


def counters(facts: _Facts, kinds: dict[str, str]) -> dict[str, tuple[int | None, int | None]]:
    """Bounds of the int locals that are counters: every binding is an int literal
    (`(var i 0)`, `(i = 5)`, a `repeat ^index`, which counts from 0 by 1) or a small
    literal step of the same name (`(i += 1)`, `(i -= 2)`, `(i = (i + 1))`)."""
    found: dict[str, tuple[int | None, int | None]] = {}
    for name, assigns in facts.assigns.items():
        kind = kinds.get(name)
        if kind in INTS and all(_counts(name, op, rhs) for op, rhs in assigns):
            found[name] = (0 if kind == "nat" else -COUNTER_BOUND, COUNTER_BOUND)
    return found


def _counts(name: str, op: str, rhs: Form | str) -> bool:
    if rhs == "nat":
        return op == "="  # a repeat index
    if isinstance(rhs, str):
        return False
    if op in core.STEP_OPS:
        return _small_step(rhs)
    if op != "=":
        return False
    if isinstance(rhs, Lit):
        return type(rhs.value) is int and -COUNTER_START <= rhs.value <= COUNTER_START
    node = _resolve(rhs) if isinstance(rhs, GeneF) and not rhs.props else None
    if not (isinstance(node, core.Binary) and node.op in ("+", "-")):
        return False
    left, right = node.left, node.right
    if node.op == "+" and _small_step(left):
        left, right = right, left
    return isinstance(left, Sym) and left.name == name and _small_step(right)


def _small_step(form: object) -> bool:
    return isinstance(form, Lit) and type(form.value) is int and abs(form.value) <= COUNTER_STEP


def _fixed_point(facts: _Facts, bad: set[str]) -> dict[str, str]:
    names = [n for n in facts.assigns if n not in bad]
    kinds: dict[str, str | None] = {n: BOTTOM for n in names}
    for _ in range(20):
        new: dict[str, str | None] = {}
        for n in names:
            k: str | None = BOTTOM
            for op, rhs in facts.assigns[n]:
                rk = rhs if isinstance(rhs, str) else expr_kind(rhs, kinds)
                if op != "=":
                    rk = assign_kind(op, kinds[n], rk)
                k = join(k, rk)
            new[n] = k
        if new == kinds:
            return {n: k for n, k in kinds.items() if k}
        kinds = new
    return {}


def expr_kind(form: Form, kinds: dict[str, str | None]) -> str | None:
    """The kind of the value of `form`, given the kinds of locals (None: unknown)."""
    if isinstance(form, Lit):
        v = form.value
        if type(v) is int:
            return ("nat" if v >= 0 else "int") if -INT_MAX - 1 <= v <= INT_MAX else None
        return {float: "float", str: "str"}.get(type(v))
    if isinstance(form, Sym):
        return kinds.get(form.name)
    if not isinstance(form, GeneF):
        return None
    node = _resolve(form)
    if isinstance(node, core.Assign):
        rk = expr_kind(node.value, kinds)
        if node.target.is_complex:
            return rk if node.op == "=" else None
        return assign_kind(node.op, kinds.get(node.target.name), rk)
    if isinstance(node, (core.Binary, core.Unary)):
        return _op_kind(node, kinds)
    if isinstance(node, core.MethodCall):
        return _method_kind(node, kinds)
    if not isinstance(node, core.Named):
        return None
    if node.role is core.Role.OPERATOR and node.name in ARITH and form.children and not form.props:
        return _op_kind(core.prefix(form), kinds)
    if node.name == "do" and form.children:
        return expr_kind(form.children[-1], kinds)
    if node.name == "if":
        return _if_kind(form, kinds)
    return None


def _op_kind(node: core.Expr, kinds: dict[str, str | None]) -> str | None:
    if isinstance(node, core.Binary):
        if node.op in ARITH:
            return arith_kind(node.op, _op_kind(node.left, kinds), _op_kind(node.right, kinds))
        return "float" if node.op == "/" else None
    if isinstance(node, core.Unary) and node.op != "not":
        k = _op_kind(node.operand, kinds)
        if k not in (*NUMERIC, BOTTOM):
            return None
        return "int" if node.op == "-" and k in INTS else k
    if isinstance(node, Form):
        return expr_kind(node, kinds)
    return None


def _method_kind(node: core.MethodCall, kinds: dict[str, str | None]) -> str | None:
    if node.target is None:
        return None
    if node.name == "append" and len(node.args) == 1:
        ks = {expr_kind(node.target, kinds), expr_kind(node.args[0], kinds)}
        return (BOTTOM if BOTTOM in ks else "str") if ks <= {"str", BOTTOM} else None
    if node.name in ("size", "length") and not node.args:
        k = expr_kind(node.target, kinds)
        return {"str": "nat", BOTTOM: BOTTOM}.get(k)  # type: ignore[arg-type]
    return None


def _if_kind(form: GeneF, kinds: dict[str, str | None]) -> str | None:
    """The join of the branches' last forms; None when a branch may give nil."""
    try:
        node = core.if_node(form)
    except GeneSyntaxError:
        return None
    bodies = [cl.body for cl in node.clauses] + [node.else_body or ()]
    if not all(bodies):
        return None
    k: str | None = BOTTOM
    for body in bodies:
        k = join(k, expr_kind(body[-1], kinds))
    return k
