"""Every third-party module that gene_jit imports is declared in pyproject.toml.

A module that only some paths need (numba for tensors, llama_cpp for models) must be in the
extra of that path and in `gene_jit.runtime.requirements.OPTIONAL`, so that a user without
it gets a Gene error naming the package and the extra instead of Python's ImportError.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from gene_jit.runtime.requirements import OPTIONAL

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gene_jit"


def _dist_name(requirement: str) -> str:
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_dist_name(r) for r in project["dependencies"]}
    extras = {
        extra: {_dist_name(r) for r in reqs}
        for extra, reqs in project["optional-dependencies"].items()
    }
    return core, extras


def _imported_modules() -> dict[str, list[str]]:
    """Top-level module name -> the files of gene_jit that import it (any nesting)."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names = [node.args[0].value]
            for name in names:
                top = name.split(".")[0]
                found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def _third_party() -> dict[str, list[str]]:
    return {
        mod: files
        for mod, files in _imported_modules().items()
        if mod not in sys.stdlib_module_names and mod != "gene_jit"
    }


def test_every_imported_module_is_declared() -> None:
    core, extras = _declared()
    declared = core.union(*extras.values())
    owners = md.packages_distributions()
    problems = []
    for mod, files in sorted(_third_party().items()):
        dists = {_dist_name(d) for d in owners.get(mod, [])}
        if not dists and mod in OPTIONAL:
            dists = {_dist_name(OPTIONAL[mod][0])}  # an optional package not installed here
        if not dists:
            problems.append(f"{mod}: imported by {files[0]} but installed by no package here")
        elif not dists & declared:
            problems.append(f"{mod}: imported by {files[0]}; declare {sorted(dists)} in pyproject")
    assert not problems, "\n".join(problems)


def test_modules_outside_the_core_are_optional_with_their_extra() -> None:
    core, extras = _declared()
    owners = md.packages_distributions()
    problems = []
    for mod, files in sorted(_third_party().items()):
        dists = {_dist_name(d) for d in owners.get(mod, [])}
        if dists & core:
            continue
        if mod not in OPTIONAL:
            problems.append(f"{mod} ({files[0]}) is not a core dependency and not in OPTIONAL")
            continue
        dist, extra = OPTIONAL[mod]
        if _dist_name(dist) not in extras.get(extra, set()):
            problems.append(f"OPTIONAL says {mod} comes with [{extra}], pyproject does not")
    assert not problems, "\n".join(problems)


def test_dev_extra_installs_every_other_extra_but_bench() -> None:
    _, extras = _declared()
    for extra, dists in extras.items():
        if extra not in ("dev", "bench"):
            assert dists <= extras["dev"], f"[dev] lacks {sorted(dists - extras['dev'])}"


def test_numba_linear_algebra_has_scipy() -> None:
    """numba's np.dot needs scipy's BLAS: the tensor extra must bring it."""
    _, extras = _declared()
    assert "scipy" in extras["tensor"]
    assert md.version("scipy")


def test_missing_library_is_a_gene_error_naming_the_extra(tmp_path: Path) -> None:
    prog = tmp_path / "p.gene"
    prog.write_text("(println (tensor/softmax (tensor/ones [2 2])))\n")
    block = "import sys; sys.modules['numba'] = None\nfrom gene_jit.cli import main\n"
    run = subprocess.run(
        [sys.executable, "-c", block + f"sys.exit(main(['run', {str(prog)!r}]))"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "numba" in run.stderr and "gene-jit[tensor]" in run.stderr, run.stderr
