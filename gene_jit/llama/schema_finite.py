"""Grammar rules for schemas whose values can be listed: keywords a grammar cannot state
in general (`multipleOf`, `uniqueItems`) are kept by listing every value they allow,
when there are few (a number in [0, 2] by steps of 0.5; three words in any order).

Where the values are too many, the schema is left to the converter and the keyword to
the check after generation (schema_check.py), as before.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from gene_jit.llama.errors import GrammarError

MAX_VALUES = 256  # the most alternatives a listed rule holds



def finite_values(schema: Mapping[str, Any], path: str = "$") -> list[str] | None:
    """The JSON texts of every value `schema` allows, when they are few and the schema
    is one this module lists; None otherwise."""
    from gene_jit.llama.schema import NOTES  # (schema.py imports this module)

    keys = set(schema) - NOTES
    kind = schema.get("type")
    if "multipleOf" in schema and kind in ("integer", "number"):
        return _multiples(schema, keys, kind, path)
    if kind == "array" and schema.get("uniqueItems") is True:
        return _unique_arrays(schema, keys, NOTES)
    return None


def _dec(x: Any) -> Decimal | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    try:
        return Decimal(str(x))
    except InvalidOperation:
        return None


def _multiples(schema: Mapping[str, Any], keys: set[str], kind: str, path: str) -> list[str] | None:
    step = _dec(schema["multipleOf"])
    lo, lo_open = _bound(schema, "minimum", "exclusiveMinimum", max)
    hi, hi_open = _bound(schema, "maximum", "exclusiveMaximum", min)
    if step is None or step <= 0 or lo is None or hi is None or keys - _MULTIPLE_KEYS:
        return None
    first = (lo / step).to_integral_value(rounding="ROUND_CEILING")
    last = (hi / step).to_integral_value(rounding="ROUND_FLOOR")
    if first * step == lo and lo_open:
        first += 1
    if last * step == hi and hi_open:
        last -= 1
    if last - first + 1 > MAX_VALUES * 64:  # too many to look at
        return None
    values = [k * step for k in range(int(first), int(last) + 1)]
    if kind == "integer":
        values = [v for v in values if v == v.to_integral_value()]
    if not values:
        raise GrammarError(f"JSON schema keyword 'multipleOf' at {path}: no {kind} between the bounds "
                           f"is a multiple of {schema['multipleOf']}")
    if len(values) > MAX_VALUES:
        return None
    return [_number_text(v) for v in values]


_MULTIPLE_KEYS = frozenset({"type", "multipleOf", "minimum", "maximum", "exclusiveMinimum",
                            "exclusiveMaximum"})


def _bound(schema: Mapping[str, Any], plain: str, exclusive: str, pick: Any) -> tuple[Decimal | None, bool]:
    """The tighter of a plain and an exclusive bound, and whether it is exclusive."""
    found = [(d, key == exclusive) for key in (plain, exclusive) if (d := _dec(schema.get(key))) is not None]
    if not found:
        return None, False
    best = pick(d for d, _ in found)
    return best, any(d == best and open_ for d, open_ in found)


def _number_text(v: Decimal) -> str:
    return str(int(v)) if v == v.to_integral_value() else format(v.normalize(), "f")


def _unique_arrays(schema: Mapping[str, Any], keys: set[str], notes: frozenset[str]) -> list[str] | None:
    """Arrays of distinct items, each one of a few listed values (`enum` or `const`)."""
    items = schema.get("items")
    if not isinstance(items, Mapping) or keys - _ARRAY_KEYS or set(items) - notes - {"enum", "const", "type"}:
        return None
    choices = items.get("enum", [items["const"]] if "const" in items else None)
    if not isinstance(choices, list) or not choices:
        return None
    texts = list(dict.fromkeys(json.dumps(c, ensure_ascii=False) for c in choices))  # distinct, in order
    low = schema.get("minItems", 0)
    high = min(schema.get("maxItems", len(texts)), len(texts))
    if not isinstance(low, int) or not isinstance(high, int) or low > high:
        return None
    out: list[str] = []
    for n in range(low, high + 1):
        for combo in itertools.permutations(texts, n):
            out.append("[" + ", ".join(combo) + "]")
            if len(out) > MAX_VALUES:
                return None
    return out


_ARRAY_KEYS = frozenset({"type", "items", "uniqueItems", "minItems", "maxItems"})
