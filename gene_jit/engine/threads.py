"""Row-parallel products for the engine on threads of its own.

Numba's `prange` (OpenMP here) splits a loop evenly over its threads and ends with a
barrier: on a machine whose cores are also busy with other processes, a kernel waits for
its slowest thread to be scheduled at all, and a few-microsecond GEMV can take a whole
scheduler time slice (measured: 12 ms median with 2 threads on a loaded 2-core machine,
7.6 us with 1). So the engine runs every kernel on the calling thread (Numba set to one
thread), and splits only products large enough to pay for it into chunks that the caller
and `threads - 1` helper threads take from a shared counter: a helper that is not
scheduled leaves its share to the caller instead of holding it up. The kernels run
without the GIL (`nogil=True`).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["MIN_WORK", "run_rows", "set_threads", "splits", "threads"]

# multiply-adds below which a product runs on the caller alone: integer products of a
# few million take tens of microseconds, about what handing chunks to helpers costs on a
# busy machine (measured: 2-thread decode 10-25% slower when the FFN products split too)
MIN_WORK = 1 << 23
CHUNKS_PER_THREAD = 4

_threads = 1
_jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
_helpers: list[threading.Thread] = []
_start_lock = threading.Lock()


class _Job:
    """One split product: chunks are claimed from `counter`; `done` counts finished ones."""

    __slots__ = ("fn", "args", "bounds", "counter", "done", "cond", "error")

    def __init__(self, fn: Callable[..., None], args: tuple[Any, ...], bounds: list[int]) -> None:
        self.fn, self.args, self.bounds = fn, args, bounds
        self.counter = itertools.count()  # next() is atomic under the GIL
        self.done = 0
        self.cond = threading.Condition()
        self.error: BaseException | None = None

    def work(self) -> None:
        n = len(self.bounds) - 1
        while True:
            i = next(self.counter)
            if i >= n:
                return
            try:
                self.fn(*self.args, self.bounds[i], self.bounds[i + 1])
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                self.error = exc
            with self.cond:
                self.done += 1
                if self.done == n:
                    self.cond.notify_all()

    def wait(self) -> None:
        n = len(self.bounds) - 1
        with self.cond:
            while self.done < n:
                self.cond.wait()
        if self.error is not None:
            raise self.error


def _helper() -> None:
    while True:
        _jobs.get().work()


def set_threads(n: int) -> None:
    """Use `n` threads (the caller and n - 1 helpers) for large products."""
    global _threads
    _threads = max(1, int(n))
    with _start_lock:
        while len(_helpers) < _threads - 1:
            t = threading.Thread(target=_helper, name=f"gene-engine-{len(_helpers) + 1}",
                                 daemon=True)
            t.start()
            _helpers.append(t)


def threads() -> int:
    return _threads


def splits(rows: int, work: int) -> bool:
    """Whether run_rows splits a product of `rows` rows and `work` multiply-adds."""
    return _threads > 1 and work >= MIN_WORK and rows >= 2 * _threads


def run_rows(fn: Callable[..., None], args: tuple[Any, ...], rows: int, work: int) -> None:
    """`fn(*args, r0, r1)` over rows 0..rows, split over the threads when `work`
    (multiply-adds) is large enough."""
    n = _threads
    if not splits(rows, work):
        fn(*args, 0, rows)
        return
    chunks = min(rows, n * CHUNKS_PER_THREAD)
    job = _Job(fn, args, [rows * i // chunks for i in range(chunks + 1)])
    for _ in range(n - 1):
        _jobs.put(job)
    job.work()
    job.wait()
