"""Loading Numba's CUDA target, and what to say when it cannot load.

Everything CUDA goes through `cuda()` here: it imports `numba.cuda` on first use (numba
costs over half a second to import), patches NumPy for numba-cuda releases that still
call `np.row_stack` (removed in NumPy 2.5), and turns "no GPU" / "no driver" into one
clear `GeneError` naming the cause. `NUMBA_ENABLE_CUDASIM=1` selects Numba's simulator,
which runs the same kernels on the CPU (slowly) so that CI can check them.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from gene_jit.runtime.errors import GeneError


class DeviceError(GeneError):
    kind = "device error"


_cuda: Any = None
_checked: str | None = None  # None: not checked yet; "": usable; else the reason it is not


def simulator() -> bool:
    """True when kernels run under Numba's CUDA simulator."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")


def _import_cuda() -> Any:
    global _cuda
    if _cuda is None:
        if not hasattr(np, "row_stack"):
            # numba-cuda <= 0.30 refers to np.row_stack at import time.
            np.row_stack = np.vstack  # type: ignore[attr-defined]
        from numba import cuda as numba_cuda

        if simulator():
            _add_simulated_shuffle()
        _cuda = numba_cuda
    return _cuda


def _add_simulated_shuffle() -> None:
    """Numba's simulator has no warp shuffles; emulate `shfl_xor_sync` with a block-wide
    exchange. Valid when every live thread of the block makes the same shuffle calls,
    which the kernels here guarantee (early exits are whole warps)."""
    import threading

    from numba.cuda.simulator import kernelapi

    if hasattr(kernelapi.FakeCUDAModule, "shfl_xor_sync"):
        return

    def shfl_xor_sync(self: Any, mask: int, value: Any, offset: int) -> Any:
        th = threading.current_thread()
        t, b = th.threadIdx, th.blockIdx  # type: ignore[attr-defined]
        bd = self.blockDim
        tid = t.x + bd.x * (t.y + bd.y * t.z)
        slots = self.__dict__.setdefault("_shfl_slots", {})
        key = (b.x, b.y, b.z)
        slots.setdefault(key, {})[tid] = value
        th.syncthreads()  # type: ignore[attr-defined]
        other = slots[key].get(tid ^ offset, value)
        th.syncthreads()  # type: ignore[attr-defined]
        return other

    kernelapi.FakeCUDAModule.shfl_xor_sync = shfl_xor_sync  # type: ignore[attr-defined]


def cuda_unavailable_reason() -> str:
    """Empty when a CUDA device (or the simulator) is usable; otherwise why not."""
    global _checked
    if _checked is not None:
        return _checked
    try:
        cuda = _import_cuda()
    except Exception as exc:  # an ImportError or a driver-load error from numba
        _checked = f"numba's CUDA target failed to load ({type(exc).__name__}: {exc})"
        return _checked
    if simulator():
        _checked = ""
        return _checked
    try:
        if not cuda.is_available():
            _checked = _driver_reason(cuda)
            return _checked
        cuda.get_current_device()
    except Exception as exc:
        _checked = f"the CUDA driver could not open a GPU ({type(exc).__name__}: {exc})"
        return _checked
    _checked = ""
    return _checked


def _driver_reason(cuda: Any) -> str:
    try:
        cuda.cudadrv.driver.driver.get_device_count()
    except Exception as exc:
        text = str(exc)
        if "libcuda" in text or "driver" in text.lower():
            return "no CUDA driver found (libcuda.so could not be loaded)"
        return f"the CUDA driver failed: {text}"
    return "no CUDA GPU found on this machine"


def cuda() -> Any:
    """The `numba.cuda` module, once a device (or the simulator) is known to be usable."""
    reason = cuda_unavailable_reason()
    if reason:
        raise DeviceError(f"cannot use device :cuda: {reason}")
    return _import_cuda()


def available() -> bool:
    return cuda_unavailable_reason() == ""


class Capture:
    """Kernels launched while a capture is active go to its `stream` (a `cuda.core` graph
    builder that records them into a CUDA graph); arrays allocated meanwhile through
    `device_empty` are kept alive with the capture, since the graph holds their addresses."""

    active: Capture | None = None

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.keep: list[Any] = []

    def __enter__(self) -> Capture:
        if Capture.active is not None:
            raise RuntimeError("nested CUDA graph captures")
        Capture.active = self
        return self

    def __exit__(self, *exc: object) -> None:
        Capture.active = None


def launch_stream() -> Any:
    """The stream kernels launch on: the capturing graph builder, else the default (0)."""
    cap = Capture.active
    return 0 if cap is None else cap.stream


def device_empty(shape: Any, dtype: Any = np.float32) -> Any:
    """An uninitialised device array (kept alive by an active capture)."""
    a = cuda().device_array(shape, dtype)
    if Capture.active is not None:
        Capture.active.keep.append(a)
    return a


def is_device_array(x: Any) -> bool:
    """True for a Numba CUDA device array (or its simulator stand-in)."""
    return hasattr(x, "copy_to_host") and hasattr(x, "__cuda_array_interface__") or (
        simulator() and type(x).__name__ in ("FakeCUDAArray", "DeviceNDArray")
    )
