"""`tensor/load-safetensors` and `tensor/save-safetensors`: every dtype gene-jit tensors
hold (bf16 included) and every shape come back as written; files written by the
`safetensors` package itself load; bad files are Gene errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_gene_source

from gene_jit.runtime.errors import GeneError
from gene_jit.tensor import interop
from gene_jit.tensor.dtypes import f32_to_bf16
from gene_jit.tensor.tensor import Tensor

st = pytest.importorskip("safetensors")


def _tensors() -> dict[str, Tensor]:
    rng = np.random.default_rng(3)
    return {
        "f32": Tensor.from_numpy(rng.standard_normal((2, 3)).astype(np.float32)),
        "f16": Tensor.from_numpy(rng.standard_normal((4,)).astype(np.float16)),
        "bf16": Tensor(f32_to_bf16(rng.standard_normal((3, 2, 2)).astype(np.float32)), "bf16"),
        "f64": Tensor.from_numpy(rng.standard_normal((1, 1)).astype(np.float64)),
        "i32": Tensor.from_numpy(np.arange(-3, 3, dtype=np.int32)),
        "i64": Tensor.from_numpy(np.array(2**40, dtype=np.int64)),  # 0-d
    }


def test_round_trip_keeps_dtype_shape_and_bits(tmp_path: Path) -> None:
    path = str(tmp_path / "w.safetensors")
    tensors = _tensors()
    interop.save_safetensors(path, tensors, {"format": "gene"})
    loaded = interop.load_safetensors(path)
    assert sorted(loaded) == sorted(tensors)  # the file orders them by dtype
    for name, t in tensors.items():
        got = loaded[name]
        assert (got.dtype, got.shape) == (t.dtype, t.shape), name
        assert got.data.tobytes() == t.data.tobytes(), name
    with st.safe_open(path, framework="numpy") as f:
        assert f.metadata() == {"format": "gene"}
        assert f.get_slice("bf16").get_dtype() == "BF16"


def test_files_written_by_torch_load(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    w = torch.randn(5, 7).to(torch.bfloat16)
    path = tmp_path / "torch.safetensors"
    save_file({"w": w, "n": torch.arange(3, dtype=torch.int64)}, str(path))
    loaded = interop.load_safetensors(str(path))
    assert loaded["w"].dtype == "bf16" and loaded["w"].shape == (5, 7)
    np.testing.assert_array_equal(loaded["w"].numpy(), w.float().numpy())
    assert loaded["n"].numpy().tolist() == [0, 1, 2]


def test_from_gene_code(tmp_path: Path) -> None:
    path = tmp_path / "g.safetensors"
    result = run_gene_source(f"""
        (var w (tensor/create [[1.5 2.5] [3.5 4.5]] :bf16))
        (tensor/save-safetensors "{path}" {{^w w ^b (tensor/create [1 2 3] :i32)}}
                                 ^metadata {{^by "gene"}})
        (var back (tensor/load-safetensors "{path}"))
        (println (tensor/dtype back/w) (tensor/shape back/w) (back/w == w))
        (println (tensor/dtype back/b) (tensor/to-array back/b))
    """, "0", filename="st.gene")
    assert result.error is None, result.error
    assert result.stdout.splitlines() == ["bf16 [2 2] true", "i32 [1 2 3]"]


def test_bad_files_and_arguments_are_gene_errors(tmp_path: Path) -> None:
    with pytest.raises(GeneError, match="no such file"):
        interop.load_safetensors(str(tmp_path / "missing.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(GeneError, match="not a valid safetensors file"):
        interop.load_safetensors(str(bad))
    u8 = tmp_path / "u8.safetensors"
    data = np.arange(4, dtype=np.uint8)
    st.serialize_file({"mask": st.TensorSpec(dtype="uint8", shape=[4], data_ptr=data.ctypes.data,
                                             data_len=4)}, str(u8), None)
    with pytest.raises(GeneError, match="tensor 'mask' .* has dtype U8"):
        interop.load_safetensors(str(u8))
    with pytest.raises(GeneError, match="expected a map of tensors"):
        interop.save_safetensors(str(tmp_path / "x.safetensors"), [1, 2])
    with pytest.raises(GeneError, match="expected a tensor"):
        interop.save_safetensors(str(tmp_path / "x.safetensors"), {"a": [1, 2]})
    with pytest.raises(GeneError, match="metadata must map names to strings"):
        interop.save_safetensors(str(tmp_path / "x.safetensors"), _tensors(), {"a": 1})
