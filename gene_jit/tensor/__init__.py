"""Tensors for Gene: the `Tensor` value, devices, and the `tensor/*` operations.

Importing this package does not import Numba: kernels load on first use."""

from gene_jit.tensor.device import CPU, Device, create_device, parse_device
from gene_jit.tensor.tensor import Tensor

__all__ = ["CPU", "Device", "Tensor", "create_device", "parse_device"]
