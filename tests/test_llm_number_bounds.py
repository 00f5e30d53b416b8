"""Number bounds with fractions (minimum 0.5) are kept by the grammar, not only checked
after generation: a sampled generate-json never breaks them, and the grammar admits a
decimal exactly when it lies within the bounds (except a fraction with both bounds in
one integer part, which the check after generation settles)."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import pytest

from gene_jit.llama.schema import _number_rule


def as_regex(gbnf: str) -> re.Pattern[str]:
    """The rule as a Python regex: it uses only literals, classes, groups, ? and {m,n}."""
    return re.compile(re.sub(r'"((?:[^"\\]|\\.)*)"', lambda m: re.escape(m.group(1)), gbnf).replace(" ", ""))


def test_the_grammar_admits_exactly_the_numbers_within_the_bounds() -> None:
    rng = random.Random(9)
    checked = 0
    for _ in range(400):
        lo = round(rng.uniform(-30, 30), rng.randint(0, 3))
        hi = round(lo + rng.uniform(0, 20), rng.randint(0, 3))
        lo_x, hi_x = rng.random() < 0.3, rng.random() < 0.3
        if hi < lo or (lo_x or hi_x) and hi == lo:
            continue
        schema = {"exclusiveMinimum" if lo_x else "minimum": lo, "exclusiveMaximum" if hi_x else "maximum": hi}
        rule = as_regex(_number_rule(schema))
        one_unit = math.floor(lo) == math.floor(hi)
        for _ in range(200):
            text = f"{rng.uniform(lo - 3, hi + 3):.{rng.randint(0, 4)}f}"
            text = text.rstrip("0").rstrip(".") if "." in text else text
            if text in ("-0", ""):
                continue
            x = float(text)
            inside = (x > lo if lo_x else x >= lo) and (x < hi if hi_x else x <= hi)
            admitted = rule.fullmatch(text) is not None
            assert admitted == inside or admitted and one_unit, (schema, text, admitted)
            checked += 1
    assert checked > 50_000


def test_the_reported_case(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from tiny_model import write_tiny_model

    from gene_jit.llama import gene_api as g
    from gene_jit.llama.model import Model

    m = Model(str(write_tiny_model(tmp_path / "t.gguf")), n_ctx=256, threads=1, progress=False)
    schema = {"type": "object", "properties": {"score": {"type": "number", "minimum": 0.5, "maximum": 1.5},
                                                "t": {"type": "number", "exclusiveMinimum": -2.25,
                                                      "exclusiveMaximum": 3.75}},
              "required": ["score", "t"]}
    try:
        for seed in range(1, 13):
            value = g.generate_json(m, "Data:", schema, 80, temperature=1.0, seed=seed)
            assert 0.5 <= value["score"] <= 1.5 and -2.25 < value["t"] < 3.75, value
    finally:
        m.close()
