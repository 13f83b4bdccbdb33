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
# Debian 12's OpenBLAS (0.3.21) does not know recent CPUs and picks kernels
# below what they run: its generic SSE3 "Prescott" ones on recent Xeons
# (family 6 model 207), its AVX2 "Haswell" ones on Zen 5 (family 26). Newer
# OpenBLAS releases use their AVX-512 kernels there, which run fp32 1.5-2.5x
# faster (Zen 5, 2 cores, 256 x K x N: 201-297 against 138-174 GFLOP/s). The
# fp32 baseline gets the AVX-512 kernels the CPU supports unless the user
# chose (model_bench.json records the core used).
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo; then
  core="$(OPENBLAS_VERBOSE=2 "$VENV/bin/python" -c 'import torch; torch.ones(2, 2) @ torch.ones(2, 2)' 2>&1 |
          sed -n 's/^Core: //p' | head -n 1)"
  case "$core" in
    SkylakeX|Cooperlake|SapphireRapids) ;;
    *)
      if grep -qw avx512_bf16 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Cooperlake; else export OPENBLAS_CORETYPE=SkylakeX; fi
      echo "OpenBLAS picked its ${core:-default} kernels on this AVX-512 CPU: using OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE" ;;
  esac
fi
# After each call OpenBLAS's pthreads build keeps its threads spinning for
# about 2^28 cycles (its THREAD_TIMEOUT) before they sleep. Every model here
# interleaves OpenBLAS calls (fp32 linears, attention's bmm) with OpenMP
# regions (torch's own ops, this project's kernels, quantize_dynamic's), and
# on few cores the spinning threads take the OpenMP threads' cores: on the
# 2-core Xeon VM the int8 x int8 model's output projection, right after the
# attention's bmm, ran 2-2.7x slower than alone, and the prefill rounds of
# every model spread twice as wide. The shortest spin (2^4 cycles), unless
# the user chose (the JSON files record it).
export OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
# The same the other way round: after each parallel region libgomp's threads
# spin for GOMP_SPINCOUNT iterations (300000 by default, milliseconds) before
# they sleep, taking the cores OpenBLAS's threads need for the next fp32 matmul.
# On the 2-core Xeon VM (prefill_bench.py, 3 rounds each, 2026-12-07) a spin of
# 20000 made fp32 prefill 111-114 tok/s against 84 by default, quantize_dynamic
# 325-335 against 286 and Int8DynAct-Int8Weight 338-347 against 284 (2000:
# 107 / 303 / 296; 100000: 99 / 290 / 309; OMP_WAIT_POLICY=PASSIVE:
# 110 / 302 / 326). 20000 unless the user chose a spin or a wait policy.
if [ -z "${GOMP_SPINCOUNT:-}" ] && [ -z "${OMP_WAIT_POLICY:-}" ]; then export GOMP_SPINCOUNT=20000; fi
OMP_NUM_THREADS="$THREADS" "$TORCHAO_CPP_BUILD_DIR/benchmarks/cpp/bench_linear" --benchmark_min_time=0.2 \
  --benchmark_out="$REPO/benchmarks/results/bench_linear_cpu_${THREADS}threads.json" --benchmark_out_format=json
# "high": float32 weight-only linears may take bfloat16x3 products on AMX
# tiles, as bench_linear's float32 rows do (torch 1.13's CPU matmuls ignore it).
"$VENV/bin/python" "$REPO/benchmarks/python/model_bench.py" --threads "$THREADS" --float32-matmul-precision high \
  --out "$REPO/benchmarks/results/model_bench.json"
# The prefill ratios again, each taken within a round of back-to-back prefills (median over rounds).
"$VENV/bin/python" "$REPO/benchmarks/python/prefill_bench.py" --threads "$THREADS" \
  --out "$REPO/benchmarks/results/prefill_bench.json"
