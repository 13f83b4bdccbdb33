#!/usr/bin/env bash
# Runs on the GPU machine (the device tool), from the repository root: builds
# with that machine's torch and nvcc, runs the torch-free CUDA kernel test and
# its benchmark, then the Python suite. Copies of the outputs go to $OUT.
#   GPU_TEST_SKIP_{KERNEL_BENCH,MODEL,SUITE}=1 skip those steps.
#   device run: mkdir -p .gpu && cp ../shared/golden/*.pt .gpu/ here first, carry .gpu
set -uo pipefail  # every step runs; the exit status says whether any failed
status=0
step() { "$@" || status=1; }
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# The image's default g++ links a static libstdc++ into shared objects, which
# breaks the extension: use the system compiler for C++ and as nvcc's host.
export CXX=/usr/bin/g++ CC=/usr/bin/gcc CUDAHOSTCXX=/usr/bin/g++
export TORCHAO_CPP_BUILD_DIR="$REPO/build/gpu" TORCHAO_CPP_BUILD_TESTS=1
OUT="${OUT:-$REPO/build/gpu/out}"
mkdir -p "$OUT"
if [ -z "${TORCHAO_CPP_GOLDEN:-}" ] && [ -f "$REPO/.gpu/torchao-0.11_seed0.pt" ]; then
  export TORCHAO_CPP_GOLDEN="$REPO/.gpu/torchao-0.11_seed0.pt"
fi
python3 -m pip install --no-build-isolation --no-deps -q -e . 2>&1 | tail -20
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
# Result files carry the GPU's model (h100, h200, ...).
TAG="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -oiE '[a-z][0-9]{2,4}' | head -1 | tr A-Z a-z)"
TAG="${TAG:-gpu}"
step "$TORCHAO_CPP_BUILD_DIR/test_cuda_kernels" > "$OUT/test_cuda_kernels.txt" 2>&1
cat "$OUT/test_cuda_kernels.txt"
if [ "${GPU_TEST_SKIP_KERNEL_BENCH:-0}" != 1 ]; then
  step "$TORCHAO_CPP_BUILD_DIR/test_cuda_kernels" --bench > "$OUT/bench_cuda_kernels.txt" 2>&1
  cat "$OUT/bench_cuda_kernels.txt"
  # The int8 wgmma linear against cuBLASLt's GEMM + epilogue (sm_90 only).
  step "$TORCHAO_CPP_BUILD_DIR/test_cuda_kernels" --bench-int8 > "$OUT/bench_int8_$TAG.txt" 2>&1
  cat "$OUT/bench_int8_$TAG.txt"
fi
# The CUDA dispatch key against the CPU kernels.
step python3 -m pytest tests/gpu -q -p no:cacheprovider > "$OUT/pytest_gpu.txt" 2>&1
tail -25 "$OUT/pytest_gpu.txt"
step python3 benchmarks/python/cuda_bench.py --out "$OUT/cuda_layers_$TAG.json" > "$OUT/cuda_layers_$TAG.txt" 2>&1
cat "$OUT/cuda_layers_$TAG.txt"
if [ "${GPU_TEST_SKIP_MODEL:-0}" != 1 ]; then
  step python3 benchmarks/python/cuda_model_bench.py --out "$OUT/cuda_model_$TAG.json" > "$OUT/cuda_model_$TAG.txt" 2>&1
  cat "$OUT/cuda_model_$TAG.txt"
fi
if [ "${GPU_TEST_SKIP_SUITE:-0}" != 1 ]; then
  step python3 -m pytest tests/python torchao_cpp --doctest-modules --ignore=torchao_cpp/models -q -n 8 \
    -p no:cacheprovider > "$OUT/pytest.txt" 2>&1
  tail -15 "$OUT/pytest.txt"
fi
exit $status
