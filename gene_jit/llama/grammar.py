"""Constrained generation inputs: GBNF grammars, and JSON schemas converted to GBNF
(gene_jit.llama.schema: every keyword is enforced by the grammar, checked after
generation, or refused before it).

Grammars are checked by libllama when the sampler is built (a grammar that does not parse
is a Gene error there); this module checks the Gene-level shapes and converts schemas.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from gene_jit.llama.errors import GrammarError
from gene_jit.runtime.values import Symbol


def _plain(value: Any) -> Any:
    """A Gene value as plain JSON data (symbols become their names)."""
    if isinstance(value, Symbol):
        return value.name
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def schema_to_gbnf(schema: Any) -> str:
    """GBNF text for a JSON schema given as a Gene map or as JSON text."""
    if isinstance(schema, str):
        try:
            schema_obj = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise GrammarError(f"the JSON schema is not valid JSON: {exc}") from exc
        except RecursionError:
            raise GrammarError("the JSON schema nests too deeply to read") from None
    elif isinstance(schema, Mapping):
        from gene_jit.llama.schema import check_nesting

        check_nesting(schema)  # before anything follows it down
        schema_obj = _plain(schema)
    else:
        raise GrammarError(f"a JSON schema must be a map or JSON text, got {type(schema).__name__}")
    if not isinstance(schema_obj, dict):
        raise GrammarError("a JSON schema must be an object")
    from gene_jit.llama.schema import check_keywords, check_nesting, to_gbnf

    check_nesting(schema_obj)
    check_keywords(schema_obj)
    return end_at_value(to_gbnf(schema_obj))


# Whitespace rules: JSON grammars let whitespace follow every value, the whole document's
# too, so a model could end its output with a space or a newline.
_SPACE_RULES = ("space", "ws")
_RULE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def end_at_value(gbnf: str) -> str:
    """`gbnf` with its root rule ending where the JSON value ends: whitespace that
    ends an alternative of the root (or of a rule the root ends with, inlined there)
    is dropped; whitespace inside the value stays."""
    lines = gbnf.splitlines()
    rules = {}
    for line in lines:
        name, sep, body = line.partition(" ::= ")
        if sep and _RULE_NAME.fullmatch(name):
            rules[name] = body
    if "root" not in rules:
        return gbnf
    root = _trim_tail(rules["root"], rules, {"root"})
    return "\n".join(f"root ::= {root}" if line.startswith("root ::= ") else line for line in lines)


def _trim_tail(body: str, rules: dict[str, str], seen: set[str]) -> str:
    return " | ".join(_trim_alternative(alt.strip(), rules, seen) for alt in _top_level(body, "|"))


def _trim_alternative(alt: str, rules: dict[str, str], seen: set[str]) -> str:
    items = _top_level(alt, " ")
    last = items[-1] if items else ""
    head = " ".join(items[:-1])
    if last in _SPACE_RULES and head:
        return head
    if last in rules and last not in seen:
        body = rules[last]
        trimmed = _trim_tail(body, rules, seen | {last})
        if trimmed != body:
            return f"{head} ({trimmed})".strip()
    elif last.startswith("(") and last.endswith(")") and len(_top_level(last, " ")) == 1:
        inner = last[1:-1]
        trimmed = _trim_tail(inner, rules, seen)
        if trimmed != inner:
            return f"{head} ({trimmed})".strip()
    return alt


def _top_level(text: str, sep: str) -> list[str]:
    """`text` split at `sep` outside string literals, character classes and groups."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c in "\"[":
            close = "\"" if c == "\"" else "]"
            i += 1
            while i < len(text) and text[i] != close:
                i += 2 if text[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p for p in (p.strip() for p in parts) if p]


# Any JSON object, with bounds that make every output end (the seed's `json-grammar`):
# at most 8 members per object and 8 items per array, strings of at most 100 characters.
# Unbounded, a small model repeats a key or stays inside a string until the token budget
# runs out, and the output is cut JSON. The root is an object with no whitespace after it.
JSON_GRAMMAR = r"""
root   ::= "{" ws ( member ( "," ws member ){0,7} )? "}"
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( member ( "," ws member ){0,7} )? "}" ws
member ::= string ":" ws value
array  ::= "[" ws ( value ( "," ws value ){0,7} )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) ){0,100} "\"" ws
number ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})? ws
ws     ::= | " " | "\n" [ \t]{0,20}
"""


def json_grammar() -> str:
    """A GBNF grammar for any JSON object, bounded so that generation ends."""
    return JSON_GRAMMAR


def grammar_text(grammar: Any) -> str:
    """The GBNF text of a `:grammar` argument (text, or a map taken as a JSON schema)."""
    if isinstance(grammar, str):
        if not grammar.strip():
            raise GrammarError("the grammar is empty")
        return grammar
    if isinstance(grammar, Mapping):
        return schema_to_gbnf(grammar)
    raise GrammarError(f"a grammar must be GBNF text, got {type(grammar).__name__}")


def check_against_schema(value: Any, schema: Mapping[str, Any]) -> None:
    """Check generated JSON against every keyword of its schema (the grammar enforces most
    of them already); a breach is a Gene error naming the keyword and the value."""
    from gene_jit.llama.schema_check import validate

    validate(value, schema)
