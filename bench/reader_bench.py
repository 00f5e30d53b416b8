"""Reader speed: `gene_jit.frontend.reader.read` on a generated 10k-line program.

Peers in the same run: CPython's own parser (`ast.parse`, C) and its pure-Python
tokenizer (`tokenize`) on a Python program of the same shape and line count.

    python bench/reader_bench.py [lines]
"""

from __future__ import annotations

import ast
import io
import sys
import time
import tokenize
from collections.abc import Callable

from gene_jit.frontend.reader import read

GENE_CHUNK = """\
(fn fib [n]
  # compute fibonacci
  (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))
(var m {^a 1 ^b "two" ^c [1 2 3.5]})
(println #"fib=#{(fib 20)} done" :temperature 0.8 ^^flag)
"""

PY_CHUNK = """\
def fib(n):
    # compute fibonacci
    return n if n < 2 else fib(n - 1) + fib(n - 2)
m = {"a": 1, "b": "two", "c": [1, 2, 3.5]}
print(f"fib={fib(20)} done", temperature=0.8, flag=True)
"""


def best_of(fn: Callable[[], object], repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    gene = GENE_CHUNK * (lines // GENE_CHUNK.count("\n"))
    py = PY_CHUNK * (lines // PY_CHUNK.count("\n"))
    forms = read(gene, "bench.gene")
    print(f"{gene.count(chr(10))} lines, {len(gene)} chars, {len(forms)} top-level forms")
    results = {
        "gene-jit read": best_of(lambda: read(gene, "bench.gene")),
        "CPython ast.parse (C)": best_of(lambda: ast.parse(py)),
        "CPython tokenize (Python)": best_of(
            lambda: list(tokenize.generate_tokens(io.StringIO(py).readline))
        ),
    }
    base = results["gene-jit read"]
    for name, seconds in results.items():
        print(f"{name:28s} {seconds * 1000:8.1f} ms   {base / seconds:6.2f}x gene-jit's time")


if __name__ == "__main__":
    main()
