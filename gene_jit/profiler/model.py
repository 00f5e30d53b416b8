"""The profile of one run as plain data: per Gene function, per loop, per library, and
the sampled stacks. Every report (table, JSON, speedscope, flame graph) reads only this.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FunctionStats:
    """One Gene function (or a file's top-level code, named `(top level)`)."""

    name: str
    file: str
    line: int
    calls: int = 0  # exact: every entry, tier 0 or native
    native_calls: int = 0  # entries into native code (tier 1, counted while profiling)
    total_ms: float = 0.0  # sampled, including callees; recursion counted once
    self_ms: float = 0.0  # sampled, excluding Gene callees and library code
    tier: int = 0
    signatures: list[str] = field(default_factory=list)
    compile_ms: float = 0.0
    cache_hits: int = 0
    guard_misses: int = 0
    reason: str | None = None  # why it stayed in tier 0
    reason_line: int | None = None  # where the form that stopped tier 1 is
    reason_form: str | None = None  # that form's source line

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class LoopStats:
    """A loop in Gene source and how many iterations it ran, in tier 0 and native code."""

    kind: str  # the head of the loop form: while, loop, for, repeat, ...
    file: str
    line: int
    column: int
    function: str  # the Gene function it is in, or `(top level)`
    trips: int = 0  # every iteration
    native_trips: int = 0  # of which in native code


@dataclass
class CallStats:
    """One Gene-visible library function (`tensor/matmul`, `generate-text`)."""

    name: str
    calls: int = 0
    ms: float = 0.0  # exact: measured around each call, less the timed calls nested in it


@dataclass
class LibraryStats:
    """Time spent in a library area (tensor kernels, gene engine, libllama, tier-1
    compile), and the tokens an LLM engine read and generated."""

    name: str
    # exact, exclusive of the timed calls nested in these (their own rows, see libcalls);
    # sampled when no call of the area was counted (`sampled`)
    ms: float = 0.0
    calls: int = 0
    functions: list[CallStats] = field(default_factory=list)
    sampled: bool = False
    tokens: int | None = None  # generated tokens (LLM engines only)
    generate_ms: float | None = None  # time decoding and sampling them, prompts excluded
    prompt_tokens: int | None = None  # prompt tokens decoded (not found in the cache)
    prompt_ms: float | None = None

    @property
    def tokens_per_s(self) -> float | None:
        """Generated tokens over `generate_ms`."""
        return _rate(self.tokens, self.generate_ms)

    @property
    def prompt_tokens_per_s(self) -> float | None:
        return _rate(self.prompt_tokens, self.prompt_ms)


def _rate(tokens: int | None, ms: float | None) -> float | None:
    if not tokens or not ms:
        return None
    return tokens / (ms / 1e3)


@dataclass(frozen=True)
class Frame:
    name: str
    file: str
    line: int


@dataclass
class ProfileData:
    program: str
    wall_ms: float
    functions: list[FunctionStats] = field(default_factory=list)
    loops: list[LoopStats] = field(default_factory=list)
    libraries: list[LibraryStats] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    # Sampled stacks: frame indexes from the root down, and the milliseconds they stand for.
    stacks: list[tuple[tuple[int, ...], float]] = field(default_factory=list)
    sample_interval_ms: float = 1.0
    samples: int = 0
    jit_mode: str = "lazy"

    def function(self, name: str) -> FunctionStats | None:
        for f in self.functions:
            if f.name == name:
                return f
        return None

    def to_json(self, functions: list[FunctionStats] | None = None) -> dict[str, Any]:
        """The JSON report: one entry per function (`functions`, default all), loops and
        libraries."""
        libs = []
        for lib in self.libraries:
            d = asdict(lib)
            d["tokens_per_s"] = lib.tokens_per_s
            d["prompt_tokens_per_s"] = lib.prompt_tokens_per_s
            libs.append(d)
        return {
            "program": self.program,
            "wall_ms": round(self.wall_ms, 3),
            "jit": self.jit_mode,
            "functions": [
                _rounded(asdict(f)) for f in (self.functions if functions is None else functions)
            ],
            "loops": [asdict(lp) for lp in self.loops],
            "libraries": libs,
            "samples": self.samples,
        }


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}
