"""`tensor/load-safetensors` and `tensor/save-safetensors`: every dtype gene-jit tensors
hold (bf16 included) and every shape come back as written; files written by the
`safetensors` package itself load; bad files are Gene errors."""

from __future__ import annotations

import json
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
    assert list(loaded) == list(tensors)  # as saved, though the file orders them by dtype
    for name, t in tensors.items():
        got = loaded[name]
        assert (got.dtype, got.shape) == (t.dtype, t.shape), name
        assert got.data.tobytes() == t.data.tobytes(), name
    with st.safe_open(path, framework="numpy") as f:
        assert f.metadata() == {"format": "gene", interop.ORDER_KEY: json.dumps(list(tensors))}
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
    assert interop.load_safetensors(str(u8))["mask"].numpy().tolist() == [0, 1, 2, 3]
    u64 = tmp_path / "u64.safetensors"
    big = np.arange(2, dtype=np.uint64)
    st.serialize_file({"ids": st.TensorSpec(dtype="uint64", shape=[2], data_ptr=big.ctypes.data,
                                            data_len=16)}, str(u64), None)
    with pytest.raises(GeneError, match="tensor 'ids' .* has dtype U64"):
        interop.load_safetensors(str(u64))
    with pytest.raises(GeneError, match="expected a map of tensors"):
        interop.save_safetensors(str(tmp_path / "x.safetensors"), [1, 2])
    with pytest.raises(GeneError, match="expected a tensor"):
        interop.save_safetensors(str(tmp_path / "x.safetensors"), {"a": [1, 2]})
    with pytest.raises(GeneError, match="metadata must map names to strings"):
        interop.save_safetensors(str(tmp_path / "x.safetensors"), _tensors(), {"a": 1})


def test_tensors_load_in_the_order_saved_every_time(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    names = [f"layer.{i}.{w}" for i in range(12) for w in ("weight", "bias")]
    dtypes = [np.float32, np.float64, np.int32, np.float16, np.int64]
    arrays = {n: np.full((i % 3 + 1,), i, dtype=dtypes[i % len(dtypes)]) for i, n in enumerate(names)}
    path = str(tmp_path / "many.safetensors")
    interop.save_safetensors(path, {n: Tensor.from_numpy(a) for n, a in arrays.items()})
    for _ in range(5):  # the package's own listing changes order between calls
        assert list(interop.load_safetensors(path)) == names
    # a file another program wrote has no saved order: the order of its data, every time
    other = str(tmp_path / "other.safetensors")
    save_file(arrays, other)
    raw = Path(other).read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    header.pop("__metadata__", None)
    in_file = sorted(header, key=lambda n: header[n]["data_offsets"][0])
    assert in_file != names
    for _ in range(5):
        assert list(interop.load_safetensors(other)) == in_file


def test_widened_dtypes_keep_every_value(tmp_path: Path) -> None:
    arrays = {"b": np.array([True, False]), "i8": np.array([-128, 127], dtype=np.int8),
              "i16": np.array([-32768, 7], dtype=np.int16),
              "u16": np.array([65535, 0], dtype=np.uint16),
              "u32": np.array([2**32 - 1, 1], dtype=np.uint32)}
    path = str(tmp_path / "w.safetensors")
    st.serialize_file({k: st.TensorSpec(dtype=str(a.dtype), shape=list(a.shape),
                                        data_ptr=a.ctypes.data, data_len=a.nbytes)
                       for k, a in arrays.items()}, path, None)
    loaded = interop.load_safetensors(path)
    for k, a in arrays.items():
        assert loaded[k].dtype == ("i64" if k == "u32" else "i32")
        assert loaded[k].numpy().tolist() == a.astype(np.int64).tolist()


def test_paths_folders_and_empty_maps(tmp_path: Path) -> None:
    path = tmp_path / "p.safetensors"
    interop.save_safetensors(path, {"a": Tensor.from_numpy(np.ones(2, dtype=np.float32))})
    assert list(interop.load_safetensors(path)) == ["a"]
    interop.save_safetensors(str(tmp_path / "empty.safetensors"), {})
    assert interop.load_safetensors(str(tmp_path / "empty.safetensors")) == {}
    with pytest.raises(GeneError, match=r"cannot write .*x.safetensors: no such folder .*nodir$"):
        interop.save_safetensors(str(tmp_path / "nodir" / "x.safetensors"), {})
    with pytest.raises(GeneError, match="a folder, not a file"):
        interop.load_safetensors(str(tmp_path))
