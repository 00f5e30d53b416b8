"""The Python side of a `gene_jit.jit` call: checking the arguments against the Gene
signature before they reach compiled code or tier 0.

Python callers get what a Numba user expects and Gene errors name the signature: the
argument count must fit the parameters (Gene's own calls fill missing arguments with
nil; a Python caller that forgets one has made a mistake), NumPy scalars become Gene ints
and floats (so `range`, `/` and compiled code take them), ints must fit in 64 bits, and
an array whose elements compiled code cannot read runs in tier 0 (with fallback=False it
is refused by name and dtype). Errors raised by tier 0 leave as Gene errors with the span of the failing form, never as raw
Python exceptions, and Python warnings stay inside.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gene_jit.frontend.forms import GeneF
from gene_jit.ir import types as T
from gene_jit.runtime.errors import (
    GeneArityError,
    GeneOverflowError,
    GeneTypeError,
    debug_enabled,
)

INT_MIN, INT_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class EntrySpec:
    """What a Python caller may pass to one Gene function."""

    name: str
    params: tuple[str, ...]  # positional parameters as written
    required: int  # positional arguments a call must give
    rest: bool  # `xs...`: any number more
    named: frozenset[str]  # `^opt` parameters, as Python keyword names
    text: str  # the signature as Gene writes it: `(fn fib [n])`

    @classmethod
    def of(cls, form: GeneF) -> EntrySpec:
        """The spec of `(fn name ARGS body...)`."""
        from gene_jit.frontend.convert import form_to_value
        from gene_jit.frontend.special_fn import parse_params
        from gene_jit.runtime.printer import repr_
        from gene_jit.runtime.registry import py_name

        name_form, args_form = form.children[0], form.children[1]
        p = parse_params(args_form, form)
        params = tuple(
            "[pattern]" if n.startswith(" ") else n for n, _ in p.positional
        )
        without_default = [i for i, (_, d) in enumerate(p.positional) if d is None]
        required = without_default[-1] + 1 if without_default else 0
        name = str(getattr(name_form, "name", "fn"))
        text = f"(fn {name} {repr_(form_to_value(args_form))})"
        named = frozenset(py_name(k) for k, _ in p.kwonly)
        return cls(name, params, required, p.rest is not None, named, text)

    # -- checks

    def check(self, args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, ...]:
        """`args` as Gene values, or a Gene error naming the signature."""
        for key in kw:
            if key not in self.named:
                raise GeneArityError(f"{self.name} has no parameter ^{key}: {self.text}")
        n = len(args)
        if n < self.required or (not self.rest and n > len(self.params)):
            raise GeneArityError(f"{self.name} expects {self._count()}, got {n}: {self.text}")
        return tuple(self._convert(i, a) for i, a in enumerate(args))

    def _count(self) -> str:
        most = len(self.params)
        if self.rest:
            few = f"at least {self.required}"
        elif self.required == most:
            few = str(most)
        else:
            few = f"{self.required} to {most}"
        return few + (" argument" if few == "1" else " arguments")

    def _param(self, i: int) -> str:
        return self.params[i] if i < len(self.params) else f"#{i + 1} (rest)"

    def _convert(self, i: int, a: Any) -> Any:
        cls = type(a)
        if cls is float or cls is bool or a is None or cls is str:
            return a
        if cls is int or (isinstance(a, numbers.Integral) and cls.__module__ == "numpy"):
            v = int(a)
            if not INT_MIN <= v <= INT_MAX:
                raise GeneOverflowError(
                    f"{self.name}: argument {self._param(i)} = {v} does not fit in a 64-bit "
                    f"Gene int: {self.text}"
                )
            return v
        if cls.__module__ == "numpy":
            if isinstance(a, numbers.Real):  # NumPy float scalars, float32 included
                return float(a)
            if cls.__name__ in ("bool_", "bool"):
                return bool(a)
        if cls is tuple:
            return list(a)
        return a

    def check_arrays(self, args: tuple[Any, ...], reason: str) -> None:
        """Refuse an array that makes the call leave compiled code: one of a dtype or
        rank tier 1 does not take, or a kernel-only one (float32, uint8, uint16) whose
        elements the function reads or writes (`reason`, tier 1's, says so)."""
        for i, a in enumerate(args):
            if type(a).__name__ != "ndarray" or type(a).__module__ != "numpy":
                continue
            t = T.type_of_value(a)
            if t is not None and f"element of a {t}" not in reason:
                continue
            what, fix = f"a {a.ndim}-D {a.dtype.name} array", "a.astype(numpy.float64)"
            if not a.flags.writeable:
                what, fix = f"a read-only {a.ndim}-D {a.dtype.name} array", "a.copy()"
                does = "may store into the arrays it takes, so it takes writable ones"
            elif t is not None:
                does = (f"passes {a.dtype.name} arrays to kernels but does not read or write "
                        f"their elements ({reason})")
            else:
                does = ("takes 1-D and 2-D float64 and int64 arrays (and float32, uint8 and "
                        "uint16 ones to pass to kernels)")
            raise GeneTypeError(
                f"{self.name}: argument {self._param(i)} is {what}; compiled Gene code "
                f"{does}. Convert it ({fix}), or leave out "
                f"gene_jit.jit(..., fallback=False) to run such calls in tier 0: {self.text}"
            )

    # -- running

    def run_tier0(
        self, pyfunc: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]
    ) -> Any:
        """Call the tier-0 function; what it raises leaves as a Gene error with the span
        of the failing form (or as an InternalError, for a fault of gene-jit)."""
        from gene_jit.frontend.compiler_errors import translate

        try:
            with warnings.catch_warnings():
                if not debug_enabled():
                    warnings.simplefilter("ignore")
                return pyfunc(*args, **kw)
        except Exception as exc:
            err = translate(exc)  # raises for a fault of gene-jit or a broken pipe
            raise err from (exc if debug_enabled() and err is not exc else None)
