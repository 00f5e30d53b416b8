"""Tokens the LLM library read and generated while profiling, and the time it took, per
engine (libllama or the gene engine).

Every one-prompt generation is a `Generation` of `gene_jit.llama.generate`: its
`_prefill` decodes the prompt (`stats.prompt_decoded` tokens, not counting a prefix the
context already held, in `stats.prompt_seconds`) and each `step` hands out a token, timing
the decoding and sampling in `stats.generate_seconds` (prompt reading, text assembly and
`:on-token` callbacks excluded). While profiling, both methods are wrapped (on the class,
restored afterwards) to add those figures up, so tokens/s is generated tokens over the
time spent generating them. Importing that module does not load libllama.

`batch-generate` decodes several prompts together without `Generation`;
`gene_jit.llama.batch.GENERATED` counts its tokens, and its time is that of the whole
`batch-generate` call, prompts included (`libcalls` adds both).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from gene_jit.profiler.areas import ENGINE, LLAMA
from gene_jit.profiler.model import LibraryStats


@dataclass
class Tally:
    tokens: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0
    prompt_seconds: float = 0.0


def _area_of_context(ctx: Any) -> str:
    return ENGINE if type(ctx).__module__ == "gene_jit.engine.model" else LLAMA


class TokenMeter:
    def __init__(self) -> None:
        self.areas: dict[str, Tally] = {}
        self._originals: list[tuple[Any, str, Any]] = []

    def tally(self, area: str) -> Tally:
        t = self.areas.get(area)
        if t is None:
            t = self.areas[area] = Tally()
        return t

    @staticmethod
    def batch_count() -> int:
        """Tokens batch-generate has produced in this process."""
        batch = sys.modules.get("gene_jit.llama.batch")
        return int(batch.GENERATED[0]) if batch is not None and hasattr(batch, "GENERATED") else 0

    def add_batch(self, area: str, tokens: int, seconds: float) -> None:
        if tokens > 0:
            t = self.tally(area)
            t.tokens += tokens
            t.seconds += seconds

    def fill(self, lib: LibraryStats) -> None:
        t = self.areas.get(lib.name)
        if t is None:
            return
        if t.tokens:
            lib.tokens, lib.generate_ms = t.tokens, t.seconds * 1e3
        if t.prompt_tokens:
            lib.prompt_tokens, lib.prompt_ms = t.prompt_tokens, t.prompt_seconds * 1e3

    def install(self) -> None:
        try:
            from gene_jit.llama.generate import Generation
        except ImportError:  # the LLM library is not part of this build
            return
        step0, prefill0 = Generation.__dict__["step"], Generation.__dict__["_prefill"]
        meter = self

        def step(gen: Any) -> str:
            stats = gen.stats
            made, seconds = stats.generated, stats.generate_seconds
            try:
                return step0(gen)  # type: ignore[no-any-return]
            finally:
                t = meter.tally(_area_of_context(gen.ctx))
                t.tokens += stats.generated - made
                t.seconds += stats.generate_seconds - seconds

        def _prefill(gen: Any) -> None:
            prefill0(gen)
            t = meter.tally(_area_of_context(gen.ctx))
            t.prompt_tokens += gen.stats.prompt_decoded
            t.prompt_seconds += gen.stats.prompt_seconds

        for name, original, wrapper in (("step", step0, step), ("_prefill", prefill0, _prefill)):
            wrapper.__wrapped__ = original  # type: ignore[union-attr]
            self._originals.append((Generation, name, original))
            setattr(Generation, name, wrapper)

    def uninstall(self) -> None:
        for cls, name, original in self._originals:
            setattr(cls, name, original)
        self._originals.clear()
