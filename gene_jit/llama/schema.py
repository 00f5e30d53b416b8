"""JSON schemas for constrained generation: which keywords hold, and the GBNF grammar.

Every keyword a schema may use is in `KEYWORDS`, with how it is honoured:

- `grammar`: the grammar only produces values that satisfy it;
- `checked`: the grammar narrows what can be produced where it can, and the check after
  generation (gene_jit.llama.schema_check) raises a Gene error naming the keyword and the
  value when the output still breaks it;
- `note`: an annotation that constrains nothing (title, description, ...).

Any other keyword is refused before generation, with a message naming it and where it is.

The conversion is llama-cpp-python's `SchemaConverter` (the converter llama.cpp ships)
for objects, references, unions, enums and lengths, with the parts it lacks or gets
wrong done here: integer and number bounds (digit-by-digit range rules), regular
expressions (translated from Python's own regex parser, so `\\d`, classes and
quantifiers all work), string formats beyond dates, and arrays without `items`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from gene_jit.llama.errors import GrammarError
from gene_jit.llama.options import shown
from gene_jit.llama.schema_finite import finite_values

GRAMMAR, CHECKED, NOTE = "grammar", "checked", "note"

KEYWORDS: dict[str, str] = {
    "type": GRAMMAR, "enum": GRAMMAR, "const": GRAMMAR,
    "properties": GRAMMAR, "required": GRAMMAR, "additionalProperties": GRAMMAR,
    "items": GRAMMAR, "prefixItems": GRAMMAR, "minItems": GRAMMAR, "maxItems": GRAMMAR,
    "anyOf": GRAMMAR,
    # lengths: by the grammar, counting characters as libllama decodes them, except
    # beside a pattern; a token of invalid UTF-8 decodes to more characters than the
    # grammar counted, which the check reports
    "minLength": CHECKED, "maxLength": CHECKED,
    "$ref": GRAMMAR, "$defs": GRAMMAR, "definitions": GRAMMAR,
    # integers: by the grammar (ranges); numbers: by the grammar too, except the fraction
    # where both bounds lie in one integer part (0.2 to 0.8) or need over 15 decimals
    "minimum": CHECKED, "maximum": CHECKED, "exclusiveMinimum": CHECKED, "exclusiveMaximum": CHECKED,
    # multipleOf and uniqueItems: by the grammar where the values are few enough to list
    # (schema_finite.py), else by the check
    "multipleOf": CHECKED, "pattern": CHECKED, "format": CHECKED, "uniqueItems": CHECKED,
    "oneOf": CHECKED, "allOf": CHECKED, "minProperties": CHECKED, "maxProperties": CHECKED,
    "contains": CHECKED, "minContains": CHECKED, "maxContains": CHECKED,
    "dependentRequired": CHECKED, "propertyNames": CHECKED,
    "title": NOTE, "description": NOTE, "default": NOTE, "examples": NOTE, "$schema": NOTE,
    "$id": NOTE, "$comment": NOTE, "deprecated": NOTE, "readOnly": NOTE, "writeOnly": NOTE,
}
NOTES = frozenset(k for k, v in KEYWORDS.items() if v == NOTE)
TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
# formats with a grammar here or in the converter (all are also checked afterwards)
FORMATS = ("date", "time", "date-time", "uuid", "email", "hostname", "ipv4", "ipv6", "uri")

# bounds generate-json adds where a schema sets none, so that generation ends
MAX_STRING = 200
MAX_ITEMS = 16
MAX_DIGITS = 16  # integer digits the grammar allows (the converter's own limit)
FRACTION = '("." [0-9]{1,15})?'
OPEN_REPEAT = 32  # extra repetitions an unbounded regex quantifier may take
ENUMERATE = 256  # integer ranges with multipleOf are listed value by value up to this many


# ------------------------------------------------------------------ keyword checks


def _refuse(path: str, keyword: str, why: str) -> GrammarError:
    return GrammarError(f"JSON schema keyword '{keyword}' at {path}: {why}")


def check_keywords(schema: Any, path: str = "$") -> None:
    """Refuse, before generation, any keyword or value that cannot be honoured."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        raise GrammarError(f"a JSON schema at {path} must be an object, got {shown(schema)}")
    for key, value in schema.items():
        if key not in KEYWORDS:
            raise _refuse(path, key, "not supported by generate-json (supported: "
                          + ", ".join(k for k, v in KEYWORDS.items() if v != NOTE) + ")")
        _check_value(path, key, value, schema)
    for key in ("properties", "$defs", "definitions", "dependentRequired"):
        sub = schema.get(key)
        if sub is not None and not isinstance(sub, Mapping):
            raise _refuse(path, key, f"must be a map, got {shown(sub)}")
    for name, sub in (schema.get("properties") or {}).items():
        check_keywords(sub, f"{path}.properties.{name}")
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            check_keywords(sub, f"{path}.{key}.{name}")
    for key in ("items", "additionalProperties", "contains", "propertyNames"):
        sub = schema.get(key)
        if isinstance(sub, list) and key == "items":
            for i, item in enumerate(sub):
                check_keywords(item, f"{path}.items[{i}]")
        elif sub is not None:
            check_keywords(sub, f"{path}.{key}")
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for i, sub in enumerate(schema.get(key) or []):
            check_keywords(sub, f"{path}.{key}[{i}]")
    _check_satisfiable(path, schema)


def _check_satisfiable(path: str, schema: Mapping[str, Any]) -> None:
    """Combinations of keywords that no value satisfies, found before generation: a
    generation would otherwise run to its token limit and blame the limit."""
    required = [k for k in schema.get("required") or [] if isinstance(k, str)]
    props = schema.get("properties") or {}
    if schema.get("additionalProperties") is False:
        missing = [k for k in required if k not in props]
        if missing:
            raise _refuse(path, "required", f"{shown(missing[0])} is required but it is not in properties "
                          "and additionalProperties is false: no object can have it")
    most: Any = schema.get("maxProperties")
    if _count(most) and len(set(required)) > most:
        raise _refuse(path, "required", f"{len(set(required))} keys are required but maxProperties is {most}")
    least: Any = schema.get("minItems")
    items = schema.get("items")
    if schema.get("uniqueItems") is True and _count(least) and least > 0 and isinstance(items, Mapping):
        values = _distinct_values(items)
        if values is not None and values < least:
            raise _refuse(path, "uniqueItems", f"minItems {least} needs {least} different items but items "
                          f"allows only {values} value{'' if values == 1 else 's'}")
    finite_values(schema, path)  # refuses a multipleOf that no value between the bounds meets


def _distinct_values(schema: Mapping[str, Any]) -> int | None:
    """How many different values `schema` allows, where that is small and plain to see
    (a const, an enum, booleans, null, a bounded integer range); None otherwise."""
    if "const" in schema:
        return 1
    if isinstance(schema.get("enum"), list):
        return len({json.dumps(v, sort_keys=True) for v in schema["enum"]})
    kind = schema.get("type")
    if kind == "boolean":
        return 2
    if kind == "null":
        return 1
    if kind == "integer":
        lo, hi = integer_bounds(schema)
        step = schema.get("multipleOf")
        if lo is None or hi is None or step is not None and not (isinstance(step, int) and step > 0):
            return None
        step = step or 1
        return max(0, hi // step - -(-lo // step) + 1)
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_value(path: str, key: str, value: Any, schema: Mapping[str, Any]) -> None:
    if key == "type":
        kinds = value if isinstance(value, list) else [value]
        bad = [k for k in kinds if k not in TYPES]
        if bad or not kinds:
            raise _refuse(path, key, f"{shown(bad[0] if bad else value)} is not a JSON type ({', '.join(TYPES)})")
    elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if not _number(value):
            raise _refuse(path, key, f"must be a finite number, got {shown(value)}")
    elif key == "multipleOf":
        if not _number(value) or value <= 0:
            raise _refuse(path, key, f"must be a number greater than 0, got {shown(value)}")
    elif key in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
                 "minContains", "maxContains"):
        if not _count(value):
            raise _refuse(path, key, f"must be a non-negative integer, got {shown(value)}")
    elif key in ("enum", "required", "anyOf", "oneOf", "allOf", "prefixItems"):
        if not isinstance(value, list) or key != "required" and not value:
            raise _refuse(path, key, f"must be a non-empty array, got {shown(value)}")
        if key == "allOf" and len({_object_part(s) for s in value}) > 1:
            raise _refuse(path, key, "object schemas with properties combine only with others like them")
    elif key == "format" and value not in FORMATS:
        raise _refuse(path, key, f"the format {shown(value)} is not supported (supported: {', '.join(FORMATS)})")
    elif key == "pattern":
        _pattern_ast(value, path)
    elif key == "uniqueItems" and not isinstance(value, bool):
        raise _refuse(path, key, f"must be true or false, got {shown(value)}")
    elif key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
        raise _refuse(path, key, f"only references inside the schema (#/...) are supported, got {shown(value)}")
    _check_pairs(path, schema)


def _object_part(schema: Any) -> bool:
    """An allOf member the grammar converter merges (an object with properties); the
    others are merged here (`merged_all_of`)."""
    return isinstance(schema, Mapping) and "properties" in schema


# keywords of allOf members that combine to the stricter bound
_STRICTER = {"minimum": max, "exclusiveMinimum": max, "minLength": max, "minItems": max,
             "maximum": min, "exclusiveMaximum": min, "maxLength": min, "maxItems": min}


def merged_all_of(schema: Mapping[str, Any], path: str = "$") -> dict[str, Any]:
    """A schema whose allOf members are not objects with properties, as one schema: the
    members' keywords together, the stricter of two bounds; members that ask for
    different values of another keyword leave no value to generate, and are refused."""
    out = {k: v for k, v in schema.items() if k != "allOf"}
    for i, member in enumerate(schema["allOf"]):
        if not isinstance(member, Mapping):
            continue  # true: no constraint (false was refused as unsatisfiable)
        if "allOf" in member:
            member = merged_all_of(member, f"{path}.allOf[{i}]")
        for key, value in member.items():
            if key not in out or out[key] == value or key in NOTES:
                out.setdefault(key, value)
            elif key in _STRICTER and _number(out[key]) and _number(value):
                out[key] = _STRICTER[key](out[key], value)
            else:
                raise _refuse(f"{path}.allOf[{i}]", key, f"{shown(value)} here and {shown(out[key])} "
                              "elsewhere: no value satisfies both")
    _check_pairs(path, out)
    return out


def _check_pairs(path: str, schema: Mapping[str, Any]) -> None:
    """Bounds that no value can satisfy."""
    for lo, hi in (("minLength", "maxLength"), ("minItems", "maxItems"), ("minimum", "maximum"),
                   ("minProperties", "maxProperties")):
        a, b = schema.get(lo), schema.get(hi)
        if _number(a) and _number(b) and float(a) > float(b):  # type: ignore[arg-type]
            raise _refuse(path, lo, f"{lo} {a} is greater than {hi} {b}: no value can satisfy both")
    if schema.get("type") == "integer":
        low, high = integer_bounds(schema)
        if low is not None and high is not None and low > high:
            raise _refuse(path, "minimum", f"no integer lies between the bounds of {dict(schema)}")


def integer_bounds(schema: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """The inclusive integer range the bound keywords allow (None: unbounded)."""
    lo: int | None = None
    hi: int | None = None
    if _number(schema.get("minimum")):
        lo = math.ceil(schema["minimum"])
    if _number(schema.get("exclusiveMinimum")):
        v = math.floor(schema["exclusiveMinimum"]) + 1
        lo = v if lo is None else max(lo, v)
    if _number(schema.get("maximum")):
        hi = math.floor(schema["maximum"])
    if _number(schema.get("exclusiveMaximum")):
        v = math.ceil(schema["exclusiveMaximum"]) - 1
        hi = v if hi is None else min(hi, v)
    return lo, hi


# ------------------------------------------------------------------ bounded schemas


MAX_NESTING = 128  # maps and arrays inside each other (Python's recursion ends near 300)


def nesting(schema: Any) -> int:
    """How deep maps and arrays nest in `schema` (counted without recursion)."""
    deepest, stack = 0, [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, Mapping) else node))
    return deepest


def check_nesting(schema: Any) -> None:
    """Refuse a schema nested deeper than the checks and the converter can follow."""
    depth = nesting(schema)
    if depth > MAX_NESTING:
        raise GrammarError(f"the JSON schema nests maps and arrays {depth} deep; at most {MAX_NESTING} "
                           "are taken")


def bounded(schema: Any) -> Any:
    """The schema with length limits on strings and arrays, and no extra object keys,
    where it sets none: every output still satisfies the original, and generation ends."""
    check_nesting(schema)
    return _bounded(schema)


def _bounded(schema: Any) -> Any:
    if not isinstance(schema, Mapping):
        return schema
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of and not any(_object_part(s) for s in all_of):
        schema = merged_all_of(schema)
    out = dict(schema)
    for key in ("properties", "$defs", "definitions"):
        if isinstance(out.get(key), Mapping):
            out[key] = {k: _bounded(v) for k, v in out[key].items()}
    for key in ("items", "additionalProperties", "contains"):
        if isinstance(out.get(key), Mapping):
            out[key] = _bounded(out[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems", "items"):
        if isinstance(out.get(key), list):
            out[key] = [_bounded(s) for s in out[key]]
    kind = out.get("type")
    if kind == "string" and not {"maxLength", "enum", "const", "pattern", "format"} & set(out):
        out["maxLength"] = max(MAX_STRING, out.get("minLength", 0))
    if kind == "array" and "maxItems" not in out and "prefixItems" not in out:
        out["maxItems"] = max(MAX_ITEMS, out.get("minItems", 0))
    if kind == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
        # a required key with no schema of its own may hold any value, as before
        required = [k for k in out.get("required") or [] if isinstance(k, str)]
        if isinstance(out["properties"], Mapping) and any(k not in out["properties"] for k in required):
            out["properties"] = {**out["properties"], **{k: {} for k in required if k not in out["properties"]}}
    return out


# ------------------------------------------------------------------ grammar


def to_gbnf(schema: Mapping[str, Any]) -> str:
    """The GBNF grammar of a (checked) schema."""
    from llama_cpp.llama_grammar import SchemaConverter

    from gene_jit.llama.bindings import restore_logging

    restore_logging()  # importing llama_cpp installs its own libllama log callback

    class Converter(SchemaConverter):  # type: ignore[misc]
        started = False

        def visit(self, schema: Any, name: str) -> str:
            if not name and self.started:  # a property named "" at the top: not the root
                name = "empty-key"
            self.started = True
            own = _own_rule(self, schema, name)
            return own if own is not None else str(super().visit(schema, name))

        def _format_literal(self, literal: str) -> str:
            return gbnf_literal(literal)

        def resolve_refs(self, schema: dict[str, Any], url: str) -> dict[str, Any]:
            resolve_local_refs(schema, url, self._refs)
            return schema

    converter = Converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    try:
        resolved = converter.resolve_refs(_with_required(json.loads(json.dumps(schema))), "input")
        converter.visit(resolved, "")
        return str(converter.format_grammar())
    except GrammarError:
        raise
    except Exception as exc:  # the converter raises bare exceptions for what it cannot do
        ref = re.match(r"Error resolving ref input(#\S*): ", str(exc))
        if ref is not None:  # its message ends with a Python repr of the schema
            raise GrammarError(f"JSON schema keyword '$ref': {ref.group(1)} points at nothing in "
                               "the schema") from None
        raise GrammarError(f"cannot turn this JSON schema into a grammar: {exc}") from exc


def resolve_local_refs(schema: Any, url: str, refs: dict[str, Any]) -> None:
    """The converter's `resolve_refs` for references inside the schema (the only ones
    allowed): each `$ref` made absolute and its target recorded, in every node. The
    converter's own skipped the rest of a node that has a `$ref`, so the `$defs` beside
    a root `$ref` (a recursive schema: a tree) kept references it could not resolve."""
    def visit(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
            return
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target = schema
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise GrammarError(f"JSON schema keyword '$ref': {ref} points at nothing in the schema")
                target = target[part]
            node["$ref"] = f"{url}{ref}"
            refs[node["$ref"]] = target
        for key, value in node.items():
            if key not in ("enum", "const", "default", "examples"):
                visit(value)

    visit(schema)


_GBNF_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def gbnf_literal(literal: str) -> str:
    """`literal` as a GBNF string literal. The converter hands JSON text here (enum and
    const values, property names: json.dumps, whose \\u escapes of emoji are surrogate
    pairs that GBNF would read as two lone surrogates): such text is written with its
    characters as they are, and every backslash and quote escaped once more for GBNF
    (the converter escaped only quotes, so "a\\"b" broke the grammar)."""
    try:
        literal = json.dumps(json.loads(literal), ensure_ascii=False)
    except ValueError:
        pass  # a piece of text, not JSON
    body = "".join(_GBNF_ESCAPES.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x20 else c) for c in literal)
    return f'"{body}"'


def _with_required(schema: Any) -> Any:
    """Required keys without a schema in `properties` get one that allows any value (the
    converter would leave them out of the grammar)."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key not in ("enum", "const", "default", "examples"):
                _with_required(value)
        required = schema.get("required")
        if isinstance(required, list) and (schema.get("properties") or required):
            props = schema.setdefault("properties", {})
            for key in required:
                if isinstance(key, str) and isinstance(props, dict):
                    props.setdefault(key, {})
    elif isinstance(schema, list):
        for value in schema:
            _with_required(value)
    return schema


def _rule_name(name: str) -> str:
    from llama_cpp.llama_grammar import RESERVED_NAMES

    return name + "-" if name in RESERVED_NAMES else name or "root"


def _own_rule(conv: Any, schema: Any, name: str) -> str | None:
    """Rules for what the converter lacks; None leaves the schema to it."""
    if isinstance(schema, Mapping) and "$gene-rule" in schema:
        return str(schema["$gene-rule"])  # a rule made here, passed through the converter
    if schema is True or isinstance(schema, Mapping) and not set(schema) - {
            k for k, v in KEYWORDS.items() if v == NOTE}:
        return str(conv._add_rule(_rule_name(name), conv._add_primitive("value", _primitives()["value"])))
    if not isinstance(schema, Mapping) or {"$ref", "anyOf", "oneOf", "const", "enum"} & set(schema):
        return None
    listed = finite_values(schema)
    if listed is not None:  # multipleOf, uniqueItems: every value the schema allows, written out
        conv._add_rule("space", '" "?')
        return str(conv._add_rule(_rule_name(name), "(" + " | ".join(map(gbnf_literal, listed)) + ") space"))
    kind = schema.get("type")
    body: str | None = None
    if isinstance(kind, list):  # each type with the schema's other keywords
        alts = [conv.visit({**schema, "type": t}, f"{name}{'-' if name else ''}{t}") for t in kind]
        return str(conv._add_rule(_rule_name(name), " | ".join(alts)))
    if kind == "integer":
        body = _integer_rule(schema)
    elif kind == "number" and {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & set(schema):
        body = _number_rule(schema)
    elif kind in ("string", None) and "pattern" in schema:
        body = '"\\"" ' + _regex_gbnf(_pattern_ast(schema["pattern"], "$"), schema["pattern"]) + ' "\\""'
    elif kind in ("string", None) and schema.get("format") in _FORMAT_RULES:
        body = '"\\"" ' + _FORMAT_RULES[schema["format"]] + ' "\\""'
    elif kind == "array" and "prefixItems" in schema:
        parts = [conv.visit(s, f"{name}{'-' if name else ''}tuple-{i}") for i, s in enumerate(schema["prefixItems"])]
        body = '"[" space ' + ' "," space '.join(parts) + ' "]"'
    elif kind == "array" and schema.get("items") is False:
        body = '"[" space "]"'
    elif kind == "array" and not schema.get("items"):  # any items (the converter needs a rule)
        item = conv.visit({}, f"{name}{'-' if name else ''}item")
        return str(conv.visit({**schema, "items": {"$gene-rule": item}}, name))
    if body is None:
        return None
    conv._add_rule("space", '" "?')
    return str(conv._add_rule(_rule_name(name), body + " space"))


def _primitives() -> dict[str, Any]:
    from llama_cpp.llama_grammar import PRIMITIVE_RULES

    return dict(PRIMITIVE_RULES)


# -- integers and numbers


def _digits_range(x: str, y: str) -> str:
    """GBNF for the decimal strings of one length from x to y (x <= y)."""
    n = len(x)
    if n == 0:
        return ""
    if x == y:
        return f'"{x}"'
    if x[0] == y[0]:
        return f'"{x[0]}" ' + _digits_range(x[1:], y[1:])
    alts: list[str] = []
    first, last = int(x[0]), int(y[0])
    if x[1:] != "0" * (n - 1):
        alts.append(f'"{x[0]}" ' + _digits_range(x[1:], "9" * (n - 1)))
        first += 1
    top = y[1:] == "9" * (n - 1)
    mid_last = last if top else last - 1
    if first <= mid_last:
        tail = f" [0-9]{{{n - 1}}}" if n > 1 else ""
        alts.append(f"[{first}-{mid_last}]{tail}")
    if not top:
        alts.append(f'"{y[0]}" ' + _digits_range("0" * (n - 1), y[1:]))
    return alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"


def _natural_range(lo: int, hi: int) -> str:
    """GBNF for the integers lo..hi (0 <= lo <= hi), without leading zeros."""
    alts = []
    for d in range(len(str(lo)), len(str(hi)) + 1):
        a = max(lo, 10 ** (d - 1) if d > 1 else 0)
        b = min(hi, 10**d - 1)
        if a <= b:
            alts.append(_digits_range(str(a), str(b)))
    return alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"


def _signed_range(lo: int | None, hi: int | None) -> str:
    """GBNF for the integers lo..hi, None meaning as far as MAX_DIGITS digits reach."""
    top = 10**MAX_DIGITS - 1
    lo = -top if lo is None else max(lo, -top)
    hi = top if hi is None else min(hi, top)
    if lo > hi:
        raise GrammarError(f"JSON schema keywords 'minimum' and 'maximum': no number of at most {MAX_DIGITS} "
                           f"integer digits lies between {lo} and {hi}")
    alts = []
    if lo < 0:
        alts.append('"-" ' + _natural_range(max(1, -hi), -lo))
    if hi >= 0:
        alts.append(_natural_range(max(lo, 0), hi))
    return alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"


def _integer_rule(schema: Mapping[str, Any]) -> str | None:
    lo, hi = integer_bounds(schema)
    step = schema.get("multipleOf")
    if isinstance(step, int) and not isinstance(step, bool) and lo is not None and hi is not None:
        first = -(-lo // step) * step
        values = range(first, hi + 1, step)
        if 0 < len(values) <= ENUMERATE:
            return "(" + " | ".join(f'"{v}"' for v in values) + ")"
    if lo is None and hi is None:
        return None
    return _signed_range(lo, hi)


def _number_rule(schema: Mapping[str, Any]) -> str:
    """Decimals within the bounds (see `_magnitudes` for where the check after
    generation settles the fraction)."""
    lo, lo_excl = _bound(schema, "minimum", "exclusiveMinimum", max)
    hi, hi_excl = _bound(schema, "maximum", "exclusiveMaximum", min)
    alts = []
    if hi is None or hi > 0 or hi == 0 and not hi_excl:  # non-negative values
        nonneg = lo is not None and lo >= 0
        alts.append(_magnitudes(lo if lo is not None and nonneg else 0, lo_excl and nonneg, hi, hi_excl))
    if lo is None or lo < 0:  # negative values, by magnitude
        below = hi is not None and hi < 0
        alts.append('"-" ' + _magnitudes(-hi if hi is not None and below else 0, hi_excl and below,
                                         None if lo is None else -lo, lo_excl))
    alts = [a for a in alts if a]
    if not alts:
        raise GrammarError(f"JSON schema: no number lies between the bounds of {dict(schema)}")
    return "(" + " | ".join(alts) + ")"


def _bound(schema: Mapping[str, Any], plain: str, exclusive: str, pick: Any) -> tuple[float | None, bool]:
    """The tighter of an inclusive and an exclusive bound, and whether it is exclusive."""
    a = schema[plain] if _number(schema.get(plain)) else None
    b = schema[exclusive] if _number(schema.get(exclusive)) else None
    if a is None or b is None:
        return (a, False) if b is None else (b, True)
    best = pick(a, b)
    return best, best == b


def _magnitudes(low: float, low_excl: bool, high: float | None, high_excl: bool) -> str:
    """GBNF for decimals (no sign, no exponent) from low to high; '' when none. A bound
    with a fraction bounds the fraction digits of its own integer part too, unless both
    bounds fall in the same integer part (0.2 to 0.8): the check after generation then
    settles the fraction."""
    a = math.floor(low)
    b = None if high is None else math.floor(high)
    low_digits = _fraction_digits(low) if low != a else None
    high_digits = _fraction_digits(high) if high is not None and high != b else None
    parts = []
    start = a
    if low == a and low_excl:  # the bound itself is out: its integer part needs a fraction
        if high is None or high > a:
            parts.append(f'"{a}" "." [0-9]{{0,14}} [1-9]')
        start = a + 1
    elif low_digits and (b is None or b > a):
        rule = _at_least(low_digits, low_excl, 15)
        if rule:
            parts.append(f'"{a}" "." {rule}')
        start = a + 1
    if high is None or b is None:
        parts.append(f"{_signed_range(start, None)} {FRACTION}")
    else:
        own = high_digits is not None and b >= start and (b > a or low == a)
        top = b - 1 if high == b or own else b  # an integer bound's own integer part: no fraction
        if start <= top:
            parts.append(f"{_signed_range(start, top)} {FRACTION}")
        if high == b and not high_excl and start <= b:
            parts.append(f'"{b}" ("." "0"{{1,15}})?')
        if own:
            rule = _at_most(high_digits or "", high_excl, 15)
            parts.append(f'"{b}" ("." {rule})?' if rule else f'"{b}"')
    return "(" + " | ".join(parts) + ")" if parts else ""


def _fraction_digits(x: float) -> str | None:
    """The digits after the point of `x`'s shortest decimal form, None past 15 (the
    grammar's limit); the JSON a model writes for the bound parses to the same float."""
    from decimal import Decimal

    digits = format(Decimal(repr(float(x))), "f").partition(".")[2].rstrip("0")
    return digits if 0 < len(digits) <= 15 else None


def _digits_upto(n: int) -> str:
    return f"[0-9]{{0,{n}}}" if n > 0 else ""


def _at_least(d: str, strict: bool, room: int) -> str:
    """GBNF for 1 to `room` fraction digits F with 0.F >= 0.d (> when strict); '' for none."""
    head, rest = int(d[0]), d[1:]
    alts = []
    if head < 9:
        alts.append(f"[{head + 1}-9] {_digits_upto(room - 1)}".strip())
    if rest:
        sub = _at_least(rest, strict, room - 1) if room > 1 else ""
        if sub:
            alts.append(f'"{head}" {sub}')
    elif not strict:
        alts.append(f'"{head}" {_digits_upto(room - 1)}'.strip())
    elif room > 1:
        alts.append(f'"{head}" {_digits_upto(room - 2)} [1-9]'.replace("  ", " "))
    return "(" + " | ".join(alts) + ")" if alts else ""


def _at_most(d: str, strict: bool, room: int) -> str:
    """GBNF for 1 to `room` fraction digits F with 0.F <= 0.d (< when strict); '' for none."""
    head, rest = int(d[0]), d[1:]
    alts = []
    if head > 0:
        alts.append(f"[0-{head - 1}] {_digits_upto(room - 1)}".strip())
    if rest:
        sub = _at_most(rest, strict, room - 1) if room > 1 else ""
        alts.append(f'"{head}" ({sub})?' if sub else f'"{head}"')
    elif not strict:
        alts.append(f'"{head}" "0"{{0,{room - 1}}}' if room > 1 else f'"{head}"')
    return "(" + " | ".join(alts) + ")" if alts else ""


# -- strings


_HEX = "[0-9a-fA-F]"
_LABEL = "[a-zA-Z0-9] ([a-zA-Z0-9-]{0,18} [a-zA-Z0-9])?"
_OCTET = '("25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9] [0-9] | [0-9])'
_FORMAT_RULES = {
    "email": f'[a-zA-Z0-9] [a-zA-Z0-9._+-]{{0,30}} "@" {_LABEL} ("." {_LABEL}){{0,2}} "." [a-zA-Z]{{2,10}}',
    "hostname": f'{_LABEL} ("." {_LABEL}){{0,3}}',
    "ipv4": f'{_OCTET} "." {_OCTET} "." {_OCTET} "." {_OCTET}',
    "ipv6": f'{_HEX}{{1,4}} (":" {_HEX}{{1,4}}){{7}}',
    "uri": f'("https" | "http" | "ftp") "://" {_LABEL} ("." {_LABEL}){{0,3}} '
           '("/" [a-zA-Z0-9._~%-]{0,30}){0,4}',
}


def _pattern_ast(pattern: Any, path: str) -> Any:
    if not isinstance(pattern, str):
        raise _refuse(path, "pattern", f"must be a string, got {shown(pattern)}")
    import re._parser as sre_parse  # Python's own regex parser: the same syntax the check uses

    try:
        return sre_parse.parse(pattern)
    except re.error as exc:
        raise _refuse(path, "pattern", f"{shown(pattern)} is not a regular expression: {exc}") from None


# characters a JSON string holds only escaped: kept out of generated character classes
_UNSAFE = {ord('"'), ord("\\")} | set(range(0x20)) | {0x7F}


def _char(code: int) -> str:
    if code in _UNSAFE:
        escapes = {ord('"'): '\\"', ord("\\"): "\\\\", 10: "\\n", 13: "\\r", 9: "\\t"}
        text = escapes.get(code, f"\\u{code:04x}")
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return '"' + chr(code).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _class_char(code: int) -> str:
    c = chr(code)
    return "\\" + c if c in "]\\^-[" else c


_CATEGORIES = {
    "CATEGORY_DIGIT": "0-9", "CATEGORY_WORD": "a-zA-Z0-9_", "CATEGORY_SPACE": " ",
}


def _class(items: Any, pattern: str) -> str:
    """GBNF for a regex character class, without the characters JSON must escape."""
    from re import _constants as c  # type: ignore[attr-defined]

    negate = False
    ranges: list[tuple[int, int]] = []
    named: list[str] = []
    for op, arg in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            ranges.append((arg, arg))
        elif op is c.RANGE:
            ranges.append(arg)
        elif op is c.CATEGORY and str(arg) in _CATEGORIES:
            named.append(_CATEGORIES[str(arg)])
        else:
            raise GrammarError(f"JSON schema keyword 'pattern': the class in {shown(pattern)} uses {arg}, "
                               "which generation does not support")
    if negate:
        body = "".join(_class_char(a) if a == b else f"{_class_char(a)}-{_class_char(b)}" for a, b in ranges)
        return f'[^{body}{"".join(named)}"\\\\\\x00-\\x1F\\x7F]'
    parts = list(named)
    for a, b in ranges:
        start = a
        for code in range(a, b + 2):
            if code > b or code in _UNSAFE:
                if start < code:
                    end = code - 1
                    parts.append(_class_char(start) if start == end else f"{_class_char(start)}-{_class_char(end)}")
                start = code + 1
    if not parts:
        raise GrammarError(f"JSON schema keyword 'pattern': a class in {shown(pattern)} holds only characters "
                           "that JSON strings must escape")
    return "[" + "".join(parts) + "]"


def _regex_gbnf(ast: Any, pattern: str) -> str:
    """GBNF for a parsed regex; anchors are dropped, since a match of the whole string
    also satisfies the search the check does."""
    from re import _constants as c  # type: ignore[attr-defined]

    out: list[str] = []
    for op, arg in ast:
        if op is c.LITERAL:
            out.append(_char(arg))
        elif op is c.ANY:
            out.append('[^"\\\\\\x00-\\x1F\\x7F]')
        elif op is c.IN:
            out.append(_class(arg, pattern))
        elif op is c.CATEGORY:
            out.append(_class([(op, arg)], pattern))
        elif op is c.NOT_LITERAL:
            out.append(_class([(c.NEGATE, None), (c.LITERAL, arg)], pattern))
        elif op is c.AT:
            continue
        elif op is c.SUBPATTERN:
            out.append("(" + _regex_gbnf(arg[3], pattern) + ")")
        elif op is c.BRANCH:
            out.append("(" + " | ".join(_regex_gbnf(alt, pattern) or '""' for alt in arg[1]) + ")")
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            low, high, sub = arg
            high = low + OPEN_REPEAT if high is c.MAXREPEAT else high
            out.append(f"({_regex_gbnf(sub, pattern)}){{{low},{high}}}")
        else:
            raise GrammarError(f"JSON schema keyword 'pattern': {shown(pattern)} uses {str(op).lower()}, "
                               "which generation does not support")
    return " ".join(out) if out else '""'
