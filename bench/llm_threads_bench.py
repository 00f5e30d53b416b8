"""libllama's OpenMP wait policy on a shared machine: 30 greedy tokens of
`generate-text` with 1 or 2 threads under several OpenMP settings, each run in a fresh
process (libgomp reads its settings once, when it loads), the settings taken in turn
round after round so that the load of the machine falls on all of them alike.

Each setting's environment is given explicitly; "library default" leaves the variables
unset, so the process gets what gene_jit.llama.bindings sets before libllama loads, and
"OMP spin (unset)" sets GOMP_SPINCOUNT to libgomp's own default, 300000, to measure the
spinning team as it was before the library chose a policy. Prints wall and CPU seconds of
the generation (model load excluded), best and median of the rounds, beside the load
average.

Usage: python bench/llm_threads_bench.py [--rounds 3] [--tokens 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys, time
sys.path.insert(0, {root!r})
import gene_jit
model = gene_jit.eval('(model/create "default" "gguf" :threads {threads})')
gen = gene_jit.eval('(fn [m] (generate-text m "Once upon a time" {tokens} :temperature 0))')
gen(model)  # warm: the first call pays for sampler and graph setup
w, c = time.perf_counter(), time.process_time()
text = gen(model)
print(time.perf_counter() - w, time.process_time() - c, repr(text[:40]))
"""

SETTINGS: list[tuple[str, dict[str, str]]] = [
    ("OMP spin (unset)", {"GOMP_SPINCOUNT": "300000"}),
    ("OMP_WAIT_POLICY=passive", {"OMP_WAIT_POLICY": "passive"}),
    ("GOMP_SPINCOUNT=1000", {"GOMP_SPINCOUNT": "1000"}),
    ("GOMP_SPINCOUNT=3000", {"GOMP_SPINCOUNT": "3000"}),
    ("GOMP_SPINCOUNT=10000", {"GOMP_SPINCOUNT": "10000"}),
    ("GOMP_SPINCOUNT=100000", {"GOMP_SPINCOUNT": "100000"}),
    ("library default", {}),
]


def run(env_extra: dict[str, str], threads: int, tokens: int) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    code = CHILD.format(root=str(ROOT), threads=threads, tokens=tokens)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=600)
    wall, cpu, _ = out.stdout.strip().splitlines()[-1].split(" ", 2)
    return float(wall), float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=30)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    args = ap.parse_args()
    cases = [(name, env, t) for t in args.threads for name, env in SETTINGS
             if t == 2 or name in ("OMP spin (unset)", "library default")]
    times: dict[int, list[tuple[float, float]]] = {i: [] for i in range(len(cases))}
    loads = []
    for r in range(args.rounds):
        order = list(range(len(cases)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            name, env, t = cases[i]
            loads.append(os.getloadavg()[0])
            times[i].append(run(env, t, args.tokens))
            print(f"round {r + 1} {name:24s} threads {t}: {times[i][-1][0]:6.2f} s wall "
                  f"{times[i][-1][1]:6.2f} s cpu   load {loads[-1]:.1f}", flush=True)
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.tokens} greedy tokens, "
          f"{args.rounds} alternating rounds, load average (1 min) {min(loads):.1f}-{max(loads):.1f} "
          f"on {os.cpu_count()} cores")
    for i, (name, _, t) in enumerate(cases):
        walls = sorted(w for w, _ in times[i])
        cpus = sorted(c for _, c in times[i])
        print(f"threads {t}  {name:24s} wall best {walls[0]:6.2f} s  median {statistics.median(walls):6.2f} s"
              f"   cpu median {statistics.median(cpus):5.2f} s")


if __name__ == "__main__":
    main()
