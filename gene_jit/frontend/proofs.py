"""Proofs that a global function never returns a boolean, so that the operators over
its results need no boolean guard (GENE.md: booleans are not numbers; tier 0 guards an
operand of unknown kind, see compiler_ops).

fib's `((fib (n - 1)) + (fib (n - 2)))` adds the results of calls by name, and a name is
late-bound: whatever `fib` holds when the call runs is called. The results are known
no booleans only while `fib` still holds the function that was proven, so the proof is a
flag, a global of the module (` proven N`), that the operator checks once after its
operands are computed (then the calls by name that computed them went to that
function: the flag only ever goes from true to false):

- The flag starts false, and the definition sets it true after binding the name when
  the body's value is proven never a boolean, given its calls by name of itself.
- Every other store to the name clears it: stores compiled after the definition clear
  it right after storing (`Compiler.store_ref`), a name with a store compiled before
  the definition is not proven, and the stores that are not compiled Gene code
  (`$ns/f = v` through a namespace, `ffi/defun`) call `unprove`.

A definition is proven only at the top level of a module, outside loops and
namespaces (each such definition runs once, so a flag belongs to one function object),
and only when its body has no `return` (its value is the last form's). In tier 0 a
proven function that calls itself also gets a second entry (`Inner`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from gene_jit.frontend.compiler_core import Compiler, assign, const
from gene_jit.frontend.forms import Form, GeneF, Sym

STORED = " stored"  # env key: Python names that compiled code stores to
FLAGS = " proven flags"  # env key: Python name -> the flags its stores clear
TRUSTED = " proven"  # env key: Python name -> the flag its calls' results may rely on
INNER = " inner"  # env key: Python name -> Inner, the function's unchecked entry
# Functions (their FnScope ids) whose bodies compiled a `return`.
_RETURNS: set[int] = set()


def note_store(c: Compiler, py: str) -> list[ast.stmt]:
    """Record a compiled store to global `py`; the statements clearing its proofs."""
    c.env.setdefault(STORED, set()).add(py)
    c.env.get(TRUSTED, {}).pop(py, None)
    flags = c.env.get(FLAGS, {}).get(py, ())
    for flag in flags:
        c.fn.globals.add(flag)
    return [assign(flag, const(False)) for flag in flags]


def start(c: Compiler, name: Form | None, head: str, form: GeneF) -> str | None:
    """The flag of a definition that may be proven (registered, false), else None."""
    from gene_jit.frontend.compiler_core import pyid

    if not (
        head == "fn"
        and isinstance(name, Sym)
        and not name.is_complex
        and c.fn.is_module
        and not c.ns_stack
        and not c.fn.loops
        and not form.props
    ):
        return None
    py = c.fn.find(name.name) or pyid(name.name)
    if py in c.env.get(STORED, ()):
        return None
    flag = f" proven {len(c.env.setdefault(FLAGS, {}))}"
    while flag in c.env:
        flag += "'"
    c.env[flag] = False
    c.env[FLAGS].setdefault(py, []).append(flag)
    c.env.setdefault(TRUSTED, {})[py] = flag
    return flag


@dataclass(frozen=True)
class Inner:
    """A proven function's second entry, compiled in tier 0 only (where no tier-1
    prologue counts calls): the same body with its parameters taken as proven no
    booleans (`params`, their indices), no `*extra` (CPython's fast call path). Its calls
    of itself by name call it directly while the flag holds, with arguments proven no
    booleans: `(fi(n - 1) if flag else fib(n - 1))`. fib's `(n < 2)` then checks `n` once
    per call from outside, not once per call."""

    py: str  # the Python name of its def (a local of the module's code)
    flag: str
    arity: int
    params: frozenset[int]


# Forms whose compiling has effects beyond the function (compiling a body twice would
# repeat them): no second entry for a body with one.
_ONCE = frozenset({"macro", "ns", "class", "import", "eval", "$caller_eval", "enum", "$set"})


def inner_entry(c: Compiler, flag: str, name: str, py: str, params: list[str],
                stable: set[str], body: list[Form]) -> Inner | None:
    """Register a second entry for a proven function that calls itself (see Inner),
    where allowed."""
    from gene_jit.runtime import tiering

    if tiering.active() is not None or any(_mentions(f, _ONCE) for f in body):
        return None
    if not any(_mentions(f, frozenset({name})) for f in body):
        return None
    proven = frozenset(i for i, p in enumerate(params) if p in stable)
    if not proven:
        return None
    inner = Inner(c.temp("fi"), flag, len(params), proven)
    c.fn.globals.add(inner.py)  # a global of the module: later forms' code calls it too
    c.env.setdefault(INNER, {})[py] = inner
    return inner


# The Python names of the functions whose bodies are compiling with a second entry: only
# their calls of themselves go through it (a call from elsewhere runs once, and would
# only make its code bigger).
_BUILDING: list[str] = []


def inner_of(c: Compiler, py: str) -> Inner | None:
    inner: Inner | None = c.env.get(INNER, {}).get(py)
    if inner is None or py not in _BUILDING or trusted(c, py) != inner.flag:
        return None
    return inner


class building:
    """`with building(py):` while the bodies of function `py` compile."""

    def __init__(self, py: str | None) -> None:
        self.py = py

    def __enter__(self) -> None:
        if self.py is not None:
            _BUILDING.append(self.py)

    def __exit__(self, *exc: object) -> None:
        if self.py is not None:
            _BUILDING.pop()


def _mentions(form: Form, names: frozenset[str]) -> bool:
    if isinstance(form, Sym):
        return form.name in names
    if isinstance(form, GeneF):
        parts = [form.head, *form.children, *(v for _, v in form.props)]
        return any(p is not None and _mentions(p, names) for p in parts)
    items = getattr(form, "items", None) or getattr(form, "parts", None) or ()
    entries = [v for _, v in getattr(form, "entries", ())]
    return any(_mentions(f, names) for f in (*items, *entries))


def note_return(c: Compiler) -> None:
    _RETURNS.add(id(c.fn))


def body_done(c: Compiler, value: bool | str) -> bool | str:
    """What the body of the function being compiled (`c.fn`) proves of the function's
    results, given `value`, what it proves of its last form's value."""
    returned = id(c.fn) in _RETURNS
    _RETURNS.discard(id(c.fn))
    return False if returned else value


def finish(c: Compiler, flag: str, py: str, value: bool | str) -> list[ast.stmt]:
    """After the definition bound its name `py`: set the flag if the function's results
    are never booleans (`value`: true, or true under this very flag)."""
    if value is True or value == flag:
        c.env.setdefault(TRUSTED, {})[py] = flag
        c.fn.globals.add(flag)
        return [assign(flag, const(True))]
    c.env.get(TRUSTED, {}).pop(py, None)
    return []


def trusted(c: Compiler, py: str) -> str | None:
    """The flag under which a call of global `py` returns no boolean, if any."""
    flag: str | None = c.env.get(TRUSTED, {}).get(py)
    return flag


def unprove(members: dict[str, Any], key: str) -> None:
    """A store to a module's global `key` that is not compiled Gene code."""
    flags = members.get(FLAGS)
    if flags:
        for flag in flags.get(key, ()):
            members[flag] = False
