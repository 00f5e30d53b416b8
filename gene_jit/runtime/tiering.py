"""The seam between tier 0 and tier 1.

The frontend never imports codegen. Instead, tier 0 asks this module for the prologue
statements to put at the top of every Gene function body (call counting, argument type
recording) and tells it about every function it defines. Tier 1 installs itself here
(`install(jit)`) when the JIT is enabled; with `GENE_JIT=0` nothing is installed and the
prologue is empty, so tier 0 pays nothing.

Contract for the tier-0 compiler:

* `mode()` gives "off", "lazy" or "eager" (from `GENE_JIT`; default "lazy").
* Before compiling a `fn` form, call `prologue(fn_id)` to get a list of `ast.stmt` to insert
  at the top of the Python function body (may be empty). `fn_id` is an int from
  `new_fn_id()`.
* After the Python function object exists, call `register(fn_id, pyfunc, info)` where
  `info` is a `FnInfo`. The return value is the callable to bind under the function's name
  (tier 1 may wrap it).
* Run a program's top-level code inside `with program_depth():`. Both tiers count Gene
  calls in CPython's recursion counter (tier 0 as Python frames, native code through the
  same counter, see gene_jit.codegen.emit_depth), so the recursion limit is the Gene call
  depth limit: `GENE_MAX_DEPTH` (default 10,000) calls deeper than the code run.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from gene_jit.frontend.forms import Form


@dataclass
class FnInfo:
    name: str
    form: Form  # the whole `(fn name args body...)` form
    params: list[str]  # positional parameter names, in order
    namespace: dict[str, Any]  # the globals the function runs in
    has_varargs: bool = False
    has_props: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class JitHooks(Protocol):
    def prologue(self, fn_id: int) -> list[ast.stmt]: ...

    def register(self, fn_id: int, pyfunc: Any, info: FnInfo) -> Any: ...


_hooks: JitHooks | None = None
_next_id = 0


def mode() -> str:
    return _MODES.get(os.environ.get("GENE_JIT", "1").strip().lower(), "lazy")


def install(hooks: JitHooks | None) -> None:
    global _hooks
    _hooks = hooks


def active() -> JitHooks | None:
    return _hooks if mode() != "off" else None


def new_fn_id() -> int:
    global _next_id
    _next_id += 1
    return _next_id


def prologue(fn_id: int) -> list[ast.stmt]:
    hooks = active()
    return hooks.prologue(fn_id) if hooks is not None else []


def register(fn_id: int, pyfunc: Any, info: FnInfo) -> Any:
    hooks = active()
    return hooks.register(fn_id, pyfunc, info) if hooks is not None else pyfunc


DEFAULT_MAX_DEPTH = 10_000
MAX_MAX_DEPTH = 50_000
# The main thread's stack may grow this far (the soft RLIMIT_STACK; Linux keeps at least
# 128 MiB free below the stack): native frames, and C frames where tier 0 and native
# code call each other, must fit GENE_MAX_DEPTH calls.
_STACK_BYTES = 120 << 20
_stack_grown = False


def max_depth() -> int:
    """The Gene call depth limit: `GENE_MAX_DEPTH`, default 10,000, at most 50,000
    (what the stack below is sized for). A value that is no whole number from 1 to that
    maximum is a Gene error: a limit that silently meant something else would fail
    later, somewhere else."""
    from gene_jit.runtime.errors import GeneError

    text = os.environ.get("GENE_MAX_DEPTH", "").strip()
    if not text:
        return DEFAULT_MAX_DEPTH
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value > MAX_MAX_DEPTH:
        raise GeneError(f"GENE_MAX_DEPTH {value} is above the most this stack allows ({MAX_MAX_DEPTH})")
    if value < 1:
        raise GeneError(f"GENE_MAX_DEPTH must be a whole number from 1 to {MAX_MAX_DEPTH}, got {text!r}")
    return value


_MODES = {"": "lazy", "1": "lazy", "on": "lazy", "true": "lazy", "yes": "lazy", "lazy": "lazy",
          "0": "off", "off": "off", "false": "off", "no": "off", "eager": "eager"}


def check_settings() -> None:
    """`GENE_JIT` and `GENE_JIT_THRESHOLD` mean what they say, or the program does not
    start: a misspelt mode (`GENE_JIT=eagre`) would otherwise run silently in another."""
    from gene_jit.runtime.errors import GeneError

    text = os.environ.get("GENE_JIT", "1")
    if text.strip().lower() not in _MODES:
        raise GeneError(f"GENE_JIT must be 0 (tier 1 off), eager (compile at the first call) or 1 "
                        f"(the default: compile when hot), got {text!r}")
    threshold = os.environ.get("GENE_JIT_THRESHOLD", "").strip()
    if threshold and not (threshold.isdigit() and threshold.isascii()):
        raise GeneError(f"GENE_JIT_THRESHOLD must be a whole number of calls, got {threshold!r}")
    for part in (p.strip() for p in os.environ.get("GENE_DUMP", "").split(",")):
        if part and part not in ("py", "ir", "llvm", "asm") and not part.startswith("ir-after:"):
            raise GeneError(f"GENE_DUMP is a comma-separated list of py, ir, llvm, asm and "
                            f"ir-after:PASS, got {part!r}")


class program_depth:  # noqa: N801 - used as a `with` statement
    """`with program_depth(): env[" top"]()`: Gene code that the block calls may nest
    `max_depth()` Gene calls and no more. The recursion limit is set for the block and
    put back after it; the main thread's stack is made room for that depth once."""

    def __enter__(self) -> None:
        check_settings()
        self.saved = sys.getrecursionlimit()
        sys.setrecursionlimit(python_depth() + max_depth())  # the block runs at our depth
        if not _stack_grown and threading.current_thread() is threading.main_thread():
            _grow_stack()

    def __exit__(self, *exc: object) -> None:
        sys.setrecursionlimit(self.saved)


# (remaining, limit) offsets of CPython's recursion counter in PyThreadState, per
# version (3.12 on: the Python-frame counter); checked against sys.getrecursionlimit()
_COUNTER_OFFSETS = {(3, 11): (32, 36), (3, 12): (28, 32), (3, 13): (44, 48)}


@functools.cache
def recursion_counter_offset() -> int | None:
    """Where the running thread state keeps what is left of the recursion budget (the
    counter both tiers spend), or None where this Python is not laid out as expected."""
    import ctypes

    offsets = _COUNTER_OFFSETS.get(sys.version_info[:2])
    tstate = thread_state()
    if offsets is None or not tstate:
        return None
    remaining, limit = (ctypes.c_int.from_address(tstate + o).value for o in offsets)
    if limit == sys.getrecursionlimit() and 0 < remaining <= limit:
        return offsets[0]
    return None


def thread_state() -> int:
    import ctypes

    get = ctypes.pythonapi.PyThreadState_Get
    get.restype = ctypes.c_void_p
    return int(get() or 0)


def python_depth() -> int:
    """The caller's depth as CPython's recursion counter sees it: Python frames, and on
    3.11 the C-level calls into Python as well (which the frames do not show)."""
    offset = recursion_counter_offset()
    if offset is not None:
        import ctypes

        remaining = ctypes.c_int.from_address(thread_state() + offset).value
        return sys.getrecursionlimit() - remaining - 1
    depth, frame = 0, sys._getframe(1)
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return depth


def _grow_stack() -> None:
    global _stack_grown
    _stack_grown = True
    try:
        import resource
    except ImportError:  # not a POSIX system: the platform's stack stays as it is
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    want = _STACK_BYTES if hard == resource.RLIM_INFINITY else min(_STACK_BYTES, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_STACK, (want, hard))
        except (ValueError, OSError):
            pass


# Frames a tier-0 function's prologue holds when it forwards its call to a native entry:
# the function's own, `FnState.enter` and `call_forwarded`.
_PROLOGUE_FRAMES = 3


def call_forwarded(entry: Any, args: list[Any]) -> Any:
    """Run a native entry for a tier-0 function whose prologue forwards its call. The
    call already holds the prologue's frames and CPython counts the call of the entry
    once more, so the frames are handed back for the native call: the Gene call counts
    once, as in tier 0."""
    offset = recursion_counter_offset()
    if offset is None:
        return entry(*args)
    import ctypes

    counter = ctypes.c_int.from_address(thread_state() + offset)
    counter.value += _PROLOGUE_FRAMES
    try:
        return entry(*args)
    finally:
        counter.value -= _PROLOGUE_FRAMES
