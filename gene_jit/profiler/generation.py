"""Tokens generated while profiling, and the time spent generating them.

Every generated token goes through `Generation.step` of `gene_jit.llama.generate`, which
keeps the count in `stats.generated`. While profiling, `step` is wrapped (on the class,
restored afterwards) to add up the tokens each call produced and the time it took.
Importing that module does not load libllama. `batch-generate` decodes several prompts
together without `Generation`; `gene_jit.llama.batch.GENERATED` counts its tokens, and
its time is that of the `batch-generate` calls (`libcalls`).
"""

from __future__ import annotations

import sys
import time
from typing import Any


class TokenMeter:
    def __init__(self) -> None:
        self.tokens = 0
        self.seconds = 0.0
        self._cls: Any = None
        self._original: Any = None
        self._batch0 = 0

    @staticmethod
    def _batch_count() -> int:
        batch = sys.modules.get("gene_jit.llama.batch")
        return int(batch.GENERATED[0]) if batch is not None and hasattr(batch, "GENERATED") else 0

    def batch_tokens(self) -> int:
        """Tokens that batch-generate produced since `install`."""
        return self._batch_count() - self._batch0

    def install(self) -> None:
        self._batch0 = self._batch_count()
        try:
            from gene_jit.llama.generate import Generation
        except ImportError:  # the LLM library is not part of this build
            return
        original = Generation.step
        meter = self

        def step(self: Any) -> str:
            before = self.stats.generated
            t0 = time.perf_counter()
            try:
                return original(self)
            finally:
                meter.seconds += time.perf_counter() - t0
                meter.tokens += self.stats.generated - before

        step.__wrapped__ = original  # type: ignore[attr-defined]
        self._cls, self._original = Generation, original
        Generation.step = step  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._cls is not None:
            self._cls.step = self._original
            self._cls = self._original = None
