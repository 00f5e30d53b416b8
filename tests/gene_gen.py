"""A generator of whole Gene programs for the differential test of the tiers.

Each program defines a few functions over two arguments and calls each of them with
several argument pairs, printing the value or the caught error's kind. The functions
cover what the tiers must agree on: comparison chains (`==`/`!=` included), `&&`/`||`
whose operands have side effects, nested loops with break/continue/return, int/float
mixing and int-vs-float comparisons, boundary integers (overflow must raise in both
tiers), ranges that reach the int64 limits, closures, global functions redefined
after their callers were compiled, and names that shadow globals and builtins (locals,
parameters, loop variables, captured variables, namespace members, top-level variables
that redeclare a function's name).
"""

from __future__ import annotations

import random

INT_MAX = 2**63 - 1
INT_MIN = -(2**63)
INTS = [0, 1, -1, 2, 3, 7, -13, 1000, 2**31, 2**53 + 1, 2**62, -(2**62), INT_MAX, INT_MIN]
FLOATS = ["0.5", "-2.25", "1e300", "-1e-300", "0.0", "3.0", "9007199254740992.0", "-0.0"]
CMP = ["<", "<=", ">", ">=", "==", "!="]


class Gen:
    """One program's generator; `r` draws every choice, so a seed names a program.

    Each function has a kind, int or float: its accumulator `x` and the expressions
    assigned to it keep that kind (so that tier 1 can type the function and the test
    compares native code, not tier 0 with itself); `c` counts side effects and loop trips
    and stays an int; comparisons and chains mix the kinds freely.
    """

    def __init__(self, r: random.Random, kind: str = "int") -> None:
        self.r = r
        self.kind = kind
        self.loop_depth = 0
        self.loop_vars: list[str] = []

    # -- expressions ---------------------------------------------------------------------

    def atom(self, kind: str) -> str:
        r = self.r
        if kind == "int":
            pool = ["a", "b", "c", *self.loop_vars] + (["x"] if self.kind == "int" else [])
            return r.choice(pool) if r.random() < 0.6 else str(r.choice(INTS[:9]))
        pool = ["(a + 0.5)", "(b * 1.0)"] + (["x"] * 3 if self.kind == "float" else [])
        return r.choice(pool) if r.random() < 0.6 else r.choice(FLOATS[:6])

    def num(self, depth: int, kind: str | None = None) -> str:
        """A numeric expression of one kind (overflow possible for ints)."""
        r = self.r
        kind = kind or self.kind
        k = r.randrange(6) if depth > 0 else 0
        sub = lambda: self.num(depth - 1, kind)  # noqa: E731
        if k == 0:
            return self.atom(kind)
        if k == 1:
            return f"({sub()} {r.choice(['+', '-', '*'])} {sub()})"
        if k == 2:
            # a chain of one precedence level or mixed levels, read by the front end
            ops = [r.choice(["+", "-", "*"]) for _ in range(r.randint(2, 3))]
            terms = [sub() for _ in range(len(ops) + 1)]
            return "(" + " ".join(t for pair in zip(terms, [*ops, ""], strict=True) for t in pair).strip() + ")"
        if k == 3:
            return f"(if {self.cond(depth - 1)} {sub()} else {sub()})"
        if k == 4:
            return f"({r.choice(['min', 'max'])} {sub()} {sub()})"
        return f"(- {sub()})"

    def operand(self) -> str:
        return self.num(0, self.r.choice(["int", "int", "float"]))

    def cond(self, depth: int) -> str:
        """A boolean expression: chains, logic with side effects, int/float mixing."""
        r = self.r
        k = r.randrange(6) if depth > 0 else r.randrange(2)
        if k == 0:
            return f"({self.operand()} {r.choice(CMP)} {self.operand()})"
        if k == 1:
            parts = [self.operand()]
            for _ in range(r.randint(2, 3)):
                parts += [r.choice(CMP), self.operand()]
            return "(" + " ".join(parts) + ")"
        if k == 2:
            return f"({self.cond(depth - 1)} {r.choice(['&&', '||'])} {self.cond(depth - 1)})"
        if k == 3:
            # an operand with a side effect: counts how often it was evaluated
            return f"(do (c += 1) {self.cond(depth - 1)})"
        if k == 4:
            return f"(not {self.cond(depth - 1)})"
        return f"({self.num(1, 'int')} {r.choice(CMP)} {r.choice(FLOATS)})"

    # -- statements ----------------------------------------------------------------------

    def stmt(self, depth: int) -> str:
        r = self.r
        k = r.randrange(8) if depth > 0 else r.randrange(2)
        if k == 0:
            return f"(x = {self.num(2)})"
        if k == 1:
            return f"(c += {r.choice(['1', '2', '(c * 2)', self.num(1, 'int')])})"
        if k == 2:
            return f"(if {self.cond(2)} {self.block(depth - 1)} else {self.block(depth - 1)})"
        if k == 3:
            return self.for_loop(depth)
        if k == 4:
            return self.while_loop(depth)
        if k == 5 and self.loop_depth:
            return f"(if {self.cond(1)} ({r.choice(['break', 'continue'])}))"
        if k == 6:
            return f"(if {self.cond(1)} (return {self.num(1)}))"
        return f"(x += {self.num(1)})"

    def block(self, depth: int) -> str:
        return "(do " + " ".join(self.stmt(depth) for _ in range(self.r.randint(1, 2))) + ")"

    def _body(self, depth: int, var: str | None) -> str:
        self.loop_depth += 1
        if var:
            self.loop_vars.append(var)
        try:
            return " ".join(self.stmt(depth - 1) for _ in range(self.r.randint(1, 3)))
        finally:
            self.loop_depth -= 1
            if var:
                self.loop_vars.pop()

    def for_loop(self, depth: int) -> str:
        r = self.r
        var = f"i{self.loop_depth}"
        k = r.randrange(4)
        if k == 0:
            span = f"({r.randint(-3, 2)} .. {r.randint(-1, 5)})"
        elif k == 1:
            span = f"(({INT_MAX} - {r.randint(0, 4)}) .. {INT_MAX})"
        elif k == 2:
            span = f"({INT_MIN} .. ({INT_MIN} + {r.randint(0, 4)}))"
        else:
            lo, hi = r.choice(
                [("0", "7"), ("7", "0"), (str(INT_MAX - 5), str(INT_MAX)),
                 (str(INT_MIN + 5), str(INT_MIN))]
            )
            step = r.choice(["1", "2", "-1", "-3", str(2**62), str(-(2**62))])
            if r.random() < 0.2:
                # few elements however far apart the ends are
                lo, hi, step = r.choice([("0", str(INT_MAX), str(2**62)),
                                         (str(INT_MAX), str(INT_MIN), str(-(2**62)))])
            span = f"(range {lo} {hi} {step})"
        return f"(for {var} in {span} (c += 1) {self._body(depth, var)})"

    def while_loop(self, depth: int) -> str:
        var = f"w{self.loop_depth}"
        bound = self.r.randint(0, 5)
        body = self._body(depth, None)
        return f"(var {var} 0) (while ({var} < {bound}) ({var} += 1) {body})"

    # -- functions -----------------------------------------------------------------------

    def function(self, name: str) -> str:
        r = self.r
        init = r.choice(["0", "a", "b"] if self.kind == "int" else ["0.5", "(a + 0.5)"])
        stmts = " ".join(self.stmt(2) for _ in range(r.randint(1, 3)))
        result = r.choice(["x", "c", "x", self.cond(1)])
        if r.random() < 0.1:
            # a closure over the arguments: stays in tier 0, must agree all the same
            stmts += f" (var g (fnx [y] (y + {r.choice(['a', 'b', 'c'])}))) (c = (g c))"
        return f"(fn {name} [a b] (var x {init}) (var c 0) {stmts} {result})"


def call_line(name: str, a: str, b: str) -> str:
    """Print the call's value, or the error it raised (kind and message)."""
    return f"(try (println ({name} {a} {b})) catch * (println \"!\" $ex))"


def program(r: random.Random, n_functions: int = 4, calls: int = 4) -> str:
    """A whole program: functions, then calls (enough for lazy mode to compile them).
    Arguments are ints mostly (boundary values included), floats sometimes, so that
    compiled code also meets guard misses."""
    lines: list[str] = []
    ints = [str(v) for v in INTS]
    for i in range(n_functions):
        name = f"f{i}"
        lines.append(Gen(r, r.choice(["int", "int", "float"])).function(name))
        for _ in range(calls):
            pool = ints if r.random() < 0.85 else ints + FLOATS
            lines.append(call_line(name, r.choice(pool), r.choice(pool)))
    if r.random() < 0.5:
        lines += redefinition(r)
    if r.random() < 0.5:
        lines += shadowing(r)
    return "\n".join(lines) + "\n"


def redefinition(r: random.Random) -> list[str]:
    """A global helper redefined (or reassigned) after its caller was compiled."""
    new = r.choice(
        ["(fn h [v] (v + 100))", "(h = (fnx [v] (v * 100)))", "(fn h [v] (- v))"]
    )
    return [
        "(fn h [v] (v * 2))",
        "(fn caller [a b] ((h a) + b))",
        *[call_line("caller", str(r.randint(-5, 5)), str(r.randint(-5, 5))) for _ in range(3)],
        "(var old caller)",
        new,
        *[call_line("caller", str(r.randint(-5, 5)), "1") for _ in range(2)],
        call_line("old", "3", "4"),
    ]


# Names that the shadowing cases bind both globally and lexically: Gene functions of the
# program, builtins tier 1 compiles, an operator and `range`, which `for` reads.
SHADOWED = ["sq", "dbl", "f", "abs", "max", "min", "len", "not", "range"]


def shadowing(r: random.Random) -> list[str]:
    """Global functions, then functions whose bodies use the same names bound lexically:
    a lexical binding shadows every global and builtin of its name, in every tier. The
    values stay ints, so that the functions compile where tier 1 can reach the names."""
    cases = [_captured, _parameter, _local, _loop_var, _redeclared, _namespace, _deep_closure]
    lines: list[str] = []
    for i, case in enumerate(r.sample(cases, r.randint(2, 4))):
        name = r.choice(SHADOWED)
        if name not in ("abs", "max", "min", "len", "not", "range"):
            lines.append(f"(fn {name} [v] (v * v))")
        lines += case(r, name, f"s{i}")
    return lines


def _calls(r: random.Random, fn: str, n: int = 4, extra: str = "") -> list[str]:
    """Enough calls for lazy mode to compile `fn` part way through."""
    return [f"(try (println ({fn} {extra}{r.randint(-4, 9)})) catch * (println \"!\" $ex))"
            for _ in range(n)]


def _captured(r: random.Random, name: str, tag: str) -> list[str]:
    k = r.randint(2, 9)
    value = r.choice(["(v * n)", "(v + n)", "(n - v)"])
    use = r.choice([f"({name} v)", f"(({name} v) + ({name} 1))", f"(do (var t 0) (for j in (range 0 3) (t += ({name} j))) (t + v))"])
    return [f"(fn mk{tag} [n] (var {name} (fn [v] {value})) (fn [v] {use}))",
            f"(var {tag} (mk{tag} {k}))", *_calls(r, tag)]


def _parameter(r: random.Random, name: str, tag: str) -> list[str]:
    if name in ("not", "range"):  # an int parameter read as a value: `(not + v)` is no sum
        name = "p" + tag
    return [f"(fn {tag} [v] (var {tag}a 0) ({tag}a = ({tag}b v {r.randint(1, 5)})) {tag}a)",
            f"(fn {tag}b [{name} w] (({name} * 2) + w))", *_calls(r, tag)]


def _local(r: random.Random, name: str, tag: str) -> list[str]:
    if name in ("not", "range"):
        return [f"(fn {tag} [v] (var {name} (fnx [p] (p + 3))) ({name} v))", *_calls(r, tag)]
    body = r.choice([f"(var {name} (v + 1)) ({name} * 3)",
                     f"(var {name} (fnx [p] (p + 3))) ({name} v)",
                     f"(if (v > 2) (do (var {name} (v - 1)) ({name} + 1)) else v)"])
    return [f"(fn {tag} [v] {body})", *_calls(r, tag)]


def _loop_var(r: random.Random, name: str, tag: str) -> list[str]:
    if name in ("not", "range"):
        name = "i" + tag
    loop = r.choice([f"(for {name} in (range 0 v) (s += {name}))",
                     f"(for {name} in (0 .. v) (s += ({name} * {name})))",
                     f"(loop [{name} 0] (if ({name} >= v) (break)) (s += 1) (break))"])
    return [f"(fn {tag} [v] (var s 0) {loop} s)", *_calls(r, tag)]


def _redeclared(r: random.Random, name: str, tag: str) -> list[str]:
    """A top-level `var` that redeclares a global function's name: functions defined
    before it keep the function, those defined after read the variable."""
    g = f"g{tag}"
    return [f"(fn {g} [v] (v * 2))", f"(fn {tag}old [v] ({g} v))", *_calls(r, f"{tag}old", 2),
            f"(var {g} (fn [v] (v + {r.randint(10, 99)})))", f"(fn {tag}new [v] ({g} v))",
            *_calls(r, f"{tag}old", 2), *_calls(r, f"{tag}new", 3)]


def _namespace(r: random.Random, name: str, tag: str) -> list[str]:
    if name in ("not", "range"):
        name = "m" + tag
    return [f"(fn {name} [v] (v * 1000))",
            f"(ns n{tag} (fn {name} [v] (v + {r.randint(1, 9)})) (fn go [v] ({name} v)))",
            *_calls(r, f"n{tag}/go")]


def _deep_closure(r: random.Random, name: str, tag: str) -> list[str]:
    """A closure chain whose captured variable has a global namesake that holds the
    chain itself: calling the global instead of the captured one never ends."""
    if name in ("not", "range", "abs", "max", "min", "len"):
        name = "c" + tag
    n = r.choice([3, 40, 300])
    return [f"(fn {tag} [n] (if (n == 0) (fn [] 0) else (do (var {name} ({tag} (n - 1))) (fn [] (1 + ({name}))))))",
            f"(var {name} ({tag} {n}))", f"(println ({name}))", f"(println (({tag} 2)))"]
