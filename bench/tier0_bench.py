"""Tier 0 against CPython: the same three programs in Gene (GENE_JIT=0) and in plain
Python, timed in the same run, best of N.

    python bench/tier0_bench.py [--fib 25] [--loop 1000000] [--appends 10000] [--repeat 7]
                                [--cases fib,loop,appends]

Sizes may also come from the environment (BENCH_FIB, BENCH_LOOP, BENCH_APPENDS,
BENCH_REPEAT). The target is tier 0 within 1.5x of CPython on fib and the loop (the
appends program builds strings through Gene's method calls, and has no target).
bench/jit_bench.py runs this script too and prints its ratios with its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Tier 0 only: set before gene_jit reads it.
os.environ["GENE_JIT"] = "0"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

TARGET_RATIO = 1.5

GENE_FIB = """
(fn fib [n]
  (if (n < 2)
    n
    ((fib (n - 1)) + (fib (n - 2)))))
"""
GENE_FIB_CALL = "(fib {n})"

GENE_LOOP = """
(fn loop-sum [n]
  (var i 0)
  (var acc 0)
  (while (i < n)
    (acc += i)
    (i += 1))
  acc)
"""
GENE_LOOP_CALL = "(loop-sum {n})"

GENE_APPENDS = """
(fn build [n]
  (var s "")
  (var i 0)
  (while (i < n)
    (s = (s .append "x"))
    (i += 1))
  (s .size))
"""
GENE_APPENDS_CALL = "(build {n})"


def py_fib(n: int) -> int:
    return n if n < 2 else py_fib(n - 1) + py_fib(n - 2)


def py_loop(n: int) -> int:
    i = 0
    acc = 0
    while i < n:
        acc += i
        i += 1
    return acc


def py_appends(n: int) -> int:
    s = ""
    i = 0
    while i < n:
        s = s + "x"
        i += 1
    return len(s)


def best_of(repeat: int, *fns: Callable[[], Any]) -> list[tuple[float, Any]]:
    """The best time and the result of each of `fns`, timed in alternating rounds (a
    burst of load on a shared machine then slows both sides, not one)."""
    best = [float("inf")] * len(fns)
    results: list[Any] = [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            results[i] = fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return list(zip(best, results, strict=True))


def gene_runner(definition: str, call: str, n: int) -> Callable[[], Any]:
    """Define the Gene function once (compiling is not timed), then time calls to it."""
    from gene_jit.frontend import compiler

    env = compiler.new_env("<bench>")
    compiler.run_source(definition, "<bench>", env)
    source = call.replace("{n}", str(n))
    return lambda: compiler.run_source(source, "<bench>", env)


def parse_args(argv: list[str]) -> argparse.Namespace:
    def env_int(name: str, default: int) -> int:
        return int(os.environ.get(name, default))

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fib", type=int, default=env_int("BENCH_FIB", 25))
    p.add_argument("--loop", type=int, default=env_int("BENCH_LOOP", 1_000_000))
    p.add_argument("--appends", type=int, default=env_int("BENCH_APPENDS", 10_000))
    p.add_argument("--repeat", type=int, default=env_int("BENCH_REPEAT", 7))
    p.add_argument("--cases", default="fib,loop,appends", help="which programs, comma-separated")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    known = {
        "fib": (f"fib({args.fib})", GENE_FIB, GENE_FIB_CALL, py_fib, args.fib),
        "loop": (f"loop {args.loop:,}", GENE_LOOP, GENE_LOOP_CALL, py_loop, args.loop),
        "appends": (f"appends {args.appends:,}", GENE_APPENDS, GENE_APPENDS_CALL, py_appends, args.appends),
    }
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in known]
    if unknown:
        print(f"unknown case {unknown[0]} (known: {', '.join(known)})", file=sys.stderr)
        return 2
    cases = [known[c] for c in wanted]
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(
        f"tier 0 (GENE_JIT=0) vs CPython {sys.version.split()[0]}, best of {args.repeat}"
        f" alternating rounds{load}"
    )
    print(
        f"{'program':<18}{'CPython s':>12}{'gene-jit s':>12}{'ratio':>8}  target <= {TARGET_RATIO}x"
    )
    worst = 0.0
    for name, definition, call, py_fn, n in cases:
        (py_time, py_result), (gene_time, gene_result) = best_of(
            args.repeat, lambda f=py_fn, n=n: f(n), gene_runner(definition, call, n)  # type: ignore[misc]
        )
        if gene_result != py_result:
            print(f"{name}: results differ: gene {gene_result!r} vs python {py_result!r}")
            return 1
        ratio = gene_time / py_time if py_time > 0 else float("inf")
        worst = max(worst, ratio)
        verdict = "-" if name.startswith("appends") else "ok" if ratio <= TARGET_RATIO else "SLOW"
        print(f"{name:<18}{py_time:>12.4f}{gene_time:>12.4f}{ratio:>7.2f}x  {verdict}")
    print(f"worst ratio {worst:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
