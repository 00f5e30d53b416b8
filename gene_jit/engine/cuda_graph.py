"""A decode step on the GPU as one launch of a captured CUDA graph.

The engine's Gene forward pass is run once on a capturing stream (`cuda.core`'s graph
builder; numba-cuda launches kernels onto it, cuda_support.Capture routes them there):
every kernel of the step is recorded with its operands' addresses instead of running. The
step's token ids, positions and cache slots are read from one int32 buffer in device
memory (`io [3, B]`), so the same graph serves every later step of B rows: the host
writes `io`, launches the graph and, when it samples, reads the logits back.

With `greedy=True` the graph also ends with an argmax that writes each row's next token
into `io[0]` and advances its position in `io[1]`: replaying it decodes greedily with no
host work between steps (the bench measures the GPU this way).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from gene_jit.engine.cuda_ops import Rows
from gene_jit.tensor.tensor import Tensor
from gene_jit.tensor_kernels.cuda_support import Capture, DeviceError, cuda

__all__ = ["GraphDecoder"]


def _core() -> Any:
    try:
        import cuda.core as core
    except ImportError:  # releases before 0.4 keep the API under .experimental
        import cuda.core.experimental as core  # type: ignore[no-redef]
    return core


class GraphDecoder:
    """Decode steps of `batch` rows over `cache`, each one graph launch."""

    def __init__(self, engine: Any, cache: Any, batch: int, greedy: bool = False) -> None:
        from gene_jit.tensor_kernels.cuda_support import simulator

        if simulator():
            raise DeviceError("CUDA graphs need a GPU; Numba's simulator has none")
        self.engine, self.cache, self.batch, self.greedy = engine, cache, batch, greedy
        cu = cuda()
        self.io = cu.to_device(np.zeros((3, batch), np.int32))
        self.tokens = Tensor(self.io[0], "i32", engine.device)
        self.rows = Rows(self.io[1], self.io[2])
        core = _core()
        self.device = core.Device()
        self.device.set_current()
        self.launch_stream = core.Stream.from_handle(0)  # ordered with numba's copies
        self.graph: Any = None
        self.logits: Any = None
        self.keep: list[Any] = []
        self.host_s: list[float] = []  # host time of each step's launch

    def _run(self) -> Any:
        return self.engine.run_forward(self.cache, self.tokens, self.rows, self.batch)

    def capture(self, tokens: Any, pos: Any, slots: Any) -> np.ndarray:
        """Run one step eagerly (compiling every kernel), then record it; the logits of
        the eager run are returned (the rows' keys and values are in the cache)."""
        self.set_rows(tokens, pos, slots)
        logits = self._run().data.copy_to_host()
        self.set_rows(tokens, pos, slots)
        cuda().synchronize()
        stream = self.device.create_stream()
        builder = stream.create_graph_builder()
        builder.begin_building("relaxed")
        # no frees while capturing: a free synchronises, which a capturing stream refuses
        with cuda().defer_cleanup(), Capture(builder) as cap:
            out = self._run()
            if self.greedy:
                from gene_jit.engine.cuda_kernels import argmax_step

                argmax_step(out.data, self.io[0], self.io[1])
            builder.end_building()
        self.graph = builder.complete()
        self.keep = cap.keep
        self.logits = out.data
        self._stream = stream
        return logits

    def set_rows(self, tokens: Any, pos: Any, slots: Any) -> None:
        self.io.copy_to_device(np.array([tokens, pos, slots], np.int32).reshape(3, self.batch))

    def launch(self) -> None:
        t0 = time.perf_counter()
        self.graph.launch(self.launch_stream)
        self.host_s.append(time.perf_counter() - t0)

    def step(self, tokens: Any, pos: Any, slots: Any) -> np.ndarray:
        """One decode step: the rows' logits [B, V] on the host."""
        if self.graph is None:
            return self.capture(tokens, pos, slots)
        self.set_rows(tokens, pos, slots)
        self.launch()
        return self.logits.copy_to_host()

    def close(self) -> None:
        if self.graph is not None:
            self.graph.close()
        self.graph, self.keep, self.logits = None, [], None
