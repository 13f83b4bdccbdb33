#!/usr/bin/env bash
# Runs the CPU benchmarks and writes their results under benchmarks/results/:
# the kernel-level Google Benchmark (JSON) and the 1.1 B-parameter model
# benchmark (JSON + PNG chart). Uses every core for this project and the
# baselines alike; OpenBLAS is installed by the bootstrap, so fp32 is fair.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TORCHAO_CPP_BUILD_TESTS=1
source "$REPO/scripts/_env.sh"
THREADS="${THREADS:-$(nproc)}"
# Debian 12's OpenBLAS (0.3.21) does not know recent Xeons (family 6 model 207
# here) and falls back to its generic "Prescott" SSE3 kernels: an fp32
# baseline 2.5x slower than the machine's AVX-512 kernels (36 against 90-98
# GFLOP/s at 256 x 2048 x 5632 on 2 cores). Pick the AVX-512 kernels the CPU
# supports unless the user chose (model_bench.json records the core used).
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo; then
  core="$(OPENBLAS_VERBOSE=2 "$VENV/bin/python" -c 'import torch; torch.ones(2, 2) @ torch.ones(2, 2)' 2>&1 |
          sed -n 's/^Core: //p' | head -n 1)"
  if [ "$core" = "Prescott" ]; then
    if grep -qw avx512_bf16 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Cooperlake; else export OPENBLAS_CORETYPE=SkylakeX; fi
    echo "OpenBLAS picked its generic $core kernels on this AVX-512 CPU: using OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
  fi
fi
OMP_NUM_THREADS="$THREADS" "$TORCHAO_CPP_BUILD_DIR/benchmarks/cpp/bench_linear" --benchmark_min_time=0.2 \
  --benchmark_out="$REPO/benchmarks/results/bench_linear_cpu_${THREADS}threads.json" --benchmark_out_format=json
"$VENV/bin/python" "$REPO/benchmarks/python/model_bench.py" --threads "$THREADS" \
  --out "$REPO/benchmarks/results/model_bench.json"
