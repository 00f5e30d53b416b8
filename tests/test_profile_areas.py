"""`gene-jit profile`'s library table: every row carries its own time (calls nested in
other timed calls included), tensor operators count as tensor work, the gene engine's
start-up, forward passes and generation are the engine's and not libllama's, tokens/s
divides by the generation time reported beside it, and the tier-1 row is compile time."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any

import pytest

from gene_jit.profiler.model import CallStats
from tests.conftest import REPO, jit_env, run_cli

LOADING = "(loading the library)"  # the row of a library's import on first use
Missing = CallStats("none")


def profile(path: Path, mode: str) -> Any:
    import gene_jit
    from gene_jit.profiler import Profiler

    out = io.StringIO()
    with jit_env(mode), contextlib.redirect_stdout(out), Profiler(str(path)) as p:
        gene_jit.run_file(str(path))
    assert p.data is not None
    return p.data, out.getvalue()


def areas(data: Any) -> dict[str, Any]:
    return {lib.name: lib for lib in data.libraries}


def rows(lib: Any) -> dict[str, Any]:
    return {c.name: c for c in lib.functions}


def assert_disjoint(data: Any) -> None:
    """Exclusive times: the areas together fit in the run."""
    assert sum(lib.ms for lib in data.libraries) <= data.wall_ms * 1.01


@pytest.mark.parametrize("mode", ["0", "1"])
def test_tensor_operators_count_as_tensor_work(tmp_path: Path, mode: str) -> None:
    pytest.importorskip("numba")
    path = tmp_path / "ops.gene"
    path.write_text(
        "(var t (tensor/create [[1.0 2.0] [3.0 4.0]]))\n"
        "(fn tadd [a] (a + a))\n"
        "(for i in (range 0 200) (tadd t))\n"
        "(for i in (range 0 30) (t * 2.0) (2.0 - t) (- t))\n"
        "(println (tensor/sum (t / 2.0)))\n"
    )
    data, out = profile(path, mode)
    assert out == "5.0\n"
    tensor = areas(data)["tensor kernels"]
    calls = {name: c.calls for name, c in rows(tensor).items() if name != LOADING}
    # `- t` is computed as a subtraction inside the operator: it counts once, as negation
    assert calls == {
        "tensor +": 200, "tensor *": 30, "tensor -": 30, "tensor negation": 30,
        "tensor /": 1, "tensor/create": 1, "tensor/sum": 1,
    }
    assert all(c.ms > 0 for c in tensor.functions)
    assert tensor.calls == sum(calls.values()) + rows(tensor).get(LOADING, Missing).calls
    assert_disjoint(data)
    # the operators are the tensor class's own again
    from gene_jit.tensor.tensor import Tensor

    assert all(not hasattr(Tensor.__dict__[m], "__wrapped__") for m in ("__add__", "__neg__"))


def test_tier1_row_is_compile_time(tmp_path: Path) -> None:
    from gene_jit.profiler.areas import JIT, area_of

    # the prologue runs native code once compiled: its time is the function's, not the JIT's
    assert area_of(str(REPO / "gene_jit/codegen/hooks.py")) is None
    assert area_of(str(REPO / "gene_jit/codegen/compile.py")) == JIT
    assert area_of(str(REPO / "gene_jit/ir/builder.py")) == JIT
    path = tmp_path / "fib.gene"
    path.write_text(
        "(fn fib [n] (if (n < 2) n ((fib (n - 1)) + (fib (n - 2)))))\n"
        "(fn sq [x] (x * x))\n(println (fib 18) (sq 3) (sq 4))\n"
    )
    import os

    old = os.environ.get("GENE_JIT_CACHE")
    os.environ["GENE_JIT_CACHE"] = "0"
    try:
        data, out = profile(path, "1")
    finally:
        if old is None:
            os.environ.pop("GENE_JIT_CACHE")
        else:
            os.environ["GENE_JIT_CACHE"] = old
    assert out == "2584 9 16\n"
    libs = areas(data)
    assert "tier-1 JIT" not in libs
    jit = libs[JIT]
    # this program's functions (the profiler's table also lists earlier code of the process)
    native = [f for f in data.functions if f.tier == 1 and Path(f.file).name == "fib.gene"]
    assert {f.name for f in native} == {"fib", "sq"}
    # one compile per function, each covering the LLVM time the function table shows
    assert jit.calls == 2 and not jit.sampled and not jit.functions
    assert jit.ms >= sum(f.compile_ms for f in native) > 0


def _tiny_model(tmp_path: Path) -> Path:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    pytest.importorskip("numba")
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_model import write_tiny_model

    return write_tiny_model(tmp_path / "tiny.gguf")


def test_calls_nested_in_library_calls_carry_their_time(tmp_path: Path) -> None:
    """A tensor call made from inside generate-text (an :on-token callback) is timed on
    its own row, and generate-text's time excludes it."""
    model = _tiny_model(tmp_path)
    path = tmp_path / "nested.gene"
    path.write_text(
        f'(var m (model/create "{model}" :threads 1 :n-ctx 128))\n'
        "(var a (tensor/ones [64 64]))\n"
        '(var text (generate-text m "The cat" 5 :temperature 0 '
        ":on-token (fn [t] (tensor/matmul a a))))\n"
        "(println (len text))\n"
    )
    data, _ = profile(path, "1")
    libs = areas(data)
    matmul = rows(libs["tensor kernels"])["tensor/matmul"]
    llama = libs["libllama"]
    assert llama.tokens is not None and 0 < matmul.calls <= llama.tokens  # per text piece
    assert matmul.ms > 0
    assert "gene engine" not in libs
    assert_disjoint(data)


def test_engine_work_is_the_engines(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path)
    path = tmp_path / "engines.gene"
    path.write_text(
        f'(var g (model/create "{model}" :engine :gene :threads 1 :n-ctx 128))\n'
        f'(var l (model/create "{model}" :threads 1 :n-ctx 128))\n'
        '(println (len (generate-text g "The cat" 5 :temperature 0)))\n'
        '(println (len (generate-text l "Hello world" 3 :temperature 0)))\n'
        '(for piece in (generate-stream g "A dog" 2 :temperature 0) nil)\n'
    )
    data, _ = profile(path, "1")
    libs = areas(data)
    engine, llama, tensor = libs["gene engine"], libs["libllama"], libs["tensor kernels"]
    e, ll = rows(engine), rows(llama)
    # start-up and generation on the engine model are the engine's; libllama keeps its own
    assert e["model/create"].calls == 1 and ll["model/create"].calls == 1
    assert e["generate-text"].calls == 1 and ll["generate-text"].calls == 1
    assert e["generate-stream"].calls == 1 and "generate-stream" not in ll
    forward = e["forward (llama.gene)"]
    assert forward.calls >= 2 and forward.ms > 0
    # the engine's tensor ops carry their time
    assert tensor.functions and all(c.ms > 0 for c in tensor.functions if c.calls > 2)
    assert rows(tensor)["tensor/linear"].calls > 0
    # tokens per engine; tokens/s is over the generation time shown with them
    assert engine.tokens is not None and 0 < engine.tokens <= 7
    assert llama.tokens is not None and 0 < llama.tokens <= 3
    for lib in (engine, llama):
        assert lib.generate_ms is not None and lib.prompt_tokens
        assert lib.tokens_per_s == pytest.approx(lib.tokens / (lib.generate_ms / 1e3))
        assert lib.generate_ms + (lib.prompt_ms or 0) <= data.wall_ms
    assert_disjoint(data)


def test_table_rows_show_their_time(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path)
    path = tmp_path / "table.gene"
    path.write_text(
        f'(var g (model/create "{model}" :engine :gene :threads 1 :n-ctx 128))\n'
        '(println (len (generate-text g "The cat" 4 :temperature 0)))\n'
    )
    r = run_cli("profile", str(path), env={"GENE_JIT": "1"})
    assert r.returncode == 0, r.stderr
    table = r.stderr[r.stderr.index("libraries, the gene engine"):]
    lines = [ln for ln in table.splitlines() if ln.startswith("│")]
    cells = {c[0]: c for c in ([x.strip() for x in ln.strip("│").split("│")] for ln in lines)}
    # every call of this program is on the engine model (the LLM library's Python code
    # that it uses is inside its timed calls, not sampled as libllama's); libllama's row
    # is only the loading of the library, which both engines use
    assert "libllama (sampled)" not in cells and "model/create" in cells
    libllama = lines.index(next(ln for ln in lines if ln.startswith("│ libllama ")))
    assert "(loading the library)" in lines[libllama + 1]
    assert lines[libllama + 2].startswith("│ tensor kernels")
    for name in ("gene engine", "tensor kernels", "tensor/linear", "model/create"):
        assert cells[name][2] not in ("", "0.00"), cells[name]
    generating = cells["generating"]
    assert generating[4] and float(generating[5].replace(",", "")) > 0
