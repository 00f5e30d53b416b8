"""Cost of calling Python from Gene, in one run: the same loop calling the same Python
function from plain Python, from Hy (when installed), and from Gene in tier 0 and with
tier 1 on (which leaves calls into Python to tier 0); then the overhead of an ONNX
Runtime session run from Gene (`model/forward`) against Python's `session.run`.

Each loop makes 8 nested calls an iteration and is timed against the same loop without
them, so the table shows the loop per iteration and the cost of one call. Rounds alternate
between the loops; the best of them counts. The load average is printed beside.

    python bench/pybridge_bench.py [--n 200000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

TARGET = "lambda x: x + 1"  # a Python function defined in Python, not a C builtin

CALLS = 8  # calls per loop iteration, nested, so that the loop's own cost is shared

GENE_SOURCE = f"""
(var f (py/eval "{TARGET}"))
(var operator (py/import "operator"))
(fn call-loop [n]
  (var acc 0) (var i 0)
  (while (i < n) (acc = (f (f (f (f (f (f (f (f acc))))))))) (i = (i + 1)))
  acc)
(fn path-loop [n]
  (var acc 0) (var i 0)
  (while (i < n) (acc = (operator/add (operator/add (operator/add (operator/add (operator/add (operator/add (operator/add (operator/add acc 1) 1) 1) 1) 1) 1) 1) 1)) (i = (i + 1)))
  acc)
(fn empty-loop [n]
  (var acc 0) (var i 0)
  (while (i < n) (acc = (acc + 8)) (i = (i + 1)))
  acc)
[call-loop path-loop empty-loop f]
"""

HY_SOURCE = """
(import operator)
(defn call-loop [f n]
  (setv acc 0 i 0)
  (while (< i n) (setv acc (f (f (f (f (f (f (f (f acc))))))))) (setv i (+ i 1)))
  acc)
(defn path-loop [n]
  (setv acc 0 i 0)
  (while (< i n) (setv acc (operator.add (operator.add (operator.add (operator.add (operator.add (operator.add (operator.add (operator.add acc 1) 1) 1) 1) 1) 1) 1) 1)) (setv i (+ i 1)))
  acc)
(defn empty-loop [n]
  (setv acc 0 i 0)
  (while (< i n) (setv acc (+ acc 8)) (setv i (+ i 1)))
  acc)
"""


def python_loops(f: Callable[[int], int]) -> dict[str, Callable[[int], Any]]:
    import operator

    def call_loop(n: int) -> int:
        acc = 0
        i = 0
        while i < n:
            acc = f(f(f(f(f(f(f(f(acc))))))))
            i = i + 1
        return acc

    def path_loop(n: int) -> int:
        acc = 0
        i = 0
        while i < n:
            acc = operator.add(operator.add(operator.add(operator.add(operator.add(operator.add(operator.add(operator.add(acc, 1), 1), 1), 1), 1), 1), 1), 1)
            i = i + 1
        return acc

    def empty_loop(n: int) -> int:
        acc = 0
        i = 0
        while i < n:
            acc = acc + 8
            i = i + 1
        return acc

    return {"call": call_loop, "path": path_loop, "empty": empty_loop}


def gene_loops(mode: str) -> tuple[dict[str, Callable[[int], Any]], Any]:
    os.environ["GENE_JIT"] = mode
    try:
        from gene_jit.api import eval_source

        call, path, empty, f = eval_source(GENE_SOURCE, f"<pybridge_bench {mode}>")
    finally:
        os.environ.pop("GENE_JIT", None)
    return {"call": call, "path": path, "empty": empty}, f


def hy_loops(f: Callable[[int], int]) -> dict[str, Callable[[int], Any]] | str:
    try:
        import hy
    except ImportError:
        return "unavailable (pip install hy)"
    env: dict[str, Any] = {}
    hy.eval(hy.read_many(HY_SOURCE), env)
    call = env["call_loop"]
    return {"call": lambda n: call(f, n), "path": env["path_loop"], "empty": env["empty_loop"]}


def best_ns(loops: dict[Any, Callable[[int], Any]], n: int, rounds: int) -> dict[Any, float]:
    for loop in loops.values():
        loop(min(n, 2000))  # warm up (a lazy tier compiles here)
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(rounds):
        for key, loop in loops.items():
            t0 = time.perf_counter_ns()
            loop(n)
            best[key] = min(best[key], (time.perf_counter_ns() - t0) / n)
    return best


def call_table(n: int, rounds: int) -> None:
    gene0, f = gene_loops("0")
    gene1, _ = gene_loops("eager")
    rows: dict[str, dict[str, Callable[[int], Any]] | str] = {
        "Python": python_loops(f), "Hy": hy_loops(f), "Gene tier 0": gene0,
        "Gene tier 1 (eager)": gene1}
    loops = {(name, k): fn for name, group in rows.items() if not isinstance(group, str)
             for k, fn in group.items()}
    timed = best_ns(loops, n, rounds)
    base = {k: timed[("Python", k)] for k in ("call", "path", "empty")}
    base_call = (base["call"] - base["empty"]) / CALLS
    base_path = (base["path"] - base["empty"]) / CALLS
    print(f"a call into Python: ns per loop iteration of {CALLS} nested calls, and per call "
          f"(the loop without calls taken away), best of {rounds} alternating rounds, "
          f"n={n}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'':22}{'loop f(x)':>11}{'no calls':>10}{'per call':>10}{'x Python':>10}"
          f"{'m.f(x,1)':>10}{'per call':>10}{'x Python':>10}")
    for name, group in rows.items():
        if isinstance(group, str):
            print(f"{name:22}{group}")
            continue
        t = {k: timed[(name, k)] for k in ("call", "path", "empty")}
        call, path = (t["call"] - t["empty"]) / CALLS, (t["path"] - t["empty"]) / CALLS
        print(f"{name:22}{t['call']:11.1f}{t['empty']:10.1f}{call:10.1f}{call / base_call:10.2f}"
              f"{t['path']:10.1f}{path:10.1f}{path / base_path:10.2f}")


def onnx_table(calls: int, rounds: int) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        print("ONNX Runtime: unavailable (pip install 'gene-jit[onnx]')")
        return
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from test_onnx import build_mlp

    from gene_jit.llama import gene_api as g
    from gene_jit.tensor import Tensor

    with tempfile.TemporaryDirectory() as tmp:
        path = build_mlp(__import__("pathlib").Path(tmp) / "mlp.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        x = np.ones((1, 4), np.float32)
        os.environ["GENE_JIT"] = "0"
        from gene_jit.api import eval_source

        gene_run = eval_source(f"""
            (var m (model/create "{path}" "onnx" :threads 1))
            (fn run-n [x n]
              (var i 0)
              (while (i < n) (model/forward m {{^x x}}) (i = (i + 1))))
            run-n""", "<pybridge_bench onnx>")
        os.environ.pop("GENE_JIT", None)
        t = Tensor.from_numpy(x)
        model = g.model_create(str(path), "onnx", threads=1)

        def py_run(n: int) -> None:
            for _ in range(n):
                session.run(None, {"x": x})

        def api_run(n: int) -> None:
            for _ in range(n):
                g.model_forward(model, {"x": t})

        loops: dict[Any, Callable[[int], Any]] = {
            "python": py_run, "gene": lambda n: gene_run(t, n), "api": api_run}
        timed = best_ns(loops, calls, rounds)
    py = timed["python"]
    print(f"\nONNX Runtime session run of a 4-16-3 MLP, batch 1, 1 thread: us per call, best of "
          f"{rounds}, load average {os.getloadavg()[0]:.2f}")
    print(f"  Python session.run             {py / 1e3:8.2f}")
    print(f"  Gene (model/forward m {{^x t}})  {timed['gene'] / 1e3:8.2f}  "
          f"(+{(timed['gene'] - py) / 1e3:.2f} us, {timed['gene'] / py:.2f}x)")
    print(f"  Python calling model_forward   {timed['api'] / 1e3:8.2f}  "
          f"(+{(timed['api'] - py) / 1e3:.2f} us: the checks and the tensor wrapping)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--onnx-calls", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    call_table(args.n, args.rounds)
    onnx_table(args.onnx_calls, args.rounds)


if __name__ == "__main__":
    main()
