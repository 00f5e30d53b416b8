"""Devices: where a tensor's storage lives (`:cpu`, `:cuda`, `:cuda:1`), and what a
device that cannot be used here means.

`(device/create :cuda)` on a machine without CUDA does not fail and does not fall back
to the CPU: it prints one warning naming the cause and returns a device marked
unavailable, so a program written for a GPU still starts (the seed's first line) while
every tensor placed on that device raises a `DeviceError` naming the same cause.
`(device/create :cuda :strict true)` raises at once instead.
"""

from __future__ import annotations

import sys
from typing import Any

from gene_jit.runtime.errors import GeneTypeError
from gene_jit.runtime.values import Symbol
from gene_jit.tensor.dtypes import shown
from gene_jit.tensor_kernels.cuda_support import DeviceError

__all__ = ["CPU", "Device", "DeviceError", "create_device", "open_device", "parse_device"]


class Device:
    """A device: kind "cpu" or "cuda", an index among the machine's GPUs, and, for a
    device that cannot be used on this machine, the cause (`unavailable`)."""

    __slots__ = ("kind", "index", "unavailable")

    def __init__(self, kind: str, index: int = 0, unavailable: str | None = None) -> None:
        self.kind = kind
        self.index = index
        self.unavailable = unavailable

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and (self.kind, self.index) == (other.kind, other.index)

    def __hash__(self) -> int:
        return hash((self.kind, self.index))

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"

    def __repr__(self) -> str:
        return f"Device({str(self)!r})"

    def __gene_repr__(self) -> str:
        if self.unavailable:
            return f"#<device {self} (unavailable: {self.unavailable})>"
        return f"#<device {self}>"


CPU = Device("cpu")


def parse_device(spec: Any) -> Device:
    """A Device from `:cpu`, `:cuda`, "cuda:1", or a Device (no availability check)."""
    if spec is None:
        return CPU
    if isinstance(spec, Device):
        return spec
    name = spec.name if isinstance(spec, Symbol) else spec
    if isinstance(name, str):
        kind, _, idx = name.lstrip(":").partition(":")
        if kind in ("cpu", "cuda", "gpu") and (idx == "" or idx.isdigit()):
            if kind == "cpu":
                return CPU
            return Device("cuda", int(idx or 0))
    raise GeneTypeError(f'unknown device {shown(spec)}: expected :cpu or :cuda (or "cuda:N")')


def cuda_problem(dev: Device) -> tuple[str, str]:
    """Why `dev` cannot hold tensors on this machine, as (headline, cause); two empty
    strings when it can."""
    if not dev.is_cuda:
        return "", ""
    from gene_jit.tensor_kernels.cuda_support import cuda, cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason:
        return f"CUDA is not available ({reason})", reason
    cu = cuda()
    count = len(cu.gpus) if hasattr(cu, "gpus") else 1
    if dev.index >= count:
        cause = f"this machine has {count} GPU(s), so there is no cuda:{dev.index}"
        return cause, cause
    return "", ""


def create_device(spec: Any) -> Device:
    """The device to place a tensor on: raises a `DeviceError` naming the cause when it
    cannot be used (every tensor creation and transfer goes through here)."""
    dev = parse_device(spec)
    cause = dev.unavailable or cuda_problem(dev)[1]
    if cause:
        raise DeviceError(f"cannot place a tensor on device {dev}: it is unavailable ({cause})")
    return dev


def open_device(spec: Any, strict: bool = False) -> Device:
    """`(device/create :cuda [:strict true])`: a usable device; or, when this machine
    cannot use it, a device marked unavailable after one warning on stderr (strict:
    a `DeviceError` instead). Never a silent fall back to the CPU."""
    dev = parse_device(spec)
    headline, cause = cuda_problem(dev)
    if not cause:
        return dev
    if strict:
        raise DeviceError(f"cannot use device {dev}: {headline}")
    print(
        f"warning: {headline}: device {dev} is unusable here; tensors placed on it will raise",
        file=sys.stderr,
        flush=True,
    )
    return Device(dev.kind, dev.index, unavailable=cause)
