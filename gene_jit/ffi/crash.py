"""Crash reports: a program whose native code crashes never dies silently.

What the FFI cannot check (C code dereferencing memory it was given, `(strlen nil)`
through a parameter the program declared `:string?`, a double free through a declared
`free`) still kills the process, as it would in C. Before it dies, a signal handler
prints one line to stderr:

    gene-jit: a native call crashed (segmentation fault) in strlen

Every foreign call, in both tiers, keeps a cheap record of itself: the address of its
NUL-terminated name goes into one machine word (`CURRENT[0]`) before the call, and 0
after it; a callback puts back on return what it found on entry, so that the record
of the call that called it survives the callback's own foreign calls. The handler
reads that word. A crash outside any foreign call (a fault of gene-jit or of a library it
uses) is reported as such and then handed to the handler that was there before
(Python's `faulthandler`, which the CLI and API enable, dumps the Python stack).

The handler is native code compiled with llvmlite the first time a foreign function is
made (signal handlers written in Python run only after the C code returns, which a crash
never does); it calls only `write`, `strlen` and `sigaction`, which are safe in a handler.
Linux on x86-64 and AArch64 (glibc's `struct sigaction`); elsewhere only `faulthandler`.
"""

from __future__ import annotations

import array
import ctypes
import faulthandler
import platform
import signal
import sys
from typing import Any

# The name of the foreign function being called (address of a NUL-terminated string), or
# 0: one machine word. An array item is the cheapest word Python code can store to.
CURRENT = array.array("Q", [0])
CURRENT_ADDRESS: int = CURRENT.buffer_info()[0]

_NAMES: dict[str, Any] = {}  # name -> its NUL-terminated bytes, alive for the process
_state: dict[str, Any] = {}  # what the installed handler needs kept alive

SIGNALS = {
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
    signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "arithmetic fault",
    signal.SIGABRT: "abort",
}
_SA_ONSTACK, _SA_RESETHAND = 0x08000000, 0x80000000


class _SigAction(ctypes.Structure):
    """glibc's `struct sigaction` on Linux x86-64 and AArch64."""

    _fields_ = [
        ("handler", ctypes.c_void_p),
        ("mask", ctypes.c_ubyte * 128),
        ("flags", ctypes.c_int),
        ("restorer", ctypes.c_void_p),
    ]


def name_address(name: str) -> int:
    """The address of `name` as NUL-terminated bytes that live as long as the process
    (what a call stores into `CURRENT`)."""
    buf = _NAMES.get(name)
    if buf is None:
        buf = _NAMES[name] = ctypes.create_string_buffer(name.encode("utf-8", "replace"))
    return ctypes.addressof(buf)


def enable_reports() -> None:
    """Python's `faulthandler` for any fatal signal (the CLI and API entry enable it too,
    gene_jit/api.py): the report of a crash outside foreign calls, and an alternate
    stack for the native handler when the C stack itself overflowed."""
    if not faulthandler.is_enabled():
        try:
            faulthandler.enable()
        except (RuntimeError, ValueError, OSError):  # no usable stderr: nothing to report to
            pass


def install() -> None:
    """Install the native crash handler (once; a no-op where it cannot be built)."""
    if _state or not _supported():
        return
    _state["done"] = True
    enable_reports()
    try:
        _install()
    except Exception:  # noqa: BLE001 - reports are best effort; faulthandler still reports
        pass


def _supported() -> bool:
    return sys.platform.startswith("linux") and platform.machine() in ("x86_64", "aarch64")


def _cstr(text: str) -> int:
    buf = ctypes.create_string_buffer(text.encode())
    _state.setdefault("keep", []).append(buf)
    return ctypes.addressof(buf)


def _install() -> None:
    libc = ctypes.CDLL(None)
    sigaction = libc.sigaction
    sigaction.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    sigaction.restype = ctypes.c_int
    top = max(int(s) for s in SIGNALS) + 1
    names = (ctypes.c_void_p * top)()
    for sig, what in SIGNALS.items():
        names[int(sig)] = _cstr(what)
    old = (_SigAction * top)()
    _state["keep"] += [names, old]
    addresses = {
        "write": ctypes.cast(libc.write, ctypes.c_void_p).value,
        "strlen": ctypes.cast(libc.strlen, ctypes.c_void_p).value,
        "sigaction": ctypes.cast(sigaction, ctypes.c_void_p).value,
    }
    text = _handler_ir(addresses, ctypes.addressof(names), ctypes.addressof(old),
                       ctypes.sizeof(_SigAction))
    handler = _compile(text)
    new = _SigAction()
    new.handler = handler
    new.flags = _SA_ONSTACK | _SA_RESETHAND
    for sig in SIGNALS:
        sigaction(int(sig), ctypes.addressof(new), ctypes.addressof(old[int(sig)]))


def _handler_ir(fns: dict[str, Any], names: int, old: int, size: int) -> str:
    """LLVM IR of `void gene_jit_fault(i32 sig)`: write the report; after a crash inside
    a foreign call leave the default action (SA_RESETHAND set it), else restore the
    previous handler; then return, so that the fault happens again (or `abort`
    raises again) and that action ends the process."""
    msg = {k: _cstr(v) for k, v in {
        "known": "gene-jit: a native call crashed (",
        "in": ") in ",
        "end": "\n",
        "unknown": "gene-jit: the process crashed (",
        "outside": ") outside any foreign call; this is a bug in gene-jit or in a "
                   "library it uses\n",
    }.items()}

    def ptr(addr: int) -> str:
        return f"inttoptr (i64 {addr} to ptr)"

    return f"""
define private void @put(ptr %p) {{
  %n = call i64 {ptr(fns["strlen"])}(ptr %p)
  %w = call i64 {ptr(fns["write"])}(i32 2, ptr %p, i64 %n)
  ret void
}}

define void @gene_jit_fault(i32 %sig) {{
entry:
  %s = sext i32 %sig to i64
  %slot = getelementptr ptr, ptr {ptr(names)}, i64 %s
  %what = load ptr, ptr %slot
  %name = load volatile ptr, ptr {ptr(CURRENT_ADDRESS)}
  %known = icmp ne ptr %name, null
  br i1 %known, label %k, label %u
k:
  call void @put(ptr {ptr(msg["known"])})
  call void @put(ptr %what)
  call void @put(ptr {ptr(msg["in"])})
  call void @put(ptr %name)
  call void @put(ptr {ptr(msg["end"])})
  ret void
u:
  call void @put(ptr {ptr(msg["unknown"])})
  call void @put(ptr %what)
  call void @put(ptr {ptr(msg["outside"])})
  %off = mul i64 %s, {size}
  %prev = getelementptr i8, ptr {ptr(old)}, i64 %off
  %r = call i32 {ptr(fns["sigaction"])}(i32 %sig, ptr %prev, ptr null)
  ret void
}}
"""


def _compile(text: str) -> int:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    mod = llvm.parse_assembly(text)
    mod.verify()
    tm = llvm.Target.from_default_triple().create_target_machine()
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    _state["engine"] = engine  # the handler's code lives as long as the engine
    return int(engine.get_function_address("gene_jit_fault"))
