"""The native engine on bad input and at its limits: weights that produce NaN (kernels
that look values up in tables must not index with a NaN's bits; generation ends with an
error naming the file), the model's description as libllama gives it, :n-ctx beyond the
trained context and a cache that cannot be allocated, adapters, a full context, and the
metadata reader against the gguf package's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

from tiny_model import N_CTX_TRAIN, add_tokenizer, vocabulary  # noqa: E402

from gene_jit.engine.model import EngineModel  # noqa: E402
from gene_jit.llama import gene_api as g  # noqa: E402
from gene_jit.llama.errors import LlamaError  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402
from gene_jit.runtime.errors import GeneError  # noqa: E402

E, F, H, HKV = 64, 128, 4, 1
NAN_F16 = b"\x00\x7e"  # the f16 NaN as ggml writes it, little-endian
PLANTED = "blk.0.attn_output.weight"  # its NaN rows reach the residual stream, then every gate


def write_small_gemma3(path: Path, layers: int = 2, seed: int = 3) -> Path:
    """A Gemma 3 GGUF with the tiny vocabulary (libllama loads it whole): QK and post
    norms, GeGLU, tied output; the feed-forward gate in Q8_0 (f16 block scales)."""
    from gguf.quants import quantize

    rng = np.random.default_rng(seed)
    n_vocab = len(vocabulary()[0])
    d = E // H
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_name("gene-small-gemma3")
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(E)
    w.add_block_count(layers)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_key_length(d)
    w.add_value_length(d)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_uint32("gemma3.attention.sliding_window", 8)
    w.add_file_type(7)  # MOSTLY_Q8_0
    add_tokenizer(w)

    def add(name: str, a: np.ndarray, kind: str = "F32") -> None:
        if kind == "F32":
            w.add_tensor(name, a)
        else:
            qt = getattr(gguf.GGMLQuantizationType, kind)
            w.add_tensor(name, quantize(a, qt), raw_dtype=qt)

    def mat(rows: int, cols: int, scale: float = 0.25) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    add("token_embd.weight", mat(n_vocab, E, 1.0), "Q8_0")
    add("output_norm.weight", norm(E))
    for i in range(layers):
        p = f"blk.{i}."
        for name, n in (("attn_norm", E), ("ffn_norm", E), ("post_attention_norm", E),
                        ("post_ffw_norm", E), ("attn_q_norm", d), ("attn_k_norm", d)):
            add(p + name + ".weight", norm(n))
        for name, (r, c) in (("attn_q", (H * d, E)), ("attn_k", (HKV * d, E)), ("attn_v", (HKV * d, E)),
                             ("attn_output", (E, H * d)), ("ffn_gate", (F, E)), ("ffn_up", (F, E)),
                             ("ffn_down", (E, F))):
            add(p + name + ".weight", mat(r, c), "Q8_0")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def plant_nan_scales(path: Path, tensor: str = PLANTED) -> Path:
    """Every Q8_0 block scale of `tensor` set to NaN, as a corrupt download may hold."""
    from gene_jit.llama.gguf_check import read_tables

    info = read_tables(path)
    t = info.tensors[tensor]
    with path.open("r+b") as f:
        for block in range(t.nbytes // 34):
            f.seek(info.data_offset + t.offset + 34 * block)
            f.write(NAN_F16)
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_gemma3(tmp_path_factory.mktemp("models") / "small-gemma3.gguf")


@pytest.fixture(scope="module")
def nan_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "nan-gemma3.gguf"
    return plant_nan_scales(write_small_gemma3(path))


def _gates() -> np.ndarray:
    """NaNs (of both signs and other payloads), infinities, the -10 and 10 edges and
    finite values between them."""
    special = np.array([np.nan, -np.nan, np.inf, -np.inf, -10.0, 10.0, 0.0], np.float32)
    payload = np.array([0x7F800001, 0xFFC00123, 0x7FFFFFFF], np.uint32).view(np.float32)
    finite = np.linspace(-12.0, 12.0, 4001, dtype=np.float32)
    return np.concatenate([special, payload, finite])


def _expected_geglu(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    from gene_jit.tensor_kernels.engine_cpu import gelu_table

    table = gelu_table()
    out = np.empty_like(gate)
    for i, x in enumerate(gate):
        if np.isnan(x):
            out[i] = np.nan
        elif x <= -10:
            out[i] = 0.0
        elif x >= 10:
            out[i] = x * up[i]
        else:
            out[i] = table[int(np.float16(x).view(np.uint16))] * up[i]
    return out


def test_cpu_geglu_of_nan_is_nan() -> None:
    from gene_jit.tensor_kernels.engine_cpu import geglu

    gate = _gates()
    up = np.linspace(0.5, 1.5, gate.shape[0], dtype=np.float32)
    out = np.empty_like(gate)
    geglu(gate, up, out)
    want = _expected_geglu(gate, up)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    finite = ~np.isnan(want)
    assert np.array_equal(out[finite].view(np.uint32), want[finite].view(np.uint32))


def test_cuda_geglu_of_nan_is_nan() -> None:
    from gene_jit.tensor_kernels import cuda_support

    if not cuda_support.available():
        pytest.skip(f"no CUDA: {cuda_support.cuda_unavailable_reason()} (set NUMBA_ENABLE_CUDASIM=1)")
    from gene_jit.engine import cuda_kernels

    cu = cuda_support.cuda()
    gate = _gates()[:1024]  # the simulator runs a thread at a time
    up = np.linspace(0.5, 1.5, gate.shape[0], dtype=np.float32)
    out = cu.device_array(gate.shape[0], np.float32)
    cuda_kernels.geglu(cu.to_device(gate), cu.to_device(up), out)
    got = out.copy_to_host()
    want = _expected_geglu(gate, up)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    assert np.array_equal(got[finite].view(np.uint32), want[finite].view(np.uint32))


def test_nan_weights_end_generation_with_an_error(nan_path: Path) -> None:
    m = EngineModel(str(nan_path), n_ctx=64, threads=1)
    try:
        for run in (lambda: g.generate_text(m, "The cat", 4, temperature=0),
                    lambda: g.generate_text(m, "The cat", 4, temperature=0.8, seed=1),
                    lambda: g.model_forward(m, m.tokenize("The cat"))):
            with pytest.raises(LlamaError, match=r"NaN logits at step \d+ .*nan-gemma3\.gguf may be corrupt"):
                run()
    finally:
        m.close()


INFO_KEYS = ("name", "architecture", "description", "parameters", "quantization", "size-bytes",
             "context", "context-train", "embedding-length", "layers", "vocab-size")


def test_info_is_libllamas(small: Path) -> None:
    engine, llama = EngineModel(str(small), n_ctx=128, threads=1), Model(str(small), n_ctx=128, threads=1)
    try:
        a, b = engine.info(), llama.info()
        assert {k: a[k] for k in INFO_KEYS} == {k: b[k] for k in INFO_KEYS}
        assert a["engine"] == "gene" and b["context-train"] == N_CTX_TRAIN
        assert "Q8_0" in a["quantization"]
    finally:
        engine.close()
        llama.close()


def _error(fn: Any) -> str:
    with pytest.raises(GeneError) as info:
        fn()
    return str(info.value)


def test_n_ctx_beyond_the_trained_context_refused_as_on_libllama(small: Path) -> None:
    big = 2 * N_CTX_TRAIN
    on_engine = _error(lambda: g.model_create(str(small), "gguf", engine="gene", n_ctx=big))
    on_llama = _error(lambda: g.model_create(str(small), "gguf", n_ctx=big))
    assert on_engine == on_llama and f"pass at most {N_CTX_TRAIN}" in on_engine


def test_cache_that_cannot_be_allocated_names_n_ctx(small: Path) -> None:
    m = EngineModel(str(small), n_ctx=64, threads=1)
    try:
        text = _error(lambda: m.engine.new_cache(1 << 42))
        assert "does not fit in the memory of cpu" in text and "smaller :n-ctx" in text
        from gene_jit.engine.ops import kv_cache

        text = _error(lambda: kv_cache(m.engine.model, 1 << 42))
        assert "tensor/kv-cache: pass a smaller n-ctx" in text
    finally:
        m.close()


def test_load_adapter_refused(small: Path, tmp_path: Path) -> None:
    from gene_jit.llama.tools_api import model_load_adapter

    m = EngineModel(str(small), n_ctx=64, threads=1)
    try:
        text = _error(lambda: model_load_adapter(m, str(tmp_path / "lora.gguf")))
        assert "gene engine does not apply LoRA adapters" in text and "without :engine" in text
    finally:
        m.close()


def test_full_context_ends_with_the_text_so_far(small: Path) -> None:
    m = EngineModel(str(small), n_ctx=32, threads=1)
    try:
        prompt = "The quick brown fox"
        held = len(m.tokenize(prompt))
        pieces: list[str] = []
        text = g.generate_text(m, prompt, 100, temperature=0, on_token=pieces.append)
        stats = g.model_stats(m)
        assert stats is not None and stats["finish-reason"] == "length"
        assert stats["generated"] == 32 - held + 1  # the last sampled token needs no cell
        assert text == "".join(pieces) and text
        # the same text as a generation capped just there
        assert g.generate_text(m, prompt, stats["generated"], temperature=0) == text
    finally:
        m.close()


def test_metadata_reader_agrees_with_gguf(small: Path) -> None:
    from gene_jit.engine.weights import GGUFFile

    f = GGUFFile(small)
    reader = gguf.GGUFReader(str(small))
    short = 0
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        value = field.contents()
        if isinstance(value, list) and len(value) > 4096:
            assert f.get(key) is None  # the vocabulary's arrays: libllama reads them
            continue
        short += 1
        if isinstance(value, list) and value and all(v == value[0] for v in value):
            value = value[0]
        assert f.get(key) == value, key
    assert short > 10
    for t in reader.tensors:
        mine = f.tensors[t.name]
        assert mine.tensor_type == t.tensor_type and mine.n_elements == t.n_elements
        assert list(mine.shape) == [int(v) for v in t.shape]
        assert np.array_equal(mine.data, np.asarray(t.data).reshape(-1).view(np.uint8)), t.name


@pytest.mark.parametrize("where", ["gpu", "CPU", ""])
def test_native_generate_example_refuses_other_devices(where: str) -> None:
    from conftest import REPO, run_cli

    proc = run_cli("run", str(REPO / "examples" / "native_generate.gene"), where, "4", timeout=300)
    assert proc.returncode != 0
    assert f"the device argument must be cpu or cuda, got {where}" in proc.stderr
    assert "engine:" not in proc.stdout


@pytest.mark.parametrize("type_name", ["Q8_0", "Q4_0", "Q4_K", "Q6_K", "F16"])
def test_inf_and_nan_scales_decode_as_ggml(type_name: str) -> None:
    """Block scales (or F16 values) of every inf and NaN pattern decode to inf and NaN,
    as gguf's reference dequantiser (and ggml) read them; finite blocks are unchanged."""
    from gguf.quants import dequantize

    from gene_jit.tensor_kernels.qgemv_cpu import KINDS, dequant_rows

    qt = getattr(gguf.GGMLQuantizationType, type_name)
    values, nbytes = gguf.GGML_QUANT_SIZES[qt]
    # random blocks whose scales are small finite halves, then one inf or NaN per row
    raw = np.random.default_rng(2).integers(0, 256, (6, 256 // values * nbytes)).astype(np.uint8)
    at = {"Q6_K": 208}.get(type_name, 0)  # where a block's f16 scale sits
    for b in range(0, raw.shape[1], nbytes):
        raw[:, b + at + 1] &= 0x3B  # exponent below 15: |scale| < 2
        if type_name == "Q4_K":
            raw[:, b + 3] &= 0x3B
    for r, bits in enumerate((0x7E00, 0xFE00, 0x7C00, 0xFC00, 0x7C01)):
        raw[r, at : at + 2] = np.array([bits], np.uint16).view(np.uint8)
    with np.errstate(invalid="ignore", over="ignore"):
        want = dequantize(raw, qt).reshape(6, 256)
    got = np.empty((6, 256), np.float32)
    dequant_rows(raw, KINDS[type_name.lower()], np.arange(6, dtype=np.int64), got)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got[[0, 1, 4], 0]).all() and np.isinf(got[[2, 3]]).any(axis=1).all()
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=1e-6)


def test_nan_activations_quantise_to_nan_blocks() -> None:
    from gene_jit.tensor_kernels.qgemv_cpu import Q4_K, Q8_0, round_activations

    x = np.random.default_rng(4).standard_normal((2, 512)).astype(np.float32)
    x[0, 3] = np.nan  # the first 32 (Q8_0) or 256 (Q8_K) values become NaN, the rest stay
    for kind, size in ((Q8_0, 32), (Q4_K, 256)):
        out = np.empty_like(x)
        round_activations(kind, x, out)
        assert np.isnan(out[0, :size]).all() and not np.isnan(out[0, size:]).any()
        assert not np.isnan(out[1]).any()


def test_json_cut_by_a_full_context_says_so(small: Path) -> None:
    m = EngineModel(str(small), n_ctx=32, threads=1)
    try:
        schema = {"type": "array", "items": {"type": "integer"}, "minItems": 40}
        text = _error(lambda: g.generate_json(m, "Numbers:", schema, 200))
        assert "before the context of 32 tokens was full" in text and "larger :n-ctx" in text
    finally:
        m.close()
