"""Profile files: the JSON report and speedscope's file format
(https://www.speedscope.app/file-format-schema.json, a "sampled" profile)."""

from __future__ import annotations

import json
from typing import Any

from gene_jit.profiler.model import ProfileData

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def json_report(data: ProfileData, sort: str = "total", top: int | None = None) -> dict[str, Any]:
    from gene_jit.profiler.table import ordered

    return data.to_json(ordered(data.functions, sort, top))


def speedscope(data: ProfileData) -> dict[str, Any]:
    frames = [
        {"name": f.name, "file": f.file, "line": f.line} if f.file else {"name": f.name}
        for f in data.frames
    ]
    samples = [list(stack) for stack, _ in data.stacks]
    weights = [round(ms, 6) for _, ms in data.stacks]
    return {
        "$schema": SPEEDSCOPE_SCHEMA,
        "name": f"gene-jit: {data.program}",
        "exporter": "gene-jit profile",
        "activeProfileIndex": 0,
        "shared": {"frames": frames},
        "profiles": [
            {
                "type": "sampled",
                "name": data.program,
                "unit": "milliseconds",
                "startValue": 0,
                "endValue": round(sum(weights), 6),
                "samples": samples,
                "weights": weights,
            }
        ],
    }


def write_json(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1)
        f.write("\n")
