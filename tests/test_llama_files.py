"""Untrusted model files: what is not a GGUF, or is one with bad metadata or tensor
entries, is a Gene error naming the problem before libllama reads it, never a crash.

The fuzz tests corrupt one field of the default model's header at a time (a metadata
value, its type, an array length, a key, a tensor's rank, shape, type or offset) and load
each corrupted file in a subprocess, which must exit 1 with a message, never by a signal.
The default run tries 20 corruptions, `slow` runs 200."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tiny_model import write_tiny_model  # noqa: E402

from gene_jit.llama.errors import BadModelError  # noqa: E402
from gene_jit.llama.model import Model  # noqa: E402

# GGUF value types (gguf.GGUFValueType) by their size in bytes, for type confusion
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SIZES = {U8: 1, I8: 1, U16: 2, I16: 2, U32: 4, I32: 4, F32: 4, BOOL: 1, U64: 8, I64: 8, F64: 8}
FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B",
       U64: "<Q", I64: "<q", F64: "<d"}


@dataclass
class KV:
    key: str
    start: int  # the key's length field
    type_at: int  # the value type field
    value_at: int  # the value (for arrays: the element type field)
    end: int
    vtype: int


@dataclass
class TensorEntry:
    name: str
    start: int
    rank_at: int
    dims_at: int
    n_dims: int
    type_at: int
    offset_at: int
    end: int


@dataclass
class Layout:
    data: bytes  # the header: everything before the tensor data
    kvs: list[KV]
    tensors: list[TensorEntry]
    data_start: int
    alignment: int


def read_layout(path: Path) -> Layout:
    """Where each field of a GGUF header lies (an independent reader of the format)."""
    with path.open("rb") as f:
        head = f.read(64 << 20)
    pos = 8
    n_tensors, n_kv = struct.unpack_from("<QQ", head, pos)
    pos += 16

    def string(p: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<Q", head, p)
        return head[p + 8 : p + 8 + n].decode("utf-8", "replace"), p + 8 + n

    def value(p: int, vt: int) -> int:
        if vt == STRING:
            return string(p)[1]
        if vt == ARRAY:
            (it,) = struct.unpack_from("<I", head, p)
            (count,) = struct.unpack_from("<Q", head, p + 4)
            p += 12
            if it == STRING:
                for _ in range(count):
                    p = string(p)[1]
                return p
            return p + count * SIZES[it]
        return p + SIZES[vt]

    kvs: list[KV] = []
    alignment = 32
    for _ in range(n_kv):
        key, p = string(pos)
        (vt,) = struct.unpack_from("<I", head, p)
        end = value(p + 4, vt)
        kvs.append(KV(key, pos, p, p + 4, end, vt))
        if key == "general.alignment":
            alignment = struct.unpack_from("<I", head, p + 4)[0]
        pos = end
    tensors: list[TensorEntry] = []
    for _ in range(n_tensors):
        name, p = string(pos)
        (n_dims,) = struct.unpack_from("<I", head, p)
        type_at = p + 4 + 8 * n_dims
        tensors.append(TensorEntry(name, pos, p, p + 4, n_dims, type_at, type_at + 4, type_at + 12))
        pos = type_at + 12
    data_start = (pos + alignment - 1) // alignment * alignment
    return Layout(head[:pos], kvs, tensors, data_start, alignment)


def gguf_string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


# keys a model cannot do without: renaming one away must be refused
REQUIRED = ("general.architecture", ".block_count", ".embedding_length", ".context_length",
            ".attention.head_count", ".attention.key_length", ".attention.value_length",
            "tokenizer.ggml.tokens", "tokenizer.ggml.model")
# widths that tensor shapes must agree with: a changed value contradicts the tensors
SHAPED = (".block_count", ".embedding_length", ".feed_forward_length", ".attention.head_count",
          ".attention.head_count_kv", ".attention.key_length", ".attention.value_length")


def kv_mutations(kv: KV, head: bytes, n_vocab: int) -> list[tuple[str, int, int, bytes]]:
    """(description, start, end, replacement) corruptions of one metadata entry, each one
    a value no model can have (out of range, of the wrong type, or contradicting the
    tensors), so that every one must be refused."""
    out: list[tuple[str, int, int, bytes]] = []
    at, end, vt = kv.value_at, kv.end, kv.vtype
    name = kv.key
    if name.endswith(REQUIRED):
        out.append((f"{name}: key renamed", kv.start, kv.type_at, gguf_string(b"x" + name.encode()[1:])))
    if vt in (U32, I32, U64, I64):
        orig = struct.unpack_from(FMT[vt], head, at)[0]
        is_id = name.endswith("_token_id")
        values = [n_vocab, n_vocab + 1000] if is_id else [0]
        values.append(0x7FFFFFFF)
        if name.endswith(SHAPED):
            values += [orig * 64 + 1, orig + 1]
        for v in values:
            packed = struct.pack(FMT[vt], v & (0xFFFFFFFF if SIZES[vt] == 4 else (1 << 64) - 1))
            out.append((f"{name} = {v}", at, end, packed))
        out.append((f"{name}: typed as a float", kv.type_at, at, struct.pack("<I", F32)))
        out.append((f"{name}: typed as a string", kv.type_at, end, struct.pack("<I", STRING) + gguf_string(b"12")))
    elif vt in (F32, F64):
        for v in (float("nan"), float("inf"), -1.0, 1e30):
            out.append((f"{name} = {v}", at, end, struct.pack(FMT[vt], v)))
        out.append((f"{name}: typed as an integer", kv.type_at, at, struct.pack("<I", U32)))
    elif vt == BOOL:
        out.append((f"{name} = 7 (a boolean)", at, end, b"\x07"))
        out.append((f"{name}: typed as a string", kv.type_at, end, struct.pack("<I", STRING) + gguf_string(b"yes")))
    elif vt == STRING:
        out.append((f"{name}: length past the end", at, at + 8, struct.pack("<Q", 1 << 40)))
        out.append((f"{name}: typed as an integer", kv.type_at, end, struct.pack("<I", U32) + b"\x05\0\0\0"))
        out.append((f"{name}: typed as an array", kv.type_at, at, struct.pack("<I", ARRAY)))
    elif vt == ARRAY:
        it, count = struct.unpack_from("<IQ", head, at)
        for c in (count - 1, count + 1, 0, 1 << 40):
            out.append((f"{name}: {c} elements, not {count}", at + 4, at + 12, struct.pack("<Q", c)))
        other = I32 if it != I32 else F32
        out.append((f"{name}: elements typed {other}", at, at + 4, struct.pack("<I", other)))
        out.append((f"{name}: element type 99", at, at + 4, struct.pack("<I", 99)))
    out.append((f"{name}: value type 77", kv.type_at, at, struct.pack("<I", 77)))
    return out


def tensor_mutations(t: TensorEntry, head: bytes) -> list[tuple[str, int, int, bytes]]:
    dims = struct.unpack_from(f"<{t.n_dims}q", head, t.dims_at)
    (offset,) = struct.unpack_from("<Q", head, t.offset_at)
    n = t.name
    return [
        (f"{n}: rank 0", t.rank_at, t.rank_at + 4, struct.pack("<I", 0)),
        (f"{n}: rank 9", t.rank_at, t.rank_at + 4, struct.pack("<I", 9)),
        (f"{n}: first dimension doubled", t.dims_at, t.dims_at + 8, struct.pack("<q", dims[0] * 2)),
        (f"{n}: last dimension halved", t.dims_at + 8 * (t.n_dims - 1), t.dims_at + 8 * t.n_dims,
         struct.pack("<q", max(1, dims[-1] // 2))),
        (f"{n}: dimension 0", t.dims_at, t.dims_at + 8, struct.pack("<q", 0)),
        (f"{n}: dimension 2^40", t.dims_at, t.dims_at + 8, struct.pack("<q", 1 << 40)),
        (f"{n}: tensor type 200", t.type_at, t.type_at + 4, struct.pack("<I", 200)),
        (f"{n}: offset past the end", t.offset_at, t.offset_at + 8, struct.pack("<Q", offset + (1 << 40))),
        (f"{n}: offset misaligned", t.offset_at, t.offset_at + 8, struct.pack("<Q", offset + 3)),
        (f"{n}: name emptied", t.start, t.rank_at, gguf_string(b"")),
    ]


# metadata libllama only displays: any value there loads (they are not fuzzed)
DISPLAY_ONLY = ("general.name", "general.type", "general.basename", "general.size_label",
                "general.license", "general.tags", "general.file_type", "general.quantization_version",
                "tokenizer.ggml.pre")


def corruptions(layout: Layout, count: int, seed: int = 13) -> list[tuple[str, int, int, bytes]]:
    """`count` corruptions drawn evenly from metadata and tensor entries (seeded)."""
    rng = random.Random(seed)
    tokens = next(e for e in layout.kvs if e.key == "tokenizer.ggml.tokens")
    n_vocab = struct.unpack_from("<Q", layout.data, tokens.value_at + 4)[0]
    kv = [m for e in layout.kvs if e.key not in DISPLAY_ONLY for m in kv_mutations(e, layout.data, n_vocab)]
    tensors = [m for t in layout.tensors for m in tensor_mutations(t, layout.data)]
    rng.shuffle(kv)
    rng.shuffle(tensors)
    n_kv = min(len(kv), count * 3 // 4)
    return kv[:n_kv] + tensors[: count - n_kv]


def write_corrupted(src: Path, layout: Layout, mutation: tuple[str, int, int, bytes], dest: Path) -> None:
    _, start, end, new = mutation
    head = layout.data[:start] + new + layout.data[end:]
    pad = (-len(head)) % layout.alignment
    with src.open("rb") as fin, dest.open("wb") as fout:
        fout.write(head + b"\0" * pad)
        fin.seek(layout.data_start)
        shutil.copyfileobj(fin, fout, 16 << 20)


def load_in_subprocess(path: Path) -> subprocess.CompletedProcess[str]:
    program = f'(model/create "{path}" :threads 1 :progress false)'
    return subprocess.run([sys.executable, "-m", "gene_jit", "eval", program], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, GENE_LLAMA_LOG="0"))


def scratch_dir(tmp_path: Path) -> Path:
    """Corrupted copies of a 250 MB model are written to memory when possible."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 1 << 30:
        d = shm / f"gene-fuzz-{os.getpid()}"
        d.mkdir(exist_ok=True)
        return d
    return tmp_path


def run_fuzz(count: int, tmp_path: Path) -> None:
    from gene_jit.llama.resolve import default_model_path

    src = default_model_path()
    layout = read_layout(src)
    work = scratch_dir(tmp_path)
    failures: list[str] = []
    try:
        for i, mutation in enumerate(corruptions(layout, count)):
            dest = work / f"case{i}.gguf"
            write_corrupted(src, layout, mutation, dest)
            try:
                proc = load_in_subprocess(dest)
            finally:
                dest.unlink()
            err = proc.stderr.strip()
            ok = proc.returncode == 1 and "bad model file" in err and "Traceback" not in err
            if not ok:
                failures.append(f"{mutation[0]}: exit {proc.returncode}: {err[-300:]}")
    finally:
        if work != tmp_path:
            shutil.rmtree(work, ignore_errors=True)
    assert not failures, "\n".join(failures)


@pytest.mark.model
def test_corrupted_metadata_is_a_gene_error(tmp_path: Path) -> None:
    run_fuzz(20, tmp_path)


@pytest.mark.model
@pytest.mark.slow
def test_corrupted_metadata_fuzz_200(tmp_path: Path) -> None:
    run_fuzz(200, tmp_path)


# ------------------------------------------------------------- plain checks (tiny model)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


def _corrupt_key(src: Path, dest: Path, key: str, value: int) -> Path:
    layout = read_layout(src)
    kv = next(e for e in layout.kvs if e.key == key)
    write_corrupted(src, layout, ("", kv.value_at, kv.end, struct.pack(FMT[kv.vtype], value)), dest)
    return dest


@pytest.mark.parametrize(("key", "value", "message"), [
    ("llama.block_count", 1000, "llama.block_count is 1000"),
    ("llama.block_count", 3, "file has tensors for 2 layers"),
    ("llama.embedding_length", 128, "token_embd.weight has the shape"),
    ("llama.attention.head_count", 0, "llama.attention.head_count_kv is 2 in layer 0"),
    ("llama.attention.head_count_kv", 3, "must divide llama.attention.head_count"),
    ("llama.context_length", 0, "llama.context_length is 0"),
    ("tokenizer.ggml.bos_token_id", 99999, "tokenizer.ggml.bos_token_id is 99999"),
])
def test_bad_metadata_names_the_key(tiny_path: Path, tmp_path: Path, key: str, value: int, message: str) -> None:
    bad = _corrupt_key(tiny_path, tmp_path / "bad.gguf", key, value)
    with pytest.raises(BadModelError) as info:
        Model(str(bad), n_ctx=64, threads=1, progress=False)
    assert message in info.value.message and str(bad) in info.value.message


def test_block_count_1000_exits_with_a_message(tiny_path: Path, tmp_path: Path) -> None:
    bad = _corrupt_key(tiny_path, tmp_path / "blocks.gguf", "llama.block_count", 1000)
    proc = load_in_subprocess(bad)
    assert proc.returncode == 1, proc.stderr
    assert "bad model file" in proc.stderr and "llama.block_count is 1000" in proc.stderr


def test_truncated_tensor_data(tiny_path: Path, tmp_path: Path) -> None:
    data = tiny_path.read_bytes()
    short = tmp_path / "short.gguf"
    short.write_bytes(data[: len(data) - 100])
    with pytest.raises(BadModelError, match="runs past the end of the file"):
        Model(str(short), n_ctx=64, threads=1, progress=False)


def test_directory_is_reported_as_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BadModelError, match="is a directory, not a model file"):
        Model(str(tmp_path), progress=False)
    (tmp_path / "models.gguf").mkdir()
    with pytest.raises(BadModelError, match="is a directory"):
        Model(str(tmp_path / "models.gguf"), progress=False)


@pytest.mark.parametrize(("content", "message"), [
    (b"GGUF", "truncated: 4 bytes"),
    (b"GG", "truncated: 2 bytes"),
    (b"", "truncated: 0 bytes"),
    (b"GGUF\x03\0\0\0" + b"\0" * 8, "truncated: 16 bytes"),
    (b"ABCD" + b"\0" * 40, "does not start with 'GGUF'"),
    (b"PK\x03\x04", "does not start with 'GGUF'"),
    (b"GGUF\x01\0\0\0" + b"\0" * 16, "version 1 is not supported"),
    (b"GGUF\x03\0\0\0" + struct.pack("<QQ", 0, 1 << 50), "more than a file of"),
])
def test_not_a_gguf_is_described(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(content)
    with pytest.raises(BadModelError, match=message):
        Model(str(path), progress=False)
