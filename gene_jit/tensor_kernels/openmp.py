"""The OpenMP settings of the one libgomp that Numba's parallel kernels (its `omp`
threading layer) and libllama's CPU threads share in a process.

An idle member of a libgomp team spins at a barrier before it sleeps: 300000 turns by
default. On a busy machine a spinning member holds the core its partner needs: 30 greedy
tokens at 2 threads took 14-17 s, against 1.4 s with no spinning at all
(OMP_WAIT_POLICY=passive); but on a quiet machine passive threads sleep and wake at every
barrier and took 0.65 s where spinning took 0.34 s (1 thread: 0.37 s). A short spin of
1000 turns (what libgomp itself uses when it has more threads than cores) kept the quiet
0.34 s and took 2.5-2.8 s under that load (bench/llm_threads_bench.py,
bench/results/llm_bench_cpu.txt). libgomp reads these once, when it loads, so whichever
of the two loads it first sets them beforehand; a policy or a spin count the user set
(or `gene-jit serve`'s passive policy) is kept, as GOMP_SPINCOUNT would override it.
"""

from __future__ import annotations

import os

SPINCOUNT = "1000"


def set_defaults() -> None:
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
