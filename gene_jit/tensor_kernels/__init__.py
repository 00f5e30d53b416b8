"""Tensor kernels: Numba CPU and CUDA kernels (matmul/GEMV, attention, feed-forward,
norms, RoPE, softmax, GGUF dequantisation), each with a float64 NumPy reference."""
