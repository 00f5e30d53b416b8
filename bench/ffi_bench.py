"""Cost per call of a libc / libm function, in one run: a C loop (gcc), ctypes and cffi from
Python, the `ffi/defun` callable from a Python loop, and a hot Gene loop in tier 0 and
tier 1 (where those tiers are available). Prints ns per call and the ratio to C.
Tier 1 calls the symbol's address directly from the compiled loop (see
gene_jit/codegen/emit_ffi.py), so its row is the one to hold against the C loop.

    python bench/ffi_bench.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gene_jit import ffi  # noqa: E402

C_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
                          return t.tv_sec * 1e9 + t.tv_nsec; }
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    long acc = 0; double dacc = 0;
    double best_l = 1e30, best_c = 1e30;
    for (int rep = 0; rep < 7; rep++) {
        double t0 = now();
        for (long i = 0; i < n; i++) acc += labs(i - 7);
        double t1 = now();
        for (long i = 0; i < n; i++) dacc += cos((double)i);
        double t2 = now();
        if (t1 - t0 < best_l) best_l = t1 - t0;
        if (t2 - t1 < best_c) best_c = t2 - t1;
    }
    printf("%f %f %ld %f\n", best_l / n, best_c / n, acc, dacc);
    return 0;
}
"""


def c_loop(n: int) -> dict[str, float] | None:
    """ns per call from a C loop calling libc labs and libm cos through the PLT."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "loop.c"), os.path.join(tmp, "loop")
        with open(src, "w") as f:
            f.write(C_SOURCE)
        # -fno-builtin: real calls into libc/libm, as a foreign call is, not inlined code
        subprocess.run([gcc, "-O2", "-fno-builtin", src, "-o", exe, "-lm"], check=True)
        out = subprocess.run([exe, str(n)], check=True, capture_output=True, text=True).stdout
    labs_ns, cos_ns = (float(x) for x in out.split()[:2])
    return {"labs": labs_ns, "cos": cos_ns}


def interleaved_ns(loops: dict[str, Callable[[int], Any]], n: int, reps: int = 7) -> dict[str, float]:
    """Best ns per call of each loop; repetitions interleave the loops so that a busy
    machine slows them all alike instead of whichever ran during the busy spell."""
    for loop in loops.values():
        loop(min(n, 1000))  # warm up (and let a lazy tier compile)
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(reps):
        for key, loop in loops.items():
            t0 = time.perf_counter_ns()
            loop(n)
            best[key] = min(best[key], time.perf_counter_ns() - t0)
    return {key: ns / n for key, ns in best.items()}


def python_loops() -> dict[str, dict[str, Callable[[int], Any]]]:
    """Python loops around each binding; the loop body is the same for all of them."""

    def make(labs: Any, cos: Any) -> dict[str, Callable[[int], Any]]:
        def loop_labs(n: int) -> int:
            acc = 0
            for i in range(n):
                acc += labs(i - 7)
            return acc

        def loop_cos(n: int) -> float:
            acc = 0.0
            for i in range(n):
                acc += cos(float(i))
            return acc

        return {"labs": loop_labs, "cos": loop_cos}

    libc, libm = ctypes.CDLL(None), ctypes.CDLL(ffi.load("m").path)
    c_labs, c_cos = libc.labs, libm.cos
    c_labs.argtypes, c_labs.restype = [ctypes.c_long], ctypes.c_long
    c_cos.argtypes, c_cos.restype = [ctypes.c_double], ctypes.c_double
    loops = {"ctypes (Python)": make(c_labs, c_cos)}
    try:
        import cffi

        cf = cffi.FFI()
        cf.cdef("long labs(long); double cos(double);")
        cl = cf.dlopen(None)
        cm = cf.dlopen(ffi.load("m").path)
        loops["cffi ABI (Python)"] = make(cl.labs, cm.cos)
    except ImportError:
        pass
    g_labs = ffi.defun("labs", lib="c", returns="long", params=["long"])
    g_cos = ffi.defun("cos", lib="m", returns="double", params=["double"])
    loops["ffi/defun (Python loop)"] = make(g_labs, g_cos)
    return loops


GENE_SOURCE = """
(ffi/load "c")
(ffi/load "m")
(ffi/defun labs :lib "c" :symbol "labs" :returns :long :params [:long])
(ffi/defun cos :lib "m" :symbol "cos" :returns :double :params [:double])
(fn loop-labs [n]
  (var acc 0)
  (var i 0)
  (while (i < n)
    (acc = (acc + (labs (i - 7))))
    (i = (i + 1)))
  acc)
(fn loop-cos [n]
  (var acc 0.0)
  (var i 0)
  (while (i < n)
    (acc = (acc + (cos (i * 1.0))))
    (i = (i + 1)))
  acc)
[loop-labs loop-cos]
"""


def gene_loops(jit_mode: str) -> dict[str, Callable[[int], Any]] | str:
    """The Gene loops compiled with GENE_JIT=jit_mode, or why they are unavailable."""
    os.environ["GENE_JIT"] = jit_mode
    try:
        from gene_jit.api import eval_source

        fns = eval_source(GENE_SOURCE, f"<ffi_bench {jit_mode}>")
    except Exception as exc:  # noqa: BLE001 - the bench reports what is missing and goes on
        return f"unavailable ({type(exc).__name__}: {str(exc).splitlines()[0][:60]})"
    finally:
        os.environ.pop("GENE_JIT", None)
    return {"labs": fns[0], "cos": fns[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300_000)
    args = parser.parse_args()
    n = args.n
    # the same n (so cos sees the same argument range) before and after the other
    # loops, best of both: a busy spell then slows C no more than the rest
    c = c_loop(n)
    rows: list[tuple[str, dict[str, float] | str]] = []
    if c is not None:
        rows.append(("C loop (gcc -O2)", c))
    loops: dict[tuple[str, str], Callable[[int], Any]] = {}
    order: list[str] = []
    for name, pair in python_loops().items():
        order.append(name)
        loops.update({(name, fn): loop for fn, loop in pair.items()})
    unavailable: dict[str, str] = {}
    for label, mode in (("Gene tier 0", "0"), ("Gene tier 1", "eager")):
        order.append(label)
        gl = gene_loops(mode)
        if isinstance(gl, str):
            unavailable[label] = gl
        else:
            loops.update({(label, fn): loop for fn, loop in gl.items()})
    timed = interleaved_ns(loops, n)  # type: ignore[arg-type]
    c_after = c_loop(n)
    if c is not None and c_after is not None:
        c = {fn: min(c[fn], c_after[fn]) for fn in c}
        rows[0] = ("C loop (gcc -O2)", c)
    for name in order:
        if name in unavailable:
            rows.append((name, unavailable[name]))
        else:
            rows.append((name, {fn: timed[(name, fn)] for fn in ("labs", "cos")}))  # type: ignore[index]
    print(f"cost per call, ns (best of 7 interleaved runs, n={n}; ratio to the C loop)")
    print(f"{'':28}{'labs (libc)':>22}{'cos (libm)':>22}")
    for name, result in rows:
        if isinstance(result, str):
            print(f"{name:28}{result}")
            continue
        cells = []
        for fn in ("labs", "cos"):
            ratio = f"({result[fn] / c[fn]:.1f}x)" if c else ""
            cells.append(f"{result[fn]:12.1f} {ratio:>9}")
        print(f"{name:28}" + "".join(cells))


if __name__ == "__main__":
    main()
