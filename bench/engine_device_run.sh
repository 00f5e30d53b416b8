#!/usr/bin/env bash
# On a GPU machine: the engine's and kernels' CUDA tests on the real GPU, the tests marked
# cuda elsewhere (DLPack with PyTorch), the engine's top-1 agreement (bench/engine_fidelity_gpu.py)
# and the GPU engine bench. STEPS picks the parts and their order (default: all); each output goes to $OUT
# (when set) as well as stdout; *_TIMEOUT bound each step, so one slow step can not starve the rest.
# Optional: DEV_SITE (a folder holding llama_cpp, in place of .devtmp/site); ORT_SITE (a folder
# holding onnxruntime-gpu's package: step onnx); MODEL_FILE (the default model's GGUF: step model).
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
[ -n "${DEV_SITE:-}" ] && export PYTHONPATH="$PYTHONPATH:$DEV_SITE"
PYTEST="python3 -m pytest -q -p no:cacheprovider"
for step in $STEPS; do
  case $step in
    tests) timeout "${TEST_TIMEOUT:-240}" $PYTEST -s tests/test_engine_cuda.py tests/test_engine_cuda_mma.py -m "cuda or not cuda" 2>&1 | tee "$OUT/engine_cuda_tests.txt" ;;
    kernels) timeout "${KERNEL_TIMEOUT:-150}" $PYTEST tests/test_kernels_cuda.py -m "cuda or not cuda" 2>&1 | tee "$OUT/kernels_cuda_tests.txt" ;;
    others)  # every other test marked cuda (DLPack exchange with PyTorch among them)
      others=$(grep -l "mark.cuda" tests/test_*.py | grep -v -e test_engine_cuda.py -e test_kernels_cuda.py | tr '\n' ' ')
      timeout "${OTHER_TIMEOUT:-120}" $PYTEST $others -m cuda -rs 2>&1 | tee "$OUT/other_cuda_tests.txt" ;;
    fidelity) timeout "${FID_TIMEOUT:-150}" python3 bench/engine_fidelity_gpu.py ${FID_ARGS:-} 2>&1 | tee "$OUT/engine_fidelity_gpu.txt" ;;
    bench) timeout "${BENCH_TIMEOUT:-420}" python3 bench/engine_bench_gpu.py ${BENCH_ARGS:-} 2>&1 | tee "$OUT/engine_bench_gpu.txt" ;;
    baseline)  # the committed engine (a copy in .devtmp/base, when carried), same card, same run
      [ -d "${BASE_DIR:-.devtmp/base}" ] && (cd "${BASE_DIR:-.devtmp/base}" && timeout "${BASE_TIMEOUT:-200}" python3 bench/engine_bench_gpu.py ${BASE_ARGS:---no-torch} 2>&1 | tee "$OUT/engine_bench_gpu_baseline.txt") ;;
    onnx)  # ONNX Runtime's CUDA provider: CUDA 13 and cuDNN 9 from the nvidia wheels beside torch
      libs=$(python3 -c "import glob, nvidia; print(':'.join(sorted({p for b in nvidia.__path__ for p in glob.glob(b + '/*/lib') + glob.glob(b + '/*/*/lib')})))")
      (export PYTHONPATH="$ORT_SITE:$PYTHONPATH" LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
       python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.__file__, o.get_available_providers(), o.get_device())"
       timeout "${ONNX_TIMEOUT:-150}" $PYTEST tests/test_onnx.py -rs -v 2>&1) | tee "$OUT/onnx_cuda_tests.txt" ;;
    model)  # the default model: top-1 agreement with libllama, the example on :cuda, decode speed
      (timeout "${MODEL_TIMEOUT:-300}" python3 bench/engine_fidelity_gpu.py --model "$MODEL_FILE" --only-model
       timeout 120 python3 -m gene_jit run examples/native_generate.gene cuda 32
       timeout 150 python3 bench/engine_bench_gpu.py --model "$MODEL_FILE" --batches ${MODEL_BATCHES:-1,8,64} --profile) 2>&1 | tee "$OUT/model_gpu.txt" ;;
    *) echo "unknown step $step" ;;
  esac
done
exit 0
