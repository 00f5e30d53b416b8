"""A stack sampler: a thread that looks at the profiled thread's Python stack at a fixed
interval and keeps the Gene part of it (frames whose code comes from a Gene file).

Each sample is weighted by the wall time since the previous one, so time during which
the sampler could not run (native code holding the GIL) still adds up to the total; it
is charged to the stack seen when sampling resumed. While sampling, the interpreter's
switch interval is lowered to the sampling interval so the thread gets its turns.
"""

from __future__ import annotations

import sys
import threading
import time
from types import CodeType, FrameType

from gene_jit.profiler.areas import area_of

MAX_DEPTH = 256  # deeper stacks keep their innermost frames (deep recursion)
TRUNCATED = "..."  # first entry of a stack cut at MAX_DEPTH

# A stack: root first; a code object per Gene frame, and strings for pseudo-frames (a
# library area at the leaf, TRUNCATED at the root).
Stack = tuple[CodeType | str, ...]


class Sampler:
    def __init__(self, interval: float, gene_files: set[str]) -> None:
        self.interval = interval
        self.gene_files = gene_files
        self.stacks: dict[Stack, float] = {}
        self.samples = 0
        # Seconds per library area at the leaf while no timed library call was open (the
        # open calls of libcalls.Clock.inner): time that the exact rows do not cover.
        self.loose: dict[str, float] = {}
        self.open_calls: list[float] = []
        self._target = threading.get_ident()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._switch = sys.getswitchinterval()

    def start(self) -> None:
        self._target = threading.get_ident()
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, self.interval))
        self._thread = threading.Thread(target=self._run, name="gene-profile-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        sys.setswitchinterval(self._switch)

    def _run(self) -> None:
        last = time.perf_counter()
        wait = self.interval
        while not self._stop.wait(wait):
            t0 = time.perf_counter()
            frame = sys._current_frames().get(self._target)
            if frame is not None:
                stack = self._gene_stack(frame)
                if stack:
                    self.stacks[stack] = self.stacks.get(stack, 0.0) + t0 - last
                    self.samples += 1
                    leaf = stack[-1]
                    if isinstance(leaf, str) and not self.open_calls:
                        self.loose[leaf] = self.loose.get(leaf, 0.0) + t0 - last
            last = t0
            # Deep stacks cost more to walk: back off so sampling stays a small share.
            cost = time.perf_counter() - t0
            wait = max(self.interval, 20 * cost)

    def _gene_stack(self, frame: FrameType | None) -> Stack:
        files = self.gene_files
        codes: list[CodeType | str] = []
        leaf: str | None = None  # the library area running at the innermost frames
        depth = 0
        # (another thread's stack, read while it runs: in CPython 3.11 a link can be a
        # frame being torn down, seen as some other object; the walk stops there)
        while isinstance(frame, FrameType) and depth < MAX_DEPTH:
            code = frame.f_code
            if code.co_filename in files:
                codes.append(code)
            elif not codes and leaf is None:
                leaf = area_of(code.co_filename)
            frame = frame.f_back
            depth += 1
        if not codes:
            return ()
        if isinstance(frame, FrameType):
            codes.append(TRUNCATED)
        codes.reverse()
        if leaf is not None:
            codes.append(leaf)
        return tuple(codes)
