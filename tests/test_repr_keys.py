"""The repr of a map (a Gene map or a Python dict shown through gene_jit.repr) and of a
gene's properties reads back as the same value, whatever characters its keys hold."""

from __future__ import annotations

import random

import pytest

import gene_jit
from gene_jit.api import eval_source
from gene_jit.runtime.printer import prop_key, repr_

AWKWARD = ["a b", "", "!x", "x^y", "^x", 'q"q', "n\nl", "a,b", "a/b", "é", "#x", ":k", "a%b", "(x)",
           "[", "}", "a;b", "back\\slash", "tab\tx", "1", "-1", "1.5", "nil", "true", "^", "!", "\\"]


@pytest.mark.parametrize("key", AWKWARD)
def test_a_map_with_an_awkward_key_reads_back_the_same(key: str) -> None:
    value = {key: 1, "plain": [2, {key: "v"}]}
    text = gene_jit.repr(value)
    assert gene_jit.eval(text) == value, text


def test_random_keys_read_back() -> None:
    rng = random.Random(19)
    alphabet = 'ab \t\n,"%()[]{};\\^!#:/.-é'
    for _ in range(300):
        keys = {"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5))) for _ in range(3)}
        value = {k: i for i, k in enumerate(sorted(keys))}
        text = gene_jit.repr(value)
        assert gene_jit.eval(text) == value, text


def test_gene_props_read_back() -> None:
    text = repr_(eval_source(':(f ^a\\ b 1 ^"" 2 ^\\!x 3)'))
    assert text == '(f ^a\\ b 1 ^"" 2 ^\\!x 3)'
    assert repr_(eval_source(f":{text}")) == text


def test_plain_keys_print_as_before() -> None:
    for key in ("a", "top-k", "x?", "a/b", "$ns", "k1", "é"):
        assert prop_key(key) == key
    assert gene_jit.repr({"a": 1, "b-c": "x"}) == '{^a 1 ^b-c "x"}'
