"""The recursion depth limit: one Gene call depth limit (GENE_MAX_DEPTH, default 10,000)
in both tiers, past which a call is a Gene "stack overflow" error, never a signal, from
the CLI, the REPL and the Python API; and a fuzz over depths around and far above the
limit, with tier-0 and native frames mixed, each program in a subprocess."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest
from conftest import JIT_MODES, REPO, run_cli

DEEP = "(fn d [n] (if (n <= 0) 0 (1 + (d (n - 1)))))\n"


def _no_signal(proc: subprocess.CompletedProcess[str]) -> None:
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        pytest.fail(f"killed by {name}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}")


@pytest.mark.parametrize("mode", JIT_MODES)
def test_cli_deep_recursion_is_a_gene_error(tmp_path: os.PathLike[str], mode: str) -> None:
    path = os.path.join(tmp_path, "deep.gene")
    with open(path, "w") as f:
        f.write(DEEP + "(println (d 5) (d 5) (d 9999))\n(println (d 1000000))\n")
    proc = run_cli("run", path, env={"GENE_JIT": mode}, timeout=120)
    _no_signal(proc)
    assert proc.returncode == 1
    assert proc.stdout == "5 5 9999\n"
    assert "deep.gene:1:31: error: stack overflow" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("mode", JIT_MODES)
def test_endless_recursion_stops(tmp_path: os.PathLike[str], mode: str) -> None:
    path = os.path.join(tmp_path, "endless.gene")
    with open(path, "w") as f:
        f.write("(fn f [n] (f (n + 1)))\n(fn g [n] (g n))\n(f 0)\n")
    proc = run_cli("run", path, env={"GENE_JIT": mode}, timeout=120)
    _no_signal(proc)
    assert proc.returncode == 1 and "stack overflow" in proc.stderr


@pytest.mark.parametrize("mode", JIT_MODES)
def test_repl_survives_deep_recursion(mode: str) -> None:
    stdin = DEEP + "(d 1000000)\n(d 7)\n"
    proc = run_cli("repl", "--no-history", stdin=stdin, env={"GENE_JIT": mode}, timeout=120)
    _no_signal(proc)
    assert proc.returncode == 0
    assert "stack overflow" in proc.stderr
    assert proc.stdout.rstrip().endswith("7")


@pytest.mark.parametrize("mode", JIT_MODES)
def test_python_api_raises_a_gene_error(mode: str) -> None:
    code = textwrap.dedent(f"""
        import gene_jit
        from gene_jit.runtime.errors import GeneError
        try:
            gene_jit.eval({DEEP!r} + "(d 3) (d 3) (d 1000000)")
        except GeneError as err:
            print("caught:", err.message)
        print(gene_jit.eval({DEEP!r} + "(d 3) (d 3) (d 9999)"))
    """)
    env = dict(os.environ, GENE_JIT=mode, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=120)
    _no_signal(proc)
    assert proc.stdout == "caught: stack overflow (recursion too deep)\n9999\n", proc.stderr


@pytest.mark.parametrize("limit", [300, 50])
@pytest.mark.parametrize("mode", JIT_MODES)
def test_gene_max_depth_sets_the_limit(tmp_path: os.PathLike[str], mode: str, limit: int) -> None:
    """The limit counts Gene calls: `(d n)` makes n + 1 of them, so with a limit of 300
    `(d 299)` runs and `(d 300)` fails, whatever runs where; a small limit too (the first
    compile, with its deep imports, runs inside the compiler's own headroom)."""
    path = os.path.join(tmp_path, "limit.gene")
    with open(path, "w") as f:
        f.write(DEEP + f"(println (d 3) (d 3))\n(println (d {limit - 1}))\n(println (d {limit}))\n")
    proc = run_cli("run", path, env={"GENE_JIT": mode, "GENE_MAX_DEPTH": str(limit)}, timeout=120)
    _no_signal(proc)
    assert (proc.stdout, proc.returncode) == (f"3 3\n{limit - 1}\n", 1)
    assert "stack overflow" in proc.stderr


@pytest.mark.parametrize(("value", "message"), [
    ("200000", "error: GENE_MAX_DEPTH 200000 is above the most this stack allows (50000)"),
    ("abc", "error: GENE_MAX_DEPTH must be a whole number from 1 to 50000, got 'abc'"),
    ("-5", "error: GENE_MAX_DEPTH must be a whole number from 1 to 50000, got '-5'"),
    ("0", "error: GENE_MAX_DEPTH must be a whole number from 1 to 50000, got '0'"),
])
def test_a_gene_max_depth_that_cannot_hold_is_an_error(tmp_path: os.PathLike[str], value: str,
                                                       message: str) -> None:
    """A limit above what the stack is sized for, or no limit at all, is said before
    the program runs, never taken as another limit."""
    path = os.path.join(tmp_path, "limit.gene")
    with open(path, "w") as f:
        f.write('(println "ran")\n')
    for mode in JIT_MODES:
        proc = run_cli("run", path, env={"GENE_JIT": mode, "GENE_MAX_DEPTH": value})
        assert (proc.stdout, proc.stderr, proc.returncode) == ("", message + "\n", 1)


METHODS = """
(class C
  (.fn down [n] (if (n <= 0) 0 (1 + (self .down (n - 1)))))
  (.fn up [n] (if (n <= 0) 0 (1 + (.up (n - 1))))))
(fn f [n] (if (n <= 0) 0 (1 + (f (n - 1)))))
(var c (new C))
(var r [])
(for k in [100 297 298 299 300]
  (r .add (try (f k) catch * "so"))
  (r .add (try (c .down k) catch * "so"))
  (r .add (try (c .up k) catch * "so")))
(println r)
"""


@pytest.mark.parametrize("mode", JIT_MODES)
def test_methods_and_functions_share_one_depth_limit(tmp_path: os.PathLike[str], mode: str) -> None:
    """A method calling itself (through an instance or `self`) reaches the depth where a
    function calling itself stops, no sooner."""
    path = os.path.join(tmp_path, "methods.gene")
    with open(path, "w") as f:
        f.write(METHODS)
    proc = run_cli("run", path, env={"GENE_JIT": mode, "GENE_MAX_DEPTH": "300"}, timeout=120)
    _no_signal(proc)
    assert proc.stdout == "[100 100 100 297 297 297 298 298 298 299 299 299 so so so]\n", proc.stderr


# A self call whose argument (an operator form) is where tier 0 runs out of stack; a call
# inside a `var`; mutual recursion; a method.
OVERFLOWS = {
    "(fn f [n] (f (n + 1)))\n(f 0)\n": "1:11",
    "(fn g [n] (var x (g (n + 1))) x)\n(g 0)\n": "1:18",
    "(fn a [n] (if (n < 0) 0 (b (n + 1))))\n(fn b [n] (var r (a (n + 1))) (r + 1))\n(println (a 0))\n": "2:18",
    "(class K (.fn m [n] ((self .m (n * 1)) + 1)))\n((new K) .m 1)\n": "1:22",
}


@pytest.mark.parametrize("source", list(OVERFLOWS), ids=["self", "var", "mutual", "method"])
def test_stack_overflow_is_reported_at_the_call_in_every_tier(tmp_path: os.PathLike[str], source: str) -> None:
    path = os.path.join(tmp_path, "over.gene")
    with open(path, "w") as f:
        f.write(source)
    for mode in JIT_MODES:
        proc = run_cli("run", path, env={"GENE_JIT": mode}, timeout=120)
        _no_signal(proc)
        first = proc.stderr.splitlines()[0]
        assert (first, proc.returncode) == (f"{path}:{OVERFLOWS[source]}: error: stack overflow (recursion too deep)", 1), mode


# -- fuzz ------------------------------------------------------------------------------

FUZZ_PRELUDE = """
(fn d [n] (if (n <= 0) 0 (1 + (d (n - 1)))))
(fn ev [n] (if (n == 0) 0 (1 + (od (n - 1)))))
(fn od [n] (if (n == 0) 0 (1 + (ev (n - 1)))))
(fn mixed [n m] (var tag "tier 0") (if (n <= 0) (d m) (1 + (mixed (n - 1) m))))
(fn b [x n] (if (n <= 0) 0 (1 + (c x (n - 1)))))
(fn c [x n] (b x n))
(fn probe [f] (try (f) catch * -1))
(println (d 3) (d 3) (ev 4) (ev 4) (b 1 3) (b 1 3) (mixed 2 2) (mixed 2 2))
"""
WARM = "3 3 4 4 3 3 4 4"


@dataclass(frozen=True)
class Probe:
    """One deep call, made through `probe` and a block (two Gene calls more): `calls`
    Gene calls at its deepest, `value` its result if it fits. `slack` is how many calls
    past the limit a mode may still run: 1 where tier 0 enters native code (a
    specialised call site does not count the call of the entry). `cost` bounds how
    many units of the budget one call may take: calls that miss a native entry's guard
    and go back to tier 0 (`b` with a string) also count the C-level calls between."""

    code: str
    calls: int
    value: int
    slack: int = 0
    cost: int = 1


def _probes(r: random.Random, limit: int) -> list[Probe]:
    out = []
    depths = {limit // 5, limit - 2, limit - 1, limit, limit + 1, limit + 2,
              limit + r.randrange(3, 40), 2 * limit, r.randrange(3, 30) * limit}
    for total in sorted(depths):
        n = total - 3  # probe, the block, then (d n): n + 1 calls
        out.append(Probe(f"(d {n})", total, n))
        out.append(Probe(f"(ev {n})", total, n))
        k = r.randrange(0, n)  # tier-0 frames under native ones
        out.append(Probe(f"(mixed {k} {n - k - 1})", total, n - 1, slack=1))
        half = (total - 3) // 2  # (b x h): 2h + 1 calls
        out.append(Probe(f'(b "s" {half})', 2 * half + 3, half, slack=1, cost=4))
    return out


def _expect_ok(p: Probe, limit: int) -> bool | None:
    """True: must run; False: must overflow; None: either (within a mode's slack)."""
    if p.calls * p.cost <= limit:
        return True
    if p.calls > limit + p.slack:
        return False
    return None if p.calls > limit or p.cost > 1 else True


def _run_fuzz_case(seed: int) -> None:
    r = random.Random(seed)
    limit = r.randrange(200, 4000)
    probes = _probes(r, limit)
    text = FUZZ_PRELUDE + "".join(f"(println (probe (fnx [] {p.code})))\n" for p in probes)
    outputs = {}
    for mode in JIT_MODES:
        env = dict(os.environ, GENE_JIT=mode, GENE_MAX_DEPTH=str(limit), PYTHONPATH=str(REPO))
        env.pop("GENE_DEBUG", None)
        proc = subprocess.run([sys.executable, "-m", "gene_jit", "eval", text], capture_output=True,
                              text=True, cwd=REPO, env=env, timeout=300)
        _no_signal(proc)
        assert proc.returncode == 0, f"seed {seed} mode {mode}: {proc.stderr[-3000:]}"
        lines = proc.stdout.splitlines()
        assert lines[0] == WARM and len(lines) == len(probes) + 2, proc.stdout
        outputs[mode] = lines[1:-1]
        for p, line in zip(probes, outputs[mode], strict=True):
            ok = _expect_ok(p, limit)
            where = f"seed {seed}, limit {limit}, mode {mode}: {p.code} ({p.calls} calls)"
            assert line in (str(p.value), "-1"), f"{where} gave {line}"
            if ok is not None:
                assert (line == str(p.value)) == ok, f"{where} gave {line}"
    for k, p in enumerate(probes):  # where no slack applies the modes agree exactly
        if p.slack == 0:
            assert len({outputs[m][k] for m in JIT_MODES}) == 1, (seed, p)


@pytest.mark.parametrize("seed", range(2))
def test_depth_fuzz(seed: int) -> None:
    _run_fuzz_case(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 2 + int(os.environ.get("GENE_DEPTH_FUZZ", "0"))))
def test_depth_fuzz_slow(seed: int) -> None:
    """`GENE_DEPTH_FUZZ=N` runs N more programs."""
    _run_fuzz_case(seed)
