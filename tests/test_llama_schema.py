"""JSON schemas that hold: every keyword is enforced by the grammar, checked after
generation (a Gene error naming the keyword and the value), or refused before
generation (a Gene error naming the keyword). The suite on the default model (marked
`model`) validates each output with the `jsonschema` package."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tiny_model import write_tiny_model  # noqa: E402

from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama.errors import GrammarError  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402
from gene_jit.llama.schema import _number_rule, _signed_range, check_keywords, to_gbnf  # noqa: E402
from gene_jit.llama.schema_check import SchemaViolation, validate  # noqa: E402
from gene_jit.runtime.errors import GeneError  # noqa: E402


def gbnf_regex(expr: str) -> re.Pattern[str]:
    """A Python regex for the GBNF subset the range rules use (literals, classes,
    groups, alternation, {m,n} and ?)."""
    out = re.sub(r'"((?:[^"\\]|\\.)*)"', lambda m: re.escape(m.group(1)), expr)
    return re.compile("^(?:" + out.replace(" ", "") + ")$")


# ------------------------------------------------------------- ranges, exhaustively


@pytest.mark.parametrize(("lo", "hi"), [
    (1, 10), (-10, 40), (0, 255), (7, 7), (-999, -5), (13, 98765), (-1, 0), (0, 0), (100, 1000),
    (19, 21), (-105, 1099), (990, 1010), (1, 1_000_000), (-5, None), (None, 12), (None, -3),
])
def test_integer_range_rule_is_exact(lo: int | None, hi: int | None) -> None:
    rx = gbnf_regex(_signed_range(lo, hi))
    a = lo if lo is not None else -3000
    b = hi if hi is not None else 3000
    for v in list(range(a - 1500, a + 1500)) + list(range(b - 1500, b + 1500)):
        inside = (lo is None or v >= lo) and (hi is None or v <= hi)
        assert bool(rx.match(str(v))) == inside, (lo, hi, v)
    for text in ("007", "-0", "00", "+5", "1e3", "1.0"):
        assert not rx.match(text)


@pytest.mark.parametrize("schema", [
    {"minimum": -10, "maximum": 40},
    {"minimum": 0, "exclusiveMaximum": 1},
    {"exclusiveMinimum": 0, "maximum": 5},
    {"minimum": -2.5, "maximum": 3},
    {"exclusiveMinimum": -1, "exclusiveMaximum": 1},
    {"minimum": 1},
    {"maximum": -1},
])
def test_number_range_rule_never_leaves_the_bounds_at_integers(schema: dict[str, Any]) -> None:
    rx = gbnf_regex(_number_rule(schema))
    candidates = [f"{i}{f}" for i in range(-60, 61) for f in ("", ".0", ".5", ".25", ".999", ".001")]
    candidates += [f"-0{f}" for f in (".5", ".25")]
    allowed = [c for c in candidates if rx.match(c)]
    assert allowed
    for text in allowed:
        lo_ok = "minimum" not in schema or float(text) >= schema["minimum"]
        hi_ok = "maximum" not in schema or float(text) <= schema["maximum"]
        ex_lo = "exclusiveMinimum" not in schema or float(text) > schema["exclusiveMinimum"]
        ex_hi = "exclusiveMaximum" not in schema or float(text) < schema["exclusiveMaximum"]
        # integer bounds are exact; a fractional bound may let its own integer part through
        fractional = any(isinstance(v, float) and not v.is_integer() for v in schema.values())
        assert (lo_ok and hi_ok and ex_lo and ex_hi) or fractional, (schema, text)


# ------------------------------------------------------------- refused before generation


@pytest.mark.parametrize(("schema", "keyword"), [
    ({"type": "string", "maxLenght": 5}, "maxLenght"),
    ({"not": {"type": "string"}}, "not"),
    ({"if": {"type": "string"}, "then": {"maxLength": 3}}, "if"),
    ({"type": "object", "patternProperties": {"^a": {}}}, "patternProperties"),
    ({"type": "string", "format": "credit-card"}, "format"),
    ({"type": "integer", "minimum": "1"}, "minimum"),
    ({"type": "integer", "multipleOf": 0}, "multipleOf"),
    ({"type": "string", "minLength": 5, "maxLength": 2}, "minLength"),
    ({"type": "integer", "minimum": 5, "maximum": 4}, "minimum"),
    ({"type": "string", "pattern": "(?<=a)b"}, "pattern"),
    ({"type": "string", "pattern": "(a)\\1"}, "pattern"),
    ({"type": "object", "properties": {"x": {"type": "string", "format": "phone"}}}, "format"),
    ({"$ref": "https://example.com/s.json"}, "$ref"),
    ({"type": "array", "uniqueItems": "yes"}, "uniqueItems"),
])
def test_unsupported_keywords_are_refused_by_name(schema: dict[str, Any], keyword: str) -> None:
    with pytest.raises(GrammarError) as info:
        g.schema_to_gbnf(schema)
    assert f"'{keyword}'" in info.value.message and isinstance(info.value, GeneError)


def test_every_keyword_is_classified() -> None:
    from gene_jit.llama.schema import KEYWORDS

    # draft 2020-12 validation and applicator keywords: each one is accepted or refused,
    # and none of the accepted ones is silently dropped by the check
    for kw in KEYWORDS:
        assert KEYWORDS[kw] in ("grammar", "checked", "note")
    for refused in ("not", "if", "then", "else", "patternProperties", "dependentSchemas",
                    "unevaluatedProperties", "unevaluatedItems", "additionalItems", "contentSchema"):
        with pytest.raises(GrammarError, match=refused):
            check_keywords({refused: {}})


# ------------------------------------------------------------- the check after generation


@pytest.mark.parametrize(("schema", "value", "keyword"), [
    ({"type": "integer", "minimum": 1, "maximum": 10}, 1000000000000000, "maximum"),
    ({"type": "integer", "multipleOf": 5}, 7, "multipleOf"),
    ({"type": "number", "exclusiveMaximum": 1}, 1, "exclusiveMaximum"),
    ({"type": "array", "uniqueItems": True}, ["a", "a"], "uniqueItems"),
    ({"type": "string", "format": "date"}, "2023-02-31", "format"),
    ({"type": "string", "format": "email"}, "nobody", "format"),
    ({"type": "string", "pattern": "^[a-z]+$"}, "ABC", "pattern"),
    ({"type": "string", "minLength": 3}, "ab", "minLength"),
    ({"type": "object", "minProperties": 2}, {"a": 1}, "minProperties"),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 3, "oneOf"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/small"}}, "$defs": {"small": {"maximum": 2}}},
     {"a": 3}, "maximum"),
])
def test_breaches_name_keyword_and_value(schema: dict[str, Any], value: Any, keyword: str) -> None:
    with pytest.raises(SchemaViolation) as info:
        validate(value, schema)
    shown = json.dumps(value["a"] if isinstance(value, dict) and "$defs" in schema else value)
    assert keyword in info.value.message and shown[:20] in info.value.message


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Model:
    path = write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")
    return Model(str(path), n_ctx=512, threads=2)


@pytest.mark.parametrize("seed", range(3))
def test_integer_bounds_hold_on_random_weights(tiny: Model, seed: int) -> None:
    # random weights favour no particular digit: without the range grammar the integer
    # runs to 16 digits (the reported 1000000000000000)
    schema = {"type": "object", "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 10},
                                               "t": {"type": "number", "minimum": -10, "maximum": 40}},
              "required": ["rating", "t"]}
    value = g.generate_json(tiny, "Rate it:", schema, 200, temperature=1.0, seed=seed)
    assert 1 <= value["rating"] <= 10 and -10 <= value["t"] <= 40


@pytest.mark.parametrize("schema", [
    {"allOf": [{"type": "integer"}, {"minimum": 3}, {"maximum": 12}]},
    {"type": "integer", "allOf": [{"minimum": -5, "maximum": 40}, {"allOf": [{"maximum": 7}]}]},
    {"type": "object", "properties": {"n": {"allOf": [{"type": "number"}, {"exclusiveMinimum": 0},
                                                      {"maximum": 2}]}}, "required": ["n"]},
])
def test_all_of_members_combine_in_the_grammar(tiny: Model, schema: dict[str, Any]) -> None:
    """allOf of schemas that are not objects with properties is one schema: every member's
    keywords hold in the grammar (random weights sampled {} for {type integer} + {minimum 3})."""
    jsonschema = pytest.importorskip("jsonschema")
    for seed in range(3):
        value = g.generate_json(tiny, "A value:", schema, 60, temperature=1.0, seed=seed)
        jsonschema.Draft202012Validator(schema).validate(value)


@pytest.mark.parametrize(("schema", "text"), [
    ({"allOf": [{"type": "integer"}, {"type": "string"}]},
     "'type' at $.allOf[1]: \"string\" here and \"integer\" elsewhere: no value satisfies both"),
    ({"allOf": [{"type": "integer", "minimum": 5}, {"maximum": 3}]}, "minimum 5 is greater than maximum 3"),
    ({"allOf": [{"type": "object", "properties": {"a": {}}}, {"minimum": 3}]},
     "object schemas with properties combine only with others like them"),
])
def test_all_of_members_that_exclude_each_other_are_refused(tiny: Model, schema: dict[str, Any], text: str) -> None:
    with pytest.raises(GrammarError, match=re.escape(text)):
        g.generate_json(tiny, "A value:", schema, 20)


@pytest.mark.parametrize("schema", [
    {"enum": ["😀", "🎉", "𓀀"]},
    {"const": 'a"b\\c'},
    {"enum": ['say "hi"', "C:\\path", "x\ny", "tab\t", "\u0001"]},
    {"type": "object", "properties": {'a"b': {"type": "boolean"}, "": {"type": "null"}},
     "required": ['a"b', ""]},
    {"type": "object", "properties": {"🎉": {"const": 1}}, "required": ["🎉"]},
    {"type": "object", "properties": {"": {"type": "boolean"}}, "required": [""]},
])
def test_literals_of_any_text_are_generated_as_written(tiny: Model, schema: dict[str, Any]) -> None:
    """enum and const values and property names hold any text: characters beyond the BMP
    (emoji), quotes, backslashes and control characters reach the grammar escaped once
    for JSON and once for GBNF, and a property named "" is not taken for the root."""
    jsonschema = pytest.importorskip("jsonschema")
    for seed in range(3):
        value = g.generate_json(tiny, "A value:", schema, 40, temperature=1.0, seed=seed)
        jsonschema.Draft202012Validator(schema).validate(value)


def test_recursive_references_are_grammar_rules(tiny: Model) -> None:
    """A schema that refers to itself (a tree, `$ref` beside its `$defs` at the root) is a
    recursive grammar rule."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer", "minimum": 0, "maximum": 9},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 1}},
        "required": ["v", "kids"]}}, "$ref": "#/$defs/node"}
    # random weights nest without end as often as not: seeds whose trees end in 200 tokens
    for seed in (1, 3, 4, None):
        value = g.generate_json(tiny, "A tree:", schema, 200, temperature=1.0 if seed else 0, seed=seed)
        jsonschema.Draft202012Validator(schema).validate(value)
        assert "kids" in value["kids"][0]  # nested


@pytest.mark.parametrize("schema", [
    {"type": "number", "multipleOf": 0.5, "minimum": 0, "maximum": 2},
    {"type": "number", "multipleOf": 0.125, "exclusiveMinimum": 0, "maximum": 1},
    {"type": "integer", "multipleOf": 3, "minimum": -10, "exclusiveMaximum": 12},
    {"type": "array", "items": {"enum": ["a", "b", "c"]}, "uniqueItems": True, "minItems": 3, "maxItems": 3},
    {"type": "array", "items": {"type": "integer", "enum": [1, 2, 3, 4]}, "uniqueItems": True, "maxItems": 2},
    {"type": "object", "properties": {"r": {"type": "number", "multipleOf": 0.25, "minimum": 1, "maximum": 2}},
     "required": ["r"]},
])
def test_listed_values_keep_multiple_of_and_unique_items(tiny: Model, schema: dict[str, Any]) -> None:
    """multipleOf and uniqueItems, which a grammar cannot state in general, hold by the
    grammar where the values are few enough to list: random weights never break them
    (greedy generation broke them every time: 0.0126 for multipleOf 0.5, ["b","b","b"])."""
    jsonschema = pytest.importorskip("jsonschema")
    for seed in range(3):
        value = g.generate_json(tiny, "A value:", schema, 40, temperature=1.0, seed=seed)
        jsonschema.Draft202012Validator(schema).validate(value)


def test_a_multiple_of_that_no_value_between_the_bounds_meets_is_refused() -> None:
    with pytest.raises(GrammarError, match=r"multipleOf' at \$.properties.n: no integer between the bounds"):
        check_keywords({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 7, "minimum": 1,
                                                               "maximum": 6}}})


def test_schemas_nested_too_deep_are_refused_before_any_recursion() -> None:
    """A schema (a map, or JSON text) nested deeper than the checks and the converter can
    follow is a grammar error (it was Python's RecursionError); 100 levels still work."""
    from gene_jit.llama.grammar import schema_to_gbnf
    from gene_jit.llama.schema import bounded

    deep: dict[str, Any] = {"type": "integer"}
    for _ in range(600):
        deep = {"type": "array", "items": deep}
    for call in (lambda: bounded(deep), lambda: schema_to_gbnf(deep), lambda: schema_to_gbnf(json.dumps(deep))):
        with pytest.raises(GrammarError, match="nests maps and arrays 601 deep; at most 128"):
            call()
    ok: dict[str, Any] = {"type": "integer"}
    for _ in range(100):
        ok = {"type": "array", "items": ok}
    assert schema_to_gbnf(bounded(ok))


# ------------------------------------------------------------- the default model


SUITE: list[tuple[str, dict[str, Any]]] = [
    ("Rate the movie Inception from 1 to 10 as JSON:",
     {"type": "object", "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 10}},
      "required": ["rating"]}),
    ("The temperature in Rome today, as JSON:",
     {"type": "object", "properties": {"celsius": {"type": "number", "minimum": -10, "maximum": 40}},
      "required": ["celsius"]}),
    ("A probability as JSON:",
     {"type": "object", "properties": {"p": {"type": "number", "minimum": 0, "exclusiveMaximum": 1}},
      "required": ["p"]}),
    ("How many legs does a spider have? JSON:",
     {"type": "object", "properties": {"legs": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 100}},
      "required": ["legs"]}),
    ("A year in the 20th century as JSON:",
     {"type": "object", "properties": {"year": {"type": "integer", "minimum": 1901, "maximum": 2000}},
      "required": ["year"]}),
    ("A price in dollars, a multiple of 5, as JSON:",
     {"type": "object", "properties": {"price": {"type": "integer", "minimum": 5, "maximum": 500, "multipleOf": 5}},
      "required": ["price"]}),
    ("A negative temperature as JSON:",
     {"type": "object", "properties": {"t": {"type": "integer", "maximum": -1}}, "required": ["t"]}),
    ("A person with a name and age as JSON:",
     {"type": "object", "properties": {"name": {"type": "string", "minLength": 2, "maxLength": 20},
                                       "age": {"type": "integer", "minimum": 0, "maximum": 120}},
      "required": ["name", "age"]}),
    ("Three colours as JSON:",
     {"type": "object", "properties": {"colors": {"type": "array", "items": {"type": "string", "maxLength": 12},
                                                  "minItems": 3, "maxItems": 3, "uniqueItems": True}},
      "required": ["colors"]}),
    ("Pick a fruit as JSON:",
     {"type": "object", "properties": {"fruit": {"enum": ["apple", "banana", "cherry"]}}, "required": ["fruit"]}),
    ("A constant as JSON:",
     {"type": "object", "properties": {"kind": {"const": "point"}, "x": {"type": "integer"}},
      "required": ["kind", "x"]}),
    ("Today's date as JSON:",
     {"type": "object", "properties": {"date": {"type": "string", "format": "date"}}, "required": ["date"]}),
    ("A meeting time as JSON:",
     {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}, "required": ["at"]}),
    ("An alarm time as JSON:",
     {"type": "object", "properties": {"time": {"type": "string", "format": "time"}}, "required": ["time"]}),
    ("A contact email as JSON:",
     {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}, "required": ["email"]}),
    ("A server address as JSON:",
     {"type": "object", "properties": {"ip": {"type": "string", "format": "ipv4"}}, "required": ["ip"]}),
    ("A website as JSON:",
     {"type": "object", "properties": {"url": {"type": "string", "format": "uri"}}, "required": ["url"]}),
    ("An id as JSON:",
     {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}}, "required": ["id"]}),
    ("A host name as JSON:",
     {"type": "object", "properties": {"host": {"type": "string", "format": "hostname"}}, "required": ["host"]}),
    ("A product code like AB-123 as JSON:",
     {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"}},
      "required": ["code"]}),
    ("A lowercase word as JSON:",
     {"type": "object", "properties": {"word": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 10}},
      "required": ["word"]}),
    ("A yes/no answer as JSON:",
     {"type": "object", "properties": {"answer": {"type": "boolean"}, "note": {"type": "null"}},
      "required": ["answer", "note"]}),
    ("A list of small numbers as JSON:",
     {"type": "object", "properties": {"nums": {"type": "array", "items": {"type": "integer", "minimum": 0,
                                                                          "maximum": 9}, "maxItems": 5}},
      "required": ["nums"]}),
    ("A point as JSON:",
     {"type": "object", "properties": {"point": {"type": "array", "prefixItems": [{"type": "number"},
                                                                                  {"type": "number"}]}},
      "required": ["point"]}),
    ("A nested address as JSON:",
     {"type": "object", "properties": {"address": {"type": "object", "properties": {
         "city": {"type": "string", "maxLength": 20}, "zip": {"type": "string", "pattern": "^\\d{5}$"}},
         "required": ["city", "zip"]}}, "required": ["address"]}),
    ("A value that may be missing, as JSON:",
     {"type": "object", "properties": {"v": {"type": ["integer", "null"], "minimum": 3, "maximum": 9}},
      "required": ["v"]}),
    ("Either a number or a word, as JSON:",
     {"type": "object", "properties": {"x": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 99},
                                                       {"type": "string", "maxLength": 8}]}},
      "required": ["x"]}),
    ("A tree node as JSON:",
     {"type": "object", "$defs": {"leaf": {"type": "object", "properties": {"v": {"type": "integer",
                                                                                 "minimum": 0, "maximum": 5}},
                                           "required": ["v"]}},
      "properties": {"left": {"$ref": "#/$defs/leaf"}, "right": {"$ref": "#/$defs/leaf"}},
      "required": ["left", "right"]}),
    ("A short title as JSON:",
     {"type": "object", "properties": {"title": {"type": "string", "minLength": 3, "maxLength": 15,
                                                 "description": "a title"}},
      "required": ["title"], "title": "Book"}),
    ("Any tags as JSON:",
     {"type": "object", "properties": {"tags": {"type": "array", "minItems": 1, "maxItems": 3}},
      "required": ["tags"]}),
    ("A score between -1 and 1 as JSON:",
     {"type": "object", "properties": {"score": {"type": "number", "minimum": -1, "maximum": 1}},
      "required": ["score"]}),
    ("A count of at least 1000 as JSON:",
     {"type": "object", "properties": {"count": {"type": "integer", "minimum": 1000}}, "required": ["count"]}),
    ("Settings as JSON:",
     {"type": "object", "properties": {"debug": {"type": "boolean"}, "level": {"type": "integer", "minimum": 0,
                                                                              "maximum": 3}},
      "required": ["debug"], "minProperties": 1, "maxProperties": 2}),
    ("An IPv6 address as JSON:",
     {"type": "object", "properties": {"ip": {"type": "string", "format": "ipv6"}}, "required": ["ip"]}),
]


@pytest.fixture(scope="module")
def gemma() -> Model:
    return Model("default", threads=2, n_ctx=1024, progress=False)


@pytest.mark.model
@pytest.mark.parametrize(("prompt", "schema"), SUITE, ids=[f"{i}" for i in range(len(SUITE))])
def test_default_model_output_satisfies_schema(gemma: Model, prompt: str, schema: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    value = g.generate_json(gemma, prompt, schema, 160)
    validator = jsonschema.Draft202012Validator
    validator(schema, format_checker=validator.FORMAT_CHECKER).validate(value)
    # the grammar alone already holds the value to the schema (the check is the backstop)
    assert to_gbnf(schema)


def test_suite_is_large_enough() -> None:
    assert len(SUITE) >= 30


@pytest.mark.parametrize(("prompt", "schema"), SUITE, ids=[f"{i}" for i in range(len(SUITE))])
def test_random_weights_cannot_break_the_grammar(tiny: Model, prompt: str, schema: dict[str, Any]) -> None:
    """Random weights sample anything the grammar allows: every output satisfies the
    schema, or breaks only a keyword the grammar cannot enforce and is reported by name."""
    from gene_jit.llama.schema import CHECKED, KEYWORDS

    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for seed in range(2):
        try:
            value = g.generate_json(tiny, prompt, schema, 400, temperature=1.0, seed=seed)
        except SchemaViolation as exc:
            keyword = exc.message.split(": ", 1)[1].split(" ", 1)[0]
            assert KEYWORDS.get(keyword) == CHECKED, exc.message
            continue
        validator.validate(value)
