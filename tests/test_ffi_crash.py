"""No Gene program takes the process down through the FFI or the kernels: a fuzz of
wrong types, nil, sizes, addresses and freed objects at every argument of libc calls,
`ffi/read`/`write`/`array`/`string`/`cast`/`free` and `kernel/*`, run in a subprocess in
both tiers. Each case must end in a Gene error or a value, never a signal, a Python
traceback or an internal error; and both tiers must print the same thing.

Addresses made from ints with `ffi/ptr` are fuzzed too: reading, writing or passing one
that is not in mapped memory is a Gene error naming the function, argument and address.
What stays the program's responsibility, as in C, is not fuzzed here: sizes passed to C
functions (`memset p 0 n`), NULL through a parameter declared nullable, double frees
through a declared `free`. Those crash as in C, but never silently: the process prints
which foreign call crashed (`test_uncheckable_crashes_name_the_call`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PRELUDE = """
(ffi/defun strlen :lib "c" :returns :size_t :params [:string])
(ffi/defun strtol :lib "c" :returns :long :params [:string :pointer? :int])
(ffi/defun qsort :lib "c" :returns :void
  :params [:buffer :size_t :size_t [:callback :int [:pointer :pointer]]])
(ffi/defun memset :lib "c" :returns :pointer :params [:pointer :int :size_t])
(ffi/defun c-malloc :lib "c" :symbol "malloc" :returns :pointer :params [:size_t])
(ffi/defun c-calloc :lib "c" :symbol "calloc" :returns :pointer :params [:size_t :size_t])
(ffi/defun c-strlen-p :lib "c" :symbol "strlen" :returns :size_t :params [:pointer])
(ffi/defun c-abs :lib "c" :symbol "abs" :returns :int32 :params [:int32])
(ffi/defun c-getenv :lib "c" :symbol "getenv" :returns :pointer :params [:string])
(ffi/defun strtoull :lib "c" :returns :uint64 :params [:string :pointer? :int])
(ffi/defstruct point [:x :int32 :y :int32])
(fn gene-fn [a b] 0)
(var cmp (ffi/callback (fn [a b] ((ffi/read a :int32) - (ffi/read b :int32)))
                       :returns :int :params [:pointer :pointer]))
(var freed-cb (ffi/callback gene-fn :returns :int :params [:pointer :pointer]))
(ffi/free freed-cb)
(var freed-buf (ffi/new :int32 16))
(ffi/free freed-buf)
(var pt (ffi/new point ^x 1 ^y 2))
(var freed-pt (ffi/new point ^x 1 ^y 2))
(ffi/free freed-pt)
(var freed-c (c-malloc 16))
(ffi/free freed-c)
(var xs (ffi/new :int32 4))
(var buf16 (ffi/new :int32 16))
(var end (ffi/new :pointer 1))
(var w8 (tensor/ones [8]))
(var x28 (tensor/ones [2 8]))
(var o28 (tensor/zeros [2 8]))
"""

# Values tried at every position marked {} (each a Gene expression).
VALUES = [
    "nil", "ffi/null", "0", "-1", "12345", "4611686018427387904", "1.5", '"text"', "true",
    "[1 2]", "{^a 1}", ":sym", "(ffi/new :int32 16)", "(ffi/new :double 16)",
    "(ffi/new :float 2)", "(ffi/new :uint8 3)", "freed-buf", "pt", "freed-pt", "cmp",
    "freed-cb", "gene-fn", "w8", "(tensor/zeros [0])", "freed-c", "(ffi/addressof buf16)",
    "(ffi/addressof (ffi/new :int8 1))", "(ffi/addressof cmp)",
    "(ffi/ptr 16)", "(ffi/ptr 1)", "(ffi/ptr 4611686018427387904)", "(ffi/ptr -1)",
    "(ffi/ptr (ffi/address buf16))", "(c-getenv \"PATH\")",
]
SIZES = ["-1", "0", "3", "12345", "4611686018427387904", "nil", "1.5", '"8"']

# Calls with one hole; the other arguments are valid (sizes within what they point at).
SURFACES = [
    "(strlen {})",
    '(strtol {} end 10)',
    '(strtol "12" {} 10)',
    '(strtol "12" end {})',
    "(qsort xs 4 4 {})",
    "(qsort {} 2 4 cmp)",
    "(memset {} 0 2)",
    "(c-strlen-p {})",
    "(c-abs {})",
    '(strtoull "18446744073709551615" {} 10)',
    "(ffi/read {} :int32)",
    "(ffi/read buf16 :int32 {})",
    "(ffi/read buf16 {} 0)",
    "(ffi/write {} :int32 1)",
    "(ffi/write buf16 :int32 {})",
    "(ffi/write buf16 :int32 1 {})",
    "(ffi/write buf16 :pointer {})",
    "(ffi/array {} :int32 4)",
    "(ffi/array buf16 :int32 {})",
    "(ffi/array {} :pointer 2)",
    "(ffi/string {})",
    "(ffi/string buf16 {})",
    "(ffi/cast {} point)",
    "(ffi/get {} 0)",
    "(ffi/set {} 0 1)",
    "(ffi/free {})",
    "(ffi/to-array {})",
    "(ffi/to-map {})",
    "(kernel/rmsnorm {} w8 o28 2 8 1e-6)",
    "(kernel/rmsnorm x28 {} o28 2 8 1e-6)",
    "(kernel/rmsnorm x28 w8 {} 2 8 1e-6)",
    "(kernel/softmax x28 {} 2 8)",
    "(kernel/gemv-f32 {} w8 o28 2 8)",
    "(kernel/dequantize-q8-0 {} o28 34)",
]
SIZE_SURFACES = [
    "(kernel/rmsnorm x28 w8 o28 {} 8 1e-6)",
    "(kernel/rmsnorm x28 w8 o28 2 {} 1e-6)",
    "(kernel/softmax x28 o28 {} 8)",
    "(kernel/matmul x28 x28 o28 1 2 8 {})",
    "(kernel/rope x28 (tensor/zeros [2] ^dtype :i64) o28 1 {} 8 10000.0)",
    "(ffi/new :int32 {})",
    "(ffi/buffer {})",
]

# Every program from the issue that killed the process, as written there.
REPRODUCTIONS = [
    "(strlen nil)",
    "(strtol nil nil 10)",
    "(qsort xs 3 4 nil)",
    "(qsort xs 3 4 0)",
    "(qsort xs 3 4 12345)",
    "(c-strlen-p -8)",
    "(ffi/read 16 :int32)",
    '(do (ffi/defun env :lib "c" :symbol "environ" :returns :int :params []) (env))',
    "(kernel/rmsnorm (tensor/ones [1000 1000]) (tensor/ones [1000]) (ffi/new :float 4) "
    "1000 1000 1e-6)",
    "(kernel/rmsnorm 0 w8 o28 1 8 1e-6)",
    "(kernel/rmsnorm (ffi/new :int32 8) w8 o28 1 8 1e-6)",
    "(do (var m (c-malloc 8)) (ffi/free m) (ffi/free m))",
    "(ffi/free (c-getenv \"PATH\"))",
    "(ffi/free (ffi/addressof buf16))",
    "(ffi/read (ffi/ptr 16) :int32 0)",
    "(ffi/write (ffi/ptr 16) :int32 1 0)",
    "(ffi/string (ffi/ptr 16))",
    "(ffi/array (ffi/ptr 8) :pointer 2)",
    "(c-strlen-p (ffi/ptr 1))",
    "(strlen (ffi/ptr 1))",
    "(ffi/free (ffi/ptr (ffi/address buf16)))",
    "(ffi/write (c-getenv \"PATH\") :int64 1 -100000000000)",
]

# Functions of scalar arguments, which tier 1 compiles: its own checks must hold.
COMPILED = """
(fn t-abs [n] (c-abs n))
(fn t-null [n] (c-strlen-p (c-calloc n n)))
(fn t-kernel [x w out rows cols] (kernel/rmsnorm x w out rows cols 1e-6))
(var xa (kernel/array x28))
(var wa (kernel/array w8))
(var oa (kernel/array o28))
"""
COMPILED_CALLS = [
    "(t-abs 3000000000)", "(t-abs -3000000000)", "(t-abs 5)",
    "(t-null 4611686018427387904)",
    "(t-kernel xa wa oa 2 8)", "(t-kernel xa wa oa 3 8)", "(t-kernel xa wa oa -1 8)",
    "(t-kernel xa wa oa 2 4611686018427387904)", "(t-kernel wa wa oa 2 8)",
]


def cases() -> list[str]:
    out = [s.replace("{}", v) for s in SURFACES for v in VALUES]
    out += [s.replace("{}", v) for s in SIZE_SURFACES for v in SIZES]
    return out + REPRODUCTIONS


def program(bodies: list[str]) -> str:
    lines = [PRELUDE, COMPILED]
    for i, body in enumerate(bodies):
        lines.append(f"(fn case-{i} [] {body} nil)")
        lines.append(f'(try (case-{i}) (println "{i} ok") catch * (println "{i}" $ex))')
    return "\n".join(lines) + "\n"


def run(tmp_path: Path, text: str, tier: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"fuzz_{tier}.gene"
    path.write_text(text)
    env = {**os.environ, "GENE_JIT": tier, "GENE_JIT_CACHE": "0"}
    return subprocess.run([sys.executable, "-m", "gene_jit", "run", str(path)], env=env,
                          capture_output=True, text=True, timeout=600)


def _culprit(tmp_path: Path, bodies: list[str], tier: str) -> str:
    """A case that ends the process with a signal on its own (by bisection)."""
    while len(bodies) > 1:
        half = bodies[: len(bodies) // 2]
        if run(tmp_path, program(half), tier).returncode == 0:
            half = bodies[len(bodies) // 2 :]
            if run(tmp_path, program(half), tier).returncode == 0:
                return f"(cases together, from {bodies[0]} to {bodies[-1]})"
        bodies = half
    return bodies[0]


def check(tmp_path: Path, bodies: list[str]) -> None:
    outputs = {}
    for tier in ("0", "eager"):
        r = run(tmp_path, program(bodies), tier)
        if r.returncode != 0:
            pytest.fail(f"GENE_JIT={tier}: exit {r.returncode} at "
                        f"{_culprit(tmp_path, bodies, tier)}\n{r.stderr[-2000:]}")
        for bad in ("Traceback", "internal error", "bug in gene-jit"):
            assert bad not in r.stdout + r.stderr, f"GENE_JIT={tier}:\n{r.stdout}{r.stderr}"
        lines = r.stdout.splitlines()
        assert len(lines) == len(bodies)
        outputs[tier] = lines
    for body, t0, t1 in zip(bodies, outputs["0"], outputs["eager"], strict=True):
        # `pt` holds what C wrote into it (an address, when it was passed as a char**)
        t0, t1 = (re.sub(r"\(point [^)]*\)", "(point ...)", t) for t in (t0, t1))
        # where the environment lies differs from run to run
        t0, t1 = (re.sub(r"0x7f[0-9a-f]+", "0x7f...", t) for t in (t0, t1))
        assert t0 == t1, f"tiers differ on {body}:\n  GENE_JIT=0:     {t0}\n  GENE_JIT=eager: {t1}"


def test_fuzz_never_ends_with_a_signal(tmp_path: Path) -> None:
    check(tmp_path, cases())


def test_compiled_calls_check_like_tier0(tmp_path: Path) -> None:
    check(tmp_path, COMPILED_CALLS)


def test_reproductions_give_one_clear_error_each(tmp_path: Path) -> None:
    r = run(tmp_path, program(REPRODUCTIONS), "0")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for body, line in zip(REPRODUCTIONS, lines, strict=True):
        assert not line.endswith(" ok"), f"{body} was accepted: {line}"
        assert "error" in line, line


# Mistakes no check can see before C runs: each crashes the process as it would in C,
# after one line that names the foreign call (gene_jit/ffi/crash.py).
UNCHECKABLE = [
    ("(ffi/defun strlen-n :lib \"c\" :symbol \"strlen\" :returns :size_t :params [:string?])\n"
     "(strlen-n nil)", "segmentation fault", "strlen-n"),
    ("(ffi/defun c-free :lib \"c\" :symbol \"free\" :returns :void :params [:pointer])\n"
     "(var p (c-malloc 16)) (c-free p) (c-free p)", "abort", "c-free"),
    ("(ffi/defun memset-n :lib \"c\" :symbol \"memset\" :returns :pointer? "
     ":params [:pointer? :int :size_t])\n(memset-n (c-malloc 4611686018427387904) 0 8)",
     "segmentation fault", "memset-n"),
    # compiled: tier 1 keeps the record of its direct calls too
    ("(ffi/defun strlen-p :lib \"c\" :symbol \"strlen\" :returns :size_t :params [:pointer?])\n"
     "(ffi/defun malloc-n :lib \"c\" :symbol \"malloc\" :returns :pointer? :params [:size_t])\n"
     "(fn f [n] (strlen-p (malloc-n n)))\n(repeat 3 (f 8))\n(f 4611686018427387904)",
     "segmentation fault", "strlen-p"),
]


@pytest.mark.parametrize(("body", "what", "name"), UNCHECKABLE)
@pytest.mark.parametrize("tier", ["0", "eager"])
def test_uncheckable_crashes_name_the_call(tmp_path: Path, tier: str, body: str, what: str,
                                           name: str) -> None:
    r = run(tmp_path, PRELUDE + body + '\n(println "not reached")\n', tier)
    assert r.returncode < 0, (r.returncode, r.stdout, r.stderr)  # ended by the signal
    assert f"gene-jit: a native call crashed ({what}) in {name}\n" in r.stderr, r.stderr
    assert "not reached" not in r.stdout


def test_crash_outside_foreign_calls_is_reported_and_chained() -> None:
    """A crash with no foreign call under way is reported as such, then handed to the
    handler before it (faulthandler, which prints the Python stack)."""
    code = ("import ctypes, faulthandler; faulthandler.enable()\n"
            "from gene_jit import ffi\n"
            "labs = ffi.defun('labs', lib='c', returns='long', params=['long'])\n"
            "assert labs(-3) == 3  # a finished foreign call leaves no record\n"
            "ctypes.string_at(1)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode < 0
    assert "gene-jit: the process crashed (segmentation fault) outside any foreign call" in r.stderr
    assert "Fatal Python error: Segmentation fault" in r.stderr
