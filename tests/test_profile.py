"""`gene-jit profile`: exact call counts, tiers and reasons, loop trips, library time,
and the JSON, speedscope and flame-graph files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import jit_env, run_cli

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

(fn twice [f x] (f (f x)))

(var k 0)
(while (k < 3)
  (twice (fn [y] (y + 1)) k)
  (k = (k + 1)))
(println (fib 25))
(println (sum-to 1000))
"""


def fib_calls(n: int) -> int:
    return 1 if n < 2 else 1 + fib_calls(n - 1) + fib_calls(n - 2)


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "known.gene"
    path.write_text(PROGRAM)
    return path


def profile(path: Path, mode: str = "0"):  # type: ignore[no-untyped-def]
    import contextlib
    import io

    import gene_jit
    from gene_jit.profiler import Profiler

    out = io.StringIO()
    with (
        jit_env(mode),
        contextlib.redirect_stdout(out),
        Profiler(str(path), sample_interval=0.0005) as p,
    ):
        gene_jit.run_file(str(path))
    assert out.getvalue() == "75025\n499500\n"
    assert p.data is not None
    return p.data


def test_functions_calls_tiers_and_reasons(program: Path) -> None:
    data = profile(program)
    fib, sum_to, twice = data.function("fib"), data.function("sum-to"), data.function("twice")
    assert fib is not None and sum_to is not None and twice is not None
    assert fib.calls == fib_calls(25) == 242785
    assert (sum_to.calls, twice.calls) == (1, 3)
    anon = [f for f in data.functions if f.name.startswith("fn@")]
    assert [(f.name, f.calls) for f in anon] == [("fn@16", 6)]
    assert fib.line == 1 and sum_to.line == 4 and fib.file == str(program)
    for f in (fib, sum_to, twice):
        assert f.tier == 0
        assert f.reason is not None and "GENE_JIT=0" in f.reason
    assert fib.total_ms >= fib.self_ms > 0
    top = data.function("(top level)")
    assert top is not None and top.total_ms >= fib.total_ms


def test_loop_trip_counts(program: Path) -> None:
    data = profile(program)
    loops = {(lp.line, lp.function): (lp.kind, lp.trips) for lp in data.loops}
    assert loops[(7, "sum-to")] == ("while", 1000)
    assert loops[(15, "(top level)")] == ("while", 3)


def test_profiler_leaves_nothing_installed(program: Path) -> None:
    from gene_jit.frontend import compiler
    from gene_jit.runtime import tiering

    register = tiering.register
    profile(program)
    assert compiler.AST_HOOKS == []
    assert tiering.register is register


def test_speedscope_and_flamegraph(program: Path, tmp_path: Path) -> None:
    from gene_jit.profiler import export, flamegraph

    data = profile(program)
    doc = json.loads(json.dumps(export.speedscope(data)))
    assert doc["$schema"] == export.SPEEDSCOPE_SCHEMA
    frames = doc["shared"]["frames"]
    names = {f["name"] for f in frames}
    assert {"(top level)", "fib"} <= names
    assert names <= {"(top level)", "fib", "sum-to", "twice", "fn@16"}
    prof = doc["profiles"][0]
    assert prof["type"] == "sampled" and len(prof["samples"]) == len(prof["weights"]) > 0
    assert all(0 <= i < len(frames) for s in prof["samples"] for i in s)
    fib = next(i for i, f in enumerate(frames) if f["name"] == "fib")
    assert frames[fib]["line"] == 1
    assert any(s[-1] == fib for s in prof["samples"])

    svg = ET.fromstring(flamegraph.render(data))
    ns = {"svg": "http://www.w3.org/2000/svg"}
    boxes = svg.findall(".//svg:g[@class='frame']", ns)
    tree = flamegraph.build_tree(data)
    assert len(boxes) == flamegraph.count_frames(tree)
    titles = [b.find("svg:title", ns).text for b in boxes]  # type: ignore[union-attr]
    assert sum(t.startswith("fib ") for t in titles) == _count(tree, "fib")
    assert all(b.find("svg:rect", ns) is not None for b in boxes)


def _count(node, name: str) -> int:  # type: ignore[no-untyped-def]
    return (node.name == name) + sum(_count(c, name) for c in node.children.values())


def test_tensor_time_is_reported(tmp_path: Path) -> None:
    pytest.importorskip("numba")
    path = tmp_path / "t.gene"
    path.write_text(
        "(var a (tensor/ones [96 96]))\n(var i 0)\n(while (i < 300) (tensor/matmul a a) (i = (i + 1)))\n"
    )
    import gene_jit
    from gene_jit.profiler import Profiler

    with jit_env("0"), Profiler(str(path)) as p:
        gene_jit.run_file(str(path))
    assert p.data is not None
    libs = {lib.name: lib for lib in p.data.libraries}
    assert 0 < libs["tensor kernels"].ms <= p.data.wall_ms * 1.05
    assert [(lp.kind, lp.trips) for lp in p.data.loops] == [("while", 300)]


def test_cli_profile_writes_files(program: Path, tmp_path: Path) -> None:
    js, ss, svg = tmp_path / "p.json", tmp_path / "p.speedscope.json", tmp_path / "p.svg"
    r = run_cli(
        "profile",
        "--json",
        str(js),
        "--speedscope",
        str(ss),
        "--flamegraph",
        str(svg),
        "--sort",
        "calls",
        "--top",
        "2",
        str(program),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "75025\n499500\n"
    assert "fib" in r.stderr and "242,785" in r.stderr and "hot loops" in r.stderr
    report = json.loads(js.read_text())
    assert [(f["name"], f["calls"]) for f in report["functions"]] == [
        ("fib", 242785),
        ("(top level)", 7),
    ]
    assert json.loads(ss.read_text())["profiles"][0]["type"] == "sampled"
    ET.parse(svg)


def test_run_profile_shortcut_and_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gene"
    bad.write_text("(fn f [x] (x + nope))\n(f 1)\n")
    r = run_cli("run", "--profile", str(bad))
    assert r.returncode == 1
    assert "nope" in r.stderr and "bad.gene:1" in r.stderr
    assert "Traceback" not in r.stderr
    assert "calls" in r.stderr  # the profile of what ran is still printed
    r = run_cli("profile", "--top", "0", str(bad))
    assert r.returncode == 2 and "--top" in r.stderr
    r = run_cli("profile", str(tmp_path / "missing.gene"))
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_gene_profile_env_from_python(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    out = tmp_path / "auto.json"
    script = 'import gene_jit\nprint(gene_jit.eval("(fn f [n] (if (n < 2) n ((f (n - 1)) + (f (n - 2))))) (f 15)"))\n'
    env = {**os.environ, "GENE_JIT": "0", "GENE_PROFILE": str(out), "PYTHONPATH": str(REPO)}
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "610\n"
    calls = {f["name"]: f["calls"] for f in json.loads(out.read_text())["functions"]}
    assert calls["f"] == fib_calls(15)
