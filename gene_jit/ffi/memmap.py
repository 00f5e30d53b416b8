"""Where an address lies in this process's memory: `ffi/defun` refuses a symbol that is
not code (a variable such as `environ`), which calling would crash.

The check reads the mappings of the process (`/proc/self/maps` on Linux) afresh each
time (libraries come and go; a definition is rare): a function lies in an executable
mapping, a variable in a readable or writable one. Where the table cannot be read the
check is skipped.
"""

from __future__ import annotations

import bisect

from gene_jit.runtime.errors import GeneTypeError

MAPS = "/proc/self/maps"

_starts: list[int] = []
_regions: list[tuple[int, int, str, str]] = []  # (start, end, permissions, path)


def _load() -> bool:
    global _starts, _regions
    try:
        with open(MAPS, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    regions = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, _, hi = parts[0].partition("-")
        regions.append((int(lo, 16), int(hi, 16), parts[1], parts[5] if len(parts) > 5 else ""))
    regions.sort()
    _regions = regions
    _starts = [r[0] for r in regions]
    return True


def _find(address: int) -> tuple[int, int, str, str] | None:
    i = bisect.bisect_right(_starts, address) - 1
    if i >= 0 and _regions[i][0] <= address < _regions[i][1]:
        return _regions[i]
    return None


def region(address: int) -> tuple[int, int, str, str] | None:
    """(start, end, permissions, path) of the mapping holding `address`; None if it is
    in none, or if the table cannot be read."""
    return _find(address) if _load() else None


def check_code_address(address: int, what: str) -> None:
    """Raise a Gene error unless `address` lies in executable memory."""
    found = region(address)
    if found is None:
        if not _regions:  # no table on this system: nothing to check against
            return
        raise GeneTypeError(f"{what} is not at a mapped address ({address:#x})")
    perms, path = found[2], found[3].strip()
    if "x" not in perms:
        where = f"{perms} memory" + (f" of {path}" if path else "")
        raise GeneTypeError(
            f"{what} is data, not a function (it lies in {where}); "
            "read it with (ffi/read (ffi/symbol ...) T) instead"
        )


def may_be_heap(address: int) -> bool:
    """Whether `address` lies in memory malloc hands out (the heap, or anonymous writable
    mappings for big blocks and thread arenas); true where the table cannot be read."""
    if not _load():
        return True
    found = _find(address)
    return found is not None and "w" in found[2] and found[3].strip() in ("", "[heap]")
