"""Shared test helpers: run Gene code in-process with stdin and stdout captured, under a
chosen tier mode (`GENE_JIT=0`, `eager` or the default lazy `1`), and run the CLI as a subprocess.

Kept small on purpose: the conformance tests (test_programs, test_seed) use `run_gene_*`;
the CLI tests use `run_cli`.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# A test run started in the background by a shell without job control has SIGINT ignored,
# and a child inherits an ignored signal: the programs that the Ctrl-C tests start would
# never see their SIGINT. A handler in this process is reset to the default in children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# tier 0 only; compile at the first call; compile after GENE_JIT_THRESHOLD calls (default 2),
# so a program's hot functions switch tiers part way through its run
JIT_MODES = ("0", "eager", "1")


@dataclass
class GeneRun:
    """What one in-process run produced: its stdout, and the Gene error (if it failed)."""

    stdout: str
    error: BaseException | None


@contextlib.contextmanager
def env(**values: str) -> Iterator[None]:
    """Set environment variables for the duration, then put back what was there."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def jit_env(mode: str) -> Iterator[None]:
    """Set `GENE_JIT` for the duration; in eager mode make sure tier 1 is loaded (it
    installs its hooks on import), so that hot functions really go native."""
    old = os.environ.get("GENE_JIT")
    os.environ["GENE_JIT"] = mode
    try:
        if mode != "0":
            with contextlib.suppress(ImportError):
                importlib.import_module("gene_jit.jit")
        yield
    finally:
        if old is None:
            os.environ.pop("GENE_JIT", None)
        else:
            os.environ["GENE_JIT"] = old


def _captured(run: object, stdin: str) -> GeneRun:
    from gene_jit.runtime.errors import GeneError

    out = io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    error: BaseException | None = None
    try:
        with contextlib.redirect_stdout(out):
            try:
                run()  # type: ignore[operator]
            except GeneError as e:
                error = e
    finally:
        sys.stdin = old_stdin
    return GeneRun(out.getvalue(), error)


def run_gene_file(
    path: Path | str, mode: str = "0", stdin: str = "", args: Iterable[str] = ()
) -> GeneRun:
    """Run a .gene file in-process. Gene errors are returned, anything else propagates."""
    import gene_jit

    with jit_env(mode):
        return _captured(lambda: gene_jit.run_file(str(path), list(args)), stdin)


def run_gene_source(
    text: str, mode: str = "0", stdin: str = "", filename: str = "<test>"
) -> GeneRun:
    """Run Gene source text in-process (see `run_gene_file`)."""
    from gene_jit.api import eval_source

    with jit_env(mode):
        return _captured(lambda: eval_source(text, filename), stdin)


def run_cli(
    *argv: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m gene_jit ARGV...` from the repository root, text mode."""
    full_env = dict(os.environ)
    full_env.pop("GENE_DEBUG", None)
    full_env.setdefault("GENE_JIT", "0")
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gene_jit", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=full_env,
        timeout=timeout,
    )


@pytest.fixture(params=JIT_MODES, ids=[f"jit={m}" for m in JIT_MODES])
def jit_mode(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once per tier mode."""
    return str(request.param)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slow` tests are deselected unless asked for (`pytest -m slow`, or GENE_SLOW=1), so
    that the README's plain `pytest` and CI stay within their time."""
    if "slow" in (config.getoption("markexpr") or "") or os.environ.get("GENE_SLOW") == "1":
        return
    slow = [item for item in items if "slow" in item.keywords]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if "slow" not in item.keywords]
