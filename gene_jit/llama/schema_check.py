"""The check after generation: a generated JSON value against its schema, for every
keyword that `gene_jit.llama.schema.KEYWORDS` accepts. The grammar already enforces most
of them; this catches what a grammar cannot (uniqueItems, multipleOf, fractions at
non-integer bounds, calendar dates, oneOf) and raises a Gene error that names the
keyword, the value and where it is in the output.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from gene_jit.llama.errors import GrammarError


class SchemaViolation(GrammarError):
    """Generated JSON that breaks its schema."""

    kind = "schema violation"


def validate(value: Any, schema: Any) -> None:
    """Raise SchemaViolation when `value` breaks `schema` (references resolved in it)."""
    _Checker(schema).check(value, schema, "$")


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, {"object": dict, "array": list, "string": str, "boolean": bool,
                              "null": type(None)}[kind])


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Checker:
    def __init__(self, root: Any) -> None:
        self.root = root

    def fail(self, path: str, keyword: str, expected: Any, value: Any) -> SchemaViolation:
        return SchemaViolation(
            f"the generated JSON breaks the schema at {path}: {keyword} {_shown(expected)} "
            f"does not hold for {_shown(value)}")

    def check(self, value: Any, schema: Any, path: str) -> None:
        if schema is True or schema is None:
            return
        if schema is False:
            raise self.fail(path, "false", "(no value allowed)", value)
        if "$ref" in schema:
            self.check(value, self.resolve(schema["$ref"]), path)
        self.check_common(value, schema, path)
        if isinstance(value, dict):
            self.check_object(value, schema, path)
        elif isinstance(value, list):
            self.check_array(value, schema, path)
        elif isinstance(value, str):
            self.check_string(value, schema, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self.check_number(value, schema, path)

    def resolve(self, ref: str) -> Any:
        target = self.root
        for part in ref.lstrip("#").split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target[int(part)] if isinstance(target, list) else target[part]
        return target

    def check_common(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        kind = schema.get("type")
        if kind is not None:
            kinds = kind if isinstance(kind, list) else [kind]
            if not any(_is_type(value, k) for k in kinds):
                raise self.fail(path, "type", kind, value)
        if "enum" in schema and not any(_equal(value, e) for e in schema["enum"]):
            raise self.fail(path, "enum", schema["enum"], value)
        if "const" in schema and not _equal(value, schema["const"]):
            raise self.fail(path, "const", schema["const"], value)
        if "anyOf" in schema and not any(self.passes(value, s, path) for s in schema["anyOf"]):
            raise self.fail(path, "anyOf", "(one of its schemas)", value)
        if "oneOf" in schema:
            n = sum(self.passes(value, s, path) for s in schema["oneOf"])
            if n != 1:
                raise self.fail(path, "oneOf", f"(exactly one of its schemas; {n} match)", value)
        for sub in schema.get("allOf", []):
            self.check(value, sub, path)

    def passes(self, value: Any, schema: Any, path: str) -> bool:
        try:
            self.check(value, schema, path)
        except SchemaViolation:
            return False
        return True

    def check_object(self, value: dict[str, Any], schema: Mapping[str, Any], path: str) -> None:
        for key in schema.get("required", []):
            if key not in value:
                raise self.fail(path, "required", key, value)
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in props:
                self.check(item, props[key], where)
            elif extra is False:
                raise self.fail(path, "additionalProperties", False, key)
            elif isinstance(extra, Mapping):
                self.check(item, extra, where)
            if "propertyNames" in schema:
                self.check(key, schema["propertyNames"], f"{path} (key {key!r})")
        n = len(value)
        if n < schema.get("minProperties", 0):
            raise self.fail(path, "minProperties", schema["minProperties"], value)
        if n > schema.get("maxProperties", math.inf):
            raise self.fail(path, "maxProperties", schema["maxProperties"], value)
        for key, needs in (schema.get("dependentRequired") or {}).items():
            if key in value and any(k not in value for k in needs):
                raise self.fail(path, "dependentRequired", {key: needs}, value)

    def check_array(self, value: list[Any], schema: Mapping[str, Any], path: str) -> None:
        prefix = schema.get("prefixItems") or (schema["items"] if isinstance(schema.get("items"), list) else [])
        for i, (item, sub) in enumerate(zip(value, prefix, strict=False)):
            self.check(item, sub, f"{path}[{i}]")
        rest = schema.get("items") if not isinstance(schema.get("items"), list) else None
        if rest is not None:
            for i in range(len(prefix), len(value)):
                if rest is False:
                    raise self.fail(path, "items", False, value)
                self.check(value[i], rest, f"{path}[{i}]")
        if len(value) < schema.get("minItems", 0):
            raise self.fail(path, "minItems", schema["minItems"], value)
        if len(value) > schema.get("maxItems", math.inf):
            raise self.fail(path, "maxItems", schema["maxItems"], value)
        if schema.get("uniqueItems"):
            for i, item in enumerate(value):
                if any(_equal(item, other) for other in value[:i]):
                    raise self.fail(path, "uniqueItems", True, value)
        if "contains" in schema:
            n = sum(self.passes(item, schema["contains"], path) for item in value)
            if n < schema.get("minContains", 1):
                raise self.fail(path, "contains", schema["contains"], value)
            if n > schema.get("maxContains", math.inf):
                raise self.fail(path, "maxContains", schema["maxContains"], value)

    def check_string(self, value: str, schema: Mapping[str, Any], path: str) -> None:
        n = len(value)
        if n < schema.get("minLength", 0):
            raise self.fail(path, "minLength", schema["minLength"], value)
        if n > schema.get("maxLength", math.inf):
            raise self.fail(path, "maxLength", schema["maxLength"], value)
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise self.fail(path, "pattern", schema["pattern"], value)
        fmt = schema.get("format")
        if fmt is not None and not FORMAT_CHECKS.get(fmt, lambda _: True)(value):
            raise self.fail(path, "format", fmt, value)

    def check_number(self, value: float, schema: Mapping[str, Any], path: str) -> None:
        if "minimum" in schema and value < schema["minimum"]:
            raise self.fail(path, "minimum", schema["minimum"], value)
        if "maximum" in schema and value > schema["maximum"]:
            raise self.fail(path, "maximum", schema["maximum"], value)
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise self.fail(path, "exclusiveMinimum", schema["exclusiveMinimum"], value)
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            raise self.fail(path, "exclusiveMaximum", schema["exclusiveMaximum"], value)
        step = schema.get("multipleOf")
        if step is not None and not _multiple(value, step):
            raise self.fail(path, "multipleOf", step, value)


def _multiple(value: float, step: float) -> bool:
    if isinstance(value, int) and isinstance(step, int):
        return value % step == 0
    q = value / step
    return math.isfinite(q) and abs(q - round(q)) < 1e-9


def _parses(fn: Any) -> Any:
    def check(text: str) -> bool:
        try:
            fn(text)
        except ValueError:
            return False
        return True
    return check


_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|z|[+-]([01]\d|2[0-3]):[0-5]\d)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _date(text: str) -> bool:
    return bool(_DATE.match(text)) and _parses(_dt.date.fromisoformat)(text)


def _datetime(text: str) -> bool:
    day, sep, time = text.partition("T") if "T" in text else text.partition("t")
    return bool(sep) and _date(day) and bool(_TIME.match(time))


def _uri(text: str) -> bool:
    parts = urlparse(text)
    return bool(parts.scheme) and bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*$", parts.scheme)) \
        and not re.search(r"\s", text)


FORMAT_CHECKS: dict[str, Any] = {
    "date": _date,
    "time": lambda t: bool(_TIME.match(t)),
    "date-time": _datetime,
    "uuid": lambda t: bool(_UUID.match(t)),
    "email": lambda t: bool(_EMAIL.match(t)),
    "hostname": lambda t: len(t) <= 253 and bool(_HOST.match(t)),
    "ipv4": _parses(ipaddress.IPv4Address),
    "ipv6": _parses(ipaddress.IPv6Address),
    "uri": _uri,
}
