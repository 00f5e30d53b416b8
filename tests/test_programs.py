"""Conformance programs: every tests/programs/<topic>/<name>.gene, run under both tiers.

Each program carries its expectations in comment lines (the reference test-suite style):

    # Expected: LINE      one per stdout line, in order (`# Expected:` alone = empty line)
    # Error: SUBSTRING    the program must fail with a GeneError whose text contains it
                          (case-insensitive; the stdout before the failure must match the
                          Expected lines)
    # ErrorLine: N        the error is reported at line N
    # Stdin: LINE         stdin fed to the program, one line each
    # Args: A B           $args

Programs run in-process (`gene_jit.run_file`) with stdout captured, once with
`GENE_JIT=0` and once with `GENE_JIT=eager`: both tiers must print the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import JIT_MODES, run_gene_file

PROGRAMS = Path(__file__).resolve().parent / "programs"


@dataclass
class Spec:
    """The expectations read from a program's comment lines."""

    expected: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_line: int | None = None
    stdin: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    has_expected: bool = False


def _directive(line: str, name: str) -> str | None:
    """The text after `# name:` (one separating space dropped), or None."""
    prefix = f"# {name}:"
    if not line.startswith(prefix):
        return None
    rest = line[len(prefix) :]
    return rest[1:] if rest.startswith(" ") else rest


def parse_spec(text: str) -> Spec:
    spec = Spec()
    for raw in text.splitlines():
        line = raw.rstrip()
        if (v := _directive(line, "Expected")) is not None:
            spec.expected.append(v.rstrip())
            spec.has_expected = True
        elif (v := _directive(line, "Error")) is not None:
            spec.errors.append(v.strip())
        elif (v := _directive(line, "ErrorLine")) is not None:
            spec.error_line = int(v)
        elif (v := _directive(line, "Stdin")) is not None:
            spec.stdin.append(v)
        elif (v := _directive(line, "Args")) is not None:
            spec.args.extend(v.split())
    return spec


def _program_ids() -> list[tuple[Path, str]]:
    return [(p, m) for p in sorted(PROGRAMS.rglob("*.gene")) for m in JIT_MODES]


def _id(case: tuple[Path, str]) -> str:
    path, mode = case
    return f"{path.relative_to(PROGRAMS).with_suffix('').as_posix()}[jit={mode}]"


CASES = _program_ids()


def _lines(stdout: str) -> list[str]:
    return [line.rstrip() for line in stdout.splitlines()]


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_program(case: tuple[Path, str]) -> None:
    from gene_jit.runtime.errors import GeneError

    path, mode = case
    spec = parse_spec(path.read_text(encoding="utf-8"))
    assert spec.has_expected or spec.errors, f"{path} has no `# Expected:` or `# Error:` lines"
    stdin = "".join(line + "\n" for line in spec.stdin)
    result = run_gene_file(path, mode, stdin=stdin, args=spec.args)
    got = _lines(result.stdout)

    if not spec.errors:
        if result.error is not None:
            pytest.fail(f"unexpected Gene error:\n{result.error}\nstdout so far:\n{result.stdout}")
        assert got == spec.expected
        return

    assert result.error is not None, (
        f"expected a Gene error, the program succeeded:\n{result.stdout}"
    )
    assert isinstance(result.error, GeneError)
    text = str(result.error)
    for needle in spec.errors:
        assert needle.lower() in text.lower(), f"error text lacks {needle!r}:\n{text}"
    if spec.error_line is not None:
        span = result.error.span
        assert span is not None, f"error has no location:\n{text}"
        assert span.line == spec.error_line, f"error reported at line {span.line}:\n{text}"
    if spec.has_expected:
        assert got == spec.expected


def test_corpus_is_complete() -> None:
    """The corpus covers every topic of the language-core checklist."""
    topics = {p.name for p in PROGRAMS.iterdir() if p.is_dir()}
    required = {
        "literals", "printing", "floats", "arithmetic", "overflow", "infix", "comparison",
        "equality", "logic", "strings", "interpolation", "var_scope", "assignment",
        "functions", "closures", "defaults_varargs", "named_args", "recursion", "if",
        "loops", "for", "repeat", "break_continue", "return", "ranges", "arrays", "maps",
        "genes", "symbols_quote", "selectors", "namespaces", "classes", "exceptions",
        "macros", "eval_parse", "case_match", "enum", "stdlib_strings",
        "stdlib_collections", "json", "seed_forms", "errors",
    }  # fmt: skip
    assert required <= topics, sorted(required - topics)
    assert len(list(PROGRAMS.rglob("*.gene"))) >= 160


def test_spec_parser() -> None:
    spec = parse_spec(
        "(x)\n# Expected: a  \n# Expected:\n# Error: boom\n# ErrorLine: 3\n# Stdin: hi\n"
    )
    assert spec.expected == ["a", ""]
    assert spec.errors == ["boom"]
    assert spec.error_line == 3
    assert spec.stdin == ["hi"]
