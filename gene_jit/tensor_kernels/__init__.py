"""Tensor kernels: Numba CPU and CUDA kernels (matmul/GEMV, attention, feed-forward,
norms, RoPE, softmax, GGUF dequantisation), each with a float64 NumPy reference.

Importing the package costs nothing: numba loads with the first kernel module, and each
kernel module imports `kernel_cache` first so that its disk cache carries the stamp of
the whole directory (kernels inline helpers from sibling files).
"""
