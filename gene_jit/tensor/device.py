"""Devices: where a tensor's storage lives (`:cpu`, `:cuda`, `:cuda:1`)."""

from __future__ import annotations

from typing import Any

from gene_jit.runtime.errors import GeneTypeError
from gene_jit.runtime.values import Symbol


class Device:
    """A device: kind "cpu" or "cuda", and an index among the machine's GPUs."""

    __slots__ = ("kind", "index")

    def __init__(self, kind: str, index: int = 0) -> None:
        self.kind = kind
        self.index = index

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
    raise GeneTypeError(f"unknown device {spec!r}: expected :cpu or :cuda (or \"cuda:N\")")


def create_device(spec: Any) -> Device:
    """`(device/create :cuda)`: a device that is checked to be usable now."""
    dev = parse_device(spec)
    if dev.is_cuda:
        from gene_jit.tensor_kernels.cuda_support import DeviceError, cuda

        cu = cuda()
        count = len(cu.gpus) if hasattr(cu, "gpus") else 1
        if dev.index >= count:
            raise DeviceError(f"cannot use device :cuda:{dev.index}: this machine has {count} GPU(s)")
    return dev
