#!/usr/bin/env bash
# On a GPU machine: the engine's CUDA tests on the real GPU, then the GPU engine bench.
# Results go to $OUT (when set) as well as stdout; TEST_TIMEOUT and BENCH_TIMEOUT bound each step.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset NUMBA_ENABLE_CUDASIM
OUT="${OUT:-/tmp}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import gguf" 2>/dev/null || { [ -d .whl ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"; }
timeout "${TEST_TIMEOUT:-240}" python3 -m pytest tests/test_engine_cuda.py -s -q -m "cuda or not cuda" -p no:cacheprovider 2>&1 | tee "$OUT/engine_cuda_tests.txt"
timeout "${BENCH_TIMEOUT:-420}" python3 bench/engine_bench_gpu.py ${BENCH_ARGS:-} 2>&1 | tee "$OUT/engine_bench_gpu.txt"
