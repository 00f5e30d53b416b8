"""Core nodes: what a `(head ...)` form means, decided once for both tiers.

The reader gives forms (forms.py). This module reads a gene form the way GENE.md 2.2
says and gives one node of a small closed set: infix chains resolved with precedence
(binary arithmetic, comparison chains, `&&` / `||`), prefix operator heads, assignments
(`=`, `+=`, ...), the other second-position keywords (`..`, `->`, `./`, `.m`), and what
a head name is (a special form, an operator, a method of `self`, or a name to call).
Tier 0 (`compiler_*.py`, `special_*.py`) lowers the nodes to Python AST, tier 1
(`ir/build_*.py`) to its IR, and tier 0's kind inference (compiler_types) reads them,
so the tables that decide what a program means live here only: precedence, comparison
and assignment operators, the heads that block infix reading, the special-form heads.

Nodes are frozen slotted dataclasses. Each carries the span of the form it came from;
the nodes of one infix form share that form's span, which is where both tiers report an
error inside it. Operands stay forms until a tier lowers them: the operand `(f x)` of
`(a + (f x))` is resolved when it is compiled. Malformed forms raise GeneSyntaxError.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeAlias

from gene_jit.frontend.forms import Arr, Form, GeneF, Lit, Quote, Span, Sym
from gene_jit.runtime.errors import GeneSyntaxError

# ---------------------------------------------------------------- the tables

# Infix precedence (GENE.md decisions): `||` < `&&` < comparisons < `+ -` < `* /` < `**`.
# Equal precedence is left-associative; all comparisons, `==` and `!=` included, share
# one level and chain as a conjunction.
INFIX_PREC = MappingProxyType({
    "||": 1, "&&": 2,
    "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
    "+": 4, "-": 4,
    "*": 5, "/": 5,
    "**": 6,
})  # fmt: skip
COMPARE_OPS = frozenset(op for op, p in INFIX_PREC.items() if p == 3)
LOGIC_OPS = frozenset({"&&", "||"})
ARITH_OPS = frozenset(INFIX_PREC) - COMPARE_OPS - LOGIC_OPS
# `(x op= v)` is `(x = (x op v))`; `&&=` and `||=` short-circuit as `&&` and `||` do.
ASSIGN_OPS = frozenset({"=", "+=", "-=", "*=", "/=", "**=", "||=", "&&="})
STEP_OPS = frozenset({"+=", "-="})  # the assignment operators that step a value by an amount
# Heads that are operators in prefix position: `(+ a b)`, `(not x)`, `(= a b)` (equality).
PREFIX_OPS = frozenset(INFIX_PREC) | {"not", "!", "="}
# A form with one of these heads is never read as infix or as a second-position keyword:
# `(if x == y ...)`, `(var x = 1)`, `(return - x)` keep their head's meaning.
NOT_INFIX_HEADS = frozenset({
    "var", "if", "fn", "fnx", "fnxx", "macro", "do", "loop", "while", "for", "ns", "class",
    "try", "throw", "$", ".", "import", "enum", "case", "match", "repeat", "return",
    "break", "continue", "new", "not", "!",
})  # fmt: skip
# Head names with a special form (tier 0 has a handler for each; tier 1 for some).
SPECIAL_FORMS = frozenset({
    "var", "if", "do", "void", "loop", "while", "break", "continue", "return", "case",
    "match", "eval", "$set", "$with", "$tap", "$render", "fn", "fnx", "fnxx", "macro",
    "->", "$caller_eval", "repeat", "for", "ns", "class", "super", "new", "enum", "try",
    "throw", "import", "$parse", "async", "await", "compile",
})  # fmt: skip

_INT_RE = re.compile(r"^-?\d+$")


def segment_key(seg: str) -> object:
    """The key a path segment names: an int for `a/0`, else the text (`m/key`)."""
    return int(seg) if _INT_RE.match(seg) else seg


# ---------------------------------------------------------------- nodes


@dataclass(frozen=True, slots=True)
class Node:
    span: Span


Expr: TypeAlias = "Form | Node"


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """`a op b` for op in + - * / **."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Compare(Node):
    """`a < b <= c`: `a < b && b <= c`, each operand evaluated once, later operands only
    when the comparisons before them hold. `ops[i]` sits between operands i and i+1."""

    ops: tuple[str, ...]
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Logic(Node):
    """`a && b`, `a || b`: short-circuit; the value is an operand."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Unary(Node):
    """`(- a)` negates, `(not a)` / `(! a)` is `not`, `(+ a)` `(* a)` `(** a)` are a."""

    op: str  # "-", "not" or "+"
    operand: Expr


@dataclass(frozen=True, slots=True)
class Assign(Node):
    """`(target op value)`; target is a name or a path (`a/0`, `m/key`, `/p`, `$ns/x`)."""

    op: str
    target: Sym
    value: Form

    @property
    def base(self) -> str | None:
        """The operator that combines old and new value (`+` for `+=`), None for `=`."""
        return None if self.op == "=" else self.op[:-1]


@dataclass(frozen=True, slots=True)
class Range(Node):
    """`(a .. b)`: a range value, the end included."""

    start: Form
    end: Form


@dataclass(frozen=True, slots=True)
class Select(Node):
    """`(./ target key [default])`, `(target ./ key [default])`, `(target ./key [default])`."""

    args: tuple[Form, ...]


@dataclass(frozen=True, slots=True)
class Lambda(Node):
    """`(params -> body...)`: a block value."""

    form: GeneF


@dataclass(frozen=True, slots=True)
class MethodCall(Node):
    """`(obj .m a b)`; `target` None is `(.m a b)`, a method of `self`."""

    form: GeneF
    target: Form | None
    name: str
    args: tuple[Form, ...]


@dataclass(frozen=True, slots=True)
class GeneData(Node):
    """`(:t ^x 1 2)`, `(_ ...)`, `()`: gene data with evaluated props and children."""

    form: GeneF


@dataclass(frozen=True, slots=True)
class LiteralHead(Node):
    """`("n=" n)` concatenates; `(-1)` is the number; `(1 2)` is gene data."""

    form: GeneF
    head: Lit


class Role(enum.Enum):
    """What a head name means when no lexical variable shadows it."""

    SPECIAL = "special form"
    OPERATOR = "operator"
    METHOD = "method of self"
    NAME = "name"


@dataclass(frozen=True, slots=True)
class Named(Node):
    """`(name args...)`: a special form, an operator, `(.m a)` or a call, by `role`. A
    local variable of that name makes it a call whatever the role (each tier checks its
    scopes); `prefix(form)` gives the operator node."""

    form: GeneF
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class Call(Node):
    """`((f) a)`, `([1 2] 0)`: the head is computed."""

    form: GeneF


@dataclass(frozen=True, slots=True)
class Clause(Node):
    """One `cond body...` of an `if`; `negate` for `(if not c ...)`."""

    negate: bool
    cond: Form
    body: tuple[Form, ...]


@dataclass(frozen=True, slots=True)
class If(Node):
    """`(if c a b)`, `(if c then a... elif c2 b... else d...)`, `(if not c ...)`."""

    clauses: tuple[Clause, ...]
    else_body: tuple[Form, ...] | None


def error(at: Form | Node, message: str) -> GeneSyntaxError:
    return GeneSyntaxError(message, at.span)


# ---------------------------------------------------------------- gene forms


def head_role(name: str) -> Role:
    if name in SPECIAL_FORMS:
        return Role.SPECIAL
    if name in PREFIX_OPS:
        return Role.OPERATOR
    if name.startswith(".") and len(name) > 1 and name not in ("..", "..."):
        return Role.METHOD
    return Role.NAME


def resolve(form: GeneF) -> Node:
    """The node for `(head ...)`, in the order GENE.md 2.2 gives: selector head,
    second-position keywords and infix (unless the head blocks them), gene data, a
    literal head, a named head, else a call of a computed head."""
    head, ch = form.head, form.children
    hname = head.name if isinstance(head, Sym) else None
    if hname == "./":
        return Select(form.span, _selector_args(form, ch))
    if ch and isinstance(ch[0], Sym) and head is not None and hname not in NOT_INFIX_HEADS:
        node = second_position(form, head, ch[0].name)
        if node is not None:
            return node
    if head is None or isinstance(head, Quote) or hname == "_":
        return GeneData(form.span, form)
    if isinstance(head, Lit):
        return LiteralHead(form.span, form, head)
    if hname is not None:
        return Named(form.span, form, hname, head_role(hname))
    return Call(form.span, form)


def second_position(form: GeneF, head: Form, op: str) -> Node | None:
    """`(x op ...)` where op is a keyword: None when `op` is not one."""
    ch, span = form.children, form.span
    if op == "..":
        if len(ch) != 2:
            raise error(form, "range expects (a .. b)")
        return Range(span, head, ch[1])
    if op in ASSIGN_OPS:
        if len(ch) != 2 or not isinstance(head, Sym):
            raise error(form, f"assignment expects (target {op} value)")
        return Assign(span, op, head, ch[1])
    if op == "->":
        return Lambda(span, form)
    if op == "./":
        return Select(span, _selector_args(form, (head, *ch[1:])))
    if op.startswith("./") and len(op) > 2:
        key = Lit(ch[0].span, segment_key(op[2:]))
        return Select(span, _selector_args(form, (head, key, *ch[1:])))
    if op in INFIX_PREC:
        return infix(form)
    if op.startswith(".") and len(op) > 1 and op != "...":
        if isinstance(head, Sym) and head.name in SPECIAL_FORMS:
            return None  # `(super .m x)`: the special form reads its own keywords
        return MethodCall(span, form, head, op[1:], ch[1:])
    return None


def _selector_args(form: GeneF, args: tuple[Form, ...]) -> tuple[Form, ...]:
    if len(args) not in (2, 3):
        raise error(form, "selector expects (./ target key [default])")
    return args


# ---------------------------------------------------------------- operators


def infix(form: GeneF) -> Node:
    """`(a + b * c < d)`: a tree by precedence, left-associative, comparisons chained."""
    items: tuple[Form, ...] = (form.head, *form.children)  # type: ignore[arg-type]
    if len(items) % 2 == 0:
        raise error(form, "infix expression expects operands between operators, e.g. (a + b)")
    ops: list[str] = []
    for f in items[1::2]:
        if not (isinstance(f, Sym) and f.name in INFIX_PREC):
            raise error(f, "infix expression expects an operator here (mixing infix and calls?)")
        ops.append(f.name)
    tree = _Climber(list(items[0::2]), ops, form.span).climb(0)
    assert isinstance(tree, Node)  # at least one operator
    return tree


class _Climber:
    """Precedence climbing over operands and the operators between them."""

    def __init__(self, operands: list[Form], ops: list[str], span: Span) -> None:
        self.operands, self.ops, self.span, self.pos = operands, ops, span, 0

    def climb(self, min_prec: int) -> Expr:
        left: Expr = self.operands[self.pos]
        chain: tuple[list[str], list[Expr]] | None = None  # comparisons at this level
        while self.pos < len(self.ops):
            op = self.ops[self.pos]
            prec = INFIX_PREC[op]
            if prec < min_prec:
                break
            self.pos += 1
            right = self.climb(prec + 1)
            if op in COMPARE_OPS:
                if chain is None:
                    chain = ([op], [left, right])
                else:
                    chain[0].append(op)
                    chain[1].append(right)
                continue
            if chain is not None:
                left, chain = self._compare(chain), None
            left = self._binary(op, left, right)
        return self._compare(chain) if chain is not None else left

    def _compare(self, chain: tuple[list[str], list[Expr]]) -> Compare:
        return Compare(self.span, tuple(chain[0]), tuple(chain[1]))

    def _binary(self, op: str, left: Expr, right: Expr) -> Node:
        if op in LOGIC_OPS:
            return Logic(self.span, op, left, right)
        return Binary(self.span, op, left, right)


def prefix(form: GeneF) -> Expr:
    """`(+ a b c)` folds left, `(- a)` negates, `(/ a)` is `1 / a`, `(< a b c)` chains,
    `(= a b)` is `==`, `(not x)`, `(&& a b)`; `(+)` is 0, `(*)` 1, `(&&)` true, `(||)` false."""
    assert isinstance(form.head, Sym)
    op, args, span = form.head.name, form.children, form.span
    n = len(args)
    if op in ("not", "!"):
        if n != 1:
            raise error(form, f"({op} x) expects one argument")
        return Unary(span, "not", args[0])
    if op == "=":
        op = "=="
    if op in COMPARE_OPS:
        if n < 2:
            raise error(form, f"({op} a b) expects two arguments")
        return Compare(span, (op,) * (n - 1), tuple(args))
    if n == 0:
        if op in ("+", "*", "&&", "||"):
            return Lit(span, {"+": 0, "*": 1, "&&": True, "||": False}[op])
        raise error(form, f"({op} ...) expects at least one argument")
    if n == 1:
        if op == "-":
            return Unary(span, "-", args[0])
        if op == "/":
            return Binary(span, "/", Lit(span, 1), args[0])
        if op not in LOGIC_OPS:
            return Unary(span, "+", args[0])
        return args[0]
    node: Expr = args[0]
    make: Callable[..., Node] = Logic if op in LOGIC_OPS else Binary
    for a in args[1:]:
        node = make(span, op, node, a)
    return node


# ---------------------------------------------------------------- special forms


def if_node(form: GeneF) -> If:
    """Clauses and else body of an `if`. Without keywords, `(if c a b)` is then/else and
    `(if c a b c ...)` a then-body; `then` may start a clause, `not` negates a condition."""
    ch = form.children
    clauses: list[Clause] = []

    def cond_at(i: int) -> tuple[bool, Form, int]:
        neg = i < len(ch) and _sym_is(ch[i], "not")
        if neg:
            i += 1
        if i >= len(ch):
            raise error(form, "if expects (if cond then... [elif cond ...] [else ...])")
        return neg, ch[i], i + 1

    neg, cond, i = cond_at(0)
    rest = ch[i:]
    if not any(_sym_is(f, "then", "elif", "else") for f in rest):
        if len(rest) == 2:
            return If(form.span, (Clause(cond.span, neg, cond, rest[:1]),), rest[1:])
        return If(form.span, (Clause(cond.span, neg, cond, rest),), None)
    if rest and _sym_is(rest[0], "then"):
        i += 1
    body: list[Form] = []
    else_body: tuple[Form, ...] | None = None
    while i < len(ch):
        if _sym_is(ch[i], "elif"):
            clauses.append(Clause(cond.span, neg, cond, tuple(body)))
            neg, cond, i = cond_at(i + 1)
            body = []
            if i < len(ch) and _sym_is(ch[i], "then"):
                i += 1
            continue
        if _sym_is(ch[i], "else"):
            else_body = ch[i + 1 :]
            break
        body.append(ch[i])
        i += 1
    clauses.append(Clause(cond.span, neg, cond, tuple(body)))
    return If(form.span, tuple(clauses), else_body)


def _sym_is(form: Form, *names: str) -> bool:
    return isinstance(form, Sym) and form.name in names


@dataclass(frozen=True, slots=True)
class Catch(Node):
    """`catch pattern body...`; the pattern `*` catches everything."""

    pattern: Form
    body: tuple[Form, ...]


@dataclass(frozen=True, slots=True)
class Try(Node):
    """`(try body... catch P body... finally body...)`; `final` None without finally."""

    body: tuple[Form, ...]
    catches: tuple[Catch, ...]
    final: tuple[Form, ...] | None


def try_node(form: GeneF) -> Try:
    """The parts of a `try`: catches in order, then at most one finally, which is last."""
    ch = form.children
    body: list[Form] = []
    catches: list[tuple[Form, Form, list[Form]]] = []  # (catch keyword, pattern, body)
    final: list[Form] | None = None
    current = body
    i = 0
    while i < len(ch):
        if _sym_is(ch[i], "catch"):
            if final is not None:
                raise error(ch[i], "catch after finally: finally comes last in a try")
            if i + 1 >= len(ch):
                raise error(ch[i], "catch expects a class or * after it")
            current = []
            catches.append((ch[i], ch[i + 1], current))
            i += 2
            continue
        if _sym_is(ch[i], "finally"):
            if final is not None:
                raise error(ch[i], "a try has one finally")
            final = current = []
        else:
            current.append(ch[i])
        i += 1
    clauses = tuple(Catch(kw.span, pat, tuple(b)) for kw, pat, b in catches)
    return Try(form.span, tuple(body), clauses, None if final is None else tuple(final))


@dataclass(frozen=True, slots=True)
class Compile(Node):
    """`(compile [name] [params] instr...)`: a function made of `$vm/...` instructions
    (gene_jit/runtime/vm.py); an instruction may be `%e`, spliced in when the form runs."""

    name: Sym | None
    params: tuple[Sym, ...]
    code: tuple[Form, ...]


def compile_node(form: GeneF) -> Compile:
    ch = form.children
    name = ch[0] if ch and isinstance(ch[0], Sym) else None
    rest = ch[1:] if name is not None else ch
    if not rest or not isinstance(rest[0], Arr):
        raise error(form, "compile expects (compile [name] [params] ($vm/...) ...)")
    params: list[Sym] = []
    for p in rest[0].items:
        if not isinstance(p, Sym) or p.is_complex or p.name.endswith("..."):
            raise error(p, "compile expects plain parameter names")
        params.append(p)
    return Compile(form.span, name, tuple(params), rest[1:])
