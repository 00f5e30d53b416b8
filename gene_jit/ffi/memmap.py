"""Where an address lies in this process's memory, from the mappings of the process
(`/proc/self/maps` on Linux).

Two uses:

* `ffi/defun` refuses a symbol that is not code (a variable such as `environ`), which
  calling would crash: a function lies in an executable mapping. Definitions are rare,
  so this reads the table afresh.
* Memory of unknown extent (an address C gave back, or one `ffi/ptr` made) is touched
  by `ffi/read`/`write`/`array`/`string`/`cast` only when the bytes lie in readable
  (writable, for a write) mappings, and a pointer `ffi/ptr` made is passed to C only
  when it points into a mapping. These checks run often, so they read a cached table
  and read it again only when an address is not found there (memory mapped since).
  The cache may still list memory unmapped since it was read: that case is not caught
  (C's rules apply, and the crash report of `gene_jit.ffi.crash` names the call).

Where the table cannot be read every check passes.
"""

from __future__ import annotations

import bisect

from gene_jit.runtime.errors import GeneTypeError

MAPS = "/proc/self/maps"

Region = tuple[int, int, str, str]  # (start, end, permissions, path)
# (region starts, regions), sorted; replaced whole so that a reader in another thread
# never pairs one table's starts with another's regions
_table: tuple[list[int], list[Region]] = ([], [])
_readable = True  # whether the table could be read at all


def _load() -> bool:
    global _table, _readable
    try:
        with open(MAPS, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        _readable = False
        return False
    regions = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, _, hi = parts[0].partition("-")
        regions.append((int(lo, 16), int(hi, 16), parts[1], parts[5] if len(parts) > 5 else ""))
    regions.sort()
    _table = ([r[0] for r in regions], regions)
    return True


def _find(address: int) -> Region | None:
    starts, regions = _table
    i = bisect.bisect_right(starts, address) - 1
    if i >= 0 and regions[i][0] <= address < regions[i][1]:
        return regions[i]
    return None


def region(address: int) -> Region | None:
    """(start, end, permissions, path) of the mapping holding `address`; None if it is
    in none, or if the table cannot be read."""
    return _find(address) if _load() else None


def check_code_address(address: int, what: str) -> None:
    """Raise a Gene error unless `address` lies in executable memory."""
    found = region(address)
    if found is None:
        if not _table[1]:  # no table on this system: nothing to check against
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


def _span(address: int, perm: str) -> int:
    """Bytes from `address` on that lie in consecutive mappings with permission `perm`
    (`"r"` or `"w"`; `""` for any mapping), by the cached table."""
    starts, regions = _table
    i = bisect.bisect_right(starts, address) - 1
    if i < 0 or not regions[i][0] <= address < regions[i][1] or perm not in regions[i][2]:
        return 0
    end = regions[i][1]
    i += 1
    while i < len(regions) and regions[i][0] == end and perm in regions[i][2]:
        end = regions[i][1]
        i += 1
    return end - address


def accessible(address: int, perm: str = "r") -> int:
    """How many bytes from `address` lie in mapped memory with permission `perm`
    (`"r"`, `"w"`, or `""` for mapped at all); -1 when the table cannot be read."""
    if not _readable:
        return -1
    if not _table[1] and not _load():
        return -1
    n = _span(address, perm)
    if n == 0 and _load():  # perhaps mapped since the table was read
        n = _span(address, perm)
    return n


def check_range(address: int, size: int, perm: str, who: str) -> None:
    """Raise a Gene error unless the `size` bytes at `address` lie in mapped memory with
    permission `perm` (`"r"` to read, `"w"` to write, `""` merely mapped)."""
    if not 0 < address < 2**64:
        raise GeneTypeError(f"{who}: address {address:#x} is not in this process's memory")
    have = accessible(address, perm)
    if have < 0 or have >= max(size, 1):
        return
    if have and _load():  # the mapping may have grown (the heap) since it was read
        have = _span(address, perm)
        if have >= max(size, 1):
            return
    what = {"r": "readable", "w": "writable", "": "mapped"}[perm]
    if have == 0:
        raise GeneTypeError(f"{who}: address {address:#x} is not in {what} memory")
    raise GeneTypeError(
        f"{who}: {size} bytes at {address:#x} are not all in {what} memory "
        f"(only {have} are)"
    )
