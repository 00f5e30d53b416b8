"""Math builtins: abs min max sqrt exp log sin cos tan pow floor ceil round, and the
constants `gene/math/pi` and `gene/math/e`.

Results follow IEEE doubles rather than Python's exceptions, so that tier 0 agrees with
native code: `(sqrt -1.0)` is nan, `(log 0)` is -inf, `(exp 1000)` is inf. Int results
stay within 64 bits (overflow is a Gene error). `floor`, `ceil` and `round` return ints;
`round` rounds halves away from zero.
"""

from __future__ import annotations

import math
from typing import Any

from gene_jit.runtime.builtins import check_int, expect, gene_builtin
from gene_jit.runtime.errors import GeneArityError, GeneOverflowError, GeneTypeError
from gene_jit.runtime.ops import ieee_pow
from gene_jit.runtime.registry import namespace

_NUM = (int, float)


def _num(name: str, v: Any) -> int | float:
    return expect(name, v, _NUM, "a number")


@gene_builtin("abs")
def gene_abs(x: Any) -> int | float:
    """`(abs x)`."""
    r = abs(_num("abs", x))
    return check_int("abs", r) if isinstance(r, int) else r


def _extreme(name: str, args: tuple[Any, ...], pick: Any) -> Any:
    items = list(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
    if not items:
        raise GeneArityError(f"{name}: expected at least 1 number, got none")
    for v in items:
        _num(name, v)
    return pick(items)


@gene_builtin("min")
def gene_min(*args: Any) -> Any:
    """`(min a b ...)` or `(min [a b ...])`."""
    return _extreme("min", args, min)


@gene_builtin("max")
def gene_max(*args: Any) -> Any:
    """`(max a b ...)` or `(max [a b ...])`."""
    return _extreme("max", args, max)


@gene_builtin("sqrt")
def gene_sqrt(x: Any) -> float:
    """`(sqrt x)`: nan for negative x."""
    v = float(_num("sqrt", x))
    return math.sqrt(v) if v >= 0 or math.isnan(v) else math.nan


@gene_builtin("exp")
def gene_exp(x: Any) -> float:
    """`(exp x)`: inf on overflow."""
    try:
        return math.exp(_num("exp", x))
    except OverflowError:
        return math.inf


@gene_builtin("log")
def gene_log(x: Any, base: Any = None) -> float:
    """`(log x [base])`: natural log by default; -inf at 0, nan below."""
    v = float(_num("log", x))
    if v == 0:
        r = -math.inf
    elif v < 0:
        r = math.nan
    else:
        r = math.log(v)
    if base is None:
        return r
    b = float(_num("log", base))
    return r / math.log(b) if b > 0 and b != 1 else math.nan


@gene_builtin("sin")
def gene_sin(x: Any) -> float:
    """`(sin x)`."""
    v = float(_num("sin", x))
    return math.sin(v) if math.isfinite(v) else math.nan


@gene_builtin("cos")
def gene_cos(x: Any) -> float:
    """`(cos x)`."""
    v = float(_num("cos", x))
    return math.cos(v) if math.isfinite(v) else math.nan


@gene_builtin("tan")
def gene_tan(x: Any) -> float:
    """`(tan x)`."""
    v = float(_num("tan", x))
    return math.tan(v) if math.isfinite(v) else math.nan


@gene_builtin("pow")
def gene_pow(x: Any, y: Any) -> int | float:
    """`(pow x y)`: an int for int x and non-negative int y, else a float computed as
    C's pow does (native code calls it): `(pow 0.0 -1.0)` is inf, nan for a domain error."""
    a, b = _num("pow", x), _num("pow", y)
    if isinstance(a, int) and isinstance(b, int) and b >= 0:
        if abs(a) > 1 and b > 64:  # certain overflow; don't build a huge int first
            raise GeneOverflowError(f"pow: integer overflow ({a} to the power {b})")
        return check_int("pow", a**b)
    return ieee_pow(float(a), float(b))


def _to_int(name: str, v: float) -> int:
    if math.isnan(v) or math.isinf(v):
        raise GeneTypeError(f"{name}: cannot convert {v} to an int")
    return check_int(name, int(v))


@gene_builtin("floor")
def gene_floor(x: Any) -> int:
    """`(floor x)`: the largest int <= x."""
    v = _num("floor", x)
    return v if isinstance(v, int) else _to_int("floor", math.floor(v) if math.isfinite(v) else v)


@gene_builtin("ceil")
def gene_ceil(x: Any) -> int:
    """`(ceil x)`: the smallest int >= x."""
    v = _num("ceil", x)
    return v if isinstance(v, int) else _to_int("ceil", math.ceil(v) if math.isfinite(v) else v)


@gene_builtin("round")
def gene_round(x: Any, digits: Any = None) -> int | float:
    """`(round x)`: the nearest int, halves away from zero; `(round x n)`: a float with
    n decimals."""
    v = _num("round", x)
    if digits is not None:
        n = expect("round", digits, int, "an int number of digits")
        scale = 10.0**n
        return math.copysign(math.floor(abs(v) * scale + 0.5) / scale, v)
    if isinstance(v, int):
        return v
    if not math.isfinite(v):
        return _to_int("round", v)
    return _to_int("round", math.copysign(math.floor(abs(v) + 0.5), v))


_math_ns = namespace("gene/math")
_math_ns.members["pi"] = math.pi
_math_ns.members["e"] = math.e
