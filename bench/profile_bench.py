"""Profiler overhead: a call-heavy program (recursive fib) and a loop-heavy one, run
plain and under the profiler in the same process; prints times and the ratio (the target
is at most 2x). Also checks that a plain run after profiling is back to its old speed.

    python bench/profile_bench.py [fib-n] [loop-n] [repeats]
    GENE_JIT=0 python bench/profile_bench.py 25 1000000       # tier 0 only
    GENE_JIT=1 python bench/profile_bench.py 30 10000000      # native code (counting variants)
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time

import gene_jit
from gene_jit.profiler import Profiler

PROGRAMS = {
    "fib": "(fn fib [n] (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))\n(fib {n})\n",
    "loop": "(fn sum-to [n] (var t 0) (var i 0) (while (i < n) (t = (t + i)) (i = (i + 1))) t)\n(sum-to {n})\n",
}


def timed(path: str, profiled: bool) -> float:
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        if profiled:
            with Profiler(path):
                gene_jit.run_file(path)
        else:
            gene_jit.run_file(path)
    return time.perf_counter() - t0


def main() -> None:
    sizes = {"fib": int(sys.argv[1]) if len(sys.argv) > 1 else 25,
             "loop": int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000}
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    print(f"GENE_JIT={os.environ.get('GENE_JIT', '1')}, best of {repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, src in PROGRAMS.items():
            path = os.path.join(tmp, f"{name}.gene")
            with open(path, "w") as f:
                f.write(src.format(n=sizes[name]))
            timed(path, False)  # warm: imports, caches
            plain, prof, after = [], [], []
            for _ in range(repeats):  # interleaved, so load changes hit both alike
                plain.append(timed(path, False))
                prof.append(timed(path, True))
                after.append(timed(path, False))
            p, q, a = min(plain), min(prof), min(after)
            print(f"{name:5} n={sizes[name]:<8} plain {p * 1e3:8.1f} ms  profiled {q * 1e3:8.1f} ms  "
                  f"ratio {q / p:4.2f}x   plain after profiling {a * 1e3:8.1f} ms ({a / p:4.2f}x)")


if __name__ == "__main__":
    main()
