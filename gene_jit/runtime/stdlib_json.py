"""JSON builtins: `gene/json/parse`, `gene/json/stringify` and their `json/` aliases.

Maps are JSON objects (keys in order), arrays are JSON arrays, nil is null. On the way
out, symbols become strings, sets and ranges become arrays, and a gene becomes
`{"type": ..., "props": {...}, "children": [...]}`; functions and other native values
cannot be written and raise a Gene type error.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gene_jit.runtime.builtins import check_int, expect, gene_builtin, type_name
from gene_jit.runtime.errors import GeneError, GeneTypeError
from gene_jit.runtime.values import Gene, GeneSet, Instance, Range, Symbol


class GeneJSONError(GeneError):
    """Text that is not valid JSON."""

    kind = "json error"


@gene_builtin("parse", ns="gene/json")
@gene_builtin("parse", ns="json")
def json_parse(text: Any) -> Any:
    """`(json/parse text)`: the Gene value of a JSON text."""
    expect("json/parse", text, str, "a JSON string")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise GeneJSONError(
            f"json/parse: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return _check_ints(value)


def _reject_constant(name: str) -> Any:
    raise GeneJSONError(f"json/parse: {name} is not valid JSON")


def _check_ints(v: Any) -> Any:
    # JSON numbers may exceed int64; Gene ints may not.
    if type(v) is int:
        return check_int("json/parse", v)
    if isinstance(v, list):
        for x in v:
            _check_ints(x)
    elif isinstance(v, dict):
        for x in v.values():
            _check_ints(x)
    return v


@gene_builtin("stringify", ns="gene/json")
@gene_builtin("stringify", ns="json")
def json_stringify(value: Any, indent: Any = None) -> str:
    """`(json/stringify v [indent])`: the JSON text of `v` (compact unless `indent`)."""
    if indent is not None:
        expect("json/stringify", indent, int, "an int indent")
    return json.dumps(to_json_data(value, set()), indent=indent, ensure_ascii=False)


def to_json_data(v: Any, active: set[int]) -> Any:
    """`v` as plain JSON-ready Python data."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise GeneTypeError(f"json/stringify: {v} has no JSON form")
        return v
    if isinstance(v, Symbol):
        return v.name
    if id(v) in active:
        raise GeneTypeError("json/stringify: the value contains itself")
    active.add(id(v))
    try:
        return _container_json(v, active)
    finally:
        active.discard(id(v))


def _container_json(v: Any, active: set[int]) -> Any:
    if isinstance(v, (list, tuple, Range)):
        return [to_json_data(x, active) for x in v]
    if isinstance(v, GeneSet):
        return [to_json_data(x, active) for x in v.items]
    if isinstance(v, dict):
        return {str(k): to_json_data(x, active) for k, x in v.items()}
    if isinstance(v, Instance):
        return {k: to_json_data(x, active) for k, x in v.props.items()}
    if isinstance(v, Gene):
        return {
            "type": to_json_data(v.type, active),
            "props": {k: to_json_data(x, active) for k, x in v.props.items()},
            "children": [to_json_data(x, active) for x in v.children],
        }
    if hasattr(v, "tolist"):  # numpy arrays and tensors that expose it
        return to_json_data(v.tolist(), active)
    raise GeneTypeError(f"json/stringify: cannot write a {type_name(v)} as JSON")
