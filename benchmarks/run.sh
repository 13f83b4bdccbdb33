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
OMP_NUM_THREADS="$THREADS" "$TORCHAO_CPP_BUILD_DIR/benchmarks/cpp/bench_linear" --benchmark_min_time=0.2 \
  --benchmark_out="$REPO/benchmarks/results/bench_linear_cpu_${THREADS}threads.json" --benchmark_out_format=json
"$VENV/bin/python" "$REPO/benchmarks/python/model_bench.py" --threads "$THREADS" \
  --out "$REPO/benchmarks/results/model_bench.json"
