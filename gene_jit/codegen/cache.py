"""Disk cache of compiled object code.

Objects live under the user cache dir (`$GENE_JIT_CACHE_DIR`, else
`$XDG_CACHE_HOME/gene-jit`, else `~/.cache/gene-jit`), one file per module, named by a
hash of the module's unoptimised LLVM IR (which encodes the source and the signature),
the host CPU and its features, and the gene-jit, llvmlite and Python versions. A second
process that builds the same module loads the object and skips optimisation and code
generation. `GENE_JIT_CACHE=0` turns the cache off.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import llvmlite


def enabled() -> bool:
    return os.environ.get("GENE_JIT_CACHE", "1").strip().lower() not in ("0", "off", "false", "no")


def cache_dir() -> Path:
    explicit = os.environ.get("GENE_JIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gene-jit"


def key_for(ir_text: str, cpu: str, features: str) -> str:
    from gene_jit import __version__ as version

    h = hashlib.sha256()
    for part in (ir_text, cpu, features, version, llvmlite.__version__, sys.version):
        h.update(part.encode())
        h.update(b"\0")
    return "gj" + h.hexdigest()[:40]


def load(key: str) -> bytes | None:
    if not enabled():
        return None
    try:
        return (cache_dir() / f"{key}.o").read_bytes()
    except OSError:
        return None


def store(key: str, data: bytes) -> None:
    if not enabled():
        return
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # write then rename, so a concurrent reader never sees half a file
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, directory / f"{key}.o")
    except OSError:
        pass  # a cache that cannot be written is only slower
