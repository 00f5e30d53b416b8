"""ONNX models from Gene through ONNX Runtime: models built here with `onnx.helper` (an
MLP, an attention block with a dynamic sequence length, a small text encoder), run by
`model/forward` and compared with NumPy; `model/info`; mistakes as Gene errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_gene_source

from gene_jit.runtime.errors import GeneError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(7)
D = 8  # model width of the attention block and the encoder


def _save(graph: Any, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _init(name: str, value: np.ndarray) -> Any:
    return numpy_helper.from_array(value.astype(np.float32), name)


MLP = {"w1": RNG.standard_normal((4, 16)), "b1": RNG.standard_normal(16),
       "w2": RNG.standard_normal((16, 3)), "b2": RNG.standard_normal(3)}


def build_mlp(path: Path) -> Path:
    """y = relu(x @ w1 + b1) @ w2 + b2, x of shape [batch 4]."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["y0"]),
        helper.make_node("Add", ["y0", "b2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [_init(k, v) for k, v in MLP.items()])
    return _save(graph, path)


def mlp_reference(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.maximum(x @ MLP["w1"] + MLP["b1"], 0) @ MLP["w2"] + MLP["b2"]


ATTN = {k: RNG.standard_normal((D, D)) / np.sqrt(D) for k in ("wq", "wk", "wv", "wo")}


def build_attention(path: Path) -> Path:
    """One causal-free self-attention head: softmax(q k^T / sqrt(D)) v @ wo, x [1 seq D]."""
    scale = numpy_helper.from_array(np.array(1 / np.sqrt(D), dtype=np.float32), "scale")
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"]),
        helper.make_node("MatMul", ["x", "wk"], ["k"]),
        helper.make_node("MatMul", ["x", "wv"], ["v"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s0"]),
        helper.make_node("Mul", ["s0", "scale"], ["s"]),
        helper.make_node("Softmax", ["s"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["a"]),
        helper.make_node("MatMul", ["a", "wo"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes, "attention",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "seq", D])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, "seq", D])],
        [*(_init(k, v) for k, v in ATTN.items()), scale])
    return _save(graph, path)


def attention_reference(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    q, k, v = x @ ATTN["wq"], x @ ATTN["wk"], x @ ATTN["wv"]
    s = q @ k.transpose(0, 2, 1) / np.sqrt(D)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return (p @ v) @ ATTN["wo"]


VOCAB = ["<pad>", "cat", "dog", "kitten", "puppy", "car", "truck", "the"]
# words of a topic share most of their embedding, so cosine similarity finds the topic
TOPICS = {"cat": 0, "kitten": 0, "dog": 1, "puppy": 1, "car": 2, "truck": 2}
EMBED = RNG.standard_normal((len(VOCAB), D)) * 0.1
for _word, _topic in TOPICS.items():
    EMBED[VOCAB.index(_word), _topic] += 3.0


def build_encoder(path: Path) -> Path:
    """A text encoder: input_ids, attention_mask [1 seq] -> last_hidden_state [1 seq D]."""
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["g"]),
        helper.make_node("Cast", ["attention_mask"], ["m0"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m0", "axes"], ["m"]),
        helper.make_node("Mul", ["g", "m"], ["last_hidden_state"]),
    ]
    axes = numpy_helper.from_array(np.array([-1], dtype=np.int64), "axes")
    graph = helper.make_graph(
        nodes, "encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, "seq"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, "seq", D])],
        [_init("table", EMBED), axes])
    return _save(graph, path)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx")
    return {"mlp": build_mlp(root / "mlp.onnx"), "attention": build_attention(root / "attn.onnx"),
            "encoder": build_encoder(root / "enc.onnx")}


def run(source: str, mode: str = "0") -> str:
    result = run_gene_source(source, mode, filename="onnx.gene")
    assert result.error is None, result.error
    return result.stdout


def fails(source: str) -> GeneError:
    result = run_gene_source(source, "0", filename="onnx.gene")
    assert isinstance(result.error, GeneError), result.stdout
    return result.error


def _values(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split()])


def test_mlp_forward_matches_numpy(models: dict[str, Path], jit_mode: str) -> None:
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    rows = " ".join("[" + " ".join(repr(float(v)) for v in row) + "]" for row in x)
    text = run(f"""
        (var m (model/create "{models['mlp']}" "onnx" :device :cpu))
        (var out (model/forward m {{^x (tensor/create [{rows}] :f32)}}))
        (var y out/y)
        (println (tensor/shape y) (tensor/dtype y))
        (for v in ((tensor/numpy y) .ravel) (print v " "))
    """, jit_mode)
    head, values = text.split("\n", 1)
    assert head == "[5 3] f32"
    np.testing.assert_allclose(_values(values), mlp_reference(x).ravel(), rtol=1e-4, atol=1e-5)


def test_attention_with_dynamic_sequence_length(models: dict[str, Path]) -> None:
    from gene_jit.llama import gene_api as g
    from gene_jit.tensor import Tensor

    m = g.model_create(str(models["attention"]), "onnx")
    session = m.session
    for seq in (1, 3, 17):
        x = RNG.standard_normal((1, seq, D)).astype(np.float32)
        out = g.model_forward(m, {"x": Tensor.from_numpy(x)})
        assert set(out) == {"out"} and out["out"].shape == (1, seq, D)
        np.testing.assert_allclose(out["out"].numpy(), attention_reference(x), rtol=1e-4, atol=1e-5)
    assert m.session is session  # one session, reused by every call
    again = g.model_create(str(models["attention"]), "onnx")
    assert again.session is session  # and by a second model/create of the same file


def test_info_names_shapes_and_types(models: dict[str, Path]) -> None:
    text = run(f"""
        (var m (model/create "{models['encoder']}" "onnx"))
        (var info (model/info m))
        (println info/format info/device info/providers)
        (for p in info/inputs (println p/name p/shape p/dtype p/onnx-type))
        (for p in info/outputs (println p/name p/shape p/dtype))
    """)
    assert text.splitlines() == [
        "onnx cpu [CPUExecutionProvider]",
        "input_ids [1 seq] i64 tensor(int64)",
        "attention_mask [1 seq] i64 tensor(int64)",
        f"last_hidden_state [1 seq {D}] f32",
    ]


def test_outputs_share_memory_with_onnxruntime_and_inputs_convert(models: dict[str, Path]) -> None:
    from gene_jit.llama import gene_api as g

    m = g.model_create(str(models["mlp"]), "onnx")
    out = g.model_forward(m, {"x": [[1, 2, 3, 4]]})  # Gene ints into a float input
    y = out["y"]
    assert y.numpy() is y.data  # the tensor wraps ONNX Runtime's array, no copy
    np.testing.assert_allclose(y.numpy(), mlp_reference(np.array([[1, 2, 3, 4]])), rtol=1e-4)
    single = g.model_forward(m, np.ones((2, 4), np.float32))  # one input: no map needed
    assert single["y"].shape == (2, 3)


def test_mistakes_are_gene_errors(models: dict[str, Path], tmp_path: Path) -> None:
    mlp = models["mlp"]
    create = f'(var m (model/create "{mlp}" "onnx"))\n'
    cases = [
        (create + "(model/forward m {^z [[1 2 3 4]]})", "no input named 'z'; its inputs are 'x'"),
        (create + "(model/forward m {})", "missing input 'x'"),
        (create + "(model/forward m {^x (tensor/create [[1 2 3 4]] :f64)})",
         "input 'x' must be f32 (tensor(float)), got an f64 tensor"),
        (create + "(model/forward m {^x (tensor/create [[1 2 3]] :f32)})",
         "input 'x' must have 4 in dimension 1 [batch 4], got shape [1 3]"),
        (create + "(model/forward m {^x (tensor/create [1 2 3 4] :f32)})",
         "input 'x' has 2 dimensions [batch 4], got 1"),
        (create + '(model/forward m {^x [["a" "b" "c" "d"]]})', "input 'x' must be f32"),
        (f'(model/create "{tmp_path}/none.onnx" "onnx")', "no such file"),
        (f'(model/create "{mlp}" "onnx" :device :tpu)', ":device must be :cpu or :cuda"),
        (f'(model/create "{mlp}" "onnx" :n-ctx 5)', "not :n-ctx"),
    ]
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(mlp.read_bytes()[: len(mlp.read_bytes()) // 2])
    cases.append((f'(model/create "{corrupt}" "onnx")', "onnxruntime cannot load"))
    cases.append((create + "(model/close m)\n(model/forward m {^x [[1 2 3 4]]})", "was closed"))
    dangling = tmp_path / "dangling.onnx"  # a node reads "w", which nothing provides
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "dangling",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, str(dangling))
    cases.append((f'(model/create "{dangling}" "onnx")', "onnxruntime cannot load"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    cases.append((f'(model/create "{garbage}")', "onnxruntime cannot load"))
    for source, message in cases:
        err = fails(source)
        assert message in err.message, (source, err.format())
        assert err.span is not None and err.span.file == "onnx.gene", err.format()


def test_cuda_without_provider_warns_loudly(models: dict[str, Path],
                                            capfd: pytest.CaptureFixture[str]) -> None:
    import onnxruntime as ort

    from gene_jit.llama import gene_api as g

    if "CUDAExecutionProvider" in ort.get_available_providers():
        m = g.model_create(str(models["mlp"]), "onnx", device="cuda")
        assert m.providers[0] == "CUDAExecutionProvider"
        return
    m = g.model_create(str(models["mlp"]), "onnx", device="cuda")
    err = capfd.readouterr().err
    assert "WARNING" in err and "no CUDA provider" in err and "RUNS ON THE CPU" in err
    assert err.count("WARNING") == 1, err  # one call, one warning
    assert m.providers == ["CPUExecutionProvider"]
    assert m.device == "cpu" and g.model_info(m)["device"] == "cpu"  # where it runs
    strict = fails(f'(model/create "{models["mlp"]}" "onnx" :device :cuda :strict true)')
    assert "no CUDA provider" in strict.message


@pytest.mark.cuda
def test_cuda_provider_runs_the_models(models: dict[str, Path], tmp_path: Path) -> None:
    """With onnxruntime-gpu on a GPU: `:device :cuda :strict true` gives sessions on the
    CUDA provider, ONNX Runtime's own profile says the products and the softmax ran there,
    and the results are NumPy's (to TF32's precision: the provider's products may use it)."""
    import json

    import onnxruntime as ort

    from gene_jit.llama import gene_api as g
    from gene_jit.onnx.model import _providers
    from gene_jit.tensor import Tensor

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider")
    text = run(f"""
        (var m (model/create "{models['mlp']}" "onnx" :device :cuda :strict true))
        (println ((model/info m) ./ "providers"))
        (var y ((model/forward m {{^x (tensor/create [[1 2 3 4] [-1 0.5 2 -3]] :f32)}}) ./ "y"))
        (for v in ((tensor/numpy y) .ravel) (print v " "))
    """)
    head, values = text.split("\n", 1)
    assert head.startswith("[CUDAExecutionProvider"), head
    want = mlp_reference(np.array([[1, 2, 3, 4], [-1, 0.5, 2, -3]]))
    np.testing.assert_allclose(_values(values), want.ravel(), rtol=1e-2, atol=1e-2 * np.abs(want).max())
    m = g.model_create(str(models["attention"]), "onnx", device="cuda", strict=True)
    assert m.providers[0] == "CUDAExecutionProvider"
    for seq in (1, 3, 17):
        x = RNG.standard_normal((1, seq, D)).astype(np.float32)
        out = g.model_forward(m, {"x": Tensor.from_numpy(x)})["out"].numpy()
        want = attention_reference(x)
        np.testing.assert_allclose(out, want, rtol=1e-2, atol=1e-2 * np.abs(want).max())
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "attention")
    session = ort.InferenceSession(str(models["attention"]), sess_options=options,
                                   providers=_providers(ort, "cuda", True))
    session.run(None, {"x": RNG.standard_normal((1, 5, D)).astype(np.float32)})
    events = json.loads(Path(session.end_profiling()).read_text())
    ran = {(e["args"]["op_name"], e["args"]["provider"]) for e in events
           if e.get("cat") == "Node" and "provider" in e.get("args", {})}
    products = ("MatMul", "FusedMatMul")  # the optimiser folds the score's scale into one
    assert "Softmax" in {op for op, _ in ran} and {op for op, _ in ran} & set(products), ran
    assert all(provider == "CUDAExecutionProvider" for op, provider in ran
               if op in (*products, "Softmax")), ran


def test_embedding_model_with_embed_and_find_similar(models: dict[str, Path], jit_mode: str) -> None:
    vocab = " ".join(f"^{w} {i}" for i, w in enumerate(VOCAB))
    text = run(f"""
        (var vocab {{{vocab}}})
        (fn tokenize [text] ((text .split " ") .map (fn [w] (vocab ./ w 0))))
        (var enc (model/create "{models['encoder']}" "onnx" :tokenizer tokenize))
        (var v (model/embed enc "the kitten"))
        (println (tensor/shape v) (tensor/dtype v))
        (println (find-similar ["the car" "a puppy" "the cat"] "kitten" :k 2 :model enc))
        (println (find-similar ["the car" "a puppy" "the cat"] "truck" :model enc))
    """, jit_mode)
    assert text.splitlines() == [f"[{D}] f32", "[the cat a puppy]", "[the car]"]


def test_embed_matches_mean_pooling(models: dict[str, Path]) -> None:
    from gene_jit.llama import gene_api as g

    enc = g.model_create(str(models["encoder"]), "onnx")
    ids = [7, 3, 1]
    vec = g.model_embed(enc, ids).numpy()
    want = EMBED[ids].mean(axis=0)
    np.testing.assert_allclose(vec, want / np.linalg.norm(want), rtol=1e-5, atol=1e-6)
    raw = g.model_embed(enc, ids, normalize=False).numpy()
    np.testing.assert_allclose(raw, want, rtol=1e-5, atol=1e-6)
    err = fails(f'(model/embed (model/create "{models["encoder"]}" "onnx") "no tokenizer")')
    assert ":tokenizer" in err.message


def test_tokenizer_json_with_the_tokenizers_package(models: dict[str, Path], tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tok = tokenizers.Tokenizer(WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<pad>"))
    tok.pre_tokenizer = Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    text = run(f"""
        (var enc (model/create "{models['encoder']}" "onnx" :tokenizer "{path}"))
        (println (find-similar ["a truck" "the puppy" "kitten"] "dog" :model enc))
    """)
    assert text == "[the puppy]\n"
    err = fails(f'(model/create "{models["encoder"]}" "onnx" :tokenizer "{tmp_path}/none.json")')
    assert "no such file" in err.message


def _two_inputs(path: Path) -> Path:
    """c = a + b with both inputs of one symbolic length n, and u = Cast(k) for a uint8 k."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"]),
         helper.make_node("Cast", ["k"], ["u"], to=TensorProto.FLOAT)], "two",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n"]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n"]),
         helper.make_tensor_value_info("k", TensorProto.UINT8, [None])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["n"]),
         helper.make_tensor_value_info("u", TensorProto.FLOAT, [None])])
    return _save(graph, path)


def test_inputs_are_checked_against_each_other_and_their_ranges(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    m = f'(var m (model/create "{_two_inputs(tmp_path / "two.onnx")}" "onnx"))\n'
    assert run(m + "(println (model/forward m {^a [1.0] ^b [2.0] ^k [0 255]}))") == \
        "{^c #<tensor [1] f32 cpu [3]> ^u #<tensor [2] f32 cpu [0 255]>}\n"
    cases = [
        ("{^a [1.0 2.0] ^b [1.0 2.0 3.0] ^k [1]}",
         "dimension 'n' is 2 in input 'a' but 3 in input 'b' [3]"),
        ("{^a [1.0] ^b [1.0] ^k [1 256]}", "input 'k' is uint8, which cannot hold 256 (its range "
                                             "is 0 to 255)"),
        ("{^a [1.0] ^b [1.0] ^k [-1]}", "cannot hold -1"),
        ("{^a [1.0] ^b [1.0] ^k (tensor/create [1 2])}",
         "got an i64 tensor; tensors have no uint8: pass a NumPy array of uint8 or Gene numbers"),
        ("{^a [[1.0] [2.0 3.0]] ^b [1.0] ^k [1]}",
         "input 'a' is not a rectangular array of numbers (rows of different lengths)"),
    ]
    for feeds, message in cases:
        err = fails(m + f"(model/forward m {feeds})")
        assert message in err.message, (feeds, err.message)
    assert capfd.readouterr().err == ""


def test_onnxruntime_failures_are_told_without_its_log_or_sources(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # a shape only ONNX Runtime can refuse: the values of the reshape's target shape
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])])
    path = _save(graph, tmp_path / "reshape.onnx")
    err = fails(f'(var m (model/create "{path}" "onnx"))\n'
                '(model/forward m {^x (tensor/zeros [24]) ^shape [5 5]})')
    assert "onnxruntime failed on reshape.onnx" in err.message
    assert "requested shape:{5,5}" in err.message
    assert "onnxruntime_src" not in err.message and "onnxruntime::" not in err.message
    assert capfd.readouterr().err == ""


def test_string_inputs(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["t"])], "strings",
        [helper.make_tensor_value_info("s", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("t", TensorProto.STRING, [None])])
    m = f'(var m (model/create "{_save(graph, tmp_path / "s.onnx")}" "onnx"))\n'
    assert run(m + '(println ((model/info m) ./ "inputs") (model/forward m {^s ["a" "bc"]}))') == (
        "[{^name s ^shape [nil] ^dtype string ^onnx-type tensor(string)}] "
        "{^t <python ndarray [2] object ['a' 'bc']>}\n")
    assert "input 's' must be string" in fails(m + "(model/forward m {^s [1]})").message


def test_embed_refuses_what_is_not_an_encoder_or_not_ids(models: dict[str, Path]) -> None:
    attn = f'(var m (model/create "{models["encoder"]}" "onnx" :tokenizer (fn [t] "ids")))\n'
    err = fails(attn + '(model/embed m "text")')
    assert err.message == 'model/embed: the :tokenizer must give a non-empty array of token ids, got "ids"'
    err = fails(f'(var m (model/create "{models["encoder"]}" "onnx"))\n(model/embed m [[1] [2 3]])')
    assert "expected a text or a non-empty array of token ids, got [[1] [2 3]]" in err.message
    two = f'(var m (model/create "{_two_inputs(Path(str(models["mlp"]) + ".two.onnx"))}" "onnx"))\n'
    err = fails(two + "(model/embed m [1 2])")
    assert "two.onnx is not a text encoder: its inputs are 'a', 'b', 'k'" in err.message


def test_the_format_given_must_fit_the_file(models: dict[str, Path]) -> None:
    mlp = models["mlp"]
    err = fails(f'(model/create "{mlp}" "gguf")')
    assert err.message == (f'model/create: {mlp} is an ONNX model (by its name) but the format '
                           'given is "gguf"; pass "onnx" or leave the format out')
    for fmt in ('"tflite"', ":pt", "3"):
        err = fails(f'(model/create "{mlp}" {fmt})')
        assert err.message.startswith("model/create: unsupported model format ")
        assert 'the formats are "gguf" (libllama) and "onnx" (ONNX Runtime)' in err.message
    assert run(f'(println (model/create "{mlp}") (model/create "{mlp}" :onnx))') == (
        "#<onnx model mlp.onnx cpu> #<onnx model mlp.onnx cpu>\n")


def test_embed_names_itself_and_refuses_negative_ids(models: dict[str, Path]) -> None:
    enc = f'(var m (model/create "{models["encoder"]}" "onnx"))\n'
    for ids in ("[-1]", "[3 -2 1]"):
        err = fails(enc + f"(model/embed m {ids})")
        assert err.message.startswith("model/embed: token id -") and "is negative" in err.message
    err = fails(enc + f"(model/embed m [1 {len(VOCAB) + 1000}])")
    assert err.message.startswith(f"model/embed: onnxruntime failed on enc.onnx for the token ids "
                                  f"[1 {len(VOCAB) + 1000}]: "), err.message
    assert "model/forward" not in err.message


def test_find_similar_with_onnx_embeddings_never_loads_another_model(models: dict[str, Path]) -> None:
    from gene_jit.llama import model as llama_model

    before = llama_model._current
    enc = (f'(var m (model/create "{models["encoder"]}" "onnx" :tokenizer (fn [t] [1 2])))\n'
           '(var es [(model/embed m [1]) (model/embed m [2 3])])\n')
    for call in ('(find-similar es "text")', '(find-similar ["a" es/0] "b")'):
        err = fails(enc + call)
        assert err.message.startswith("find-similar: the embeddings come from the ONNX model enc.onnx")
        assert ':model m' in err.message
    assert llama_model._current is before
    assert run(enc + '(println (find-similar es "text" :model m) (find-similar es es/1 ^k 2))') == (
        "[1] [1 0]\n")


@pytest.mark.parametrize(("tail", "kind", "words"), [
    (":top-k 1", "llm option error", "find-similar does not take :top-k (an option of generate-text); it takes :k"),
    ("^k 0", "type error", "k (how many to return) must be a positive int, got 0"),
    ("^k 1.5", "type error", "must be a positive int, got 1.5"),
    ('^k "2"', "type error", 'must be a positive int, got "2"'),
])
def test_find_similar_counts_are_positive_ints(models: dict[str, Path], tail: str, kind: str,
                                               words: str) -> None:
    enc = (f'(var m (model/create "{models["encoder"]}" "onnx"))\n'
           '(var es [(model/embed m [1]) (model/embed m [2 3])])\n')
    for model in ("",) if tail.startswith(":") else ("", " ^model m"):
        err = fails(enc + f"(find-similar es es/0 {tail}{model})")
        assert err.kind == kind and words in err.message, err.format()


def test_bool_ports_take_gene_booleans_and_give_numpy(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Not", ["p"], ["q"])], "not",
        [helper.make_tensor_value_info("p", TensorProto.BOOL, [2])],
        [helper.make_tensor_value_info("q", TensorProto.BOOL, [2])])
    m = f'(var m (model/create "{_save(graph, tmp_path / "not.onnx")}"))\n'
    assert run(m + "(println (model/forward m {^p [true false]}))") == (
        "{^q <python ndarray [2] bool [False True]>}\n")
    err = fails(m + "(model/forward m {^p (tensor/create [1 0] ^dtype :i32)})")
    assert "tensors have no bool: pass Gene booleans ([true false]) or a NumPy bool array" in err.message
