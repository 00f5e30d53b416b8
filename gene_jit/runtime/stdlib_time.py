"""Time builtins: `gene/time/now` (float epoch seconds) and `sleep`."""

from __future__ import annotations

import time
from typing import Any

from gene_jit.runtime.builtins import expect, gene_builtin
from gene_jit.runtime.errors import GeneTypeError


@gene_builtin("now", ns="gene/time")
@gene_builtin("now", ns="gene")
def now() -> float:
    """`(gene/time/now)`: seconds since the epoch, as a float."""
    return time.time()


@gene_builtin("sleep")
def sleep(duration: Any) -> None:
    """`(sleep n)`: an int is milliseconds, a float is seconds (as the reference)."""
    expect("sleep", duration, (int, float), "a number")
    seconds = duration / 1000 if isinstance(duration, int) else duration
    if seconds < 0:
        raise GeneTypeError(f"sleep: duration must not be negative, got {duration}")
    time.sleep(seconds)
