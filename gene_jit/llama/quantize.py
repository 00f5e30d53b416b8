"""Quantisation of GGUF models through libllama's `llama_model_quantize`, and the choice
of a type by memory budget (`model/create ... :max-memory "300MB"` or `:quantize :auto`).

A quantisation writes to a temporary file in the output's folder and renames it into
place only when libllama succeeded, so a failed or interrupted run never leaves a
half-written model under the output's name. Already quantised models are requantised
(their tensors dequantised first), so any type can be made from the default Q4_K_M
model, at no better quality than its source. Progress comes from libllama's log, which
reports each tensor as `[ i/ n]`; the size a type will have comes from a dry run, which
libllama computes in a fraction of a second without writing anything.
"""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import os
import re
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gene_jit.llama import bindings
from gene_jit.llama.errors import LlamaError
from gene_jit.llama.native_tools import tools
from gene_jit.llama.progress import Bar, wanted
from gene_jit.llama.resolve import resolve_model

# Type name -> llama_ftype, best quality first (the order `pick_type` tries them in).
# Types that need an importance matrix (IQ1/IQ2/IQ3) are left out.
TYPES: dict[str, int] = {
    "F32": 0,
    "BF16": 32,
    "F16": 1,
    "Q8_0": 7,
    "Q6_K": 18,
    "Q5_K_M": 17,
    "Q5_K_S": 16,
    "Q5_1": 9,
    "Q5_0": 8,
    "Q4_K_M": 15,
    "Q4_K_S": 14,
    "Q4_1": 3,
    "IQ4_NL": 25,
    "IQ4_XS": 30,
    "Q4_0": 2,
    "Q3_K_L": 13,
    "Q3_K_M": 12,
    "Q3_K_S": 11,
    "Q2_K": 10,
}
# What :quantize :auto and :max-memory choose from, best first.
AUTO_TYPES = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")
FILE_TYPE_NAMES = {v: k for k, v in TYPES.items()}

_TENSOR = re.compile(r"\[\s*(\d+)/\s*(\d+)\]")
_QUANT_SIZE = re.compile(r"quant size\s*=\s*([0-9.]+) MiB")
_MODEL_SIZE = re.compile(r"model size\s*=\s*([0-9.]+) MiB")


class QuantizeError(LlamaError):
    """A quantisation that cannot be done: unknown type, unwritable output, bad source."""

    kind = "quantize error"


@dataclass(frozen=True)
class Result:
    path: Path
    type: str
    size_before: int
    size_after: int
    seconds: float
    calibration: str | None = None  # what the importance matrix came from, if one was used

    def as_map(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "type": self.type,
            "size-before": self.size_before,
            "size-after": self.size_after,
            "seconds": round(self.seconds, 3),
            "calibration": self.calibration,
        }


def type_name(value: Any) -> str:
    """The canonical name of a quantisation type ("q4_k_m", :Q8_0 -> "Q4_K_M", "Q8_0")."""
    text = str(getattr(value, "name", value)).strip().lstrip(":").upper().replace("-", "_")
    if text in TYPES:
        return text
    close = difflib.get_close_matches(text, list(TYPES), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    from gene_jit.llama.options import shown

    given = f":{value.name}" if isinstance(getattr(value, "name", None), str) else shown(value)
    raise QuantizeError(f"unknown quantisation type {given}{hint} (types: {', '.join(TYPES)})")


def check_output(out: str | os.PathLike[str], source: Path | None = None) -> Path:
    """The output path, refused early when it cannot be written (before any work)."""
    path = Path(out).expanduser()
    if path.is_symlink():  # write where the link points: replacing the link would move the file
        path = Path(os.path.realpath(path))
    if path.is_dir():
        raise QuantizeError(f"cannot write the model to {path}: it is a folder; give a file name")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise QuantizeError(f"cannot write the model to {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise QuantizeError(f"cannot write the model to {path}: the folder {folder} is not writable")
    if path.exists() and not path.is_file():  # replacing /dev/null or a pipe with a model would break it
        raise QuantizeError(f"cannot write the model to {path}: it is not a regular file; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise QuantizeError(f"cannot write the model to {path}: the file is not writable")
    if source is not None and path.exists() and path.resolve() == source.resolve():
        raise QuantizeError(f"cannot quantise {source} onto itself; give another output path")
    return path


def _params(ftype: int, threads: int | None, dry_run: bool = False, imatrix: Any = None) -> Any:
    p = tools().llama_model_quantize_default_params()
    p.ftype = ftype
    p.allow_requantize = True
    p.nthread = int(threads or 0)
    p.dry_run = dry_run
    if imatrix is not None:
        p.imatrix = ctypes.addressof(imatrix)
    return p


class ImatrixEntry(ctypes.Structure):
    """struct llama_model_imatrix_data: one weight's importance per input column."""

    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.POINTER(ctypes.c_float)), ("size", ctypes.c_size_t)]


def imatrix_array(imatrix: dict[str, Any]) -> Any:
    """The C array libllama reads (ended by an entry without a name); the NumPy arrays
    it points into are kept on it, alive as long as it is."""
    import numpy as np

    kept = {name: np.ascontiguousarray(values, np.float32) for name, values in imatrix.items()}
    array = (ImatrixEntry * (len(kept) + 1))()
    for entry, (name, values) in zip(array, kept.items(), strict=False):
        entry.name = name.encode()
        entry.data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entry.size = values.size
    array._kept = kept  # type: ignore[attr-defined]
    return array


def quantize(source: Any, out: Any, kind: Any = "Q8_0", threads: int | None = None,
             progress: bool | None = None, imatrix: Any = None, calibration: Any = None) -> Result:
    """Write `source` (a model name or path) quantised to type `kind` into `out`.
    `imatrix` maps weight names to the mean square of each of their input columns, or
    names a llama-imatrix file; `calibration` is None (automatic: types of 4 bits and
    fewer made from a quantised model are calibrated on the model's own text), False,
    True or the path of a calibration text (gene_jit/llama/quantize_calib.py)."""
    from gene_jit.llama.quantize_calib import calibrate

    name = type_name(kind)
    src = resolve_model(None if source is None else str(source))
    path = check_output(str(out), src)
    show = wanted(progress)
    started = time.perf_counter()
    cal = calibrate(src, name, calibration, imatrix, threads, show)
    table = imatrix_array(cal.imatrix) if cal is not None else None
    with terminated_as_interrupt():
        _write(src, path, name, threads, show, cal, table)
    return Result(path, name, src.stat().st_size, path.stat().st_size, time.perf_counter() - started,
                  None if cal is None else cal.note)


def _write(src: Path, path: Path, name: str, threads: int | None, show: bool, cal: Any, table: Any) -> None:
    """Quantise `src` into a temporary file beside `path`, then rename it to `path`."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:  # a folder that looks writable but is not (/proc, a full or read-only disk)
        raise QuantizeError(f"cannot write the model to {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        with _terminal(show) as term:
            rc, log = _run_logged(src, Path(tmp), _params(TYPES[name], threads, imatrix=table),
                                 f"quantising to {name}", term)
        if rc != 0:
            raise QuantizeError(f"libllama could not quantise {src.name} to {name}: {_reason(log)}")
        if cal is not None and cal.collector is not None:
            _gptq(Path(tmp), src, cal, show)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it private; a model file is not
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def terminated_as_interrupt() -> Any:
    """SIGTERM (a timeout, kill, a cancelled job) would end the process on the spot and
    leave the temporary file, hundreds of MB, behind. While quantising in the main
    thread it interrupts as Ctrl-C does, so the file is removed, and the process then
    ends by SIGTERM after all, as it would have (or the earlier handler runs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def interrupt(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    try:
        before = signal.signal(signal.SIGTERM, interrupt)
    except (ValueError, OSError):  # no signals here (an embedding without them)
        yield
        return
    if before is signal.SIG_IGN:  # the process asked not to be stopped by SIGTERM
        signal.signal(signal.SIGTERM, before)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
        if received:
            if callable(before):
                before(signal.SIGTERM, None)
            else:
                os.kill(os.getpid(), signal.SIGTERM)


def _gptq(tmp: Path, src: Path, cal: Any, show: bool) -> None:
    from gene_jit.llama.quantize_gptq import requantise

    col = cal.collector
    with Bar("GPTQ", 1, show) as bar:
        requantise(tmp, src, lambda n: col.gram(n) if n in col.shares else None, cal.imatrix,
                   lambda done, total: bar.update(done, total=total))


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _terminal(show: bool) -> Any:
    """A stream to the terminal that stays one while libllama's stderr is captured."""
    if not show:
        yield None
        return
    sys.stderr.flush()
    stream = os.fdopen(os.dup(2), "w", buffering=1)
    try:
        yield stream
    finally:
        stream.close()


def _run_logged(src: Path, out: Path, params: Any, what: str, term: TextIO | None) -> tuple[int, str]:
    """Run llama_model_quantize in a thread while the bar follows its log; returns the
    status and the log text (shown again with GENE_LLAMA_LOG=1)."""
    result: list[int] = []

    def work() -> None:
        result.append(int(tools().llama_model_quantize(str(src).encode(), str(out).encode(), ctypes.byref(params))))

    with bindings.capture_stderr() as log:
        worker = threading.Thread(target=work, name="gene-quantize", daemon=True)
        worker.start()
        try:
            with Bar(what, 1, term is not None, file=term) as bar:
                while worker.is_alive():
                    worker.join(0.1)
                    done = _last_tensor(log)
                    if done is not None:
                        bar.update(done[0], total=done[1])
        except KeyboardInterrupt:
            _finish(worker, term)
            raise
    text = "".join(log)
    if os.environ.get("GENE_LLAMA_LOG", "") not in ("", "0"):
        sys.stderr.write(text)
    return (result[0] if result else -1), text


def _finish(worker: threading.Thread, term: TextIO | None) -> None:
    """Ctrl-C: libllama's quantiser cannot be stopped, and a file it opened after the
    caller removed its temporary output would stay behind, so wait for it to end (the
    caller then removes the output). Further Ctrl-Cs only repeat the note."""
    note = "interrupted: waiting for libllama's quantiser to finish, then removing its output\n"
    while worker.is_alive():
        try:
            (term or sys.stderr).write(note)
            worker.join()
        except KeyboardInterrupt:
            continue


def _last_tensor(log: list[str]) -> tuple[int, int] | None:
    for line in reversed(log[-8:]):
        m = _TENSOR.search(line)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def _reason(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    bad = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower() or "exception" in ln.lower()]
    return (bad or lines or ["no reason given"])[-1]


def estimated_sizes(source: Path, kind: str) -> tuple[int, int]:
    """Bytes the weights of `source` take now and once quantised to `kind` (libllama's
    dry run, which reads no tensor data)."""
    with tempfile.TemporaryDirectory() as folder:
        rc, log = _run_logged(source, Path(folder) / "dry.gguf", _params(TYPES[kind], None, True), "", None)
    now, after = _MODEL_SIZE.findall(log), _QUANT_SIZE.findall(log)
    if rc != 0 or not now or not after:
        raise QuantizeError(f"libllama could not size {source.name} as {kind}: {_reason(log)}")
    return int(float(now[-1]) * 2**20), int(float(after[-1]) * 2**20)


# ---------------------------------------------------------------------------
# Choosing a type by memory budget.

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "K": 2**10, "M": 2**20, "G": 2**30}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: Any) -> int:
    """Bytes from 300000000, "300MB", "1.5 GB" or "512MiB"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.match(value) if isinstance(value, str) else None
    if m is None or m.group(2).upper() not in _UNITS or float(m.group(1)) <= 0:
        from gene_jit.llama.options import shown

        raise QuantizeError(f'a memory size is a number of bytes or a text like "300MB" or "2GiB", got {shown(value)}')
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def available_memory() -> int:
    """Memory available to a new model now (MemAvailable, else all physical memory)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def source_type(source: Path) -> str | None:
    """The quantisation type recorded in a GGUF's general.file_type, if any."""
    from gene_jit.llama.errors import LlamaError
    from gene_jit.llama.gguf_check import check_model_file

    try:
        value = check_model_file(source).kv.get("general.file_type")
    except LlamaError:
        return None
    return FILE_TYPE_NAMES.get(value) if isinstance(value, int) else None


def pick_type(source: Path, budget: int) -> tuple[str | None, int]:
    """The best type whose weights fit `budget` bytes, and their size: None when the
    source's weights fit as they are. Types better than the source's own are never chosen
    (they would only be larger: requantising cannot restore lost precision)."""
    own = source_type(source)
    order = list(TYPES)
    candidates = [k for k in AUTO_TYPES if own is None or order.index(k) > order.index(own)] or ["Q2_K"]
    size, needed = estimated_sizes(source, candidates[0])
    if size <= budget:
        return None, size
    smallest = f"its weights take {_mb(size)}"
    for kind in candidates:
        if kind != candidates[0]:
            needed = estimated_sizes(source, kind)[1]
        smallest = f"{kind} takes {_mb(needed)}"
        if needed <= budget:
            return kind, needed
    raise QuantizeError(f"no quantisation of {source.name} fits in {_mb(budget)} (the smallest, {smallest})")


def _mb(n: int) -> str:
    # a budget can be a few kilobytes: "0 MB" would not say what was asked for
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}" if unit == "GB" else f"{n / scale:.0f} {unit}"
    return f"{n} bytes"


def auto_quantized(source: Any, max_memory: Any = None, kind: Any = "auto", progress: bool | None = None) -> Path:
    """The model file `model/create` should load under a memory budget or an explicit
    type: the source itself when it fits, else a quantised copy cached beside it (made
    once; later starts find it). Says on stderr which type it chose."""
    src = resolve_model(None if source is None else str(source))
    auto = str(getattr(kind, "name", kind)).lstrip(":").lower() == "auto"
    budget = parse_size(max_memory) if max_memory is not None else (available_memory() if auto else 0)
    if auto:
        chosen, size = pick_type(src, budget)
        if chosen is None:
            print(f"model/create: the weights of {src.name} ({_mb(size)}) fit in {_mb(budget)}; "
                  "loading it as it is", file=sys.stderr)
            return src
        print(f"model/create: {chosen} ({_mb(size)} of weights) is the best type of {src.name} that "
              f"fits in {_mb(budget)}", file=sys.stderr)
    else:
        chosen = type_name(kind)
        if max_memory is not None:
            _check_fits(src, chosen, budget)
        if chosen == source_type(src):  # a copy would be the same weights under another name
            return src
    target = _cache_path(src, chosen)
    # a copy older than its source was made from a file since replaced
    if not target.exists() or target.stat().st_mtime_ns < src.stat().st_mtime_ns:
        quantize(str(src), str(target), chosen, progress=progress)
    return target


def _check_fits(src: Path, kind: str, budget: int) -> None:
    """An explicit `:quantize` type with `:max-memory`: the budget still holds."""
    needed = estimated_sizes(src, kind)[1]
    if needed > budget:
        raise QuantizeError(f"{kind} weights of {src.name} take {_mb(needed)}, more than :max-memory "
                            f"{_mb(budget)}; leave out :quantize to pick the best type that fits")


def _cache_path(src: Path, kind: str) -> Path:
    from gene_jit.llama.resolve import cache_dir

    folder = src.parent if os.access(src.parent, os.W_OK) else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{src.stem}.{kind}.gguf"
