"""The kernels' Numba disk cache: a kernel compiles once per machine, not once per process
(importing compiles nothing; a second process loads the machine code from disk), and the
cache never goes stale across files: an edit to a helper that another file's kernel
inlines recompiles that kernel on the next run (Numba alone stamps a cached function with
its own file only, and would reuse the old machine code)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from gene_jit.tensor_kernels import kernel_cache, norms_cpu

REPO = Path(__file__).resolve().parent.parent

HELPER = """
import numba as nb

@nb.njit(cache=True, inline="always")
def bump(x):
    return x + {step}
"""

KERNEL = """
import numba as nb
from helper import bump

@nb.njit(cache=True)
def run(x):
    return bump(x)
"""

DRIVER = """
import sys
sys.path[:0] = [{repo!r}, {here!r}]
from gene_jit.tensor_kernels import kernel_cache
kernel_cache.watch({here!r})
import kern
print(kern.run(1), len(kern.run.stats.cache_hits))
"""


def _run_script(script: Path, cache: Path) -> list[int]:
    """Run `script` in a fresh Python with its own Numba cache dir; the integers it prints."""
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        check=True,
        cwd=script.parent,
        env={"PATH": "/usr/bin:/bin", "NUMBA_CACHE_DIR": str(cache)},
    )
    return [int(n) for n in out.stdout.split()]


def test_edit_in_another_file_recompiles_the_cached_kernel(tmp_path: Path) -> None:
    (tmp_path / "kern.py").write_text(textwrap.dedent(KERNEL))
    (tmp_path / "helper.py").write_text(textwrap.dedent(HELPER.format(step=1)))
    (tmp_path / "driver.py").write_text(DRIVER.format(repo=str(REPO), here=str(tmp_path)))
    driver, cache = tmp_path / "driver.py", tmp_path / "cache"
    assert _run_script(driver, cache) == [2, 0]  # compiled and stored
    assert _run_script(driver, cache) == [2, 1]  # the disk cache serves unchanged sources
    (tmp_path / "helper.py").write_text(textwrap.dedent(HELPER.format(step=10)))
    assert _run_script(driver, cache) == [11, 0]  # kern.py is unchanged, yet it recompiles


FIRST_CALLS = """
import sys
sys.path.insert(0, {repo!r})
import numpy as np
from gene_jit.tensor_kernels import cabi, norms_cpu
compiled_on_import = len(norms_cpu.softmax_f32.overloads) + len(cabi._compiled)
x = np.ones((2, 4), np.float32)
norms_cpu.softmax_f32(x, np.empty_like(x))
cabi.entry("softmax_f32")
stats = norms_cpu.softmax_f32.stats
print(compiled_on_import, len(stats.cache_hits), len(stats.cache_misses),
      cabi._compiled["softmax_f32"].cache_hits)
"""


def test_kernels_compile_once_per_machine(tmp_path: Path) -> None:
    script = tmp_path / "first_calls.py"
    script.write_text(FIRST_CALLS.format(repo=str(REPO)))

    # imported: nothing compiled; called: compiled, nothing found on disk
    assert _run_script(script, tmp_path / "cache") == [0, 0, 1, 0]
    # a new process: the kernel comes from the disk cache; the C entry point, a thin
    # wrapper, is compiled again (a cfunc loaded from Numba's cache crashes when called)
    assert _run_script(script, tmp_path / "cache") == [0, 1, 0, 0]


def test_package_kernels_carry_the_directory_stamp() -> None:
    kernel: Any = norms_cpu.softmax_f32  # Numba's cache object is not part of its types
    locator = kernel._cache._impl.locator
    assert isinstance(locator, kernel_cache.LOCATORS)
    kernels_dir = Path(norms_cpu.__file__).resolve().parent
    assert locator.get_source_stamp() == kernel_cache.directory_stamp(kernels_dir)
