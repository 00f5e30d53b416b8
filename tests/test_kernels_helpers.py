"""Shared helpers for the kernel and tensor tests: random inputs, poisoned outputs and
relative error against the float64 references."""

from __future__ import annotations

import numpy as np

F32_TOL = 1e-5
F16_TOL = 1e-2


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randn(g: np.random.Generator, *shape: int, dtype: type = np.float32) -> np.ndarray:
    """Random normal values (never all zeros: zero inputs hide unwritten outputs)."""
    return g.standard_normal(shape).astype(dtype)


def poisoned(*shape: int, dtype: type = np.float32) -> np.ndarray:
    """An output buffer filled with NaN, so any element a kernel forgets stays NaN."""
    return np.full(shape, np.nan, dtype=dtype)


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref| (NaN anywhere in `got` counts as an infinite error)."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"shape {got.shape} != reference {ref.shape}"
    if np.isnan(got).any():
        return float("inf")
    scale = max(float(np.abs(ref).max()), 1e-30)
    return float(np.abs(got - ref).max()) / scale


def check(name: str, got: np.ndarray, ref: np.ndarray, tol: float = F32_TOL) -> float:
    err = rel_err(got, ref)
    print(f"{name}: relative error {err:.2e}")
    assert err <= tol, f"{name}: relative error {err:.3e} > {tol:.0e}"
    return err


def random_blocks(g: np.random.Generator, kind: str, nblocks: int) -> np.ndarray:
    """Random GGUF blocks of `kind` with sane (finite, small) f16 scales."""
    from gene_jit.tensor_kernels.reference import BLOCK_BYTES

    raw = g.integers(0, 256, size=(nblocks, BLOCK_BYTES[kind]), dtype=np.uint8)

    def put(col: int, values: np.ndarray) -> None:
        raw[:, col : col + 2] = values.astype(np.float16).view(np.uint8).reshape(nblocks, 2)

    scales = g.uniform(0.001, 0.05, size=nblocks)
    if kind == "q6_k":
        put(208, scales)
    else:
        put(0, scales)
        if kind == "q4_k":
            put(2, g.uniform(0.001, 0.05, size=nblocks))
    return raw.reshape(-1)
