#!/usr/bin/env bash
# On a GPU machine: the engine's and kernels' CUDA tests on the real GPU, the tests marked
# cuda elsewhere (DLPack with PyTorch), the engine's top-1 agreement (bench/engine_fidelity_gpu.py)
# and the GPU engine bench. STEPS picks the parts and their order (default: all); each output goes to $OUT
# (when set) as well as stdout; *_TIMEOUT bound each step, so one slow step can not starve the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset NUMBA_ENABLE_CUDASIM
OUT="${OUT:-/tmp}"
STEPS="${STEPS:-tests kernels others fidelity bench}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import gguf" 2>/dev/null || { [ -d .whl ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"; }
# llama-cpp-python (ctypes over libllama) travels as a copied package folder, when carried
[ -d .devtmp/site ] && export PYTHONPATH="$PYTHONPATH:$PWD/.devtmp/site"
PYTEST="python3 -m pytest -q -p no:cacheprovider"
for step in $STEPS; do
  case $step in
    tests) timeout "${TEST_TIMEOUT:-240}" $PYTEST -s tests/test_engine_cuda.py -m "cuda or not cuda" 2>&1 | tee "$OUT/engine_cuda_tests.txt" ;;
    kernels) timeout "${KERNEL_TIMEOUT:-150}" $PYTEST tests/test_kernels_cuda.py -m "cuda or not cuda" 2>&1 | tee "$OUT/kernels_cuda_tests.txt" ;;
    others)  # every other test marked cuda (DLPack exchange with PyTorch among them)
      others=$(grep -l "mark.cuda" tests/test_*.py | grep -v -e test_engine_cuda.py -e test_kernels_cuda.py | tr '\n' ' ')
      timeout "${OTHER_TIMEOUT:-120}" $PYTEST $others -m cuda -rs 2>&1 | tee "$OUT/other_cuda_tests.txt" ;;
    fidelity) timeout "${FID_TIMEOUT:-150}" python3 bench/engine_fidelity_gpu.py ${FID_ARGS:-} 2>&1 | tee "$OUT/engine_fidelity_gpu.txt" ;;
    bench) timeout "${BENCH_TIMEOUT:-420}" python3 bench/engine_bench_gpu.py ${BENCH_ARGS:-} 2>&1 | tee "$OUT/engine_bench_gpu.txt" ;;
    baseline)  # the committed engine (a copy in .devtmp/base, when carried), same card, same run
      [ -d .devtmp/base ] && (cd .devtmp/base && timeout "${BASE_TIMEOUT:-200}" python3 bench/engine_bench_gpu.py ${BASE_ARGS:---no-torch} 2>&1 | tee "$OUT/engine_bench_gpu_baseline.txt") ;;
    *) echo "unknown step $step" ;;
  esac
done
exit 0
