"""Tier-1 benchmark: gene-jit against gcc -O2 C, CPython and Numba @njit, same run.

Prints each kernel's time, its ratio to C, the entry cost of a trivial call from
Python, and compile latency per function (gene-jit's compile vs Numba's first call).
Run: python bench/jit_bench.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("GENE_JIT_CACHE", "0")  # measure compiles, not cache loads

sys.setrecursionlimit(10000)

C_SRC = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
/* the peers gcc -O2 compiles as it likes (it inlines fib's recursion into itself) */
long fib(long n){return n<2?n:fib(n-1)+fib(n-2);}
long iloop(long n){long s=0;for(long i=0;i<n;i++){s+=i%7;}return s;}
double floop(long n){double s=0;for(long i=0;i<n;i++){s+=i*0.5;}return s;}
long mandel(long w,long h,long maxit){long count=0;
 for(long y=0;y<h;y++)for(long x=0;x<w;x++){double cr=2.0*x/w-1.5,ci=2.0*y/h-1.0,zr=0,zi=0;long i=0;
  while(i<maxit&&zr*zr+zi*zi<4.0){double t=zr*zr-zi*zi+cr;zi=2.0*zr*zi+ci;zr=t;i++;}
  if(i==maxit)count++;}return count;}
/* shown beside plain -O2 only: one call per Gene-level call, as a naive compiler makes */
__attribute__((noinline,noclone)) long fib_noinline(long n){return n<2?n:fib_noinline(n-1)+fib_noinline(n-2);}
/* keep gcc from hoisting a pure call out of the timing loop or dropping its result */
#define OPAQUE(x) __asm__ volatile("" : "+r"(x) : : "memory")
int main(int argc,char**argv){long a=atol(argv[1]),b=atol(argv[2]),c=atol(argv[3]);double best=1e30,r=0;
 for(int k=0;k<3;k++){long x=a,y=b,z=c;OPAQUE(x);OPAQUE(y);OPAQUE(z);double t=now();
  switch(argv[4][0]){case 'f':r=fib(x);break;case 'n':r=fib_noinline(x);break;case 'i':r=iloop(x);break;
   case 'd':r=floop(x);break;case 'm':r=mandel(x,y,z);break;}
  OPAQUE(r);t=now()-t;if(t<best)best=t;}
 printf("%f %f\n",best,r);return 0;}
"""
GENE = {
    "fib": "(fn fib [n] (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))",
    "iloop": "(fn iloop [n] (var s 0) (for i in (range n) (s += (mod i 7))) s)",
    "floop": "(fn floop [n] (var s 0.0) (for i in (range n) (s += (i * 0.5))) s)",
    "mandel": """(fn mandel [w h maxit]
  (var count 0)
  (for y in (range h)
    (for x in (range w)
      (var cr ((2.0 * x / w) - 1.5))
      (var ci ((2.0 * y / h) - 1.0))
      (var zr 0.0) (var zi 0.0) (var i 0)
      (while ((i < maxit) && ((zr * zr + zi * zi) < 4.0))
        (var t (zr * zr - zi * zi + cr))
        (zi = (2.0 * zr * zi + ci))
        (zr = t)
        (i += 1))
      (if (i == maxit) (count += 1))))
  count)""",
    "ident": "(fn ident [x] x)",
}


def py_fib(n: int) -> int:
    return n if n < 2 else py_fib(n - 1) + py_fib(n - 2)


def py_iloop(n: int) -> int:
    s = 0
    for i in range(n):
        s += i % 7
    return s


def py_floop(n: int) -> float:
    s = 0.0
    for i in range(n):
        s += i * 0.5
    return s


def py_mandel(w: int, h: int, maxit: int) -> int:
    count = 0
    for y in range(h):
        for x in range(w):
            cr, ci = 2.0 * x / w - 1.5, 2.0 * y / h - 1.0
            zr = zi = 0.0
            i = 0
            while i < maxit and zr * zr + zi * zi < 4.0:
                zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
                i += 1
            if i == maxit:
                count += 1
    return count


def best_ms(fn: Callable[..., Any], args: tuple[Any, ...], reps: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        result = fn(*args)
        best = min(best, (time.perf_counter() - t) * 1e3)
    return best, result


def run_c(exe: str, kind: str, args: tuple[int, ...]) -> tuple[float, float]:
    a = [*map(str, args), "0", "0"][:3]
    out = subprocess.run([exe, *a, kind], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


FIRST_ARGS = {"fib": (2,), "iloop": (2,), "floop": (2,), "mandel": (2, 2, 2), "ident": (1,)}
C_KIND = {"fib": "f", "iloop": "i", "floop": "d", "mandel": "m"}


FIRST_CPU: dict[str, float] = {}  # CPU ms of the engine's start-up and of the first call


def compile_gene() -> tuple[dict[str, Any], dict[str, float], float, float]:
    """The Gene kernels, each compiled by its first call: compile ms per function, the
    first call's wall time, and the LLVM engine's start-up (the target machine, the JIT,
    the runtime module: made when the first jit object is), all in ms. The CPU time of
    the start-up and of the first call go to FIRST_CPU (steadier on a loaded machine)."""
    from gene_jit.codegen.engine import engine
    from gene_jit.jit import jit

    t, cpu = time.perf_counter(), time.process_time()
    engine()
    startup = (time.perf_counter() - t) * 1e3
    FIRST_CPU["startup"] = (time.process_time() - cpu) * 1e3
    gene = {k: jit(src) for k, src in GENE.items()}
    compile_ms: dict[str, float] = {}
    first_wall = 0.0
    for k, fn in gene.items():
        t, cpu = time.perf_counter(), time.process_time()
        fn(*FIRST_ARGS[k])
        if not first_wall:
            first_wall = (time.perf_counter() - t) * 1e3
            FIRST_CPU["first call"] = (time.process_time() - cpu) * 1e3
        compile_ms[k] = fn.stats.compile_ms
    return gene, compile_ms, first_wall, startup


def compile_numba() -> tuple[dict[str, Any], dict[str, float]]:
    try:
        import numba
    except ImportError:
        return {}, {}

    @numba.njit(cache=False)
    def nb_fib(n: int) -> int:
        return n if n < 2 else nb_fib(n - 1) + nb_fib(n - 2)

    fns: dict[str, Any] = {"fib": nb_fib, "iloop": numba.njit(py_iloop), "floop": numba.njit(py_floop),
                           "mandel": numba.njit(py_mandel), "ident": numba.njit(lambda x: x)}
    first: dict[str, float] = {}
    for k, fn in fns.items():
        t = time.perf_counter()
        fn(*FIRST_ARGS[k])  # Numba compiles at its first call; later calls are timed
        first[k] = (time.perf_counter() - t) * 1e3
    return fns, first


def compile_latency_before_after(reps: int) -> dict[str, dict[str, float]]:
    """Median compile ms per kernel, fresh functions each time, in this process: the
    previous compile path (every function's module holds its own entry trampoline,
    optimised with it) against the current one (one shared entry per signature). Wall
    time under "before"/"after", this process's CPU time under "before cpu"/"after cpu"
    (steadier where other work shares the machine)."""
    from gene_jit.codegen import compile as C
    from gene_jit.codegen import engine as E
    from gene_jit.jit import jit

    current = E.Engine.optimise

    def previous(self: Any, mod: Any, full: bool = True, plain: frozenset[str] = frozenset()) -> None:
        current(self, mod, full, frozenset())

    samples: dict[str, dict[str, list[float]]] = {m: {} for m in ("before", "after", "before cpu", "after cpu")}
    n = 0
    try:
        for _ in range(reps):
            for mode in ("before", "after"):
                C.SHARED_ENTRIES = mode == "after"
                E.Engine.optimise = current if mode == "after" else previous  # type: ignore[method-assign]
                for k, src in GENE.items():
                    n += 1
                    fn = jit(src.replace(f"fn {k} ", f"fn {k}{n} ").replace(f"({k} ", f"({k}{n} "))
                    cpu = time.process_time()
                    fn(*FIRST_ARGS[k])
                    samples[mode + " cpu"].setdefault(k, []).append((time.process_time() - cpu) * 1e3)
                    samples[mode].setdefault(k, []).append(fn.stats.compile_ms)
    finally:
        C.SHARED_ENTRIES = True
        E.Engine.optimise = current  # type: ignore[method-assign]
    return {mode: {k: statistics.median(v) for k, v in per.items()} for mode, per in samples.items()}


def fib_without_self_inlining(n: int) -> float:
    """fib(n) compiled with the self-inlining pass off, for comparison."""
    from gene_jit.ir.passes import selfinline
    from gene_jit.jit import jit

    levels = selfinline.MAX_LEVELS
    selfinline.MAX_LEVELS = 0
    try:
        fn = jit(GENE["fib"].replace("fib", "fib_plain"))
        fn(2)
    finally:
        selfinline.MAX_LEVELS = levels
    return best_ms(fn, (n,))[0]


def tier0_ratios(quick: bool) -> tuple[list[str], dict[str, float]]:
    """Run bench/tier0_bench.py (tier 0 only, in its own process): its lines and ratios."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tier0_bench.py")
    argv = [sys.executable, script, "--cases", "fib,loop"] + (["--fib", "20", "--loop", "200000"] if quick else [])
    out = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "GENE_JIT": "0"})
    lines = (out.stdout + out.stderr).strip().splitlines()
    ratios = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[0].startswith(("fib(", "loop")) and parts[-2].endswith("x"):
            ratios[" ".join(parts[:-4])] = float(parts[-2].rstrip("x"))
    return lines, ratios


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "MISSED"


def main() -> None:
    quick = "--quick" in sys.argv
    # bytecode as an installed package has it (pip compiles it at install), so that the
    # first compile is not timed compiling gene-jit's own modules from source
    import compileall

    import gene_jit

    compileall.compile_dir(os.path.dirname(gene_jit.__file__), quiet=1)
    cases = [("fib(30)", "fib", (30,), 1.0), ("fib(32)", "fib", (32,), 1.0),
             ("int loop 50M", "iloop", (50_000_000,), 0.02), ("float loop 50M", "floop", (50_000_000,), 0.02),
             ("mandelbrot 400x400x200", "mandel", (400, 400, 200), 0.1)]
    if quick:
        cases = [(n, k, tuple(max(1, a // 10) if a > 1000 else a for a in args), s) for n, k, args, s in cases]
    tmp = tempfile.mkdtemp()
    exe = os.path.join(tmp, "bench")
    with open(exe + ".c", "w") as f:
        f.write(C_SRC)
    subprocess.run(["gcc", "-O2", "-o", exe, exe + ".c"], check=True)
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]

    gene, compile_ms, first_wall, startup = compile_gene()
    numba_fns, numba_compile = compile_numba()
    py: dict[str, Callable[..., Any]] = {"fib": py_fib, "iloop": py_iloop, "floop": py_floop, "mandel": py_mandel}
    print(f"gene-jit tier 1 vs plain `gcc -O2` ({gcc}), CPython {sys.version.split()[0]} and Numba "
          f"(timed after its first call); best of 3, ms")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"{'benchmark':<24} {'C -O2':>9} {'gene-jit':>9} {'ratio':>6} {'Numba':>9} {'ratio':>6} {'CPython':>10} {'ratio':>7}")
    ratio_of: dict[str, float] = {}
    for name, k, args, py_scale in cases:
        c_ms, c_res = run_c(exe, C_KIND[k], args)
        g_ms, g_res = best_ms(gene[k], args)
        if float(g_res) != c_res:
            raise SystemExit(f"{name}: gene-jit gives {g_res}, C gives {c_res}")
        n_ms = best_ms(numba_fns[k], args)[0] if k in numba_fns else float("nan")
        # CPython runs a scaled-down size (1/scale of the work) and is scaled back up
        p_args = args if py_scale == 1.0 else tuple(
            int(a * py_scale) if a > 1000 else a for a in args) if k != "mandel" else (40, 400, 200)
        p_ms = best_ms(py[k], p_args, reps=1)[0] / (py_scale if k != "mandel" else 0.1)
        ratio_of[name] = g_ms / c_ms
        print(f"{name:<24} {c_ms:9.2f} {g_ms:9.2f} {g_ms / c_ms:6.2f} {n_ms:9.2f} {n_ms / c_ms:6.2f} "
              f"{p_ms:10.1f} {p_ms / c_ms:7.1f}")
        if k == "fib":
            ni_ms, _ = run_c(exe, "n", args)
            print(f"{'  (C noinline fib)':<24} {ni_ms:9.2f} {g_ms:9.2f} {g_ms / ni_ms:6.2f}"
                  f"   <- __attribute__((noinline)) C, for reference only")
            if name == "fib(32)":
                plain_ms = fib_without_self_inlining(args[0])
                print(f"{'  (no self-inlining)':<24} {c_ms:9.2f} {plain_ms:9.2f} {plain_ms / c_ms:6.2f}"
                      f"   <- gene-jit with the self-inline pass off")

    calls = 1_000_000 if quick else 10_000_000
    ident = gene["ident"]
    t = time.perf_counter()
    for _ in range(calls):
        ident(1)
    g_ns = (time.perf_counter() - t) / calls * 1e9
    t = time.perf_counter()
    for _ in range(calls):
        len("")
    len_ns = (time.perf_counter() - t) / calls * 1e9
    nb_ns = float("nan")
    if "ident" in numba_fns:
        nb_ident = numba_fns["ident"]
        t = time.perf_counter()
        for _ in range(calls):
            nb_ident(1)
        nb_ns = (time.perf_counter() - t) / calls * 1e9
    print(f"\ntrivial call x{calls:,} from Python (loop included): gene-jit {g_ns:.0f} ns, "
          f"Numba {nb_ns:.0f} ns, len('') {len_ns:.0f} ns")

    print("\ncompile latency per function (ms), each kernel's first compile in this process: gene-jit vs Numba")
    print("  (gene-jit's first function of a signature also compiles that signature's shared entry)")
    for i, k in enumerate(GENE):
        note = f"  (first; the LLVM engine's start-up before it: {startup:.1f})" if i == 0 else ""
        print(f"  {k:<8} gene-jit {compile_ms[k]:7.1f}   Numba {numba_compile.get(k, float('nan')):7.1f}{note}")
    median = statistics.median(compile_ms.values())
    print(f"  median   gene-jit {median:7.1f}   "
          f"Numba {statistics.median(numba_compile.values()) if numba_compile else float('nan'):7.1f}")
    print(f"  first call's wall time (IR build, compile, run): {first_wall:.1f} ms"
          f" (CPU {FIRST_CPU['first call']:.1f}; the start-up's CPU {FIRST_CPU['startup']:.1f})")
    ab = compile_latency_before_after(2 if quick else 5)
    print("\ncompile ms of fresh functions (engine started), median of 5: before (each function's")
    print("module holds its own entry, optimised with it, the previous path) -> after (shared")
    print("entries); wall time, and in brackets this process's CPU time")
    for k in [*GENE, "median"]:
        v = {m: ab[m][k] if k != "median" else statistics.median(ab[m].values()) for m in ab}
        print(f"  {k:<8} {v['before']:7.2f} ({v['before cpu']:6.2f}) -> {v['after']:6.2f} ({v['after cpu']:6.2f})")

    print("\ntier 0 (GENE_JIT=0) vs CPython, bench/tier0_bench.py:")
    t0_lines, t0 = tier0_ratios(quick)
    for line in t0_lines:
        print("  " + line)

    first = next(iter(GENE))
    print("\ntargets (this run):")
    rows = [("fib(32) vs gcc -O2", ratio_of["fib(32)"], 1.5, "x"),
            ("mandelbrot vs gcc -O2", ratio_of["mandelbrot 400x400x200"], 1.0, "x"),
            ("compile median, fresh functions", statistics.median(ab["after"].values()), 10.0, " ms"),
            ("compile median, first of each", median, 10.0, " ms"),
            ("first compile + LLVM start-up", compile_ms[first] + startup, 40.0, " ms")]
    rows += [(f"tier 0 {name} vs CPython", r, 1.5, "x") for name, r in t0.items()]
    for label, value, target, unit in rows:
        goal = f"{target:.1f}{unit}" if unit == "x" else f"{target:g}{unit}"
        print(f"  {label:<34} {value:7.2f}{unit:<3}  target <= {goal:<7} {verdict(value, target)}")


if __name__ == "__main__":
    main()
