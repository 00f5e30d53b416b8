"""Ctrl-C stops a running program in every tier: SIGINT during a native loop raises the
same KeyboardInterrupt as in tier 0 (the CLI prints "interrupted" and exits 130), a
Python host can catch it and go on calling compiled code, and SIGTERM still terminates.
Each program runs in a subprocess that prints "start" once its loop function has been
compiled (a first, short call), and is signalled while the endless call runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import JIT_MODES, REPO

# each function loops forever when called with -1; a first call with a small count
# compiles it (eager and lazy alike: a function with a loop compiles at its first call)
ENDLESS = {
    "while": "(fn spin [n] (var i 0) (while (i != n) (i += 1)) i)",
    "for_with_calls": """
        (fn inc [x] (x + 1))
        (fn spin [n] (var s 0) (var stop (if (n < 0) 9223372036854775807 else n))
          (for i in (range stop) (s = (mod (inc s) 1000))) s)""",
    "nested": """
        (fn spin [n] (var c 0) (var stop (if (n < 0) 9223372036854775807 else n))
          (for y in (range stop) (for x in (range stop) (c = (mod (c + x) 7)))) c)""",
    "loop_break": """
        (fn spin [n] (var c 0) (loop (if (c == n) (break)) (c += 1)) c)""",
    "callee_loop": """
        (fn inner [n] (var i 0) (while (i != n) (i += 1)) i)
        (fn spin [n] ((inner n) + 1))""",
    # no loop at all: 2**62 calls of a recursive function, which polls once per call
    "recursion": """
        (fn tree [n] (if (n < 1) 1 ((tree (n - 1)) + (tree (n - 1)))))
        (fn spin [n] (tree (if (n < 0) 62 else n)))""",
}


def _start(source: str, mode: str, tmp_path: os.PathLike[str]) -> subprocess.Popen[str]:
    path = os.path.join(tmp_path, "endless.gene")
    with open(path, "w") as f:
        f.write(textwrap.dedent(source) + '\n(spin 3)\n(println "start")\n(spin -1)\n(println "after")\n')
    env = {**os.environ, "GENE_JIT": mode, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("GENE_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "gene_jit", "run", path], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _signal_when_started(proc: subprocess.Popen[str], sig: int) -> tuple[str, str, int]:
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if first != "start\n":
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"no start line: {first!r}{out}\n{err}")
    time.sleep(0.3)  # into the endless call
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"signal {signal.Signals(sig).name} did not stop the program")
    return first + out, err, proc.returncode


@pytest.mark.parametrize("mode", JIT_MODES)
@pytest.mark.parametrize("kind", sorted(ENDLESS))
def test_ctrl_c_stops_a_loop_as_in_tier_0(tmp_path: os.PathLike[str], kind: str, mode: str) -> None:
    out, err, code = _signal_when_started(_start(ENDLESS[kind], mode, tmp_path), signal.SIGINT)
    assert (out, err, code) == ("start\n", "interrupted\n", 130)


@pytest.mark.parametrize("mode", JIT_MODES)
def test_sigterm_still_terminates(tmp_path: os.PathLike[str], mode: str) -> None:
    out, err, code = _signal_when_started(_start(ENDLESS["while"], mode, tmp_path), signal.SIGTERM)
    assert (out, code) == ("start\n", -signal.SIGTERM)


HOST = """
import gene_jit
from gene_jit.jit import jit

spin = jit("(fn spin [n] (var i 0) (while (i != n) (i += 1)) i)")
spin(3)
print("start", flush=True)
try:
    spin(-1)
except KeyboardInterrupt:
    print("caught", flush=True)
# the interrupt is spent: compiled loops run to their end again
print(spin(100000), jit("(fn count [n] (var c 0) (for i in (range n) (c += 1)) c)")(5000))
"""


def test_python_host_catches_the_interrupt_and_goes_on(tmp_path: os.PathLike[str]) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("GENE_JIT", None)
    proc = subprocess.Popen([sys.executable, "-c", HOST], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err, code = _signal_when_started(proc, signal.SIGINT)
    assert (out, code) == ("start\ncaught\n100000 5000\n", 0), err
