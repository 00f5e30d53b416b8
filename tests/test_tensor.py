"""Tensor values and `tensor/*` ops on the CPU: results against the float64 references,
dtypes, printing, zero-copy NumPy interop, and shape errors naming both shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_kernels_helpers import F16_TOL, check, randn, rng

from gene_jit.runtime.errors import GeneError
from gene_jit.runtime.values import Symbol
from gene_jit.tensor import Tensor, create_device, ops, ops_nn
from gene_jit.tensor_kernels import reference as ref


def t(a: np.ndarray) -> Tensor:
    return Tensor.from_numpy(a)


def test_zero_copy_numpy_and_printing() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = Tensor.from_numpy(a)
    assert x.numpy() is a and x.dtype == "f32" and x.shape == (3, 4)
    text = x.__gene_repr__()
    assert text.startswith("#<tensor [3 4] f32 cpu [0 1 2 3 ... 10 11]")


def test_dtypes_f16_bf16() -> None:
    g = rng(31)
    a, b = randn(g, 4, 8), randn(g, 8)
    for dt in ("f16", "bf16"):
        x = ops.create(a, dtype=Symbol(dt))
        assert x.dtype == dt
        y = ops.add(x, ops.create(b, dtype=dt))
        assert y.dtype == dt
        check(f"add {dt}", y.numpy(), a.astype(np.float64) + b, F16_TOL)


def test_creation() -> None:
    assert ops.zeros([2, 3]).numpy().sum() == 0
    assert ops.ones([2], dtype="i32").dtype == "i32"
    r = ops.randn([50, 50])
    assert r.shape == (50, 50) and abs(float(r.numpy().mean())) < 0.2
    assert ops.arange(2, 6).numpy().tolist() == [2, 3, 4, 5]
    with pytest.raises(GeneError, match="shape must be"):
        ops.zeros("x")


def test_arithmetic_broadcast_and_scalars() -> None:
    g = rng(32)
    a, b = randn(g, 2, 3, 4), randn(g, 3, 1)
    check("add", ops.add(t(a), t(b)).numpy(), a.astype(np.float64) + b)
    check("sub", ops.sub(t(a), 2.5).numpy(), a.astype(np.float64) - 2.5)
    check("mul", ops.mul(3, t(a)).numpy(), a.astype(np.float64) * 3)
    check("div", ops.div(t(a), t(b)).numpy(), a.astype(np.float64) / b)
    with pytest.raises(GeneError, match=r"\[2 3 4\] and \[5\]"):
        ops.add(t(a), t(randn(g, 5)))


def test_matmul_transpose_reshape() -> None:
    g = rng(33)
    a, b = randn(g, 4, 5, 6), randn(g, 4, 6, 3)
    check("matmul batched", ops.matmul(t(a), t(b)).numpy(), ref.matmul(a, b))
    k = randn(g, 7, 6)
    check("q k^T", ops.matmul(t(k), ops.transpose(t(k))).numpy(), ref.matmul(k, k.T))
    with pytest.raises(GeneError, match=r"\[4 5 6\] @ \[4 5 3\]"):
        ops.matmul(t(a), t(randn(g, 4, 5, 3)))
    assert ops.reshape(t(a), [20, -1]).shape == (20, 6)
    with pytest.raises(GeneError, match=r"\[4 5 6\].*\[7 7\]"):
        ops.reshape(t(a), [7, 7])


def test_slice_get_stack_concat() -> None:
    g = rng(34)
    a = randn(g, 4, 5)
    assert ops.slice_(t(a), 1, 3).shape == (2, 5)
    assert ops.slice_(t(a), 1, None, axis=1).shape == (4, 4)
    assert ops.get(t(a), 2, 3) == pytest.approx(float(a[2, 3]))
    assert ops.get(t(a), 1).shape == (5,)
    with pytest.raises(GeneError, match="out of range"):
        ops.get(t(a), 9)
    s = ops.stack([t(a), t(a)])
    assert s.shape == (2, 4, 5)
    assert ops.concat([t(a), t(a)], axis=1).shape == (4, 10)
    with pytest.raises(GeneError, match=r"\[3 5\].*\[4 5\]"):
        ops.stack([t(a), t(a[:3])])


def test_reductions() -> None:
    g = rng(35)
    a = randn(g, 3, 6)
    assert ops_nn.sum_(t(a)) == pytest.approx(float(a.astype(np.float64).sum()), rel=1e-5)
    check("mean axis", ops_nn.mean(t(a), axis=1).numpy(), a.astype(np.float64).mean(1))
    assert ops_nn.max_(t(a)) == pytest.approx(float(a.max()))
    assert ops_nn.argmax(t(a), axis=-1).numpy().tolist() == a.argmax(-1).tolist()


def test_nn_ops_against_reference() -> None:
    g = rng(36)
    x, w, b = randn(g, 2, 5, 32), randn(g, 32), randn(g, 32)
    check("softmax", ops_nn.softmax(t(x)).numpy(), ref.softmax(x))
    check("softmax axis 1", ops_nn.softmax(t(x), axis=1).numpy(), ref.softmax(x, axis=1))
    check("rmsnorm", ops_nn.rmsnorm(t(x), t(w)).numpy(), ref.rmsnorm(x, w))
    check("layernorm", ops_nn.layernorm(t(x), t(w), t(b)).numpy(), ref.layernorm(x, w, b))
    check("silu", ops.silu(t(x)).numpy(), ref.silu(x))
    check("gelu", ops.gelu(t(x)).numpy(), ref.gelu(x))
    check("exp", ops.exp(t(x)).numpy(), np.exp(x.astype(np.float64)))
    check("sqrt", ops.sqrt(t(np.abs(x))).numpy(), np.sqrt(np.abs(x).astype(np.float64)))
    check("rope", ops_nn.rope(t(x), 3).numpy(), ref.rope(x, np.arange(3, 8)))
    with pytest.raises(GeneError, match=r"weight shape \[5\]"):
        ops_nn.rmsnorm(t(x), t(randn(g, 5)))


def test_embedding_topk_mask() -> None:
    g = rng(37)
    table = randn(g, 10, 4)
    e = ops_nn.embedding(t(table), [3, 1, 3])
    np.testing.assert_array_equal(e.numpy(), table[[3, 1, 3]])
    with pytest.raises(GeneError, match="out of range"):
        ops_nn.embedding(t(table), [10])
    vals, idx = ops_nn.topk(t(np.array([[1.0, 5.0, 3.0, 4.0]], np.float32)), 2)
    assert idx.numpy().tolist() == [[1, 3]] and vals.numpy().tolist() == [[5.0, 4.0]]
    m = ops_nn.causal_mask(3).numpy()
    assert m[0, 1] == -np.inf and m[1, 0] == 0 and m[2, 2] == 0
    s = randn(g, 2, 3, 5)
    masked = ops_nn.causal_mask(t(s)).numpy()
    assert np.isneginf(masked[0, 0, 3]) and masked[0, 0, 2] == s[0, 0, 2]


def test_fused_attention_and_ffn_ops() -> None:
    g = rng(38)
    q, k, v = randn(g, 4, 9, 16), randn(g, 2, 9, 16), randn(g, 2, 9, 16)
    check("attention op", ops_nn.attention(t(q), t(k), t(v)).numpy(), ref.attention(q, k, v))
    x = randn(g, 3, 16)
    wg, wu, wd = randn(g, 40, 16), randn(g, 40, 16), randn(g, 16, 40)
    check(
        "ffn op",
        ops_nn.feed_forward(t(x), t(wg), t(wu), t(wd)).numpy(),
        ref.feed_forward(x, wg, wu, wd),
    )
    with pytest.raises(GeneError, match=r"q \[4 9 16\]"):
        ops_nn.attention(t(q), t(randn(g, 3, 9, 16)), t(randn(g, 3, 9, 16)))


def test_devices() -> None:
    assert str(create_device(Symbol("cpu"))) == "cpu"
    assert str(create_device("cpu")) == "cpu"
    with pytest.raises(GeneError, match="unknown device"):
        create_device("tpu")


def _no_cuda() -> None:
    from gene_jit.tensor_kernels import cuda_support

    if cuda_support.available():
        pytest.skip("a CUDA device (or the simulator) is present")


def test_cuda_unavailable_warns_and_marks_device(capsys: pytest.CaptureFixture[str]) -> None:
    """No silent fall back: a warning naming the cause, a device marked unavailable,
    and every tensor placed on it raises with the same cause."""
    from gene_jit.tensor.device import open_device
    from gene_jit.tensor_kernels.cuda_support import cuda_unavailable_reason

    _no_cuda()
    cause = cuda_unavailable_reason()
    dev = open_device(Symbol("cuda"))
    err = capsys.readouterr().err
    assert err.strip() == (
        f"warning: CUDA is not available ({cause}): device cuda:0 is unusable here; "
        "tensors placed on it will raise"
    )
    assert dev.unavailable == cause and dev.is_cuda
    assert dev.__gene_repr__() == f"#<device cuda:0 (unavailable: {cause})>"
    x = t(np.ones((2, 2), np.float32))
    for place in (
        lambda: ops.to(x, dev),
        lambda: ops.zeros([2], device=dev),
        lambda: ops.create([1.0, 2.0], device=dev),
        lambda: ops.arange(3, device=dev),
        lambda: ops.to(x, Symbol("cuda")),
    ):
        with pytest.raises(
            GeneError, match=r"cannot place a tensor on device cuda:0: it is unavailable"
        ) as info:
            place()
        assert cause in str(info.value)


def test_cuda_strict_raises_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    from gene_jit.tensor.device import open_device

    _no_cuda()
    with pytest.raises(GeneError, match="cannot use device cuda:0: CUDA is not available"):
        open_device(Symbol("cuda"), strict=True)
    assert capsys.readouterr().err == ""


def test_device_create_from_gene(capsys: pytest.CaptureFixture[str]) -> None:
    from gene_jit.runtime.libraries import register_all
    from gene_jit.runtime.registry import BUILTINS

    _no_cuda()
    register_all()
    ns = BUILTINS["device"]
    assert ns.get("create")(Symbol("cpu")) is not None and capsys.readouterr().err == ""
    dev = ns.get("create")(Symbol("cuda"))
    assert dev.unavailable and "warning: CUDA is not available" in capsys.readouterr().err
    with pytest.raises(GeneError, match="cannot use device cuda:0"):
        ns.get("create")(Symbol("cuda"), strict=True)
    assert (
        ns.get("available?")(Symbol("cuda")) is False
        and ns.get("available?")(Symbol("cpu")) is True
    )


def test_gene_api_registered() -> None:
    from gene_jit.runtime.libraries import register_all
    from gene_jit.runtime.registry import BUILTINS

    register_all()
    tensor_ns = BUILTINS["tensor"]
    for name in ("matmul", "transpose", "add", "stack", "causal-mask", "softmax", "attention"):
        assert callable(tensor_ns.get(name)), name
    assert callable(BUILTINS["device"].get("create"))


INFIX = """
(var A (tensor/create [[1.0 2.0] [3.0 4.0]]))
(var v (tensor/create [1.0 2.0 3.0]))
(fn arith [a b] [(a + b) (2 * a) (a - 1) (a / b) (1 / a) (- a) (a * b)])
(for r in (arith A A) (println r))
(println (v / (tensor/sum v ^axis 0)))
(println (tensor/add (tensor/create 2.0) v))
(println (tensor/softmax (tensor/zeros [4 0])))
(try (tensor/slice A 5 10) catch * (println $ex))
(try (tensor/stack ["a prompt" "another"]) catch * (println $ex))
(try (A < 3) catch * (println $ex))
"""


def test_infix_arithmetic_on_tensors_in_both_tiers() -> None:
    from conftest import run_gene_source

    outs = []
    for mode in ("0", "eager"):
        result = run_gene_source(INFIX, mode)
        assert result.error is None, result.error
        outs.append(result.stdout)
    assert outs[0] == outs[1]
    lines = outs[0].splitlines()
    assert lines[:7] == [
        "#<tensor [2 2] f32 cpu [2 4 6 8]>",
        "#<tensor [2 2] f32 cpu [2 4 6 8]>",
        "#<tensor [2 2] f32 cpu [0 1 2 3]>",
        "#<tensor [2 2] f32 cpu [1 1 1 1]>",
        "#<tensor [2 2] f32 cpu [1 0.5 0.3333 0.25]>",
        "#<tensor [2 2] f32 cpu [-1 -2 -3 -4]>",
        "#<tensor [2 2] f32 cpu [1 4 9 16]>",
    ]
    assert lines[7] == "#<tensor [3] f32 cpu [0.1667 0.3333 0.5]>"
    assert lines[8] == "#<tensor [3] f32 cpu [3 4 5]>"
    assert lines[9] == "#<tensor [4 0] f32 cpu []>"
    assert "tensor/slice: start 5 is outside -2..2 for axis 0 of shape [2 2]" in lines[10]
    assert "tensor/stack: item 0 is a string" in lines[11] and "tokenize" in lines[11]
    assert "type error" in lines[12]


def test_tensor_functions_stay_in_tier0_with_a_reason(tmp_path: Path) -> None:
    from conftest import run_cli

    prog = tmp_path / "t.gene"
    prog.write_text("(fn f [a b] (a + b))\n(var x (tensor/ones [2]))\n(println (f x x))\n")
    r = run_cli("profile", str(prog), env={"GENE_JIT": "eager", "COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    assert "#<tensor [2] f32 cpu [2 2]>" in r.stdout
    assert "argument `a` was a tensor" in " ".join((r.stdout + r.stderr).split())


def test_seed_batch_generate_on_strings_says_to_tokenize_first() -> None:
    import re

    from conftest import run_gene_source

    seed = (Path(__file__).parent / "data" / "seed.md").read_text()
    (block,) = [b for b in re.findall(r"```gene\n(.*?)```", seed, re.S) if "(fn batch-generate" in b]
    result = run_gene_source(block + '\n(batch-generate ["The sky is" "I like the"])\n', "0")
    assert result.error is not None
    message = str(result.error)
    assert "tensor/stack: item 0 is a string" in message and "tokenize" in message
