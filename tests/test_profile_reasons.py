"""The reason `gene-jit profile` gives for a function left in tier 0 is true of the calls
it saw: a function that became hot at a call tier 1 could not take (a string, nil) says
so, rather than that it was not hot yet."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from tests.conftest import env, jit_env

pytest.importorskip("llvmlite")


def threshold(n: int) -> contextlib.AbstractContextManager[None]:
    return env(GENE_JIT_THRESHOLD=str(n), GENE_JIT_CACHE="0")


def reason_of(tmp_path: Path, source: str, name: str, hot: int = 2) -> str:
    import gene_jit
    from gene_jit.profiler import Profiler

    path = tmp_path / "prog.gene"
    path.write_text(source)
    with threshold(hot), jit_env("1"), contextlib.redirect_stdout(io.StringIO()), \
            Profiler(str(path), sample_interval=0.0005) as p:
        gene_jit.run_file(str(path))
    assert p.data is not None
    fn = p.data.function(name)
    assert fn is not None and fn.tier == 0 and fn.reason is not None
    return fn.reason


@pytest.mark.parametrize(("hot_call", "kind"), [('"a"', "a string"), ("nil", "nil"), ("[1]", "an array")])
def test_a_hot_call_tier_1_cannot_take_is_the_reason(tmp_path: Path, hot_call: str, kind: str) -> None:
    source = f'(fn f [x] (x + 1))\n(println (f 1))\n(println (try (f {hot_call}) catch * "failed"))\n'
    reason = reason_of(tmp_path, source, "f")
    assert "not hot" not in reason and f"`x` was {kind}" in reason, reason


def test_below_the_threshold_it_is_not_hot(tmp_path: Path) -> None:
    reason = reason_of(tmp_path, '(fn f [x] (x + 1))\n(println (f 1))\n', "f", hot=5)
    assert reason.startswith("not hot: 1 call, compiles at call 5"), reason
