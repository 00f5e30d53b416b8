"""Kernel launches of one decode step of the native engine on the CUDA path, counted without
a GPU: the models of bench/engine_bench_gpu.py (random weights of real shapes) run one
step of one token under Numba's CUDA simulator with every kernel launch counted and
skipped, so the count comes in seconds where executing the kernels would take hours.

    python bench/engine_launches.py

Each model is written with one layer and with two (layers launch the same kernels, so
the difference is a layer's count), and the count of the model's own depth follows. A
decode step at batch 1 costs about 4-5 us of latency a kernel on an H100 whatever the
kernel does, so the count bounds the step's time from below. The host-side code of the
step runs as it does on a GPU (operand checks, buffers, the 8-bit blocks that ops write
beside their outputs), so the launches counted are the ones a captured graph holds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _skip_kernels() -> list[int]:
    """Simulated launches counted and not run; device functions and calls from inside a
    kernel keep running (none happen, since no kernel runs)."""
    from numba.cuda.simulator import kernel as sim

    count = [0]
    run = sim.FakeCUDAKernel.__call__

    def launch(self: Any, *args: Any) -> Any:
        if self._device or sim._kernel_context:
            return run(self, *args)
        count[0] += 1
        return None

    sim.FakeCUDAKernel.__call__ = launch  # type: ignore[method-assign]
    return count


def _step_launches(spec: dict[str, Any], tmp: Path, count: list[int]) -> int:
    from engine_bench_gpu import write_model

    from gene_jit.engine.model import Engine
    from gene_jit.tensor.device import create_device

    engine = Engine(write_model(tmp / f"{spec['arch']}-{spec['n_layer']}.gguf", spec), create_device("cuda"))
    cache = engine.new_cache(16)
    engine.forward(cache, [5, 7], 0, 1)
    count[0] = 0
    engine.forward(cache, [9], 2, 1)
    return count[0]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    count = _skip_kernels()
    from engine_bench_gpu import GEMMA, LLAMA7B

    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in (("gemma3-270m-shaped Q8_0", GEMMA), ("llama-7B-shaped Q4_0", LLAMA7B)):
            one, two = (_step_launches(dict(spec, n_layer=n), Path(tmp), count) for n in (1, 2))
            layer, depth = two - one, int(spec["n_layer"])  # type: ignore[call-overload]
            print(f"{name}: {layer} kernels a layer, {one - layer} besides; {depth} layers: "
                  f"{one - layer + layer * depth} kernels a decode step at batch 1")


if __name__ == "__main__":
    main()
