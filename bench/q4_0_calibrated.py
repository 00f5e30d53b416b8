"""Q4_0 (or another type) of the default model as `model/quantize` makes it, with each of
its calibration choices: the perplexity each costs on the text tests/test_quantize.py
scores and on the README table's text, and how long the quantisation took.

    python bench/q4_0_calibrated.py [--type Q4_0] [--calibration self|off|FILE] [--imatrix FILE]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from q4_0_imatrix import arguments, report, score_file, setup  # noqa: E402


def main() -> None:
    from gene_jit.llama.quantize import quantize

    def extra(ap: object) -> None:
        ap.add_argument("--type", default="Q4_0")  # type: ignore[attr-defined]
        ap.add_argument("--imatrix")  # type: ignore[attr-defined]

    args = arguments(__doc__ or "", extra)
    calibration = {"self": None, "off": False}.get(args.calibration, args.calibration)
    args.calibration = "licences"  # what setup() tokenises for the other benches; unused here
    source, _, _, score, rows = setup(args)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        r = quantize(str(source), Path(folder) / "q.gguf", args.type, args.threads, False, args.imatrix, calibration)
        took = time.perf_counter() - started
        label = f"{r.type}, {r.calibration or 'no calibration'}, {took:.0f} s"
        rows[label] = score_file(r.path, args, score)
        print(f"  {label}: {rows[label]}", flush=True)
    report("q4_0_calibrated.py", rows)


if __name__ == "__main__":
    main()
