#!/usr/bin/env bash
# On a GPU machine: the CUDA kernel tests on the real GPU, then the GPU bench.
# Results go to $OUT (when set) as well as stdout. TEST_TIMEOUT, BENCH_TIMEOUT and
# EXAMPLE_TIMEOUT (seconds) bound each step, so one slow step can not starve the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset NUMBA_ENABLE_CUDASIM
OUT="${OUT:-/tmp}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
# pytest travels as wheels in .whl/ (carried) when the machine lacks it.
if ! python3 -c "import pytest" 2>/dev/null && [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
timeout "${TEST_TIMEOUT:-900}" python3 -m pytest tests/test_kernels_cuda.py tests/test_tensor_cuda.py -s -m "cuda or not cuda" -p no:cacheprovider 2>&1 | tee "$OUT/cuda_tests.txt"
timeout "${BENCH_TIMEOUT:-900}" python3 bench/gpu_kernels.py ${BENCH_ARGS:-} 2>&1 | tee "$OUT/gpu_bench.txt"
if [ -f examples/transformer_layer.gene ]; then
  timeout "${EXAMPLE_TIMEOUT:-300}" python3 -c "import gene_jit, sys; sys.argv=['x','cuda']; gene_jit.run_file('examples/transformer_layer.gene')" 2>&1 | tee "$OUT/transformer_layer_cuda.txt" || true
fi
