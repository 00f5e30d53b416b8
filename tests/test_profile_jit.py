"""`gene-jit profile` with the JIT on: native functions with their signatures, compile
times and true call counts (from the native counters), tier-0 functions with the reason
the tier-1 type checker gives, native loop trips, disk-cache hits across processes,
library call counts, and `GENE_PROFILE=1` from `gene_jit.jit` code."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import REPO, env, jit_env, run_cli

PROGRAM = """\
(fn fib [n]
  (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))

(fn sum-to [n]
  (var total 0)
  (var i 0)
  (while (i < n)
    (total = (total + i))
    (i = (i + 1)))
  total)

(fn shout [s]
  (str s "!"))

(fn show [n]
  (var m (n * 2))
  (println "n =" m))

(fn sq [x] (x * x))

(println (shout "a"))
(println (shout "b"))
(show 3)
(show 4)
(println (sq 5))
(println (fib 20))
(println (sum-to 1000))
"""
OUTPUT = "a!\nb!\nn = 6\nn = 8\n25\n6765\n499500\n"
FIB20_CALLS = 21891


def profile(path: Path, mode: str):  # type: ignore[no-untyped-def]
    import gene_jit
    from gene_jit.profiler import Profiler

    out = io.StringIO()
    with (
        jit_env(mode),
        env(GENE_JIT_CACHE="0"),
        contextlib.redirect_stdout(out),
        Profiler(str(path), sample_interval=0.0005) as p,
    ):
        gene_jit.run_file(str(path))
    assert out.getvalue() == OUTPUT
    assert p.data is not None
    return p.data


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.gene"
    path.write_text(PROGRAM)
    return path


@pytest.mark.parametrize("mode", ["1", "eager"])
def test_native_function_and_tier0_reasons(program: Path, mode: str) -> None:
    data = profile(program, mode)
    fib = data.function("fib")
    assert fib is not None
    assert fib.tier == 1 and fib.signatures == ["(i64) -> i64"]
    assert fib.compile_ms > 0 and fib.cache_hits == 0 and fib.guard_misses == 0
    # recursive calls run inside native code: only its counters see them
    assert fib.calls == FIB20_CALLS and fib.native_calls >= FIB20_CALLS - 1

    shout = data.function("shout")
    assert shout is not None and shout.tier == 0 and shout.calls == 2
    assert shout.reason is not None and "`s` was a string" in shout.reason
    assert shout.reason_line == 12 and shout.reason_form == "(fn shout [s]"

    show = data.function("show")
    assert show is not None and show.tier == 0 and show.calls == 2
    assert show.reason is not None and "println" in show.reason
    assert show.reason_line == 17 and show.reason_form == '(println "n =" m))'

    sq = data.function("sq")
    assert sq is not None and sq.calls == 1
    if mode == "eager":
        assert sq.tier == 1 and sq.signatures == ["(i64) -> i64"]
    else:  # one call, below the threshold: the type checker says it would compile
        assert sq.tier == 0 and sq.reason is not None
        assert sq.reason.startswith("not hot: 1 call") and "(i64)" in sq.reason


@pytest.mark.parametrize("mode", ["1", "eager"])
def test_native_loop_trips(program: Path, mode: str) -> None:
    data = profile(program, mode)
    loops = {(lp.line, lp.function): lp for lp in data.loops}
    loop = loops[(7, "sum-to")]
    assert (loop.kind, loop.trips, loop.native_trips) == ("while", 1000, 1000)
    sum_to = data.function("sum-to")
    assert sum_to is not None and (sum_to.tier, sum_to.calls) == (1, 1)


def test_counts_are_per_profile(program: Path) -> None:
    """The tier-1 registry lives as long as the process; a second profile of the same
    functions reports only its own calls."""
    import gene_jit
    from gene_jit.profiler import Profiler

    with jit_env("eager"), env(GENE_JIT_CACHE="0"), contextlib.redirect_stdout(io.StringIO()):
        gene_jit.run_file(str(program))
        with Profiler(str(program)) as p:
            gene_jit.run_file(str(program))
    assert p.data is not None
    fib = p.data.function("fib")
    assert fib is not None and fib.calls == FIB20_CALLS


def test_disk_cache_hit_in_a_fresh_process(program: Path, tmp_path: Path) -> None:
    cache = {"GENE_JIT": "1", "GENE_JIT_CACHE": "1", "GENE_JIT_CACHE_DIR": str(tmp_path / "cache")}
    reports = []
    for run in (1, 2):
        js = tmp_path / f"run{run}.json"
        r = run_cli("profile", "--quiet", "--json", str(js), str(program), env=cache)
        assert r.returncode == 0, r.stderr
        assert r.stdout == OUTPUT
        reports.append({f["name"]: f for f in json.loads(js.read_text())["functions"]})
    first, second = reports
    assert (first["fib"]["tier"], first["fib"]["cache_hits"]) == (1, 0)
    assert (second["fib"]["tier"], second["fib"]["cache_hits"]) == (1, 1)
    # the cached counting code counts into this process's cells
    assert first["fib"]["calls"] == second["fib"]["calls"] == FIB20_CALLS
    loops = json.loads((tmp_path / "run2.json").read_text())["loops"]
    assert [(lp["line"], lp["native_trips"]) for lp in loops] == [(7, 1000)]


def test_table_shows_tiers_reasons_and_native_loops(program: Path) -> None:
    r = run_cli("profile", str(program), env={"GENE_JIT": "1", "GENE_JIT_CACHE": "0"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == OUTPUT
    assert "21,891" in r.stderr and "(i64) -> i64" not in r.stderr  # signatures: JSON only
    assert "was a string" in r.stderr and "at line 12: (fn shout [s]" in r.stderr
    assert "calls println" in r.stderr
    assert "hot loops (iterations in tier 0 and in native code)" in r.stderr


def test_gene_profile_from_jit_code(tmp_path: Path) -> None:
    script = (
        "import gene_jit\n"
        'fib = gene_jit.jit("(fn fib [n] (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))")\n'
        "print(fib(20), fib(15))\n"
    )
    env_ = {**os.environ, "GENE_JIT": "1", "GENE_JIT_CACHE": "0", "GENE_PROFILE": "1"}
    env_["PYTHONPATH"] = str(REPO)
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env_, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "6765 610\n"
    rows = [line for line in r.stderr.splitlines() if line.startswith("│ fib ")]
    assert len(rows) == 1, r.stderr
    cells = [c.strip() for c in rows[0].strip("│").split("│")]
    # name, where, calls, total, self, tier: every call ran natively
    assert cells[1] == "<jit fib>:1" and cells[2] == "23,864" and cells[5] == "1"


def test_library_call_counts(tmp_path: Path) -> None:
    pytest.importorskip("numba")
    path = tmp_path / "t.gene"
    path.write_text(
        "(var a (tensor/ones [32 32]))\n"
        "(fn step [a] (tensor/matmul a a))\n"
        "(var i 0)\n(while (i < 50) (step a) (i = (i + 1)))\n"
    )
    import gene_jit
    from gene_jit.profiler import Profiler

    with jit_env("1"), Profiler(str(path)) as p:
        gene_jit.run_file(str(path))
    assert p.data is not None
    libs = {lib.name: lib for lib in p.data.libraries}
    tensor = libs["tensor kernels"]
    calls = {c.name: c.calls for c in tensor.functions}
    # the first use in the process also imports the library: a row of its own
    loading = calls.pop("(loading the library)", 0)
    assert calls == {"tensor/matmul": 50, "tensor/ones": 1} and loading in (0, 1)
    assert tensor.calls == 51 + loading and 0 < tensor.ms <= p.data.wall_ms
    step = p.data.function("step")
    assert step is not None and step.calls == 50 and step.tier == 0
    # the namespace is back to plain members
    from gene_jit.runtime.registry import namespace

    assert type(namespace("tensor").members) is dict


def test_flamegraph_with_jit_frames(program: Path) -> None:
    from gene_jit.profiler import flamegraph

    data = profile(program, "1")
    svg = ET.fromstring(flamegraph.render(data))
    ns = {"svg": "http://www.w3.org/2000/svg"}
    titles = [g.find("svg:title", ns).text or "" for g in svg.findall(".//svg:g[@class='frame']", ns)]  # type: ignore[union-attr]
    assert len(titles) == flamegraph.count_frames(flamegraph.build_tree(data))
    assert any(t.startswith("fib ") for t in titles)


def test_batch_generate_tokens(tmp_path: Path) -> None:
    """batch-generate does not go through the one-prompt generator: its tokens and calls
    are counted too."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_model import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.gguf")
    path = tmp_path / "batch.gene"
    path.write_text(
        f'(var m (model/create "{model}" :threads 2))\n'
        '(var out (batch-generate m ["The cat" "Hello world"] 6 :temperature 0))\n'
        '(var fast (batch-generate m ["The cat" "Hello world"] 6 :temperature 0 :exact false))\n'
        "(println (len out) (len fast))\n"
    )
    import gene_jit
    from gene_jit.llama import batch
    from gene_jit.profiler import Profiler

    before = batch.GENERATED[0]
    out = io.StringIO()
    with jit_env("1"), contextlib.redirect_stdout(out), Profiler(str(path)) as p:
        gene_jit.run_file(str(path))
    assert out.getvalue() == "2 2\n"
    assert p.data is not None
    llama = {lib.name: lib for lib in p.data.libraries}["libllama"]
    calls = {c.name: c.calls for c in llama.functions}
    assert calls["batch-generate"] == 2 and calls["model/create"] == 1
    # the exact mode runs Generation (metered per step), the batched one counts GENERATED
    together = batch.GENERATED[0] - before
    assert 0 < together <= 12
    assert together < llama.tokens <= 24 and llama.tokens_per_s is not None


@pytest.mark.parametrize("mode", ["1", "eager"])
def test_functions_run_before_the_profile_are_not_reported(program: Path, tmp_path: Path, mode: str) -> None:
    """A function defined again (here in the same file, which also runs twice) leaves the
    registry, which keeps the latest definition; the calls of none of them before the
    profile show up in it."""
    import gene_jit

    earlier = tmp_path / "earlier.gene"
    earlier.write_text("(fn sq [x] (x * x))\n(for i in (range 4) (sq i))\n(fn sq [x] (x + x))\n")
    with jit_env("eager"), env(GENE_JIT_CACHE="0"):
        for _ in range(2):
            gene_jit.run_file(str(earlier))
    data = profile(program, mode)
    assert not [f for f in data.functions if f.file == str(earlier)]
    sq = data.function("sq")
    assert sq is not None and sq.file == str(program) and sq.calls == 1
