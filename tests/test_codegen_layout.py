"""Entry trampolines read CPython objects at per-version offsets (codegen/pylayout.py):
the running interpreter is checked before any native code uses them, and an
interpreter whose layout is unknown or different keeps every function in tier 0, with
the reason, never running with wrong offsets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GENE_JIT_CACHE", "0")

from gene_jit.codegen import compile as C  # noqa: E402
from gene_jit.codegen import pylayout  # noqa: E402
from gene_jit.jit import jit as gjit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
INTS = [0, 1, -1, 7, -7, 2**30 - 1, -(2**30 - 1), 2**30, -(2**30), 2**31, 2**62, -(2**62),
        2**63 - 1, -(2**63)]


@pytest.fixture
def fresh_layout(monkeypatch: pytest.MonkeyPatch):
    """Let a test change LAYOUTS; the cached verdict is recomputed before and after."""
    pylayout.current.cache_clear()
    pylayout.numpy_reason.cache_clear()
    monkeypatch.setattr(C, "_SHAPES", {})  # shared entries are checked as they are made
    yield monkeypatch
    monkeypatch.undo()
    pylayout.current.cache_clear()
    pylayout.numpy_reason.cache_clear()


def test_running_interpreter_is_supported_and_checked() -> None:
    layout, reason = pylayout.current()
    assert layout is pylayout.LAYOUTS[sys.version_info[:2]]
    assert reason == ""
    for v in INTS:
        small = pylayout.small_int(layout, v)
        assert small == (v if -(2**30) < v < 2**30 else None), v


def test_entries_unbox_every_int_size_and_box_singletons() -> None:
    neg = gjit("(fn neg [x] (0 - x))")
    for v in INTS[:-1]:
        assert neg(v) == -v
    sign = gjit("(fn sign [x] (x > 0))")
    nothing = gjit("(fn nothing [x] (if (x > 0) (x + 0)))")
    assert sign(1) is True and nothing(-1) is None  # compiled before counting
    refs = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(20_000):
        assert sign(3) is True and sign(-3) is False
        assert nothing(-1) is None
    # each returned singleton carries its own reference (3.11) or needs none (3.12+): a
    # missing or extra one would move the count by 20,000 (other code moves it a little)
    assert abs(sys.getrefcount(True) - refs[0]) < 2000 and abs(sys.getrefcount(None) - refs[1]) < 2000
    total = gjit("(fn total [a] (var s 0.0) (for i in (range (len a)) (s += (get a i))) s)")
    a = np.arange(12.0)
    assert total(a) == 66.0 and total(a[::3]) == 18.0
    assert neg.signatures and sign.signatures and total.signatures


def test_an_unknown_version_keeps_tier_1_off_with_the_reason(fresh_layout: pytest.MonkeyPatch) -> None:
    fresh_layout.setattr(pylayout, "LAYOUTS", {(3, 99): pylayout.Layout(True, True)})
    layout, reason = pylayout.current()
    assert layout is None
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in reason and "3.99" in reason
    f = gjit("(fn f [x] (x * 2))")
    assert f(21) == 42  # tier 0 runs it
    assert f.signatures == []
    assert "object layout" in f.stats.reason


def test_a_layout_that_disagrees_with_the_interpreter_is_refused(fresh_layout: pytest.MonkeyPatch) -> None:
    wrong = pylayout.LAYOUTS[sys.version_info[:2]]
    wrong = pylayout.Layout(not wrong.tagged_ints, wrong.immortal_singletons)
    fresh_layout.setitem(pylayout.LAYOUTS, sys.version_info[:2], wrong)
    layout, reason = pylayout.current()
    assert layout is None
    assert "not the expected one" in reason and "int" in reason
    f = gjit("(fn g [x] (x - 1))")
    assert f(5) == 4 and f.signatures == []


def test_numpy_fields_are_read_where_numpy_keeps_them(fresh_layout: pytest.MonkeyPatch) -> None:
    pylayout.check_numpy(np)
    fresh_layout.setattr(pylayout, "ND_DESCR", pylayout.ND_DESCR + 8)
    with pytest.raises(pylayout.LayoutMismatch, match="dtype"):
        pylayout.check_numpy(np)
    # arrays then stay in tier 0; scalar functions still compile
    total = gjit("(fn tot [a] (var s 0.0) (for i in (range (len a)) (s += (get a i))) s)")
    assert total(np.arange(4.0)) == 6.0
    assert total.signatures == [] and "NumPy" in total.stats.reason
    twice = gjit("(fn twice [x] (x * 2))")
    assert twice(4) == 8 and twice.signatures


def _other_interpreters() -> list[str]:
    """Interpreters named in GENE_TEST_PYTHONS (paths, separated by os.pathsep), else the
    python3.12 / python3.13 on PATH, that can import llvmlite and numpy."""
    named = [p for p in os.environ.get("GENE_TEST_PYTHONS", "").split(os.pathsep) if p]
    if not named:
        named = [p for p in (shutil.which("python3.12"), shutil.which("python3.13")) if p]
    ok = []
    for exe in named:
        probe = subprocess.run([exe, "-c", "import llvmlite, numpy"], capture_output=True)
        if probe.returncode == 0:
            ok.append(exe)
    return ok


OTHER_CHECK = """
import sys
import numpy as np
from gene_jit.codegen import pylayout
from gene_jit.jit import jit
layout, reason = pylayout.current()
assert layout is not None, reason
neg = jit("(fn neg [x] (0 - x))")
ints = [0, 1, -1, 7, -7, 2**30 - 1, -(2**30 - 1), 2**30, -(2**30), 2**62, -(2**62)]
assert [neg(v) for v in ints] == [-v for v in ints]
assert neg.signatures, neg.stats.reason
sign = jit("(fn sign [x] (x > 0.5))")
assert [sign(1.0), sign(0.0)] == [True, False]
total = jit("(fn total [a] (var s 0.0) (for i in (range (len a)) (s += (get a i))) s)")
assert total(np.arange(12.0)[::3]) == 18.0 and total.signatures
print("ok", sys.version_info[:2])
"""


# Without another CPython here (GENE_TEST_PYTHONS), the same check runs in a fresh process
# of this one, so the layout check and the entries are still exercised end to end.
@pytest.mark.parametrize("exe", _other_interpreters() or [sys.executable])
def test_entries_on_other_python_versions(exe: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENE_JIT_CACHE": "0"}
    out = subprocess.run([exe, "-c", OTHER_CHECK], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok")


def test_pyproject_names_the_versions_tier_1_supports() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    named = {tuple(int(x) for x in c.rsplit(" ", 1)[1].split(".")) for c in project["classifiers"]
             if c.startswith("Programming Language :: Python :: 3.")}
    assert named == set(pylayout.LAYOUTS)
    assert project["requires-python"] == f">={min(named)[0]}.{min(named)[1]}"
