"""Ctrl-C in native code.

A native loop runs no Python bytecode, so CPython's own signal handling (its C handler
notes the signal; the bytecode loop later runs the Python handler, which raises
KeyboardInterrupt) never gets its turn. Tier 1 therefore puts a C-level SIGINT handler
(`gene_jit_on_sigint`, in the engine's runtime module) in front of CPython's: it sets
the flag `gene_jit_interrupt` and then runs the handler it replaced, so Python still sees
every interrupt. Each loop back-edge of native code reads the flag (an atomic relaxed
load and a branch that is never taken until Ctrl-C, emit.FunctionEmitter.edge); when it
is set, `gene_jit_poll` runs Python's signal handlers in the main thread, and one that
raises ends the native call with that exception, as tier 0 would have raised it between
two bytecodes. SIGTERM and the other signals keep their own handling.

`ensure()` installs the handler (sigaction) before native code first runs, and again
whenever something (Python's `signal.signal`) replaced it since. Where SIGINT is
ignored or has its default action (the process dies), nothing is installed.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading

_SIG_DFL, _SIG_IGN = 0, 1


class _SigAction(ctypes.Structure):
    """`struct sigaction` as glibc lays it out on Linux (x86-64 and AArch64)."""

    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


_libc: ctypes.CDLL | None = None


def _sigaction(new: _SigAction | None, old: _SigAction | None) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.sigaction.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    return int(_libc.sigaction(signal.SIGINT, ctypes.byref(new) if new is not None else None,
                               ctypes.byref(old) if old is not None else None))


def ensure() -> None:
    """Put the SIGINT handler in front of the current one, unless it is there already
    (cheap: one sigaction query). Only from the main thread, whose Python thread state
    the poll needs."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return
    from gene_jit.codegen.engine import engine

    eng = engine()
    ours = eng.runtime_address("gene_jit_on_sigint")
    old = _SigAction()
    if _sigaction(None, old) != 0 or old.handler in (None, _SIG_DFL, _SIG_IGN, ours):
        return
    from gene_jit.runtime.tiering import thread_state

    prev = ctypes.c_void_p.from_address(eng.runtime_address("gene_jit_prev_sigint", variable=True))
    main = ctypes.c_void_p.from_address(eng.runtime_address("gene_jit_main_tstate", variable=True))
    prev.value = old.handler
    main.value = thread_state()
    new = _SigAction()
    ctypes.pointer(new)[0] = old
    new.handler = ours
    _sigaction(new, None)
